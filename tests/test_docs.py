"""The README and the docs say true things: the quickstart runs, the names they use exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_quickstart_runs_against_the_emulator(capsys):
    """The first Python block of the README, executed as written."""
    code = _python_blocks(ROOT / "README.md")[0]
    assert "Emulator(" in code, "the README quickstart should run on the embedded emulator"
    namespace: dict = {}
    exec(compile(code, "README.md quickstart", "exec"), namespace)
    results = namespace["results"]
    status = results.status()
    assert list(status["state"]) == ["done", "done"], status
    out = capsys.readouterr().out.strip().splitlines()
    assert any("request_id" in line for line in out)  # print(results.status())
    mean = float(out[-1])  # print(float(ndvi.mean())), computed inside the with block
    assert -1.0 <= mean <= 1.0


def _dotted_names() -> set[str]:
    names: set[str] = set()
    for path in DOC_FILES:
        if path.name == "interfaces.md":  # the dev contract names planned internals too
            continue
        text = path.read_text(encoding="utf-8")
        names.update(re.findall(r"(?<![\w/.])xasync(?:\.[A-Za-z_]\w*)+", text))
    return names


@pytest.mark.parametrize("dotted", sorted(_dotted_names()))
def test_names_in_the_docs_exist(dotted):
    """``xasync.Something`` written in the README or docs resolves to a module or attribute."""
    parts = dotted.split(".")
    obj = importlib.import_module("xasync")
    for i, part in enumerate(parts[1:], start=2):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        obj = importlib.import_module(".".join(parts[:i]))
