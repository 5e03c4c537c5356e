"""Statistics of `cotrain toy`: t intervals over seeds, leave-one-seed-out choices, inside-minus-outside
contrasts, verdicts, and the two-way analysis of variance of the Δz × w grid."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

def mean_ci(values) -> tuple[float, float, float]:
    """Mean and 95% t interval over seeds (NaN bounds for fewer than 2 values)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if v.size < 2:
        return (m, math.nan, math.nan)
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return (m, m - half, m + half)


def fmt_ci(ci: tuple[float, float, float], digits: int = 3) -> str:
    m, lo, hi = ci
    if math.isnan(lo):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def loso_choice(scores: np.ndarray) -> np.ndarray:
    """Leave-one-seed-out choice: for each seed (column of `scores` (K, seeds)), the row (0..K-1) with the
    lowest mean over the *other* seeds.

    A seed measured at a row chosen without it carries no selection bias: the lowest of K noisy in-sample
    means is biased low, so "the best of K" against a single rival favours the K even when nothing differs.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (K, seeds) with at least 2 seeds, got shape {s.shape}")
    return np.argmin((s.sum(axis=1, keepdims=True) - s) / (s.shape[1] - 1), axis=0)


def inside_minus_outside(ys: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per seed, the mean of ys (K, seeds) over the rows `inside` minus the mean over the other rows: (seeds,),
    all NaN when either set is empty (`mean_ci` of it is then NaN).

    Unbiased under no effect (every row with the same expectation) whatever the two sets' sizes, unlike
    asking whether the best row lies inside, which favours the larger set.
    """
    y, mask = np.asarray(ys, dtype=np.float64), np.asarray(inside, dtype=bool)
    if mask.all() or not mask.any():
        return np.full(y.shape[1], math.nan)
    return y[mask].mean(axis=0) - y[~mask].mean(axis=0)


def sign_verdict(ci: tuple[float, float, float], expect_negative: bool = True) -> str:
    """*reproduces* / *opposite* when the interval excludes 0 on the expected / other side, else *not resolved*."""
    if math.isnan(ci[1]):
        return "not resolved"
    if (ci[2] < 0) if expect_negative else (ci[1] > 0):
        return "reproduces"
    if (ci[1] > 0) if expect_negative else (ci[2] < 0):
        return "opposite"
    return "not resolved"


def mixed_share_verdict(share: tuple[float, float, float]) -> str:
    """A mixed output: *reproduces* when the share's interval lies inside (0.1, 0.9), *does not* when it lies
    wholly below 0.1 or above 0.9, else *not resolved*."""
    _, lo, hi = share
    if math.isnan(lo):
        return "not resolved"
    if 0.1 < lo and hi < 0.9:
        return "reproduces"
    return "does not" if hi <= 0.1 or lo >= 0.9 else "not resolved"


def two_way_anova(y: np.ndarray) -> dict[str, Any]:
    """Two-way ANOVA with replication on y (a, b, r): factor A (axis 0), B (axis 1), r replicates.

    Sums of squares by hand (balanced design): SS_A = b·r·Σ(ȳ_i − ȳ)², SS_B = a·r·Σ(ȳ_j − ȳ)²,
    SS_AB = r·Σ(ȳ_ij − ȳ_i − ȳ_j + ȳ)², SS_E = Σ(y − ȳ_ij)². Returns each SS, its share of the
    total, degrees of freedom, F and p (F tests against the residual; NaN when r < 2).
    """
    from scipy import stats

    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 3 or min(y.shape) < 1 or np.isnan(y).any():
        raise ValueError(f"y must be a complete (a, b, r) array, got shape {y.shape}")
    a, b, r = y.shape
    grand = y.mean()
    cell = y.mean(axis=2)
    ma, mb = cell.mean(axis=1), cell.mean(axis=0)
    ss = {"A": b * r * float(((ma - grand) ** 2).sum()), "B": a * r * float(((mb - grand) ** 2).sum()),
          "AB": r * float(((cell - ma[:, None] - mb[None, :] + grand) ** 2).sum()),
          "error": float(((y - cell[..., None]) ** 2).sum())}
    total = float(((y - grand) ** 2).sum())
    dof = {"A": a - 1, "B": b - 1, "AB": (a - 1) * (b - 1), "error": a * b * (r - 1)}
    out: dict[str, Any] = {"ss": ss, "total": total, "df": dof,
                           "share": {k: v / total if total > 0 else math.nan for k, v in ss.items()}}
    out["F"], out["p"] = {}, {}
    for k in ("A", "B", "AB"):
        if dof["error"] > 0 and ss["error"] > 0 and dof[k] > 0:
            f = (ss[k] / dof[k]) / (ss["error"] / dof["error"])
            out["F"][k], out["p"][k] = float(f), float(stats.f.sf(f, dof[k], dof["error"]))
        else:
            out["F"][k] = out["p"][k] = math.nan
    return out


def anova_share_intervals(y: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the ANOVA shares, resampling the replicates (seeds) with replacement.

    The same seed indices are drawn for every cell (a seed is one replication of the whole grid).
    """
    rng = np.random.default_rng(seed)
    r = y.shape[2]
    boots: dict[str, list[float]] = {k: [] for k in ("A", "B", "AB", "error")}
    for _ in range(n_boot):
        idx = rng.integers(r, size=r)
        res = two_way_anova(y[:, :, idx])
        for k in boots:
            boots[k].append(res["share"][k])
    return {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in boots.items()}


def optimum(ws: np.ndarray, ys: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Grid argmin of the seed-mean curve ys (W, seeds), and the 95% range of the bootstrap argmin."""
    opt = float(ws[int(np.argmin(ys.mean(axis=1)))])
    rng = np.random.default_rng(seed)
    r = ys.shape[1]
    boot = [ws[int(np.argmin(ys[:, rng.integers(r, size=r)].mean(axis=1)))] for _ in range(n_boot)]
    return opt, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
