"""Statistics for reporting success rates: intervals, aggregates and paired comparisons.

Pure numpy/scipy functions; every resampling function is deterministic for its ``seed``.
References: Wilson (1927), "Probable inference, the law of succession, and statistical
inference", JASA 22; Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (rliable: IQM, stratified bootstrap intervals, probability of improvement).

Outcomes of a run are per-episode successes indexed by start state; runs are keyed by training seed. The
two-level bootstrap resamples seeds (outer level: seed-to-seed variance) and, within each drawn seed, its
episodes (inner level: episode variance).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats as sps

from cotrain_robot.session import wilson_interval  # the one formula: the robot side reports with it too

__all__ = [
    "wilson_interval",
    "mean_stderr",
    "iqm",
    "stratified_bootstrap_ci",
    "paired_bootstrap_diff",
    "paired_bootstrap_stat",
    "two_level_bootstrap_ci",
    "paired_diff_se",
    "bootstrap_mdd",
    "probability_of_improvement",
    "min_detectable_difference",
]


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
    return paired_bootstrap_stat([a, b], lambda means: means[..., 0] - means[..., 1], reps, seed)


def paired_bootstrap_stat(
    arms: Sequence[Mapping[int, np.ndarray]],
    stat: Callable[[np.ndarray], np.ndarray],
    reps: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``stat`` of the arms' mean successes with a two-level paired bootstrap 95% interval.

    ``arms[k][s]`` are per-episode outcomes of run seed ``s``, index-aligned by start state across arms; only seeds
    every arm has are used. An arm's success is the mean over seeds of the seed's mean. ``stat`` maps an array whose
    last axis holds the arms' successes to the statistic (vectorized over the leading axes). Each replicate resamples
    seeds, then each drawn seed's start states, shared by every arm. Returns ``(point, lo, hi)``."""
    seeds = sorted(set.intersection(*(set(a) for a in arms))) if arms else []
    if not seeds:
        raise ValueError("the arms share no seeds")
    per_seed = []  # per seed: (arms, episodes)
    for s in seeds:
        rows = [np.asarray(a[s], dtype=np.float64).ravel() for a in arms]
        if len({r.size for r in rows}) != 1 or rows[0].size == 0:
            raise ValueError(f"seed {s}: paired episodes must be equal in number and nonempty "
                             f"(got {', '.join(str(r.size) for r in rows)})")
        per_seed.append(np.stack(rows))
    point = float(stat(np.mean([x.mean(axis=1) for x in per_seed], axis=0)))
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(seeds), size=(reps, len(seeds)))
    means = np.empty((reps, len(seeds), len(arms)))
    for j, x in enumerate(per_seed):
        mask = drawn == j
        episodes = rng.integers(0, x.shape[1], size=(int(mask.sum()), x.shape[1]))
        means[mask] = x[:, episodes].mean(axis=2).T
    boot = stat(means.mean(axis=1))
    if np.isnan(boot).any():
        return point, math.nan, math.nan
    return (point, *_percentile_ci(boot))


def _paired_diffs(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray]) -> list[np.ndarray]:
    """Per shared seed (sorted), the episode-wise differences ``a[s] − b[s]``."""
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
    return diffs


def _two_level_replicates(values: list[np.ndarray], reps: int, seed: int) -> np.ndarray:
    """``reps`` two-level bootstrap replicates of the mean over seeds of each seed's mean: seeds drawn with
    replacement, then each drawn seed's episodes drawn with replacement."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(values), size=(reps, len(values)))
    per_seed = np.empty(drawn.shape)
    for j, d in enumerate(values):
        mask = drawn == j
        per_seed[mask] = d[rng.integers(0, d.size, size=(int(mask.sum()), d.size))].mean(axis=1)
    return per_seed.mean(axis=1)


def two_level_bootstrap_ci(outcomes: Mapping[int, np.ndarray], reps: int = 2000,
                           seed: int = 0) -> tuple[float, float, float]:
    """Success of one arm, the mean over seeds of each seed's mean outcome, with its 95% two-level bootstrap
    percentile interval; returns ``(mean, lo, hi)``."""
    values = [np.asarray(outcomes[s], dtype=np.float64).ravel() for s in sorted(outcomes)]
    if not values or any(v.size == 0 for v in values):
        raise ValueError("need at least one seed, each with at least one episode")
    point = float(np.mean([v.mean() for v in values]))
    return (point, *_percentile_ci(_two_level_replicates(values, reps, seed)))


def paired_diff_se(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray], reps: int = 2000,
                   seed: int = 0) -> float:
    """Standard error of the paired difference ``a − b`` (as in :func:`paired_bootstrap_diff`): the standard
    deviation of its two-level bootstrap replicates, so both seed-to-seed and episode variance count. With one
    shared seed it holds the episode variance alone."""
    return float(_two_level_replicates(_paired_diffs(a, b), reps, seed).std(ddof=1))


def bootstrap_mdd(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable difference of a paired comparison with standard error ``se``:
    ``(z_{1−alpha/2} + z_{power}) · se``, 2.80 · se at 95% confidence and 80% power."""
    if not se >= 0 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"need se >= 0 and alpha, power in (0, 1); got {se}, {alpha}, {power}")
    return float((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * se)


def probability_of_improvement(x, y) -> float:
    """rliable's probability of improvement P(X > Y) on one task: over every pair of a score of X and a score of
    Y (runs: here, per-seed success rates), the fraction where X's is higher, ties counted half (the
    Mann–Whitney U statistic over the number of pairs; Agarwal et al. 2021)."""
    xs, ys = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if xs.size == 0 or ys.size == 0:
        raise ValueError("both arms need at least one score")
    greater = (xs[:, None] > ys[None, :]).mean()
    ties = (xs[:, None] == ys[None, :]).mean()
    return float(greater + 0.5 * ties)


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
