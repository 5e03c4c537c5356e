"""Statistics for reporting success rates: intervals, aggregates and paired comparisons.

Pure numpy/scipy functions; every resampling function is deterministic for its ``seed``.
References: Wilson (1927), "Probable inference, the law of succession, and statistical
inference", JASA 22; Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (rliable: IQM and stratified bootstrap intervals).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
from scipy import stats as sps

__all__ = [
    "wilson_interval",
    "mean_stderr",
    "iqm",
    "stratified_bootstrap_ci",
    "paired_bootstrap_diff",
    "min_detectable_difference",
]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion; ``n == 0`` gives ``(nan, nan)``.

    With ``p = successes / n``: centre ``(p + z²/2n) / (1 + z²/n)``, half-width
    ``z / (1 + z²/n) · sqrt(p(1 − p)/n + z²/4n²)``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p, z2 = successes / n, z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_stderr(values) -> tuple[float, float]:
    """Mean and standard error (sample std with ddof=1, over sqrt(n)); stderr is nan for n < 2."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return (math.nan, math.nan)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return (float(v.mean()), se)


def iqm(values) -> float:
    """Interquartile mean: mean of the middle 50% of the scores (rliable, Agarwal et al. 2021)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return math.nan
    return float(sps.trim_mean(v, 0.25))


def _percentile_ci(boot: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return (float(lo), float(hi))


def stratified_bootstrap_ci(
    scores_by_task: Mapping[str, np.ndarray],
    stat: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``stat`` over all pooled scores and its 95% stratified-bootstrap percentile interval.

    Each replicate resamples the per-seed scores within every task (with replacement, same
    count) and computes ``stat`` over the pooled resample, as rliable's ``StratifiedBootstrap``
    (Agarwal et al. 2021). Tasks are visited in sorted key order. Returns ``(point, lo, hi)``.
    """
    if not scores_by_task:
        raise ValueError("scores_by_task is empty")
    tasks = [np.asarray(scores_by_task[k], dtype=np.float64).ravel() for k in sorted(scores_by_task)]
    if any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one score")
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks], axis=1)
    boot = sps.trim_mean(pooled, 0.25, axis=1) if stat is iqm else np.array([stat(row) for row in pooled])
    return (float(stat(np.concatenate(tasks))), *_percentile_ci(boot))


def paired_bootstrap_diff(
    a: Mapping[int, np.ndarray],
    b: Mapping[int, np.ndarray],
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean success difference ``a − b`` with a two-level paired bootstrap 95% interval.

    ``a[s]`` and ``b[s]`` are per-episode outcomes of run seed ``s``, index-aligned by start
    state. Only seeds present in both are used. The difference is the mean over seeds of
    ``mean(a[s]) − mean(b[s])``. Each replicate resamples seeds (outer level), then, for each
    drawn seed independently, episode indices shared by both arms (inner level). Returns
    ``(mean_diff, lo, hi)``.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("a and b share no seeds")
    diffs = []
    for s in seeds:
        xa, xb = np.asarray(a[s], dtype=np.float64).ravel(), np.asarray(b[s], dtype=np.float64).ravel()
        if xa.size != xb.size or xa.size == 0:
            raise ValueError(f"seed {s}: paired episodes must be equal in number and nonempty "
                             f"(got {xa.size} and {xb.size})")
        diffs.append(xa - xb)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(seeds), size=(reps, len(seeds)))
    per_seed = np.empty(drawn.shape)
    for j, d in enumerate(diffs):
        mask = drawn == j
        per_seed[mask] = d[rng.integers(0, d.size, size=(int(mask.sum()), d.size))].mean(axis=1)
    point = float(np.mean([d.mean() for d in diffs]))
    return (point, *_percentile_ci(per_seed.mean(axis=1)))


def min_detectable_difference(n_per_arm: float, p: float = 0.5, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """Smallest success-rate difference a two-sided two-proportion z-test resolves.

    Normal approximation with both arms' variance taken at the base rate ``p``:
    ``delta = (z_{1−alpha/2} + z_{power}) · sqrt(2 p (1 − p) / n_per_arm)``; e.g. n = 50,
    p = 0.5: ``(1.960 + 0.842) · sqrt(0.5 / 50) = 0.280``. Episodes are treated as independent,
    so with few seeds this is a lower bound on what a budget resolves.
    """
    if n_per_arm <= 0 or not 0 < p < 1 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"need n_per_arm > 0 and p, alpha, power in (0, 1); "
                         f"got {n_per_arm}, {p}, {alpha}, {power}")
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    return float(z * math.sqrt(2 * p * (1 - p) / n_per_arm))
