"""#16 finding 10: the package surface and the README quickstart say true things."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xasync

ROOT = Path(__file__).resolve().parents[2]


def test_process_stays_the_function_after_every_submodule_is_imported():
    code = (
        "import importlib, pkgutil, xasync\n"
        "f = xasync.process\n"
        "for m in pkgutil.iter_modules(xasync.__path__):\n"
        "    if m.name != '__main__' and not m.name.startswith('emulator'):\n"
        "        importlib.import_module('xasync.' + m.name)\n"
        "import geopandas\n"
        "assert callable(xasync.process) and xasync.process is f, xasync.process\n"
        "assert xasync.process.__module__ == 'xasync.processing'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # no submodule may share a name with a top-level export
    modules = {p.stem for p in (ROOT / "xasync").glob("*.py")} | {
        p.name for p in (ROOT / "xasync").iterdir() if p.is_dir()
    }
    assert not modules & set(xasync.__all__)


def _quickstart() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]


def test_readme_quickstart_mean_covers_the_field_only(capsys):
    code = _quickstart()
    anchor = "    print(float(ndvi.mean()))"
    assert anchor in code
    # keep the computed values (inside the with block, while the emulator runs)
    code = code.replace(anchor, anchor + "\n    _values = ndvi.values")
    namespace: dict = {}
    exec(compile(code, "README.md quickstart", "exec"), namespace)
    values = namespace["_values"]
    mean = float(capsys.readouterr().out.strip().splitlines()[-1])
    outside = np.isnan(values)
    assert outside.any() and not outside.all()  # the grid's corners lie outside the field
    assert not (values[~outside] == 0).all()
    assert mean == pytest.approx(float(np.nanmean(values)))


def test_readme_first_two_commands_are_unchanged():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert blocks[0].strip() == (
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[demo]" && xasync demo'
    )
    assert blocks[1].strip() == (
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest'
    )
