"""The study's design: its gap kinds, ratio grids, ratio window and representation regimes."""
from __future__ import annotations

import math
from typing import Any, Sequence

from tasks.pairs import GAP_KIND_OF_FAMILY

GAP_KINDS = GAP_KIND_OF_FAMILY
"""Pair family -> the study's gap kind (docs/PROTOCOL.md): `*/dynamics` physics only, `*/visual` visual only,
`*/visual_dynamics` visual + physics; `*/sensing` and `*/sensing_dynamics` are their low-dimensional
stand-ins (STAND_INS: image kind -> stand-in, used by a claim when a budget has no image runs).
Other families are reported as `other (<family>)`."""
BALANCED = (0.016, 0.1, 0.3)
UNBALANCED = (0.005, 0.5, 0.8)
REFERENCE = "cotrain"

# Regime thresholds (see classify_regime)
OVERLAP_PROBE = 0.6
DISJOINT_PROBE = 0.9
DISJOINT_RETRIEVAL = 0.05
REGIMES = ("overlapping", "structured", "disjoint")
STUDY_WEIGHTS = (0.0, 0.05, 0.5)  # the regimes experiment's discriminator weights (0 = cotrain)


def gap_kind(pair: str) -> str:
    """The study's gap kind of a pair from its family (the part after the last `/`, less an image pair's
    frame size: `lift/visual-48px` is visual only)."""
    family = pair.rsplit("/", 1)[-1].partition("-")[0]
    return GAP_KINDS.get(family, f"other ({family})")


def ratio_window(n: int, m: int) -> dict[str, float]:
    """The study's ratio window for N target and M source demos (docs/PROTOCOL.md, "Mixing ratio").

    ``w_n`` = N / (N + M) (lower bound, uniform sampling), ``w_q`` = sqrt(N / M) (the upper bound as
    the study writes it) and ``w_odds`` = sqrt(N) / (sqrt(N) + sqrt(M)) (where its figure puts it:
    odds w / (1 − w) = sqrt(N / M)); from :mod:`baselines.data`.
    """
    from baselines.data import natural_ratio, odds_rule, sqrt_rule

    return {"w_n": natural_ratio(n, m), "w_q": sqrt_rule(n, m), "w_odds": odds_rule(n, m)}


def window_position(w: float, window: dict[str, float]) -> str:
    """Where ``w`` falls relative to the window: below w_n, inside [w_n, w_odds], inside
    (w_odds, w_q] (inside the sqrt form only), or above w_q (bounds inclusive)."""
    lo, odds, hi = window["w_n"], window["w_odds"], max(window["w_q"], window["w_odds"])
    if w < lo:
        return "below w_n"
    if w <= odds:
        return "inside (both forms)"
    if w <= hi:
        return "inside (sqrt form only)"
    return "above w_q"


def in_window(w: float, window: dict[str, float], form: str = "w_q") -> bool:
    """``w_n <= w <= window[form]``."""
    return window["w_n"] <= w <= window[form]


def nearer_bound(w: float, window: dict[str, float]) -> str:
    """Which upper-bound form ``w`` is nearer to on a log scale: ``w_q`` (sqrt) or ``w_odds``."""
    if not w > 0:
        return "n/a"
    dq, do = abs(math.log(w / window["w_q"])), abs(math.log(w / window["w_odds"]))
    return "w_q (sqrt form)" if dq < do else ("w_odds (odds form)" if do < dq else "equidistant")


def classify_regime(metrics: dict[str, Any]) -> str:
    """The representation regime of one run from its raw metrics (docs/PROTOCOL.md, "three regimes").

    Rules (this suite's, documented here; the study names the regimes but gives no thresholds):

    - the domain is *readable* from what the denoiser sees through ``p`` = ``discern_mlp_cond``
      (held-out accuracy of a 2-layer MLP domain probe on ``z_cond``; ``discern_mlp`` on ``z`` when
      the record has no ``z_cond`` reading; for cotrain and ADDA ``z_cond = z``). Chance is 0.5;
    - cross-domain correspondence through ``a`` = chance-corrected nearest-neighbour retrieval of the
      paired state on ``z``: ``(align_nn − 1/n) / (1 − 1/n)`` clipped to [0, 1], n = ``replay_pairs``
      (raw ``align_nn`` when n is unknown). 0 is chance, 1 perfect retrieval.

    **overlapping** (collapsed): ``p < 0.6`` (OVERLAP_PROBE) — the probe is near chance, so the
    two domains' inputs are not told apart and their actions mix.
    **disjoint** (separate clusters): ``p >= 0.9`` (DISJOINT_PROBE) and ``a < 0.05``
    (DISJOINT_RETRIEVAL) — the domain is plainly readable but a source state's nearest target
    point is not its matching state, so nothing transfers by proximity.
    **structured** (aligned, not collapsed): otherwise — the domain is readable (p >= 0.6) and the
    matching state is retrieved above chance, or the probe sits between the two thresholds.

    0.6 is about 1.5 binomial standard deviations above chance for the ~50 held-out points of a
    quick-profile probe; 0.05 retrieval is 5% of the way from chance to perfect. Returns
    ``"unknown"`` when the metrics are missing.
    """
    p = metrics.get("discern_mlp_cond", metrics.get("discern_mlp"))
    nn = metrics.get("align_nn")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "unknown"
    if p < OVERLAP_PROBE:
        return "overlapping"
    if nn is None or (isinstance(nn, float) and math.isnan(nn)):
        return "unknown"
    n = metrics.get("replay_pairs")
    a = float(nn) if not n or n <= 1 else (float(nn) - 1.0 / n) / (1.0 - 1.0 / n)
    a = min(max(a, 0.0), 1.0)
    if p >= DISJOINT_PROBE and a < DISJOINT_RETRIEVAL:
        return "disjoint"
    return "structured"


def grid_value(w: float | None, grid: Sequence[float]) -> float | None:
    """The value of ``grid`` equal to ``w`` (within 1e-9), else None."""
    if w is None:
        return None
    for g in grid:
        if abs(w - g) < 1e-9:
            return g
    return None
