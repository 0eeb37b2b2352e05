"""The emulator shares nothing with the client but the public-contract constants."""

from __future__ import annotations

import ast
from pathlib import Path

import xasync.emulator

PKG = Path(xasync.emulator.__file__).parent


def _xasync_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "xasync"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "xasync"
        ):
            if node.module == "xasync":
                found |= {f"xasync.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def test_only_contract_is_imported_from_xasync():
    files = sorted(PKG.glob("*.py"))
    assert len(files) >= 8
    offenders = {
        f.name: imports - {"xasync._contract"}
        for f in files
        if (imports := _xasync_imports(f)) - {"xasync._contract"}
    }
    assert offenders == {}


def test_the_scanner_catches_offenders(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from xasync import errors\nimport xasync.grid\nfrom xasync._contract import X\n"
    )
    assert _xasync_imports(bad) == {"xasync.errors", "xasync.grid", "xasync._contract"}
