"""Representation metrics: alignment, discernibility and their balance.

Pure functions on numpy arrays. ``z_src`` and ``z_tgt`` are ``(n, d)`` clouds of the
representation ``z`` in the source and target domain; for the *paired* metrics row ``i`` of
both comes from the same task state (the paired replay set, docs/PROTOCOL.md). Definitions follow
docs/PROTOCOL.md, "How it measures the representation" and "Metrics to expose" (Lei et al., *A
Mechanistic Analysis of Sim-and-Real Co-Training in Generative Robot Policies*, 2026).
Every alignment metric is scale-free per run: multiplying ``z`` by a constant changes none of them
(the Wasserstein distance is divided by ``z``'s within-domain spread, :func:`within_domain_spread`,
which each run also reports as ``z_spread``). Domain probes are scored by grouped k-fold over replay
episodes, so no episode has rows on both sides of a split. Normalization across runs, where a table
keeps it, comes after (:func:`normalize_across_runs`).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import ot
import torch
from scipy import stats
from scipy.spatial.distance import cdist, pdist

__all__ = [
    "within_domain_spread",
    "wasserstein_distance",
    "gromov_wasserstein",
    "mmd_rbf",
    "nn_retrieval",
    "linear_cka",
    "probe_accuracy",
    "structured_alignment",
    "representation_metrics",
    "normalize_across_runs",
    "correlation",
    "raw_discernibility",
]


def _as_matrix(x: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {a.shape}")
    if a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _check_clouds(
    z_src: np.ndarray, z_tgt: np.ndarray, paired: bool, same_dim: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_matrix(z_src, "z_src"), _as_matrix(z_tgt, "z_tgt")
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(
            f"paired metric needs the same number of rows, got z_src {a.shape[0]} and z_tgt {b.shape[0]}"
        )
    if same_dim and a.shape[1] != b.shape[1]:
        raise ValueError(f"z_src and z_tgt must have the same width, got {a.shape[1]} and {b.shape[1]}")
    return a, b


def _subsample(a: np.ndarray, b: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_points`` rows of each cloud, deterministically for ``seed``.

    Clouds with the same number of rows (paired replay) keep the same row indices.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    rng = np.random.default_rng(seed)
    idx_a = np.sort(rng.choice(len(a), max_points, replace=False)) if len(a) > max_points else slice(None)
    if len(b) == len(a):
        idx_b = idx_a
    else:
        idx_b = np.sort(rng.choice(len(b), max_points, replace=False)) if len(b) > max_points else slice(None)
    return a[idx_a], b[idx_b]


def within_domain_spread(z_src: np.ndarray, z_tgt: np.ndarray) -> float:
    """Mean over the two domains of each cloud's RMS distance to its own mean: ``z``'s scale.

    Unlike a spread pooled over both domains, it does not grow with the distance between the
    domains, so dividing by it keeps far-apart domains far apart. ``z_src: (n, d)``, ``z_tgt: (m, d)``.
    """
    a, b = _check_clouds(z_src, z_tgt, paired=False)
    return float(np.mean([np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()) for x in (a, b)]))


def wasserstein_distance(z_src: np.ndarray, z_tgt: np.ndarray, max_points: int = 512, seed: int = 0) -> float:
    """Exact 1-Wasserstein distance (``ot.emd2``, Euclidean ground cost, uniform weights) divided by
    :func:`within_domain_spread` of the full clouds: scale-free, so shrinking ``z`` cannot lower it.

    The study's headline alignment measure (smaller = more aligned; 0 for identical clouds, about
    ``sqrt(2)`` for two independent draws of one isotropic cloud). ``z_src: (n, d)``, ``z_tgt: (m, d)``;
    each cloud is subsampled to ``max_points`` rows with ``seed``. NaN when both clouds are single points.
    """
    spread = within_domain_spread(z_src, z_tgt)
    a, b = _subsample(*_check_clouds(z_src, z_tgt, paired=False), max_points, seed)
    if spread <= 0:
        return math.nan
    cost = ot.dist(a / spread, b / spread, metric="euclidean")
    return float(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost, numItermax=1_000_000))


def gromov_wasserstein(z_src: np.ndarray, z_tgt: np.ndarray, max_points: int = 256, seed: int = 0) -> float:
    """Gromov–Wasserstein discrepancy (square loss, uniform weights) between the two clouds.

    Compares the clouds' internal geometry (the study's *local* alignment): each cloud's
    Euclidean distance matrix is divided by its mean, so the value is scale-free.
    ``z_src: (n, d)``, ``z_tgt: (m, d')`` (widths may differ); subsampled to ``max_points``.
    """
    a, b = _subsample(*_check_clouds(z_src, z_tgt, paired=False, same_dim=False), max_points, seed)
    c1, c2 = ot.dist(a, a, metric="euclidean"), ot.dist(b, b, metric="euclidean")
    c1, c2 = c1 / max(c1.mean(), 1e-12), c2 / max(c2.mean(), 1e-12)
    return float(ot.gromov.gromov_wasserstein2(c1, c2, ot.unif(len(a)), ot.unif(len(b)), loss_fun="square_loss"))


def mmd_rbf(
    z_src: np.ndarray, z_tgt: np.ndarray, bandwidth: float | None = None, max_points: int = 1024, seed: int = 0
) -> float:
    """Unbiased MMD² with the RBF kernel ``exp(-|x - y|² / (2 σ²))`` (Gretton et al., 2012).

    ``σ`` defaults to the median pairwise distance of the pooled data (median heuristic), which
    makes the value scale-free; a fixed ``bandwidth`` does not.
    The unbiased estimate can be slightly negative when the clouds coincide.
    ``z_src: (n, d)``, ``z_tgt: (m, d)``; subsampled to ``max_points`` rows each.
    """
    a, b = _subsample(*_check_clouds(z_src, z_tgt, paired=False), max_points, seed)
    if bandwidth is None:
        dist = pdist(np.concatenate([a, b]))
        dist = dist[dist > 0]
        bandwidth = float(np.median(dist)) if dist.size else 1.0
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2)
    k_aa = np.exp(-gamma * cdist(a, a, "sqeuclidean"))
    k_bb = np.exp(-gamma * cdist(b, b, "sqeuclidean"))
    k_ab = np.exp(-gamma * cdist(a, b, "sqeuclidean"))
    n, m = len(a), len(b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


def nn_retrieval(z_src: np.ndarray, z_tgt: np.ndarray) -> float:
    """Cross-domain nearest-neighbour retrieval of the paired state.

    Fraction of target rows whose nearest source row (Euclidean) is its own pair, averaged with
    the same fraction from source to target. ``z_src, z_tgt: (n, d)`` paired; chance is ``1/n``.
    """
    a, b = _check_clouds(z_src, z_tgt, paired=True)
    dist = cdist(b, a)
    rows = np.arange(len(a))
    return float(0.5 * (np.mean(dist.argmin(axis=1) == rows) + np.mean(dist.argmin(axis=0) == rows)))


def linear_cka(z_src: np.ndarray, z_tgt: np.ndarray) -> float:
    """Linear CKA between paired representations (Kornblith et al., 2019).

    ``||Yᵀ X||²_F / (||Xᵀ X||_F ||Yᵀ Y||_F)`` on column-centred ``X = z_src: (n, d)`` and
    ``Y = z_tgt: (n, d')``; 1 for identical (up to rotation and scale) representations.
    NaN when either representation is constant.
    """
    a, b = _check_clouds(z_src, z_tgt, paired=True, same_dim=False)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    denom = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(np.linalg.norm(b.T @ a) ** 2 / denom) if denom > 0 else math.nan


MAX_PROBE_FOLDS = 5


def probe_folds(groups: np.ndarray) -> int:
    """Folds of the grouped k-fold over ``groups`` (one id per pair): at most MAX_PROBE_FOLDS, each
    holding out at least 2 groups where there are 4 or more (else one group per fold)."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"a grouped probe split needs rows from at least 2 replay episodes, got {n_groups}")
    return min(MAX_PROBE_FOLDS, n_groups // 2) if n_groups >= 4 else n_groups


def probe_accuracy(
    z_src: np.ndarray,
    z_tgt: np.ndarray,
    kind: str = "linear",
    seed: int = 0,
    groups: np.ndarray | None = None,
    epochs: int = 300,
) -> float:
    """Held-out accuracy of a domain classifier (source 0, target 1) by grouped k-fold; chance is 0.5.

    ``z_src, z_tgt: (n, d)`` paired; ``groups: (n,)`` the replay episode of each pair (None: every pair
    its own group). Groups are dealt at random (``seed``) to :func:`probe_folds` folds; each fold is
    held out once, both rows of a pair and every pair of an episode on the same side, and the
    accuracy is over every held-out row. Features are standardized with the training rows'
    statistics. ``kind='linear'`` is logistic regression, ``'mlp'`` a two-layer MLP (hidden 64,
    ReLU), the study's probe. Both train by full-batch Adam for ``epochs`` steps from an
    initialization drawn from a local ``torch.Generator``: deterministic for ``seed``, and the global
    random state is left untouched.
    """
    if kind not in ("linear", "mlp"):
        raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")
    a, b = _check_clouds(z_src, z_tgt, paired=True)
    groups = np.arange(len(a)) if groups is None else np.asarray(groups)
    if groups.shape != (len(a),):
        raise ValueError(f"groups must have one entry per pair ({len(a)}), got shape {groups.shape}")
    folds = probe_folds(groups)
    if np.array_equal(a, b):
        # Each held-out pair is two identical rows with both labels: any classifier gets exactly one
        # right. (Training on such data also crawls through denormal gradients.)
        return 0.5
    ids = np.unique(groups)
    fold_of = dict(zip(ids, np.random.default_rng(seed).permutation(len(ids)) % folds))
    fold = np.array([fold_of[g] for g in groups])
    correct = 0
    for k in range(folds):
        test, train = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        correct += _probe_fold(a, b, train, test, kind, seed + k, epochs)
    return correct / (2 * len(a))


def _probe_fold(a: np.ndarray, b: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str, seed: int,
                epochs: int) -> int:
    """Correct predictions on the held-out pairs `test` (2 rows each) of a probe trained on `train`."""

    def rows(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([a[idx], b[idx]]), np.repeat([0.0, 1.0], len(idx))

    x_train, y_train = rows(train)
    x_test, y_test = rows(test)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std < 1e-12] = 1.0
    xtr = torch.as_tensor((x_train - mean) / std, dtype=torch.float32)
    xte = torch.as_tensor((x_test - mean) / std, dtype=torch.float32)
    ytr = torch.as_tensor(y_train, dtype=torch.float32)

    gen = torch.Generator().manual_seed(seed)
    widths = [xtr.shape[1], 1] if kind == "linear" else [xtr.shape[1], 64, 1]
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        params.append(((torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound).requires_grad_())
        params.append(((torch.rand(fan_out, generator=gen) * 2 - 1) * bound).requires_grad_())

    def logits(x: torch.Tensor) -> torch.Tensor:
        for i in range(0, len(params), 2):
            x = x @ params[i] + params[i + 1]
            if i + 2 < len(params):
                x = torch.relu(x)
        return x.squeeze(-1)

    opt = torch.optim.Adam(params, lr=0.05 if kind == "linear" else 0.01)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(logits(xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        pred = (logits(xte) > 0).numpy()
    return int(np.sum(pred == (y_test > 0.5)))


def structured_alignment(alignment_score: float, discernibility: float) -> float:
    """Structured-alignment score: high only when the domains are both aligned and discernible.

    docs/PROTOCOL.md, "structured representation alignment": representations of the same task state
    should be close across domains, yet not collapsed, so the domain stays readable. With
    ``a = alignment_score`` in [0, 1] (1 = aligned) and ``d = clip(2·acc − 1, 0, 1)`` the
    discernibility rescaled from a domain probe's held-out accuracy ``acc = discernibility``
    (chance 0.5 → 0, perfect → 1), the score is the harmonic mean ``2ad / (a + d)`` (0 when
    either is 0). :func:`representation_metrics` uses ``a`` = chance-corrected nearest-neighbour
    retrieval on ``z``, ``clip((r − 1/n) / (1 − 1/n), 0, 1)``, which is scale-free and defined
    per run (the Wasserstein distance needs cross-run normalization), and ``acc`` = the MLP
    probe on ``z_cond`` (docs/PROTOCOL.md). This combination is this suite's choice; the study
    defines the regimes, not a score. NaN in, NaN out.
    """
    if math.isnan(alignment_score) or math.isnan(discernibility):
        return math.nan
    if not 0.0 <= alignment_score <= 1.0:
        raise ValueError(f"alignment_score must be in [0, 1], got {alignment_score}")
    if not 0.0 <= discernibility <= 1.0:
        raise ValueError(f"discernibility (probe accuracy) must be in [0, 1], got {discernibility}")
    d = min(max(2.0 * discernibility - 1.0, 0.0), 1.0)
    a = float(alignment_score)
    return 0.0 if a + d == 0 else 2.0 * a * d / (a + d)


def representation_metrics(
    z_src: np.ndarray,
    z_tgt: np.ndarray,
    zc_src: np.ndarray | None = None,
    zc_tgt: np.ndarray | None = None,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, float]:
    """All representation metrics of one run as a flat dict (scale-free alignment, see the module).

    ``z_src, z_tgt: (n, d)`` paired readings of ``z``; ``zc_src, zc_tgt: (n, d_c)`` the paired
    readings of ``z_cond`` (both or neither; ``None`` means ``z_cond = z``); ``groups: (n,)`` the
    replay episode of each pair, the probes' split unit. Alignment is measured on ``z``,
    discernibility on both (the shared representation, and what the denoiser is conditioned on);
    ``structured_alignment`` combines ``align_nn`` with ``discern_mlp_cond`` (see
    :func:`structured_alignment`). ``z_spread`` is ``z``'s scale (:func:`within_domain_spread`),
    ``probe_folds`` the probes' fold count.
    """
    a, b = _check_clouds(z_src, z_tgt, paired=True)
    if (zc_src is None) != (zc_tgt is None):
        raise ValueError("zc_src and zc_tgt must be given together")
    groups = np.arange(len(a)) if groups is None else np.asarray(groups)
    out = {
        "align_wasserstein": wasserstein_distance(a, b, seed=seed),
        "align_gw": gromov_wasserstein(a, b, seed=seed),
        "align_mmd": mmd_rbf(a, b, seed=seed),
        "align_nn": nn_retrieval(a, b),
        "align_cka": linear_cka(a, b),
        "z_spread": within_domain_spread(a, b),
        "discern_linear": probe_accuracy(a, b, "linear", seed=seed, groups=groups),
        "discern_mlp": probe_accuracy(a, b, "mlp", seed=seed, groups=groups),
        "probe_folds": probe_folds(groups),
    }
    if zc_src is None:
        out["discern_linear_cond"], out["discern_mlp_cond"] = out["discern_linear"], out["discern_mlp"]
    else:
        ca, cb = _check_clouds(zc_src, zc_tgt, paired=True)
        if len(ca) != len(a):
            raise ValueError(f"z_cond has {len(ca)} rows but z has {len(a)}")
        out["discern_linear_cond"] = probe_accuracy(ca, cb, "linear", seed=seed, groups=groups)
        out["discern_mlp_cond"] = probe_accuracy(ca, cb, "mlp", seed=seed, groups=groups)
    n = len(a)
    align = min(max((out["align_nn"] - 1.0 / n) / (1.0 - 1.0 / n), 0.0), 1.0)
    out["structured_alignment"] = structured_alignment(align, out["discern_mlp_cond"])
    return out


def normalize_across_runs(values: Sequence[float]) -> np.ndarray:
    """Min–max normalize per-run (already scale-free) Wasserstein distances over the runs compared, to [0, 1].

    The study reports the Wasserstein distance normalized across the runs it compares; this is
    that normalization, applied after each run's own division by its spread. All-equal values give zeros; NaN (a missing run)
    stays NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    if np.any(np.isinf(v)):
        raise ValueError("values contain infinite entries")
    finite = v[~np.isnan(v)]
    if finite.size == 0:
        return v.copy()
    lo, span = finite.min(), finite.max() - finite.min()
    return (v - lo) / span if span > 0 else np.where(np.isnan(v), np.nan, 0.0)


def correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Pearson ``r`` and Spearman ``rho`` with two-sided p-values, and the count ``n``.

    Pairs where either value is NaN are dropped; with fewer than 3 pairs left, or a constant
    input, the coefficients and p-values are NaN. Keys: ``pearson_r``, ``pearson_p``,
    ``spearman_rho``, ``spearman_p``, ``n``.
    """
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {xa.shape} and {ya.shape}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    out = {"pearson_r": math.nan, "pearson_p": math.nan, "spearman_rho": math.nan, "spearman_p": math.nan,
           "n": int(keep.sum())}
    if out["n"] < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, p = stats.pearsonr(xa, ya)
        rho, p_s = stats.spearmanr(xa, ya)
    out.update(pearson_r=float(r), pearson_p=float(p), spearman_rho=float(rho), spearman_p=float(p_s))
    return out


def raw_discernibility(x_src: np.ndarray, x_tgt: np.ndarray, seed: int = 0,
                       groups: np.ndarray | None = None) -> dict[str, float]:
    """Domain probes on raw observations of a pair.

    ``x_src, x_tgt: (n, ...)`` paired raw observations or observation–action histories; trailing
    axes are flattened; ``groups: (n,)`` the replay episode of each pair (the split unit). Returns
    the held-out ``linear`` and ``mlp`` probe accuracies.
    """
    a, b = np.asarray(x_src, dtype=np.float64), np.asarray(x_tgt, dtype=np.float64)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"x_src and x_tgt need a leading row axis and features, got shapes {a.shape} and {b.shape}")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return {kind: probe_accuracy(a, b, kind, seed=seed, groups=groups) for kind in ("linear", "mlp")}
