"""The study track's analyses and its side-by-side with the study: `cotrain study RUNS_DIR`.

Reads the records of a study-track sweep (`cotrain sweep --track study --budget B --runs-dir
RUNS_DIR`) and writes, into ``--out`` (``results/study`` by convention):

1. ``leaderboard.md/.csv/.html`` (:func:`benchmark.analysis.leaderboard.write_leaderboard`; the smallest
   difference the budget resolves is stated there and in ``COMPARISON.md``);
2. ``aggregation.md/.csv``: the study's aggregation beside the suite's per-w rows: *balanced* = mean
   over w in {0.016, 0.1, 0.3}, *unbalanced* = mean over w in {0.005, 0.5, 0.8}, per method and
   pair, with two-level bootstrap intervals (:func:`cell_bootstrap`);
3. ``success_vs_w.md`` and ``success_vs_w_<gap>.png``: success against w per gap kind and
   method with the ratio window (w_n, w_q) drawn, where the measured best w falls, and the
   window claim's paired test (:func:`paired_window_test`) with its design power
   (:func:`window_power`);
4. ``representation.md/.csv``, ``representation_scatter.png``: the representation measures of
   every run and their Pearson/Spearman correlations with success per gap kind, along each
   method's ratio sweep and pooled over methods (:func:`sweep_correlations`);
5. ``regimes.md/.csv``, ``regimes.png``: the regimes experiment (:func:`classify_regime`);
6. ``guidance.md/.csv``, ``guidance.png``: the guidance-scale sweep, evaluated on the finished
   runs' checkpoints (cached per run in ``<run>/guidance.json``, resumable);
7. ``raw_discernibility.md/.csv``, ``raw_discernibility.png``: per pair, how well the domains can
   be told apart from raw observations and observation–action histories;
8. ``COMPARISON.md`` (and ``study.json``): each claim of the study, the suite's value with its
   interval, and a verdict (:func:`verdict`).

Every analysis works on partial data: the runs of the track's grid that are not (yet) in
RUNS_DIR are listed, and a section without the data it needs says so instead of guessing.

Statistics. Success intervals come from a two-level bootstrap (run seeds as the outer level,
evaluation start states as the inner level), the scheme of
:func:`benchmark.analysis.stats.paired_bootstrap_diff` generalized to any function of many cells: the
same resampled start states are used for every run of one seed (all runs of a seed share their
test start states, docs/PROTOCOL.md "Paired comparisons"), so contrasts between cells are paired.
With one seed the interval covers episode noise only, not seed-to-seed variation. Pooled success
with a Wilson interval (:func:`benchmark.analysis.stats.wilson_interval`) is shown per point in tables and
figures. Correlations are taken along each method's ratio sweep (as the study does) and pooled
over methods on Fisher's z with weights n − 3 (:func:`fisher_pool`), never over the runs of all
methods at once; they carry Fisher-z intervals (Pearson; Spearman with the Fieller et al. 1957
variance 1.06 / (n − 3)). Representation contrasts: a percentile bootstrap over matched
(pair, w, seed) units. The window claim compares mean success inside and outside the window,
never the best of unequal sets of points (see :func:`paired_window_test`). Alignment is the
records' scale-free Wasserstein distance (schema 2: divided per run by the within-domain RMS
spread of ``z``), then min–max normalized across the runs of a pair.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tasks.pairs import GAP_KIND_OF_FAMILY, STAND_INS

__all__ = [
    "GAP_KINDS", "BALANCED", "UNBALANCED", "gap_kind", "ratio_window", "window_position", "classify_regime",
    "cell_bootstrap", "balanced_aggregation", "verdict", "combine_verdicts", "alignment_by_kind", "fisher_pool",
    "sweep_correlations", "paired_window_test", "window_sweeps", "window_power", "window_verdict", "load_study",
    "analyze_study", "study",
]

GAP_KINDS = GAP_KIND_OF_FAMILY
"""Pair family -> the study's gap kind (docs/PROTOCOL.md): `*/dynamics` physics only, `*/visual` visual only,
`*/visual_dynamics` visual + physics; `*/sensing` and `*/sensing_dynamics` are their low-dimensional
stand-ins (STAND_INS: image kind -> stand-in, used by a claim when a budget has no image runs).
Other families are reported as `other (<family>)`."""
BALANCED = (0.016, 0.1, 0.3)
UNBALANCED = (0.005, 0.5, 0.8)
REFERENCE = "cotrain"
REPS = 2000
CONFIDENCE = 0.95

# Regime thresholds (see classify_regime)
OVERLAP_PROBE = 0.6
DISJOINT_PROBE = 0.9
DISJOINT_RETRIEVAL = 0.05
REGIMES = ("overlapping", "structured", "disjoint")
STUDY_WEIGHTS = (0.0, 0.05, 0.5)  # the regimes experiment's discriminator weights (0 = cotrain)
# "CFG keeps discernibility": non-inferiority margin on the MLP probe accuracy of z_cond
DISCERN_MARGIN = 0.05

REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED = "reproduced", "not reproduced", "not resolved at this budget"
POOLED = "pooled (Fisher z)"  # the method column of a correlation pooled over methods' sweeps

# The window claim's power check. The study gives no size for "the best ratio lies in the window"; its one
# sim-and-sim success margin is CFG-ADDA's ≈0.55 against 0.52–0.53 for the others (docs/PROTOCOL.md): that margin
# at that base rate is the effect a budget must detect with probability POWER to test the claim.
STUDY_BASE = (0.52 + 0.53) / 2
STUDY_EFFECT = 0.55 - STUDY_BASE
POWER = 0.8


# --- pure pieces ---------------------------------------------------------------------------------

def gap_kind(pair: str) -> str:
    """The study's gap kind of a pair from its family (the part after the last `/`)."""
    family = pair.rsplit("/", 1)[-1]
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


def verdict(lo: float, hi: float, direction: int = 1, null: float = 0.0) -> str:
    """Verdict on a claim "the effect is > null" (``direction=1``) or "< null" (``-1``) from its
    interval: reproduced when the whole interval is on the claimed side of the null, not
    reproduced when it is wholly on the other side, and not resolved at this budget when it
    contains the null or is missing (NaN)."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return NOT_RESOLVED
    if direction < 0:
        lo, hi, null = -hi, -lo, -null
    if lo > null:
        return REPRODUCED
    if hi < null:
        return NOT_REPRODUCED
    return NOT_RESOLVED


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """A compound claim: reproduced when every part is, not reproduced when any part is not,
    otherwise (or with no parts) not resolved."""
    if not verdicts:
        return NOT_RESOLVED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_RESOLVED


def fisher_interval(r: float, n: int, spearman: bool = False, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Fisher-z interval of a correlation coefficient (NaN for n <= 3 or r NaN)."""
    from scipy import stats as sps

    if n is None or n <= 3 or r is None or math.isnan(r):
        return (math.nan, math.nan)
    r = min(max(r, -0.999999), 0.999999)
    se = math.sqrt((1.06 if spearman else 1.0) / (n - 3))
    z, q = math.atanh(r), sps.norm.ppf(0.5 + confidence / 2)
    return (math.tanh(z - q * se), math.tanh(z + q * se))


