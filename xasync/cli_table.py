"""Fixed-width tables for the ``xasync`` command (no dependency on tabulate)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["format_table"]

#: Longer cells are cut to this many characters (``--json`` gives them whole).
MAX_CELL = 60


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def format_table(table: pd.DataFrame, columns: list[str]) -> str:
    """``columns`` of ``table`` as a plain fixed-width table, one line per row.

    Parameters
    ----------
    table : pandas.DataFrame
        The rows to show.
    columns : list of str
        The columns to show, in order.

    Returns
    -------
    str
        A header line, a rule and one line per row (no trailing newline).
    """
    cells = [[_cell(v) for v in row] for row in table[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
