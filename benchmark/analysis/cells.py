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
    seeds = seed_count(row.seeds)
    wilson = row.seeds == 1 or row.success_mean in (0.0, 1.0)
    return f"{num(row.success_mean)} [{num(row.success_lo)}, {num(row.success_hi)}] ({seeds}{', Wilson' * wilson})"


def interval_text(point: float, lo: float, hi: float, flat: str, signed: bool = True) -> str:
    """``point [lo, hi]``; an interval of zero width is not printed as one: ``point (flat)`` says why."""
    if pd.isna(point):
        return "n/a"
    if lo == hi:
        return f"{num(point, signed=signed)} ({flat})"
    return f"{num(point, signed=signed)} [{num(lo)}, {num(hi)}]"


def drop_text(r: Any) -> str:
    """The drop against the no-gap control with its paired interval, or why there is none."""
    if r.magnitude == 0:
        return "(the control)"
    if pd.isna(r.drop_vs_nogap):
        return "n/a (no control)"
    return interval_text(r.drop_vs_nogap, r.drop_lo, r.drop_hi, "the same outcome on every shared start state")


def seed_count(n: int) -> str:
    """`1 seed`, `5 seeds`."""
    return f"{n} seed" + ("" if n == 1 else "s")
