"""Print one fenced ```bash block of README.md (default: the second, "set-up + tests").

Used by .ci/run so that CI runs the README's command verbatim, and by tests/test_packaging.py.
Usage: python3 .ci/readme_command.py [INDEX]   (0-based; needs only the standard library)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```(?:bash|sh|console)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def readme_blocks(readme: Path) -> list[str]:
    """The bodies of the README's fenced bash blocks, in order, stripped."""
    return [m.group(1).strip() for m in FENCE.finditer(readme.read_text(encoding="utf-8"))]


def main(argv: list[str]) -> int:
    index = int(argv[0]) if argv else 1
    blocks = readme_blocks(Path(__file__).resolve().parent.parent / "README.md")
    if len(blocks) <= index:
        print(f"README.md has only {len(blocks)} bash blocks", file=sys.stderr)
        return 1
    print(blocks[index])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
