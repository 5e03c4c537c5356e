"""How a leaderboard cell reads, the same in the markdown, the CSV's companions and the HTML page."""
from __future__ import annotations

from typing import Any

import pandas as pd


def num(x: Any, signed: bool = False) -> str:
    """Two decimals with a true minus sign; `n/a` when missing."""
    if x is None or pd.isna(x):
        return "n/a"
    return (f"{x:+.2f}" if signed else f"{x:.2f}").replace("-", "\u2212")


def success_text(row: Any) -> str:
    """`mean [lo, hi] (k seeds)`; `Wilson` where the two-level bootstrap has no spread to resample."""
    seeds = f"{row.seeds} seed" + ("" if row.seeds == 1 else "s")
    wilson = row.seeds == 1 or row.success_mean in (0.0, 1.0)
    return f"{num(row.success_mean)} [{num(row.success_lo)}, {num(row.success_hi)}] ({seeds}{', Wilson' * wilson})"
