"""Numbers, intervals and tables as the reports' markdown writes them (leaderboard, study, ablation)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def num(x: Any, digits: int = 2, signed: bool = False) -> str:
    """``x`` to ``digits`` decimals (signed on request); ``n/a`` for None or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(x, (np.floating,)) and np.isnan(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def ci(point: float, lo: float, hi: float, signed: bool = False, digits: int = 2) -> str:
    """``point [lo, hi]``, ``[no interval]`` without bounds, ``n/a`` without a point."""
    if point is None or math.isnan(point):
        return "n/a"
    if lo is None or math.isnan(lo):
        return f"{num(point, digits, signed)} [no interval]"
    return f"{num(point, digits, signed)} [{num(lo, digits)}, {num(hi, digits)}]"


def _md_row(cells: list[Any]) -> str:
    """One table line; a pipe inside a cell is escaped so that it stays one cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table, or a note that there are no rows yet."""
    if not rows:
        return "_(no rows: no runs for this table yet)_"
    return "\n".join([_md_row(header), "|" + "---|" * len(header)] + [_md_row(r) for r in rows])


def slug(text: str) -> str:
    """``text`` as a file-name part: runs of other characters than letters and digits become ``_``."""
    import re

    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")