def correlation_row(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """:func:`benchmark.analysis.metrics.correlation` plus Fisher-z intervals of both coefficients."""
    from benchmark.analysis.metrics import correlation

    c = correlation(x, y)
    c["pearson_lo"], c["pearson_hi"] = fisher_interval(c["pearson_r"], c["n"])
    c["spearman_lo"], c["spearman_hi"] = fisher_interval(c["spearman_rho"], c["n"], spearman=True)
    return c


def fisher_pool(rs: Sequence[float], ns: Sequence[int], spearman: bool = False,
                confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """Inverse-variance pool of independent correlations on Fisher's z: weights n − 3 (Spearman's
    variance 1.06 / (n − 3), Fieller et al. 1957); coefficients with n <= 3 or NaN are left out.
    Returns (r, lo, hi, two-sided p), NaN when none is left."""
    from scipy import stats as sps

    keep = [(min(max(r, -0.999999), 0.999999), n - 3) for r, n in zip(rs, ns) if n > 3 and not math.isnan(r)]
    if not keep:
        return (math.nan,) * 4
    weight = sum(k for _, k in keep)
    z = sum(k * math.atanh(r) for r, k in keep) / weight
    se = math.sqrt((1.06 if spearman else 1.0) / weight)
    q = sps.norm.ppf(0.5 + confidence / 2)
    return (math.tanh(z), math.tanh(z - q * se), math.tanh(z + q * se), float(2 * sps.norm.sf(abs(z) / se)))


def sweep_correlations(runs: pd.DataFrame, measure: str, pooled: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Correlation of ``measure`` with success along each method's ratio sweep (its mixing runs),
    one row per method, then the :data:`POOLED` row: the Fisher-z pool of the methods ``pooled``
    keeps (``methods`` counts those contributing, ``n`` their runs). The study correlates along a
    ratio sweep; pooling the runs of all methods instead would let between-method differences
    (OT's collapsed points: W ≈ 0, success ≈ 0) set the sign."""
    rows = []
    mixing = runs[runs["mix_w"].notna()] if not runs.empty else runs
    for method, g in (mixing.groupby("method") if not mixing.empty else []):
        rows.append(dict(method=method, **correlation_row(g[measure].to_numpy(float), g["success"].to_numpy(float))))
    kept = [r for r in rows if pooled(r["method"]) and r["n"] > 3]
    pr = fisher_pool([r["pearson_r"] for r in kept], [r["n"] for r in kept])
    ps = fisher_pool([r["spearman_rho"] for r in kept], [r["n"] for r in kept], spearman=True)
    used = [r for r in kept if not math.isnan(r["pearson_r"])]
    rows.append(dict(method=POOLED, pearson_r=pr[0], pearson_lo=pr[1], pearson_hi=pr[2], pearson_p=pr[3],
                     spearman_rho=ps[0], spearman_lo=ps[1], spearman_hi=ps[2], spearman_p=ps[3],
                     n=sum(r["n"] for r in used), methods=len(used)))
    return rows


def _study_method(label: str) -> bool:
    """A study method's own label, not a regime variant such as ``adda[adversarial_weight=0.5]``."""
    return "[" not in label


def paired_window_test(rates: np.ndarray, inside: np.ndarray,
                       confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The window claim's statistic: per sweep, mean success at its ratios inside the window minus
    mean success at those outside (paired within the sweep), then the mean over sweeps with a
    Student-t interval over sweeps.

    ``rates``: (..., S, K) success of S sweeps at K ratios (NaN where a sweep has no run);
    ``inside``: (S, K) whether each ratio lies in the sweep's window. A sweep without a point on
    both sides is left out; fewer than 2 usable sweeps, or identical differences in all of them,
    give a NaN interval. Under no effect each sweep's difference has mean 0 whatever the numbers
    of points inside and outside, unlike the best inside against the best outside (the maximum of
    more points is larger under pure noise). Returns (mean, lo, hi) of shape ``rates.shape[:-2]``.
    """
    from scipy import stats as sps

    rates = np.asarray(rates, dtype=np.float64)
    inside = np.broadcast_to(np.asarray(inside, dtype=bool), rates.shape)
    d = _masked_mean(rates, inside, axis=-1) - _masked_mean(rates, ~inside, axis=-1)
    usable = np.isfinite(d)
    n = usable.sum(axis=-1)
    mean = _masked_mean(d, usable, axis=-1)
    dev = np.where(usable, d - mean[..., None], 0.0)
    sd = np.sqrt((dev ** 2).sum(axis=-1) / np.maximum(n - 1, 1))
    half = sps.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
    half = np.where((n >= 2) & (sd > 0), half, np.nan)  # no spread between sweeps: no interval
    return mean, mean - half, mean + half


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the finite ``values`` where ``mask`` along ``axis``; NaN where there are none."""
    keep = mask & np.isfinite(values)
    count = keep.sum(axis=axis)
    total = np.where(keep, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def window_power(inside: np.ndarray, present: np.ndarray, episodes: int, effect: float = STUDY_EFFECT,
                 base: float = STUDY_BASE, confidence: float = CONFIDENCE) -> float:
    """Design power of :func:`paired_window_test`: the chance that its interval lies wholly above
    0 when success is ``base`` outside the window and ``base + effect`` inside, with binomial
    episode noise only (``episodes`` per run; training noise would lower it further).

    ``inside``, ``present``: (S, K) masks of the sweeps' ratios (in the window; gridded). Each
    sweep's difference has variance p_in q_in / (E k_in) + p_out q_out / (E k_out) for its k_in and
    k_out points; the t statistic over S usable sweeps is then noncentral t with S − 1 degrees of
    freedom and noncentrality effect / sqrt(mean variance / S). 0 below 2 usable sweeps.
    """
    from scipy import stats as sps

    inside, present = np.asarray(inside, dtype=bool), np.asarray(present, dtype=bool)
    k_in, k_out = (inside & present).sum(axis=1), (~inside & present).sum(axis=1)
    usable = (k_in > 0) & (k_out > 0)
    s = int(usable.sum())
    if s < 2 or episodes < 1:
        return 0.0
    p_in = min(max(base + effect, 0.0), 1.0)
    var = p_in * (1 - p_in) / (episodes * k_in[usable]) + base * (1 - base) / (episodes * k_out[usable])
    ncp = effect / math.sqrt(float(var.mean()) / s)
    return float(sps.nct.sf(sps.t.ppf(0.5 + confidence / 2, s - 1), s - 1, ncp))


def window_verdict(lo: float, hi: float, power: float) -> tuple[str, str]:
    """The window claim's verdict from its interval, and why: a budget whose design power for the
    study's effect is below :data:`POWER` cannot test the claim, so its verdict is not resolved
    whatever the interval (an underpowered test that happens to exclude 0 overstates the effect)."""
    if power < POWER:
        return NOT_RESOLVED, (f"the budget cannot test it: power {power:.2f} < {POWER:.2f} to detect "
                              f"+{STUDY_EFFECT:.3f} (the study's margin) at this budget's episodes and sweeps")
    return verdict(lo, hi), f"power {power:.2f} to detect +{STUDY_EFFECT:.3f} (the study's margin)"


# --- two-level bootstrap over cells --------------------------------------------------------------

Cells = dict  # key -> {run seed: {episode seed: success (0/1)}}


@dataclass
class Boot:
    """Point cell means (row 0) and bootstrap replicates (rows 1..) of every cell, column per key."""

    keys: list
    matrix: np.ndarray

    def has(self, key: Hashable) -> bool:
        return key in self._index and not math.isnan(self.matrix[0, self._index[key]])

    def __post_init__(self) -> None:
        self._index = {k: i for i, k in enumerate(self.keys)}

    def col(self, key: Hashable) -> np.ndarray:
        return self.matrix[:, self._index[key]]

    def stat(self, fn: Callable[[Callable[[Hashable], np.ndarray]], np.ndarray]) -> tuple[float, float, float]:
        """``fn(col)`` on the point (row 0) and every replicate; returns (point, lo, hi), the
        percentile interval over the finite replicates (NaN when fewer than 20)."""
        values = np.asarray(fn(self.col), dtype=np.float64)
        point, reps = float(values[0]), values[1:]
        reps = reps[np.isfinite(reps)]
        if len(reps) < 20 or math.isnan(point):
            return (point, math.nan, math.nan)
        a = (1 - CONFIDENCE) / 2 * 100
        lo, hi = np.percentile(reps, [a, 100 - a])
        return (point, float(lo), float(hi))


def cell_bootstrap(cells: Cells, reps: int = REPS, seed: int = 0) -> Boot:
    """Two-level bootstrap of every cell's mean success (mean over run seeds of the per-run rate).

    ``cells``: key -> {run seed: {episode seed: success}}. Each replicate draws the run seeds with
    replacement from all seeds present (outer level), then for each drawn seed one resample of
    its start states, shared by every cell whose run of that seed has the same start states
    (inner level, paired); a cell none of whose seeds was drawn is NaN in that replicate.
    Deterministic for ``seed``.
    """
    keys = list(cells)
    matrix = np.full((reps + 1, len(keys)), np.nan)
    seeds = sorted({s for k in keys for s in cells[k]})
    for j, k in enumerate(keys):
        rates = [np.mean(list(ep.values())) for ep in cells[k].values() if ep]
        if rates:
            matrix[0, j] = float(np.mean(rates))
    if not seeds or reps == 0:
        return Boot(keys, matrix[:1] if reps == 0 else matrix)
    groups: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for s in seeds:
        by_eps: dict[tuple, list[int]] = {}
        for j, k in enumerate(keys):
            if cells[k].get(s):
                by_eps.setdefault(tuple(sorted(cells[k][s])), []).append(j)
        groups[s] = [(np.array(idx), np.array([[cells[keys[j]][s][e] for e in eps] for j in idx], dtype=np.float64))
                     for eps, idx in by_eps.items()]
    rng = np.random.default_rng(seed)
    sums, counts = np.zeros((reps, len(keys))), np.zeros((reps, len(keys)))
    draws = rng.integers(0, len(seeds), size=(reps, len(seeds)))
    for r in range(reps):
        for d in draws[r]:
            for idx, mat in groups[seeds[d]]:
                e = rng.integers(0, mat.shape[1], size=mat.shape[1])
                sums[r, idx] += mat[:, e].mean(axis=1)
                counts[r, idx] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix[1:] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Boot(keys, matrix)


def _mean_cols(cols: Iterable[np.ndarray]) -> np.ndarray:
    cols = list(cols)
    return np.mean(np.stack(cols), axis=0) if cols else np.array([math.nan])


def unit_bootstrap(values: Sequence[float], reps: int = REPS, seed: int = 0) -> tuple[float, float, float]:
    """Mean of matched-unit differences with a percentile bootstrap over units (NaN interval for < 2)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    if v.size < 2:
        return (float(v.mean()), math.nan, math.nan)
    rng = np.random.default_rng(seed)
    boot = v[rng.integers(0, v.size, size=(reps, v.size))].mean(axis=1)
    a = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(boot, [a, 100 - a])
    return (float(v.mean()), float(lo), float(hi))


# --- records -------------------------------------------------------------------------------------

def _episodes(rec: dict) -> dict[int, float]:
    """Target episodes {episode seed: success}; records without an episode list stand in with
    their first `successes` of `n` episodes succeeding (seeds 0..n-1)."""
    t = rec["eval"]["target"]
    eps = t.get("episodes")
    if eps:
        return {int(e["seed"]): float(bool(e["success"])) for e in eps}
    return {i: float(i < int(t["successes"])) for i in range(int(t["n"]))}


def method_label(rec: dict, vary: dict[str, dict[str, list]] | None = None) -> str:
    """The method's name, with the varied hyperparameters that differ from its defaults appended
    (e.g. ``adda[adversarial_weight=0.5]``), so regime variants stay apart from the method."""
    from baselines.hparams import default_hparams

    cfg = rec["config"]
    method, hp = cfg["method"], cfg.get("hparams") or {}
    varied = (vary or {}).get(method, {})
    if not varied:
        return method
    defaults = default_hparams(method)
    extra = [f"{k}={hp[k]:g}" if isinstance(hp[k], (int, float)) else f"{k}={hp[k]}"
             for k in sorted(varied) if k in hp and hp[k] != defaults.get(k)]
    return f"{method}[{','.join(extra)}]" if extra else method


def sweep_w(rec: dict) -> float | None:
    """The record's point on the ratio axis: its w, or 1 for target_only and 0 for source_only."""
    cfg = rec["config"]
    if cfg.get("w") is not None:
        return float(cfg["w"])
    return {"target_only": 1.0, "source_only": 0.0}.get(cfg["method"])


def runs_table(records: list[dict], vary: dict | None = None, run_dirs: dict[str, Path] | None = None) -> pd.DataFrame:
    """One row per record: keys, success, the representation and raw-discernibility metrics, the
    regime weight (ADDA's adversarial_weight, 0 for cotrain) and the regime."""
    rows = []
    for rec in records:
        cfg, m = rec["config"], rec.get("metrics") or {}
        t = rec["eval"]["target"]
        hp = cfg.get("hparams") or {}
        base = cfg["method"]
        weight = 0.0 if base == REFERENCE else (float(hp["adversarial_weight"]) if base == "adda" and
                                               hp.get("adversarial_weight") is not None else math.nan)
        row = dict(run_id=rec.get("run_id"), pair=cfg["pair"], gap=gap_kind(cfg["pair"]),
                   magnitude=float(cfg["magnitude"]), method=method_label(rec, vary), base=base,
                   w=sweep_w(rec), mix_w=cfg.get("w"), seed=int(cfg["seed"]), n_target=int(cfg["n_target"]),
                   n_source=int(cfg["n_source"]), successes=int(t["successes"]), n=int(t["n"]),
                   success=int(t["successes"]) / int(t["n"]) if int(t["n"]) else math.nan,
                   adversarial_weight=weight, guidance_hp=hp.get("guidance"),
                   gw=m.get("align_gw_shallow", m.get("align_gw")),
                   gw_kind="align_gw_shallow" if "align_gw_shallow" in m else "align_gw",
                   regime=classify_regime(m), run_dir=str((run_dirs or {}).get(rec.get("run_id"), "")))
        for k in ("z_spread", "align_wasserstein", "align_nn", "align_cka", "discern_mlp", "discern_linear",
                  "discern_mlp_cond", "discern_linear_cond", "structured_alignment", "replay_pairs",
                  "raw_discern_linear", "raw_discern_mlp", "raw_discern_obs_action_linear", "raw_discern_obs_action_mlp"):
            row[k] = m.get(k, math.nan)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("align_wasserstein", "gw"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    from benchmark.analysis.metrics import normalize_across_runs

    # normalized across the runs compared, the runs of one pair (same observations, same replay states), after
    # the per-run scale-free division the record's align_wasserstein already carries (schema 2)
    df["w_norm"] = np.nan
    df["gw_norm"] = np.nan
    for _, idx in df.groupby("pair").groups.items():
        df.loc[idx, "w_norm"] = normalize_across_runs(df.loc[idx, "align_wasserstein"].to_numpy(float))
        df.loc[idx, "gw_norm"] = normalize_across_runs(df.loc[idx, "gw"].to_numpy(float))
    df["alignment"] = 1.0 - df["w_norm"]
    df["local_alignment"] = 1.0 - df["gw_norm"]
    return df


def cells_of(records: list[dict], key: Callable[[dict], Hashable | None]) -> Cells:
    """Group records into bootstrap cells by ``key(rec)`` (None skips the record)."""
    cells: Cells = {}
    for rec in records:
        k = key(rec)
        if k is None:
            continue
        eps = _episodes(rec)
        if eps:
            cells.setdefault(k, {})[int(rec["config"]["seed"])] = eps
    return cells


# --- 2. balanced / unbalanced aggregation --------------------------------------------------------

def _close(w: float | None, grid: Sequence[float]) -> float | None:
    if w is None:
        return None
    for g in grid:
        if abs(w - g) < 1e-9:
            return g
    return None


def balanced_aggregation(records: list[dict], vary: dict | None = None, boot: Boot | None = None,
                         reps: int = REPS) -> pd.DataFrame:
    """Per (pair, method) of the mixing methods: balanced = mean success over w in BALANCED,
    unbalanced = mean over w in UNBALANCED (over the w present: ``*_w`` counts them), and
    ``delta`` = balanced − unbalanced, each with a two-level bootstrap interval; plus an ``all pairs`` row
    per method (the mean over the pairs that have it)."""
    keyed = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, vary), float(r["config"]["w"]))
                     if r["config"].get("w") is not None else None)
    boot = boot if boot is not None else cell_bootstrap(keyed, reps=reps)
    by_pm: dict[tuple[str, str], dict[str, list]] = {}
    for pair, method, w in keyed:
        d = by_pm.setdefault((pair, method), {"b": [], "u": [], "seeds": set()})
        d["seeds"] |= set(keyed[(pair, method, w)])
        if _close(w, BALANCED) is not None:
            d["b"].append((pair, method, w))
        if _close(w, UNBALANCED) is not None:
            d["u"].append((pair, method, w))
    rows = []

    def row(pair, method, parts, seeds):
        b = [k for p in parts for k in p["b"]]
        u = [k for p in parts for k in p["u"]]

        def side(keys_by_part):
            return lambda col: _mean_cols(_mean_cols(col(k) for k in ks) for ks in keys_by_part if ks)

        bs = [p["b"] for p in parts if p["b"]]
        us = [p["u"] for p in parts if p["u"]]
        both = [p for p in parts if p["b"] and p["u"]]
        bal = boot.stat(side(bs)) if bs else (math.nan,) * 3
        unb = boot.stat(side(us)) if us else (math.nan,) * 3
        diff = boot.stat(lambda col: _mean_cols(_mean_cols(col(k) for k in p["b"]) - _mean_cols(col(k) for k in p["u"])
                                                for p in both)) if both else (math.nan,) * 3
        rows.append(dict(pair=pair, gap=gap_kind(pair) if pair != "all pairs" else "all",
                         method=method, pairs=len(parts), seeds=len(seeds),
                         balanced=bal[0], balanced_lo=bal[1], balanced_hi=bal[2],
                         balanced_w=len({k[2] for k in b}), unbalanced=unb[0], unbalanced_lo=unb[1],
                         unbalanced_hi=unb[2], unbalanced_w=len({k[2] for k in u}),
                         delta=diff[0], delta_lo=diff[1], delta_hi=diff[2]))

    for (pair, method), d in sorted(by_pm.items()):
        row(pair, method, [d], d["seeds"])
    for method in sorted({m for _, m in by_pm}):
        parts = [d for (p, m), d in sorted(by_pm.items()) if m == method]
        row("all pairs", method, parts, set().union(*(d["seeds"] for d in parts)))
    cols = ["pair", "gap", "method", "pairs", "seeds", "balanced", "balanced_lo", "balanced_hi", "balanced_w",
            "unbalanced", "unbalanced_lo", "unbalanced_hi", "unbalanced_w", "delta", "delta_lo", "delta_hi"]
    return pd.DataFrame(rows, columns=cols)


# --- study data ----------------------------------------------------------------------------------

@dataclass
class StudyData:
    """The records of a study sweep that belong to the track's grid at a budget."""

    runs_dir: Path
    track: str
    budget: str
    spec: dict
    records: list[dict]
    run_dirs: dict[str, Path]
    expected: dict[str, Any]  # run_id -> RunConfig of the grid
    ignored: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list:
        have = {r["run_id"] for r in self.records}
        return [cfg for rid, cfg in self.expected.items() if rid not in have]

    @property
    def vary(self) -> dict:
        return self.spec.get("vary") or {}

    @property
    def episodes(self) -> int:
        from benchmark.harness.config import PROFILES

        return int(self.spec.get("episodes") or PROFILES[self.spec.get("profile", "quick")].episodes)

    @property
    def seeds(self) -> int:
        return len(self.spec.get("seeds") or [0])


def _infer_budget(records: list[dict], budgets: Iterable[str]) -> str:
    profiles = sorted({r["config"].get("profile") for r in records})
    if len(profiles) == 1 and profiles[0] in budgets:
        return profiles[0]
    raise ValueError(f"cannot tell the budget from the records (profiles {profiles}); give --budget "
                     f"({', '.join(budgets)})")


def load_study(runs_dir: str | Path, track: str = "study", budget: str | None = None) -> StudyData:
    """Read RUNS_DIR's records and keep those of the track's grid at ``budget`` (inferred from the
    records' profile when None)."""
    import yaml

    from benchmark.analysis.leaderboard import load_records
    from benchmark.harness.sweep import TRACKS_DIR, load_grid, load_spec

    root = Path(runs_dir)
    records = load_records(root)
    paths = sorted(root.rglob("record.json"))
    run_dirs = {r.get("run_id"): p.parent for r, p in zip(records, paths)}
    if budget is None:
        source = TRACKS_DIR / f"{track}.yaml"
        budgets = list((yaml.safe_load(source.read_text()) or {}).get("budgets") or {}) if source.is_file() else []
        budget = _infer_budget(records, budgets)
    spec, _ = load_spec(track=track, budget=budget)
    grid = load_grid(track=track, budget=budget)
    # device and threads are part of a run's identity: expect the grid at the records' own (most common) setting
    settings = Counter((r["config"].get("device", "cpu"), r["config"].get("threads", 1)) for r in records)
    device, threads = settings.most_common(1)[0][0] if settings else ("cpu", 1)
    expected = {cfg.run_id(): cfg for cfg in (replace(c, device=device, threads=threads) for c in grid.runs())}
    mine = [r for r in records if r.get("run_id") in expected]
    data = StudyData(root, track, budget, spec, mine, run_dirs, expected, ignored=len(records) - len(mine))
    if len(settings) > 1:
        data.notes.append(f"records of several devices / thread counts {sorted(settings)}: read those of "
                          f"device {device!r} with {threads} thread(s)")
    mags = sorted({float(r["config"]["magnitude"]) for r in mine})
    if len(mags) > 1:
        data.notes.append(f"several gap magnitudes {mags}: the analyses use the runs at magnitude {mags[-1]:g}")
    return data


def _gap_records(data: StudyData) -> list[dict]:
    recs = [r for r in data.records if float(r["config"]["magnitude"]) > 0]
    if recs:
        top = max(float(r["config"]["magnitude"]) for r in recs)
        recs = [r for r in recs if float(r["config"]["magnitude"]) == top]
    return recs


def _describe_cfg(cfg) -> str:
    hp = dict(cfg.hparams)
    w = hp.pop("w", None)
    extra = "".join(f" {k}={v}" for k, v in sorted(hp.items()))
    return f"{cfg.pair} {cfg.method} w={w if w is not None else '-'} seed={cfg.seed}{extra}"


def _missing_text(data: StudyData, pred: Callable[[Any], bool] | None = None, limit: int = 12) -> str:
    miss = [c for c in data.missing if pred is None or pred(c)]
    if not miss:
        return "No run of the grid is missing for this analysis."
    shown = "; ".join(_describe_cfg(c) for c in miss[:limit])
    more = f" and {len(miss) - limit} more" if len(miss) > limit else ""
    return f"Missing ({len(miss)} runs of the grid not in the runs folder): {shown}{more}."


# --- formatting ----------------------------------------------------------------------------------

def _num(x: Any, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(x, (np.floating,)) and np.isnan(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _ci(point: float, lo: float, hi: float, signed: bool = False, digits: int = 2) -> str:
    if point is None or math.isnan(point):
        return "n/a"
    if lo is None or math.isnan(lo):
        return f"{_num(point, digits, signed)} [no interval]"
    return f"{_num(point, digits, signed)} [{_num(lo, digits)}, {_num(hi, digits)}]"


def alignment_by_kind(corr: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Verdict and text per gap kind of "alignment correlates with success for visual gaps and the
    relation reverses for physics-only gaps", from the alignment rows of the correlation table: the
    verdict on the :data:`POOLED` row (per-method sweeps pooled by Fisher z), the text with each
    pooled method's own r and n; an image kind without runs is measured on its low-dimensional
    stand-in, and says so."""
    parts, texts = [], []
    rows = corr[corr.measure == "alignment"] if not corr.empty else corr
    for gap, direction in (("visual only", 1), ("visual + physics", 1), ("physics only", -1)):
        label = gap
        g = rows[rows.gap == gap] if not rows.empty else rows
        if g.empty and gap in STAND_INS and not rows.empty:
            label = f"{gap} (no image runs; stand-in {STAND_INS[gap]})"
            g = rows[rows.gap == STAND_INS[gap]]
        pooled = g[g.method == POOLED] if not g.empty else g
        if pooled.empty:
            parts.append(NOT_RESOLVED)
            texts.append(f"{gap}: no runs")
            continue
        r = pooled.iloc[0]
        each = ", ".join(f"{m.method} {_num(m.pearson_r, signed=True)} (n = {m.n})"
                         for m in g[(g.method != POOLED) & g.method.map(_study_method)].itertuples())
        parts.append(verdict(r.pearson_lo, r.pearson_hi, direction=direction))
        texts.append(f"{label}: pooled r = {_ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True)}, "
                     f"ρ = {_num(r.spearman_rho, signed=True)} over {int(r.methods)} methods, n = {r.n}"
                     + (f" ({each})" if each else ""))
    return parts, texts


def _md(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "_(no rows: no runs for this table yet)_"
    line = lambda cells: "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows])


def _figure(nrows: int = 1, ncols: int = 1, w: float = 5.0, h: float = 3.8) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(np.asarray(fig.subplots(nrows, ncols, squeeze=False)))
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)


def _wilson(k: int, n: int) -> tuple[float, float, float]:
    from benchmark.analysis.stats import wilson_interval

    lo, hi = wilson_interval(int(k), int(n))
    return (k / n if n else math.nan, lo, hi)


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


# --- 3. success vs w and the ratio window --------------------------------------------------------

def _window_analysis(data: StudyData, runs: pd.DataFrame, records: list[dict], out: Path) -> dict[str, Any]:
    """Success vs w per gap kind and method, the window, and where the best w falls."""
    files: list[str] = []
    table_rows = []
    point_rows = []
    if runs.empty:
        gaps = []
    else:
        gaps = sorted(runs["gap"].unique())
    sweep = runs[runs["w"].notna()] if not runs.empty else runs
    # cells: (pair, method label, w); single-domain methods are shared points of every method's sweep
    cells = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, data.vary), sweep_w(r))
                     if sweep_w(r) is not None else None)
    boot = cell_bootstrap(cells)
    grid_w = [float(w) for w in data.spec.get("w") or []]
    include_source = any(w == 0.0 for w in grid_w)
    for gap in gaps:
        pairs = sorted(sweep[sweep["gap"] == gap]["pair"].unique())
        fig, axes = _figure(1, max(1, len(pairs)), w=7.0)
        for ax, pair in zip(axes[0], pairs):
            g = sweep[sweep["pair"] == pair]
            n, m = int(g["n_target"].iloc[0]), int(g["n_source"].iloc[0])
            win = ratio_window(n, m)
            singles = {meth: gg for meth, gg in g[g["mix_w"].isna()].groupby("method")}
            for i_m, (method, gm) in enumerate(g[g["mix_w"].notna()].groupby("method")):
                pts = []
                for w, gw in gm.groupby("w"):
                    s, lo, hi = _wilson(gw["successes"].sum(), gw["n"].sum())
                    pts.append((w, s, lo, hi))
                    point_rows.append(dict(gap=gap, pair=pair, method=method, w=w, seeds=len(gw),
                                           successes=int(gw["successes"].sum()), n=int(gw["n"].sum()), success=s,
                                           lo=lo, hi=hi))
                xs = [p[0] * 1.03 ** i_m for p in pts]  # methods offset slightly so equal points stay visible
                ys = [p[1] for p in pts]
                err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=method)
                # the method's sweep: its mixing ws, target_only at 1 (and source_only at 0 when gridded)
                keys = [(pair, method, w) for w in sorted(gm["w"].unique())]
                if "target_only" in singles:
                    keys.append((pair, "target_only", 1.0))
                if include_source and "source_only" in singles:
                    keys.append((pair, "source_only", 0.0))
                keys = [k for k in keys if boot.has(k)]
                pt = {k: boot.col(k)[0] for k in keys}
                best = max(pt.values()) if pt else math.nan
                best_ws = sorted(k[2] for k, v in pt.items() if v == best)
                mixing = [k for k in keys if k[1] == method]
                inside = [k for k in mixing if in_window(k[2], win, "w_q")]
                outside = [k for k in mixing if not in_window(k[2], win, "w_q")]
                contrast = (boot.stat(lambda col: _mean_cols(col(k) for k in inside)
                                      - _mean_cols(col(k) for k in outside))
                            if inside and outside else (math.nan,) * 3)
                reps = boot.matrix[1:, [boot._index[k] for k in keys]] if keys else np.empty((0, 0))
                ok = np.all(np.isfinite(reps), axis=1) if keys else np.array([], bool)
                if keys and ok.any():  # ties share the replicate's vote
                    good = reps[ok]
                    is_max = good == good.max(axis=1, keepdims=True)
                    ins = np.array([in_window(k[2], win, "w_q") for k in keys])
                    p_in = float(np.mean((is_max & ins).sum(axis=1) / is_max.sum(axis=1)))
                else:
                    p_in = math.nan
                if not best_ws:
                    position = nearer = "n/a"
                elif len(best_ws) == 1:
                    position, nearer = window_position(best_ws[0], win), nearer_bound(best_ws[0], win)
                elif len(best_ws) == len(keys):
                    position, nearer = "flat (every point ties)", "n/a (tie)"
                else:
                    tied = list(dict.fromkeys(window_position(w, win) for w in best_ws))  # best_w lists the w's
                    position = f"tie, {tied[0]}" if len(tied) == 1 else "tie across " + " / ".join(tied)
                    nearer = "n/a (tie)"
                table_rows.append(dict(
                    gap=gap, pair=pair, method=method, N=n, M=m, w_n=win["w_n"], w_odds=win["w_odds"], w_q=win["w_q"],
                    sweep=",".join(f"{k[2]:g}" for k in keys), best_w=",".join(f"{w:g}" for w in best_ws),
                    best_success=best, position=position, nearer=nearer, p_best_inside=p_in,
                    chance_inside=float(np.mean([in_window(k[2], win, "w_q") for k in keys])) if keys else math.nan,
                    inside_minus_outside=contrast[0], lo=contrast[1], hi=contrast[2],
                    claim=("[" not in method)))
            for meth, gg in singles.items():
                s, _, _ = _wilson(gg["successes"].sum(), gg["n"].sum())
                ax.axhline(s, linestyle=":" if meth == "target_only" else "--", color="grey" if meth == "target_only"
                           else "tab:brown", label=f"{meth} ({_num(s)})")
            ax.axvspan(win["w_n"], win["w_q"], alpha=0.12, color="tab:green", label="window (w_n, w_q)")
            ax.axvline(win["w_odds"], color="tab:green", linestyle="--", linewidth=1,
                       label="w = √N/(√N+√M)")
            ax.set_xscale("log")
            ax.set(title=f"{pair} ({gap}), N={n}, M={m}", xlabel="target fraction w (log)",
                   ylabel="target success", ylim=(-0.03, 1.03))
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if not pairs:
            _no_data(axes[0][0], f"no runs for {gap}")
        path = out / f"success_vs_w_{_slug(gap)}.png"
        _save(fig, path)
        files.append(path.name)
    if not gaps:
        fig, axes = _figure()
        _no_data(axes[0][0], "no runs yet")
        _save(fig, out / "success_vs_w.png")
        files.append("success_vs_w.png")
    tab = pd.DataFrame(table_rows)
    pts = pd.DataFrame(point_rows)
    claim = _window_claim(runs, data.episodes)
    # markdown
    lines = ["# Success against the mixing ratio w", "",
             "Per gap kind, pair and method: target success against w (pooled episodes, 95% Wilson interval), "
             "with the study's ratio window drawn: w_n = N/(N+M) (lower bound), w_q = √(N/M) (upper bound as the "
             "study writes it, shaded to) and w = √N/(√N+√M) (where its figure puts it, dashed). "
             "`target_only` (w = 1) and `source_only` (w = 0) are dotted and dashed reference lines; methods are "
             "offset by 3% along w so that equal points stay visible.",
             "", "Figures: " + ", ".join(f"[{f}]({f})" for f in files), ""]
    lines += ["## Points", "", _md(["gap", "pair", "method", "w", "seeds", "success [95% Wilson]"],
                                   [[r.gap, r.pair, r.method, f"{r.w:g}", str(r.seeds),
                                     f"{r.successes}/{r.n} = {_ci(r.success, r.lo, r.hi)}"]
                                    for r in pts.itertuples()] if not pts.empty else []), ""]
    lines += ["## Where the best w falls", "",
              "The sweep of a method is its mixing ratios plus `target_only` at w = 1"
              + (" and `source_only` at w = 0" if include_source else "") + ". *best w*: highest mean success "
              "(ties listed); *position*: relative to the window; *nearer*: which upper-bound form the best w is "
              "nearer to on a log scale; *P(best inside)*: share of bootstrap replicates whose best w lies in "
              "[w_n, w_q], beside its *chance* value under no effect (the share of the sweep's points inside: the "
              "best of more points outside lands outside more often under pure noise, so neither column tests the "
              "claim); *inside − outside*: mean success at the method's mixing ratios inside [w_n, w_q] minus the "
              "mean at those outside, paired two-level bootstrap 95% interval.", "",
              _md(["gap", "pair", "method", "N", "M", "w_n", "w = √N/(√N+√M)", "w_q = √(N/M)", "sweep", "best w",
                   "best success", "position", "nearer", "P(best inside)", "chance", "inside − outside [95% CI]"],
                  [[r.gap, r.pair, r.method, str(r.N), str(r.M), _num(r.w_n, 3), _num(r.w_odds, 3), _num(r.w_q, 3),
                    r.sweep, r.best_w, _num(r.best_success), r.position, r.nearer, _num(r.p_best_inside),
                    _num(r.chance_inside), _ci(r.inside_minus_outside, r.lo, r.hi, signed=True)]
                   for r in tab.itertuples()] if not tab.empty else []), "",
              "## The window claim", "", _window_text(claim), "",
              _missing_text(data, lambda c: dict(c.hparams).get("w") is not None
                            or c.method in ("target_only", "source_only")), ""]
    (out / "success_vs_w.md").write_text("\n".join(lines), encoding="utf-8")
    nearer = tab[tab["claim"]]["nearer"].value_counts().to_dict() if not tab.empty else {}
    positions = tab[tab["claim"]]["position"].value_counts().to_dict() if not tab.empty else {}
    return {"table": tab, "claim": claim, "files": files + ["success_vs_w.md"], "nearer": nearer,
            "positions": positions}


def window_sweeps(runs: pd.DataFrame, form: str = "w_q") -> tuple[np.ndarray, np.ndarray]:
    """The window claim's sweeps, one per (pair, method, seed) of the study's mixing methods, as
    (rates, inside): success at each mixing ratio present in any sweep (S, K; NaN where the sweep
    has no run) and whether the ratio lies in [w_n, window[form]] for the sweep's N and M.

    Regime variants (``adda[...]``) are left out, as in the other claims, and so are the
    single-domain runs: ``target_only`` at w = 1 is one run shared by every method's sweep of a
    (pair, seed), so counting it in each would make the sweeps dependent (the t interval over
    sweeps takes them as independent), and it is no co-training method's ratio.
    """
    claim = runs[runs["mix_w"].notna() & runs["method"].map(_study_method)] if not runs.empty else runs
    if claim.empty:
        return np.empty((0, 0)), np.empty((0, 0), dtype=bool)
    ws = sorted(claim["mix_w"].unique())
    groups = [g for _, g in claim.groupby(["pair", "method", "seed"])]
    rates, inside = np.full((len(groups), len(ws)), np.nan), np.zeros((len(groups), len(ws)), dtype=bool)
    for i, g in enumerate(groups):
        win = ratio_window(int(g["n_target"].iloc[0]), int(g["n_source"].iloc[0]))
        inside[i] = [in_window(w, win, form) for w in ws]
        for w, success in zip(g["mix_w"], g["success"]):
            rates[i, ws.index(w)] = success
    return rates, inside


def _window_claim(runs: pd.DataFrame, episodes: int) -> dict[str, Any]:
    """The window claim on the runs: the paired test in both window forms, its design power and verdict."""
    rates, inside = window_sweeps(runs)
    odds_rates, odds_inside = window_sweeps(runs, "w_odds")
    stat = tuple(float(x) for x in paired_window_test(rates, inside))
    odds = tuple(float(x) for x in paired_window_test(odds_rates, odds_inside))
    present = np.isfinite(rates)
    sweeps = int(((inside & present).any(axis=1) & (~inside & present).any(axis=1)).sum())
    power = window_power(inside, present, episodes)
    verdict_, why = window_verdict(stat[1], stat[2], power)
    return dict(stat=stat, odds=odds, sweeps=sweeps, power=power, verdict=verdict_, why=why)


def _window_text(claim: dict[str, Any]) -> str:
    """The window claim in a sentence, for success_vs_w.md."""
    return (f"Mean success inside [w_n, w_q] − mean outside, paired within each (pair, method, seed) sweep of the "
            f"study's methods' mixing ratios: {_ci(*claim['stat'], signed=True)} over {claim['sweeps']} sweeps "
            f"(t interval over sweeps); with the odds form [w_n, √N/(√N+√M)]: {_ci(*claim['odds'], signed=True)}. "
            f"Verdict: {claim['verdict']} ({claim['why']}).")


# --- 4. representation measures ------------------------------------------------------------------

MEASURES = [
    ("alignment", "alignment of z: 1 − scale-free Wasserstein (normalized within pair)"),
    ("local_alignment", "local alignment: 1 − GW on shallow features (normalized within pair)"),
    ("discern_mlp", "domain probe on z, MLP"),
    ("discern_linear", "domain probe on z, linear"),
    ("discern_mlp_cond", "domain probe on z_cond, MLP"),
    ("structured_alignment", "structured-alignment score"),
]


def _representation(data: StudyData, runs: pd.DataFrame, out: Path) -> dict[str, Any]:
    corr_rows = []
    gaps = sorted(runs["gap"].unique()) if not runs.empty else []
    for gap in gaps:
        for key, desc in MEASURES:
            corr_rows += [dict(gap=gap, measure=key, description=desc, **c)
                          for c in sweep_correlations(runs[runs["gap"] == gap], key, _study_method)]
    corr = pd.DataFrame(corr_rows)
    # scatter
    shown = MEASURES[:4]
    fig, axes = _figure(max(1, len(gaps)), len(shown), w=4.0, h=3.4)
    for i, gap in enumerate(gaps):
        g = runs[runs["gap"] == gap]
        for j, (key, desc) in enumerate(shown):
            ax = axes[i][j]
            for method, gm in g.groupby("method"):
                ax.scatter(gm[key], gm["success"], label=method, s=22, edgecolors="k", linewidths=0.4)
            c = corr[(corr.gap == gap) & (corr.measure == key) & (corr.method == POOLED)].iloc[0]
            ax.set(title=f"{gap}: pooled r={_num(c.pearson_r)}, ρ={_num(c.spearman_rho)}, n={c.n}", xlabel=desc,
                   ylabel="target success", ylim=(-0.05, 1.05))
            ax.title.set_fontsize("small")
            ax.xaxis.label.set_fontsize("x-small")
            if j == 0:
                ax.legend(fontsize="xx-small")
    if not gaps:
        _no_data(axes[0][0], "no runs yet")
    _save(fig, out / "representation_scatter.png")
    cols = ["run_id", "pair", "gap", "method", "w", "seed", "success", "z_spread", "align_wasserstein", "w_norm",
            "gw_kind", "gw", "gw_norm", "discern_mlp", "discern_linear", "discern_mlp_cond", "discern_linear_cond",
            "align_nn", "structured_alignment", "regime"]
    per_run = runs[cols] if not runs.empty else pd.DataFrame(columns=cols)
    per_run.to_csv(out / "representation.csv", index=False)
    corr.to_csv(out / "representation_correlations.csv", index=False)
    gw_kinds = sorted(runs["gw_kind"].unique()) if not runs.empty else []
    lines = ["# Representation measures and success", "",
             "Every run: Wasserstein distance between the domains' `z` on paired replay states, scale-free (the "
             "record's `align_wasserstein`: divided by the run's within-domain RMS spread of `z`, `z_spread`), and "
             "min–max normalized across the runs of the same pair (the runs compared), Gromov–Wasserstein on shallow "
             f"features (`{'`, `'.join(gw_kinds) or 'align_gw'}`: `align_gw_shallow` where the record has it, else "
             "`align_gw` on `z`), held-out accuracy of MLP and linear domain probes on `z` and `z_cond`, "
             "chance-corrected retrieval, the structured-alignment score and the regime (regimes.md).", "",
             "## Correlation with success per gap kind", "",
             "Alignment is reported as 1 − normalized distance, so a positive coefficient means *more aligned, "
             "more success*. The study correlates along a ratio sweep: each method's coefficient is over its own "
             "mixing runs of the gap kind (all its ratios, pairs and seeds), and the *" + POOLED + "* row pools the "
             "study's methods (regime variants `[...]` shown, not pooled) on Fisher's z with weights n − 3. "
             "Pearson r and Spearman ρ with 95% Fisher-z intervals, two-sided p-values and the number of runs n "
             "(NaN below 3 runs or for a constant input; no interval below 4).", "",
             _md(["gap", "measure", "method", "Pearson r [95% CI]", "p", "Spearman ρ [95% CI]", "p", "n"],
                 [[r.gap, r.description, r.method, _ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True),
                   _num(r.pearson_p, 3), _ci(r.spearman_rho, r.spearman_lo, r.spearman_hi, signed=True),
                   _num(r.spearman_p, 3), str(r.n)]
                  for r in corr.itertuples()] if not corr.empty else []), "",
             "Scatter plots: [representation_scatter.png](representation_scatter.png).", "",
             "## Every run", "",
             _md(["pair", "method", "w", "seed", "success", "z spread", "W(z)", "W norm.", "GW", "MLP z", "linear z",
                  "MLP z_cond", "NN retrieval", "structured", "regime"],
                 [[r.pair, r.method, _num(r.w, 3), str(r.seed), _num(r.success), _num(r.z_spread, 3),
                   _num(r.align_wasserstein, 3), _num(r.w_norm), _num(r.gw, 3), _num(r.discern_mlp),
                   _num(r.discern_linear), _num(r.discern_mlp_cond), _num(r.align_nn), _num(r.structured_alignment),
                   r.regime]
                  for r in runs.sort_values(["pair", "method", "w", "seed"]).itertuples()]
                 if not runs.empty else []), "",
             _missing_text(data), ""]
    (out / "representation.md").write_text("\n".join(lines), encoding="utf-8")
    return {"corr": corr, "files": ["representation.md", "representation.csv", "representation_correlations.csv",
                                    "representation_scatter.png"]}


def _representation_contrast(runs: pd.DataFrame, method: str, metric: str, ref: str = REFERENCE) -> tuple[tuple, int]:
    """Mean over matched (pair, w, seed) units of metric(method) − metric(ref), bootstrap over units."""
    if runs.empty:
        return (math.nan,) * 3, 0
    a = runs[runs["method"] == method].set_index(["pair", "mix_w", "seed"])[metric]
    b = runs[runs["method"] == ref].set_index(["pair", "mix_w", "seed"])[metric]
    common = a.index.intersection(b.index)
    diffs = (a.loc[common] - b.loc[common]).to_numpy(float)
    return unit_bootstrap(diffs), int(np.isfinite(diffs).sum())


# --- 5. regimes ----------------------------------------------------------------------------------

def _regimes(data: StudyData, runs: pd.DataFrame, out: Path) -> dict[str, Any]:
    from baselines.hparams import default_hparams

    default_aw = float(default_hparams("adda")["adversarial_weight"])
    grid_weights = sorted({0.0 if c.method == REFERENCE
                           else float(dict(c.hparams).get("adversarial_weight", default_aw))
                           for c in data.expected.values() if c.method in (REFERENCE, "adda")})
    if not data.expected:  # no grid to compare with: the weights the runs have
        grid_weights = sorted(runs.loc[runs["base"].isin([REFERENCE, "adda"]), "adversarial_weight"].dropna().unique()
                              ) if not runs.empty else []
    not_gridded = [w for w in STUDY_WEIGHTS if not any(abs(w - g) < 1e-12 for g in grid_weights)]
    reg = runs[runs["base"].isin([REFERENCE, "adda"]) & runs["mix_w"].notna()].copy() if not runs.empty else runs
    if not reg.empty:
        from benchmark.analysis.metrics import normalize_across_runs

        reg["alignment_regimes"] = np.nan
        for _, idx in reg.groupby("pair").groups.items():
            raw_w = reg.loc[idx, "align_wasserstein"].to_numpy(float)
            reg.loc[idx, "alignment_regimes"] = 1 - normalize_across_runs(raw_w)
    rows = []
    for regime in REGIMES:  # along each weight's ratio sweep within the regime, pooled over weights
        g = reg[reg["regime"] == regime] if not reg.empty else reg
        for c in sweep_correlations(g, "alignment_regimes", lambda label: True):
            sign = "n/a" if math.isnan(c["pearson_r"]) else ("+" if c["pearson_r"] > 0 else "−")
            rows.append(dict(regime=regime, runs=len(g) if c["method"] == POOLED else c["n"], sign=sign, **c))
    corr = pd.DataFrame(rows)
    present = sorted(reg["adversarial_weight"].dropna().unique()) if not reg.empty else []
    absent = [w for w in grid_weights if not any(abs(w - p) < 1e-12 for p in present)]
    counts = (reg.groupby(["adversarial_weight", "regime"]).size().unstack(fill_value=0)
              if not reg.empty else pd.DataFrame())
    # plot
    fig, axes = _figure(1, 1, w=6, h=4.2)
    ax = axes[0][0]
    colors = {"overlapping": "tab:red", "structured": "tab:green", "disjoint": "tab:blue", "unknown": "grey"}
    markers = ["o", "s", "^", "D", "v"]
    if reg.empty:
        _no_data(ax, "no cotrain / adda runs")
    else:
        for i, (wt, g) in enumerate(reg.groupby("adversarial_weight")):
            for regime, gr in g.groupby("regime"):
                ax.scatter(gr["alignment_regimes"], gr["success"], c=colors.get(regime, "grey"), marker=markers[i % 5],
                           edgecolors="k", linewidths=0.4, label=f"weight {wt:g}, {regime}")
        ax.legend(fontsize="x-small")
    ax.set(xlabel="alignment of z: 1 − Wasserstein (normalized within pair)", ylabel="target success",
           title="regimes experiment: adversarial weight × ratio sweep", ylim=(-0.05, 1.05))
    _save(fig, out / "regimes.png")
    keep = ["run_id", "pair", "method", "adversarial_weight", "w", "seed", "success", "discern_mlp_cond", "align_nn",
            "replay_pairs", "align_wasserstein", "alignment_regimes", "regime"]
    (reg[keep] if not reg.empty else pd.DataFrame(columns=keep)).to_csv(out / "regimes.csv", index=False)
    lines = ["# The regimes experiment", "",
             "The study's design: ADDA at adversarial weights 0.05 and 0.5 and cotrain (weight 0), each over the "
             "ratio sweep. This budget's grid has weights " + (", ".join(f"{w:g}" for w in grid_weights) or "none")
             + (" (not in this budget: " + ", ".join(f"{w:g}" for w in not_gridded) + ")" if not_gridded else "")
             + ". Each run's regime from its measures "
             f"(`benchmark.study.classify_regime`): **overlapping** when the MLP domain probe on z_cond is below "
             f"{OVERLAP_PROBE} (near chance 0.5); **disjoint** when that probe is at least {DISJOINT_PROBE} and "
             f"chance-corrected nearest-neighbour retrieval of the paired state on z is below {DISJOINT_RETRIEVAL}; "
             "**structured** otherwise.", "",
             ("Weights of the grid with no runs yet: " + ", ".join(f"{w:g}" for w in absent) + "." if absent else
              "Every weight of this budget's grid has runs."), "",
             "## Regime counts (rows: adversarial weight)", "",
             _md(["weight"] + list(counts.columns), [[f"{i:g}"] + [str(v) for v in r]
                                                     for i, r in zip(counts.index, counts.to_numpy())])
             if not counts.empty else "_(no runs)_", "",
             "## Sign of the alignment–success relation per regime", "",
             "Alignment = 1 − scale-free Wasserstein distance of z normalized within pair over these runs. The study "
             "correlates along a ratio sweep: per regime, each weight's (method's) coefficient over its runs in that "
             "regime, and the *" + POOLED + "* row pooling them with weights n − 3 (a weight with 3 runs or fewer "
             "adds nothing). The study: more alignment helps when disjoint (+), hurts when overlapping (−).", "",
             _md(["regime", "method", "runs", "sign", "Pearson r [95% CI]", "p", "Spearman ρ", "p", "n"],
                 [[r.regime, r.method, str(r.runs), r.sign, _ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True),
                   _num(r.pearson_p, 3), _num(r.spearman_rho, signed=True), _num(r.spearman_p, 3), str(r.n)]
                  for r in corr.itertuples()]), "",
             "## Runs", "",
             _md(["pair", "weight", "w", "seed", "success", "MLP z_cond", "NN retrieval", "W norm.", "regime"],
                 [[r.pair, f"{r.adversarial_weight:g}", _num(r.w, 3), str(r.seed), _num(r.success),
                   _num(r.discern_mlp_cond), _num(r.align_nn), _num(1 - r.alignment_regimes), r.regime]
                  for r in reg.sort_values(["pair", "adversarial_weight", "w", "seed"]).itertuples()]
                 if not reg.empty else []), "",
             "Figure: [regimes.png](regimes.png).", "",
             _missing_text(data, lambda c: c.method in (REFERENCE, "adda")), ""]
    (out / "regimes.md").write_text("\n".join(lines), encoding="utf-8")
    return {"corr": corr, "absent": absent, "not_gridded": not_gridded,
            "files": ["regimes.md", "regimes.csv", "regimes.png"]}


# --- 6. guidance sweep ---------------------------------------------------------------------------

def _scale_key(lam: float) -> str:
    return f"{float(lam):g}"


def guidance_sweep_run(rec: dict, run_dir: Path, scales: Sequence[float], device: str = "cpu", workers: int = 1,
                       log: Callable[..., None] = print) -> dict[str, Any]:
    """Evaluate one finished run's checkpoint at each guidance scale on its test start states,
    caching every scale in ``run_dir/guidance.json`` as soon as it is done (resumable). The scale
    the run was trained and evaluated with is read from its record (evaluation is a pure function
    of checkpoint, domain, start state and scale)."""
    from tasks.seeds import episode_seeds

    from benchmark.harness.evaluate import EvalPool, EvalSpec, evaluate, summarize
    from benchmark.harness.run import read_json, write_json

    cfg = rec["config"]
    eps = rec["eval"]["target"].get("episodes") or []
    seeds = [int(e["seed"]) for e in eps] or episode_seeds("test", int(cfg["seed"]), int(cfg["episodes"]))
    path = run_dir / "guidance.json"
    cache = read_json(path) if path.exists() else {}
    if cache.get("episode_seeds") != seeds or cache.get("run_id") != rec.get("run_id"):
        cache = {"schema": 1, "run_id": rec.get("run_id"), "pair": cfg["pair"], "method": cfg["method"],
                 "episode_seeds": seeds, "scales": {}}
    own = (cfg.get("hparams") or {}).get("guidance")
    pool = None  # started on the first scale that needs evaluating, shared by the rest
    try:
        for lam in scales:
            key = _scale_key(lam)
            if key in cache["scales"]:
                continue
            t0 = time.time()
            if own is not None and abs(float(own) - float(lam)) < 1e-12 and eps:
                summary, source = summarize(eps), "record"
            else:
                if not (run_dir / "checkpoint").exists():
                    raise FileNotFoundError(f"{run_dir}: no checkpoint/ to evaluate at guidance {key}")
                spec = EvalSpec(str(run_dir / "checkpoint"), cfg["pair"], "target", float(cfg["magnitude"]),
                                backend=cfg.get("backend", "fast"), device=device, guidance=float(lam))
                pool = pool or EvalPool(workers)
                summary, source = summarize(evaluate(spec, seeds, progress=False, pool=pool)), "evaluated"
            cache["scales"][key] = {**summary, "guidance": float(lam), "source": source, "wall_s": time.time() - t0}
            write_json(path, cache)
            log(f"  guidance {key:>5} {rec.get('run_id')}: {summary['successes']}/{summary['n']} ({source})")
    finally:
        if pool is not None:
            pool.close()
    return cache


def _guidance(data: StudyData, records: list[dict], out: Path, device: str, workers: int, evaluate_missing: bool,
              log: Callable[..., None]) -> dict[str, Any]:
    gspec = data.spec.get("guidance") or {}
    scales = [float(x) for x in gspec.get("scales") or []]
    pair, methods, w = gspec.get("pair"), list(gspec.get("methods") or []), gspec.get("w")
    notes: list[str] = []
    chosen = [r for r in records if r["config"]["pair"] == pair and r["config"]["method"] in methods
              and method_label(r, data.vary) == r["config"]["method"] and r["config"].get("w") is not None
              and w is not None and abs(float(r["config"]["w"]) - float(w)) < 1e-9]
    results: dict[str, dict] = {}
    t0 = time.time()
    for rec in chosen:
        run_dir = data.run_dirs.get(rec["run_id"])
        try:
            if evaluate_missing:
                results[rec["run_id"]] = guidance_sweep_run(rec, run_dir, scales, device, workers, log)
            elif run_dir and (run_dir / "guidance.json").exists():
                results[rec["run_id"]] = json.loads((run_dir / "guidance.json").read_text())
        except FileNotFoundError as err:
            notes.append(str(err))
    wall = time.time() - t0
    cells: Cells = {}
    rows = []
    for rec in chosen:
        res = results.get(rec["run_id"])
        if not res:
            continue
        for key, s in res["scales"].items():
            lam = float(key)
            if not any(abs(lam - x) < 1e-12 for x in scales):
                continue
            cells.setdefault((rec["config"]["method"], lam), {})[int(rec["config"]["seed"])] = \
                {int(e["seed"]): float(bool(e["success"])) for e in s["episodes"]}
    boot = cell_bootstrap(cells)
    for method in methods:
        for lam in scales:
            c = cells.get((method, lam))
            if not c:
                rows.append(dict(method=method, guidance=lam, seeds=0, successes=0, n=0, success=math.nan,
                                 lo=math.nan, hi=math.nan))
                continue
            k = int(sum(sum(v.values()) for v in c.values()))
            n = int(sum(len(v) for v in c.values()))
            s, lo, hi = _wilson(k, n)
            rows.append(dict(method=method, guidance=lam, seeds=len(c), successes=k, n=n, success=s, lo=lo, hi=hi))
    tab = pd.DataFrame(rows, columns=["method", "guidance", "seeds", "successes", "n", "success", "lo", "hi"])
    tab.to_csv(out / "guidance.csv", index=False)
    # claim: lambda = -0.5 against lambda = 0 (plain conditional), paired, per method and pooled
    contrasts = {}
    have = [m for m in methods if (m, -0.5) in cells and (m, 0.0) in cells]
    for m in have:
        contrasts[m] = boot.stat(lambda col, m=m: col((m, -0.5)) - col((m, 0.0)))
    pooled = (boot.stat(lambda col: _mean_cols(col((m, -0.5)) - col((m, 0.0)) for m in have)) if have
              else (math.nan,) * 3)
    peaks = {}
    for m in methods:
        g = tab[(tab.method == m) & tab.success.notna()]
        if not g.empty:
            best = g.success.max()
            peaks[m] = sorted(g[g.success == best].guidance.tolist())
    fig, axes = _figure(1, 1, w=6, h=4.2)
    ax = axes[0][0]
    if tab.success.notna().any():
        for i, (m, g) in enumerate(tab[tab.success.notna()].groupby("method")):
            off = (i - (len(methods) - 1) / 2) * 0.04
            ax.errorbar(g.guidance + off, g.success, yerr=[g.success - g.lo, g.hi - g.success], marker="o", capsize=3,
                        label=m)
        ax.axvline(-0.5, color="grey", linestyle=":", label="λ = −0.5 (study's peak)")
        ax.legend(fontsize="small")
    else:
        _no_data(ax, f"no finished {', '.join(methods)} runs at w = {w} on {pair}")
    ax.set(xlabel="guidance scale λ (0 = plain conditional)", ylabel="target success (95% Wilson)",
           title=f"guidance sweep: {pair}, w = {w}", ylim=(-0.03, 1.03))
    _save(fig, out / "guidance.png")
    expected = [c for c in data.expected.values() if c.pair == pair and c.method in methods
                and dict(c.hparams).get("w") is not None and abs(dict(c.hparams)["w"] - float(w or 0)) < 1e-9]
    have_ids = {r["run_id"] for r in chosen if r["run_id"] in results}
    missing = [c for c in expected if c.run_id() not in have_ids]
    lines = ["# Guidance-scale sweep", "",
             f"The track's `guidance` section: pair `{pair}`, methods {', '.join(methods) or 'none'}, w = {w}, "
             f"λ ∈ {{{', '.join(f'{x:g}' for x in scales)}}}. Evaluation only: each finished run's checkpoint is "
             "evaluated at every λ on the run's own test start states (cached in `<run>/guidance.json`; the λ "
             "the run was trained with is read from its record). Guidance: ε̂ = ε(∅) + (1 + λ)(ε(target) − ε(∅)); "
             "λ = 0 is plain conditional sampling.", "",
             _md(["method", "λ", "seeds", "success [95% Wilson]"],
                 [[r.method, f"{r.guidance:g}", str(r.seeds),
                   f"{r.successes}/{r.n} = {_ci(r.success, r.lo, r.hi)}" if r.n else "no runs"]
                  for r in tab.itertuples()]), "",
             "Peak λ (highest success, ties listed): " + ("; ".join(f"{m}: {', '.join(f'{x:g}' for x in v)}"
                                                               for m, v in peaks.items()) or "n/a") + ".", "",
             "λ = −0.5 minus λ = 0, paired two-level bootstrap: " + ("; ".join(
                 f"{m}: {_ci(*v, signed=True)}" for m, v in contrasts.items()) or "n/a")
             + f"; pooled: {_ci(*pooled, signed=True)}.", "",
             "Figure: [guidance.png](guidance.png).", "",
             (f"Runs of the sweep not available: {'; '.join(_describe_cfg(c) for c in missing)}." if missing
              else "Every run of the sweep was evaluated."),
             *(f"Note: {n}" for n in notes), ""]
    (out / "guidance.md").write_text("\n".join(lines), encoding="utf-8")
    return {"table": tab, "contrasts": contrasts, "pooled": pooled, "peaks": peaks, "wall_s": wall,
            "runs": len(have_ids), "files": ["guidance.md", "guidance.csv", "guidance.png"]}


# --- 7. raw discernibility -----------------------------------------------------------------------

RAW = [("raw_discern_linear", "obs, linear"), ("raw_discern_mlp", "obs, MLP"),
       ("raw_discern_obs_action_linear", "obs–action, linear"), ("raw_discern_obs_action_mlp", "obs–action, MLP")]


def _raw(data: StudyData, runs: pd.DataFrame, out: Path) -> dict[str, Any]:
    rows = []
    grid_pairs = list(data.spec.get("pairs") or [])
    for pair in grid_pairs + (sorted(set(runs["pair"]) - set(grid_pairs)) if not runs.empty else []):
        g = runs[runs["pair"] == pair] if not runs.empty else runs
        # a pair property: one value per run seed (the replay set), averaged over the runs of that seed
        per_seed = g.groupby("seed")[[k for k, _ in RAW]].mean() if not g.empty else pd.DataFrame()
        row = dict(pair=pair, gap=gap_kind(pair), seeds=len(per_seed), runs=len(g))
        for k, _ in RAW:
            row[k] = float(per_seed[k].mean()) if len(per_seed) and per_seed[k].notna().any() else math.nan
        vals = [row[k] for k, _ in RAW if not math.isnan(row[k])]
        row["reading"] = ("no runs" if not vals else
                          ("domains readable" if max(vals) >= OVERLAP_PROBE else "near chance: indistinguishable"))
        rows.append(row)
    tab = pd.DataFrame(rows)
    tab.to_csv(out / "raw_discernibility.csv", index=False)
    fig, axes = _figure(1, 1, w=max(5, 1.6 * max(1, len(tab))), h=4)
    ax = axes[0][0]
    have = tab[tab["runs"] > 0] if not tab.empty else tab
    if have.empty:
        _no_data(ax, "no runs")
    else:
        x = np.arange(len(have))
        for i, (k, name) in enumerate(RAW):
            ax.bar(x + (i - 1.5) * 0.2, have[k], width=0.2, label=name)
        ax.axhline(0.5, color="k", linestyle=":", label="chance")
        ax.set_xticks(x, have["pair"], rotation=20, fontsize="small")
        ax.legend(fontsize="x-small")
    ax.set(ylabel="held-out domain-probe accuracy", ylim=(0, 1.05), title="raw-observation discernibility per pair")
    _save(fig, out / "raw_discernibility.png")
    lines = ["# Raw-observation discernibility per pair", "",
             "Whether a policy could tell the domains apart at all from what it sees: held-out accuracy of a linear "
             "and a 2-layer MLP domain probe on the raw observation histories of the paired replay states, and on "
             "observation–action histories (records' `raw_discern_*`), averaged over run seeds. Chance is 0.5; "
             f"*readable* means some probe reaches {OVERLAP_PROBE}.", "",
             _md(["pair", "gap", "obs linear", "obs MLP", "obs–action linear", "obs–action MLP", "seeds", "reading"],
                 [[r.pair, r.gap, _num(r.raw_discern_linear), _num(r.raw_discern_mlp),
                   _num(r.raw_discern_obs_action_linear), _num(r.raw_discern_obs_action_mlp), str(r.seeds), r.reading]
                  for r in tab.itertuples()] if not tab.empty else []), "",
             "Figure: [raw_discernibility.png](raw_discernibility.png).", ""]
    (out / "raw_discernibility.md").write_text("\n".join(lines), encoding="utf-8")
    return {"table": tab, "files": ["raw_discernibility.md", "raw_discernibility.csv", "raw_discernibility.png"]}


# --- 2 (files) -----------------------------------------------------------------------------------

def _aggregation(data: StudyData, records: list[dict], out: Path) -> dict[str, Any]:
    tab = balanced_aggregation(records, data.vary)
    tab.round(4).to_csv(out / "aggregation.csv", index=False)
    lines = ["# Aggregation as the study does it", "",
             f"Balanced = mean target success over w ∈ {{{', '.join(f'{w:g}' for w in BALANCED)}}}; unbalanced = "
             f"mean over w ∈ {{{', '.join(f'{w:g}' for w in UNBALANCED)}}} (the study's), per method and pair, with "
             "95% two-level bootstrap intervals (run seeds, then shared start states). `w` columns count the ratios "
             "present (a partial sweep averages over those it has). `all pairs`: the mean over the pairs of that "
             "method. The suite's own aggregation (per w, difference from cotrain, IQM across pairs) is in "
             "[leaderboard.md](leaderboard.md).", "",
             _md(["pair", "gap", "method", "seeds", "balanced [95% CI]", "w", "unbalanced [95% CI]", "w",
                  "balanced − unbalanced [95% CI]"],
                 [[r.pair, r.gap, r.method, str(r.seeds), _ci(r.balanced, r.balanced_lo, r.balanced_hi),
                   f"{r.balanced_w}/{len(BALANCED)}", _ci(r.unbalanced, r.unbalanced_lo, r.unbalanced_hi),
                   f"{r.unbalanced_w}/{len(UNBALANCED)}", _ci(r.delta, r.delta_lo, r.delta_hi, signed=True)]
                  for r in tab.itertuples()]), "",
             _missing_text(data, lambda c: dict(c.hparams).get("w") is not None), ""]
    (out / "aggregation.md").write_text("\n".join(lines), encoding="utf-8")
    return {"table": tab, "files": ["aggregation.md", "aggregation.csv"]}


# --- 8. claims -----------------------------------------------------------------------------------

def _claims(data: StudyData, records: list[dict], runs: pd.DataFrame, agg: pd.DataFrame, window: dict,
            rep: dict, regimes: dict, guidance: dict) -> list[dict[str, Any]]:
    claims = []

    def add(cid, claim, study, measured, verdict_, detail):
        claims.append(dict(id=cid, claim=claim, study=study, measured=measured, verdict=verdict_, detail=detail))

    # 1. CFG-ADDA best on average (balanced ratios, mean over pairs)
    cells = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, data.vary), float(r["config"]["w"]))
                     if r["config"].get("w") is not None and _close(float(r["config"]["w"]), BALANCED) is not None
                     else None)
    boot = cell_bootstrap(cells)
    methods = sorted({k[1] for k in cells if "[" not in k[1]})
    others = [m for m in methods if m != "cfg_adda"]
    parts, texts = [], []
    for m in others:
        pairs = sorted({k[0] for k in cells if k[1] == m} & {k[0] for k in cells if k[1] == "cfg_adda"})
        if not pairs:
            continue

        def diff(col, m=m, pairs=pairs):
            return _mean_cols(_mean_cols(col(k) for k in cells if k[0] == p and k[1] == "cfg_adda")
                              - _mean_cols(col(k) for k in cells if k[0] == p and k[1] == m) for p in pairs)
        st = boot.stat(diff)
        parts.append(verdict(st[1], st[2]))
        texts.append(f"cfg_adda − {m}: {_ci(*st, signed=True)}")
    allp = agg[agg.pair == "all pairs"] if not agg.empty else agg
    ranked = allp.sort_values("balanced", ascending=False).itertuples() if not allp.empty else []
    means = "; ".join(f"{r.method} {_num(r.balanced)}" for r in ranked
                      if "[" not in r.method and not math.isnan(r.balanced))
    missing_m = [m for m in ("cotrain", "domain_cond", "ot", "adda", "cfg") if m in (data.spec.get("methods") or [])
                 and m not in others]
    detail = (f"Balanced success averaged over pairs: {means or 'n/a'}. "
              + ("" if "cfg_adda" in methods else "No cfg_adda runs at balanced ratios. ")
              + (f"Not in these runs: {', '.join(missing_m)}. " if missing_m else ""))
    add("cfg_adda_best", "CFG-ADDA is best on average (balanced ratios, averaged over pairs)",
        "≈0.55 against 0.52–0.53 for the others (sim-and-sim, three tasks)",
        "; ".join(texts) or "n/a", combine_verdicts(parts) if parts else NOT_RESOLVED, detail)

    # 2. OT and ADDA raise alignment; CFG keeps discernibility
    parts, texts = [], []
    for m in ("ot", "adda"):
        st, n = _representation_contrast(runs, m, "w_norm")
        parts.append(verdict(st[1], st[2], direction=-1))
        texts.append(f"W(z) {m} − cotrain: {_ci(*st, signed=True)} (n={n})")
    st, n = _representation_contrast(runs, "cfg", "discern_mlp_cond")
    parts.append(verdict(st[1], st[2], direction=1, null=-DISCERN_MARGIN))
    texts.append(f"MLP probe z_cond cfg − cotrain: {_ci(*st, signed=True)} (n={n})")
    add("align_discern", "OT and ADDA raise alignment (smaller Wasserstein of z than cotrain); CFG keeps "
        "discernibility (probe on z_cond not below cotrain's)",
        "OT and ADDA emphasize alignment, CFG preserves discernibility",
        "; ".join(texts), combine_verdicts(parts),
        "Matched (pair, w, seed) units, scale-free Wasserstein (divided per run by z's within-domain spread) "
        "normalized within pair; percentile bootstrap over units. "
        f"'Keeps' = non-inferior with a margin of {DISCERN_MARGIN} probe accuracy.")

    # 3. balanced beats unbalanced (pooled over pairs and the study's methods)
    bcells = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, data.vary), float(r["config"]["w"]))
                      if r["config"].get("w") is not None else None)
    bboot = cell_bootstrap(bcells)
    pm = sorted({(k[0], k[1]) for k in bcells if "[" not in k[1]})
    usable = []
    for p, m in pm:
        b = [k for k in bcells if k[:2] == (p, m) and _close(k[2], BALANCED) is not None]
        u = [k for k in bcells if k[:2] == (p, m) and _close(k[2], UNBALANCED) is not None]
        if b and u:
            usable.append((b, u))
    st = (bboot.stat(lambda col: _mean_cols(_mean_cols(col(k) for k in b) - _mean_cols(col(k) for k in u)
                                            for b, u in usable)) if usable else (math.nan,) * 3)
    add("balanced", "Balanced ratios (w ∈ {0.016, 0.1, 0.3}) beat unbalanced ones (w ∈ {0.005, 0.5, 0.8})",
        "balanced ratios give the higher success",
        f"balanced − unbalanced: {_ci(*st, signed=True)} over {len(usable)} (pair, method) sweeps",
        verdict(st[1], st[2]),
        "Per-pair and per-method rows in aggregation.md." + ("" if usable else
                                                               " No sweep has both balanced and unbalanced ratios."))

    # 4. best ratio inside (w_n, w_q)
    wc = window["claim"]
    pos = ", ".join(f"{k}: {v}" for k, v in sorted(window["positions"].items())) or "n/a"
    near = ", ".join(f"{k}: {v}" for k, v in sorted(window["nearer"].items())) or "n/a"
    add("window", "The best ratio lies inside the window (w_n, w_q)",
        "search w between w_n = N/(N+M) and w_q = √(N/M)",
        f"mean success inside [w_n, w_q] − mean outside, paired per sweep: {_ci(*wc['stat'], signed=True)} over "
        f"{wc['sweeps']} sweeps (odds form [w_n, √N/(√N+√M)]: {_ci(*wc['odds'], signed=True)}); {wc['why']}",
        wc["verdict"],
        "Sweeps: (pair, method, seed) of the study's methods over their mixing ratios; t interval over sweeps. "
        f"Where the best w falls (descriptive; under no effect it falls outside more often, as more points lie "
        f"there): {pos}. Nearer upper-bound form: {near}. See success_vs_w.md.")

    # 5. alignment correlates with success for visual gaps, reversed for physics-only gaps
    parts, texts = alignment_by_kind(rep["corr"])
    add("alignment_corr", "Alignment correlates with success for visual gaps (visual, visual + physics); the "
        "relation reverses for physics-only gaps",
        "|ρ| ≈ 0.6–0.85 for visual and visual + physics; reversed for physics only",
        "; ".join(texts), combine_verdicts(parts),
        "Alignment = 1 − scale-free Wasserstein of z (divided per run by z's within-domain spread), normalized "
        "within pair. Pearson r along each method's ratio sweep (its mixing runs in the gap kind), pooled over the "
        "study's methods by Fisher z (weights n − 3) with a 95% interval; each method's r in representation.md.")

    # 6. regimes: the sign flips (+ when disjoint, − when overlapping)
    rc = regimes["corr"]
    parts, texts = [], []
    for regime, direction in (("disjoint", 1), ("overlapping", -1)):
        r = rc[(rc.regime == regime) & (rc.method == POOLED)].iloc[0]
        parts.append(verdict(r.pearson_lo, r.pearson_hi, direction=direction))
        texts.append(f"{regime}: pooled r = {_ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True)} over "
                     f"{int(r.methods)} weights' sweeps, n = {r.n} of {r.runs} runs")
    add("regimes", "The alignment–success relation flips sign between regimes (more alignment helps when disjoint, "
        "hurts when overlapping)", "adversarial weights {0, 0.05, 0.5} place runs in all three regimes; the sign flips",
        "; ".join(texts), combine_verdicts(parts),
        ("Weights not in this budget's grid: " + ", ".join(f"{w:g}" for w in regimes["not_gridded"]) + ". "
         if regimes["not_gridded"] else "")
        + ("Weights without runs yet: " + ", ".join(f"{w:g}" for w in regimes["absent"]) + ". "
           if regimes["absent"] else "")
        + "See regimes.md.")

    # 7. lambda = -0.5 helps
    st = guidance["pooled"]
    per = "; ".join(f"{m}: {_ci(*v, signed=True)}" for m, v in guidance["contrasts"].items())
    peaks = "; ".join(f"{m} peaks at λ = {', '.join(f'{x:g}' for x in v)}" for m, v in guidance["peaks"].items())
    add("guidance", "Guidance λ = −0.5 helps (against λ = 0, plain conditional sampling)",
        "the sweep over λ ∈ [−2, 2] peaks at −0.5 for CFG and CFG-ADDA",
        f"success(λ = −0.5) − success(λ = 0): {_ci(*st, signed=True)}" + (f" ({per})" if per else ""),
        verdict(st[1], st[2]), (peaks + ". " if peaks else "") + "See guidance.md.")
    return claims


def _write_comparison(data: StudyData, claims: list[dict], out: Path, command: str | None, wall_s: float,
                      guidance_wall: float, paths: dict) -> Path:
    from benchmark.analysis.stats import min_detectable_difference

    n_arm = data.episodes * data.seeds
    mdd = min_detectable_difference(n_arm)
    compute = sum(float((r.get("timing") or {}).get("train_s") or 0) + float((r.get("timing") or {}).get("eval_s") or 0)
                  for r in data.records)
    runs_cmd = f"cotrain sweep --track {data.track} --budget {data.budget} --runs-dir {data.runs_dir}"
    lines = [f"# The study's claims measured by cotrain-bench (track `{data.track}`, budget `{data.budget}`)", "",
             f"- **Budget**: `{data.budget}` — {', '.join(data.spec.get('pairs') or [])}; methods "
             f"{', '.join(data.spec.get('methods') or [])}; "
             f"w ∈ {{{', '.join(f'{w:g}' for w in data.spec.get('w') or [])}}}; "
             f"{data.seeds} seed(s); {data.episodes} evaluation episodes per point; profile "
             f"`{data.spec.get('profile')}`. Smallest success difference it resolves: "
             + (f"{mdd:.2f}" if mdd < 1 else f"none ({mdd:.2f} > 1)")
             + f" (two-proportion z-test, 95% / 80%, base rate 0.5, {n_arm} episodes per arm).",
             (f"- **Runs read**: {len(data.records)} of {len(data.expected)} in the grid ({len(data.missing)} missing"
              + (f"; {data.ignored} records outside the grid ignored" if data.ignored else "") + ")."
              if data.expected else f"- **Runs read**: {len(data.records)} (no grid to compare with)."),
             f"- **Runs produced by**: `{runs_cmd}`; compute recorded in the records (training + evaluation, summed "
             f"over runs): {compute:.0f} s. The sweep's own wall time is not recorded in the records.",
             f"- **This file produced by**: `{command or 'benchmark.study.study(...)'}` in {wall_s:.0f} s wall time "
             f"(of which {guidance_wall:.0f} s guidance-sweep evaluation).", ""]
    lines += [f"- Note: {n}" for n in data.notes]
    if data.missing:
        lines += ["", _missing_text(data, limit=20)]
    lines += ["", "## Verdicts", "",
              _md(["claim", "the study", "cotrain-bench (95% CI)", "verdict"],
                  [[c["claim"], c["study"], c["measured"], f"**{c['verdict']}**"] for c in claims]), "",
              "## Details", ""]
    for c in claims:
        lines += [f"### {c['claim']}", "", f"- Study: {c['study']}.", f"- Measured: {c['measured']}.",
                  f"- Verdict: **{c['verdict']}**.", f"- {c['detail']}", ""]
    lines += ["## How verdicts are decided", "",
              "Each claim is tested as a difference (or a correlation) whose sign the study predicts, with a 95% "
              "interval: **reproduced** when the whole interval lies on the predicted side of the null, **not "
              "reproduced** when it lies wholly on the other side, **not resolved at this budget** when it contains "
              "the null or the data it needs is missing. A claim of several parts is reproduced only when every part "
              "is, and not reproduced when any part is not. Success intervals: two-level bootstrap (run seeds, then "
              "shared start states; with one seed they cover episode noise only). Representation contrasts: "
              "bootstrap over matched (pair, w, seed) units. Correlations: along each method's ratio sweep, pooled "
              "over methods by Fisher z (weights n − 3) with a Fisher-z interval. The window: mean success inside "
              "minus mean outside, paired within each (pair, method, seed) sweep, t interval over sweeps; a budget "
              f"whose power to detect the study's margin (+{STUDY_EFFECT:.3f}) is below {POWER:.0%} cannot test it "
              "and says so. A claim that does not reproduce is reported as such; the suite is never tuned toward "
              "the study.", "",
              "## Files", "", "- " + "\n- ".join(f"[{p}]({p})" for p in paths), ""]
    path = out / "COMPARISON.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def study(runs_dir: str | Path, out_dir: str | Path = "results/study", track: str = "study", budget: str | None = None,
          device: str = "cpu", workers: int = 1, guidance: bool = True, command: str | None = None,
          log: Callable[..., None] = print) -> dict[str, Any]:
    """Every analysis of the study track on RUNS_DIR's records, written into ``out_dir``.

    ``guidance=False`` reads cached guidance sweeps only (no evaluation). Returns a summary with
    the claims, the files written and the wall time.
    """
    t0 = time.time()
    data = load_study(runs_dir, track, budget)
    return analyze_study(data, out_dir, device=device, workers=workers, guidance=guidance, command=command, log=log,
                         started=t0)


def analyze_study(data: StudyData, out_dir: str | Path, device: str = "cpu", workers: int = 1, guidance: bool = True,
                  command: str | None = None, log: Callable[..., None] = print,
                  started: float | None = None) -> dict[str, Any]:
    """Every analysis on loaded study data (see :func:`study`); ``started`` is when the command began."""
    from benchmark.analysis.leaderboard import write_leaderboard

    t0 = time.time() if started is None else started
    track = data.track
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = _gap_records(data)
    labelled = [{**r, "config": {**r["config"], "method": method_label(r, data.vary)}} for r in data.records]
    log(f"study: {len(data.records)} of {len(data.expected)} runs of track {track!r} budget {data.budget!r} "
        f"({len(data.missing)} missing)")
    files: list[str] = []
    paths = write_leaderboard(labelled, out, title=f"Study track leaderboard (budget {data.budget})")
    files += [p.name for p in paths.values()]
    runs = runs_table(records, data.vary, data.run_dirs)
    agg = _aggregation(data, records, out)
    window = _window_analysis(data, runs, records, out)
    rep = _representation(data, runs, out)
    regimes = _regimes(data, runs, out)
    gd = _guidance(data, records, out, device, workers, guidance, log)
    raw = _raw(data, runs, out)
    for part in (agg, window, rep, regimes, gd, raw):
        files += part["files"]
    claims = _claims(data, records, runs, agg["table"], window, rep, regimes, gd)
    wall = time.time() - t0
    summary = {"track": track, "budget": data.budget, "runs_read": len(data.records),
               "runs_expected": len(data.expected),
               "missing": [_describe_cfg(c) for c in data.missing], "command": command, "wall_s": wall,
               "guidance_wall_s": gd["wall_s"], "claims": claims}
    (out / "study.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    files.append("study.json")
    comparison = _write_comparison(data, claims, out, command, time.time() - t0, gd["wall_s"], files)
    summary["files"] = [str(out / f) for f in files] + [str(comparison)]
    summary["wall_s"] = time.time() - t0
    return summary
