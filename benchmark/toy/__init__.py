"""The toy models through the suite's methods, training loop and metrics: harness hooks and `cotrain toy`.

Harness hooks (called from `benchmark.harness.run` for pairs whose base task is `toy`, see tasks/toy.py):
`write_toy_demos` (the demo cache), `toy_policy_config` and `fit_toy_normalizer` (the policy),
`toy_eval` (exact evaluation: the L2 error of sampled actions to the known optimal action, and
"success" = error under `tasks.toy.SUCCESS_THRESHOLD`).

Observation normalization. The suite's policies min-max normalize each observation dimension.
On the toy that would erase the geometry the toy is about: `toy/study`'s height coordinate takes
the values {0, Δz}, which per-dimension min-max maps to {-1, 1} for every Δz, so Δz = 0.01 and
Δz = 50 would reach the network identically. Toy policies therefore centre each dimension (the
midrange of the training inputs) and scale all three axes by one constant that does not depend on
the data, 2 / `tasks.toy.PATCH_SIDE`: a patch always spans [-1, 1] along u and v, at the same
resolution for every Δz, and the height gap keeps its size relative to the patch (Δz = 50 is
50 patch half-widths). What changed (toy runner 2, toy pair version 2): the scale was 2 / the
largest range of the training inputs, so at Δz = 50 the co-trained policy saw each patch 25 times
smaller than at Δz ≤ 2 and "disjoint" also meant "coarser input". This is a choice of this suite;
the study does not say how its toy normalized its inputs.

`cotrain toy` (`toy_study`): the study's qualitative findings, each measured and reported with
95% intervals over seeds (t intervals of the seed means; the seeds are the only replication),
never asserted. Every run trains with `benchmark.harness.train.train` (the harness's loop) on in-memory
toy data, evaluates on the target test stream, and is cached under `runs_dir` by a hash of its
config and of the sources its numbers depend on (`_CODE_FILES`), so a second call only redraws
and a changed policy or method retrains. Findings:
1. alignment and discernibility of each method's representation beside its target error;
2. target error against the mixing ratio w for several N/M, the optimum against the ratio rules;
3. the importance-reweighting effect alone (`toy/action_map`, identical inputs): the learned
   action's position between the source map (0) and the target map (1) against w;
4. the CFG guidance-scale sweep λ ∈ {−2, …, 2} for `cfg` and `cfg_adda`;
5. the Δz × w grid on `toy/study` and the two-way analysis of variance of the target error;
and, for every toy pair, whether `target_only` is clearly worse than the best co-trained policy.
A claim about the best of several settings measures each seed at the setting best on the other seeds
(`loso_choice`); a claim that the best lies in a region compares the mean error inside it with the mean
outside, within each seed (`inside_minus_outside`): neither favours a side when nothing differs.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.harness.config import SUITE_VERSION, content_hash

GUIDANCE_GRID = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
MIXING_METHODS = ("cotrain", "ot", "adda", "domain_cond", "cfg", "cfg_adda")
ALL_METHODS = ("target_only", "source_only") + MIXING_METHODS
STUDY_DZ = (0.01, 0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 50.0)  # docs/PROTOCOL.md's Δz grid
STUDY_W = (0.0, 0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)  # docs/PROTOCOL.md's toy w grid
MODERATE_DZ = (0.5, 5.0)
"""Δz range of the study's structured regime ("moderate Δz", about 1-3)."""
SMALL_W = (0.05, 0.1)
"""The study's "small w" (about 0.05-0.1) of its best toy error."""
N_TEST = 256
N_PAIRED = 256
TOY_RUNNER = 2
"""Version of what a toy run does beyond `_CODE_FILES` (in `ToyRun.key`). 2: inputs scaled by the patch side
(`fit_toy_normalizer`), alignment samples from `baselines.make_sampler`."""


# --------------------------------------------------------------------------- harness hooks

def write_toy_demos(path: str | Path, pair: str, domain: str, magnitude: float, n: int, seed: int,
                    stream: str) -> Path:
    """Write `tasks.toy.toy_dataset(...)` to `path` (the harness's demo cache file)."""
    from tasks.dataset import write_dataset
    from tasks.toy import toy_dataset

    return write_dataset(path, toy_dataset(pair, domain, magnitude, n, seed, stream))


def toy_policy_config(width: int, depth: int, z_dim: int, network: str = "mlp", domain_embedding: bool = False):
    """The policy of a toy pair: one observation (3), one action (2), encoder as wide as the noise net."""
    from baselines import PolicyConfig
    from tasks.toy import ACTION_DIM, OBS_DIM

    if network != "mlp":
        raise ValueError("toy pairs use the MLP noise network (a horizon of 1 has nothing for a U-Net to convolve)")
    return PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, n_obs_steps=1, horizon=1, n_action_steps=1,
                        network="mlp", width=width, depth=depth, z_dim=z_dim, encoder_hidden=width,
                        domain_embedding=domain_embedding)


def fit_toy_normalizer(policy, obs: np.ndarray, action: np.ndarray) -> None:
    """Fit the policy's normalizers with one fixed observation scale, 2 / the patch side (module docstring).

    obs: (K, 1, 3) training windows, centred per dimension on their midrange; action: (K, 1, 2),
    per-dimension min-max. The scale does not depend on the data, so neither on Δz.
    """
    import torch

    from tasks.toy import PATCH_SIDE

    policy.fit_normalizer(obs, action)
    flat = np.asarray(obs, dtype=np.float64).reshape(-1, np.shape(obs)[-1])
    policy.obs_normalizer.center.copy_(torch.as_tensor((flat.max(axis=0) + flat.min(axis=0)) / 2))
    policy.obs_normalizer.scale.fill_(2.0 / PATCH_SIDE)


def _eval_noise(seeds: list[int]) -> np.ndarray:
    """Per-input sampling noise (n, 1, 2), each row from a generator seeded by its input's episode seed."""
    import torch

    from benchmark.harness.evaluate import _episode_noise
    from tasks.toy import ACTION_DIM

    return np.stack([_episode_noise(s, 0, (1, ACTION_DIM)).numpy() for s in seeds])


def evaluate_toy(method, pair: str, magnitude: float, domain: str, n: int, seed: int,
                 guidance: float | None = None) -> dict[str, Any]:
    """Exact evaluation of `method` in `domain` on the first `n` inputs of the test stream of `seed`.

    Returns {"n", "successes", "success_rate", "ci95" (Wilson over inputs), "action_error" (mean L2
    distance to the domain's optimal action), "error_threshold", "episodes": [{"seed", "success",
    "error"}]}, plus "target_error" (= action_error) for the target domain.
    """
    from tasks.seeds import episode_seeds
    from tasks.toy import SUCCESS_THRESHOLD, action_error, toy_dataset

    from benchmark.analysis.stats import wilson_interval

    data = toy_dataset(pair, domain, magnitude, n, seed, "test")
    obs = np.stack(data.obs)  # (n, 1, 3)
    seeds = episode_seeds("test", seed, n)
    actions = method.sample(obs, domain, guidance=guidance, noise=_eval_noise(seeds))
    err = action_error(pair, magnitude, obs, actions, domain=domain)
    ok = err < SUCCESS_THRESHOLD
    k = int(ok.sum())
    out = {"n": n, "successes": k, "success_rate": k / n if n else math.nan, "ci95": list(wilson_interval(k, n)),
           "action_error": float(err.mean()), "error_threshold": SUCCESS_THRESHOLD,
           "episodes": [{"seed": s, "success": bool(o), "error": float(e)} for s, o, e in zip(seeds, ok, err)]}
    if domain == "target":
        out["target_error"] = out["action_error"]
    return out


def toy_eval(cfg, run_dir: Path) -> dict[str, Any]:
    """The harness's evaluation stage for a toy pair: exact errors on the test inputs of both domains."""
    from baselines import load_checkpoint

    t0 = time.time()
    method = load_checkpoint(str(Path(run_dir) / "checkpoint"), device=cfg.device)
    out: dict[str, Any] = {domain: evaluate_toy(method, cfg.pair, cfg.magnitude, domain, cfg.episodes, cfg.seed)
                           for domain in ("target", "source")}
    out["wall_s"] = time.time() - t0
    return out


# --------------------------------------------------------------------------- one toy run

@dataclass(frozen=True)
class ToyRun:
    """One training run of `cotrain toy` (everything that changes its numbers; hashed for the cache)."""

    pair: str
    """A toy pair, e.g. `toy/study`."""
    method: str
    """Key of `baselines.METHODS`."""
    magnitude: float
    """The target's gap magnitude (toy/study: `tasks.toy.study_magnitude(Δz)`)."""
    n_target: int = 30
    """N target samples."""
    n_source: int = 1000
    """M source samples."""
    w: float | None = None
    """Target batch fraction of mixing methods (None: `baselines.default_ratio(N, M)`)."""
    seed: int = 0
    """Run seed: data streams, initialization, training and evaluation noise."""
    steps: int = 1000
    """Training steps."""
    width: int = 64
    """Noise-network and encoder width."""
    depth: int = 2
    """Residual blocks of the noise network."""
    z_dim: int = 16
    """Size of the representation z."""
    batch_size: int = 256
    """Training batch size."""
    guidance: tuple[float, ...] = ()
    """Extra guidance scales λ to evaluate (guided methods), beside the method's default."""
    metrics: bool = False
    """Compute the representation metrics on paired inputs."""
    n_test: int = N_TEST
    """Test inputs (target domain)."""

    def key(self) -> str:
        """Content hash of the spec and of the code that produces its numbers (`_code_hash`)."""
        from tasks import get_pair

        return content_hash({**asdict(self), "pair_version": get_pair(self.pair).version,
                             "suite_version": SUITE_VERSION, "toy_runner": TOY_RUNNER, "code": _code_hash()})


_CODE_FILES = ("baselines/__init__.py", "baselines/data.py", "baselines/hparams.py", "baselines/methods.py",
               "baselines/policy.py", "benchmark/harness/train.py", "benchmark/analysis/metrics.py", "tasks/toy.py")


def _code_hash() -> str:
    """Hash of the sources a toy run's numbers depend on, so the run cache never serves stale results."""
    import hashlib

    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for rel in _CODE_FILES:
        path = root / rel
        digest.update(rel.encode() + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()[:12]


def _outputs(pair: str, magnitude: float, obs: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    from tasks.toy import SUCCESS_THRESHOLD, action_error, map_position

    err = action_error(pair, magnitude, obs, actions)
    pos = map_position(pair, magnitude, obs, actions)
    valid = ~np.isnan(pos)
    return {"error": float(err.mean()), "success": float((err < SUCCESS_THRESHOLD).mean()),
            "position": float(np.nanmean(pos)) if valid.any() else math.nan,
            "target_mode": float((pos[valid] > 0.5).mean()) if valid.any() else math.nan}


def sample_batched(method, obs: np.ndarray, domain: str, guidance: float | None = None,
                   noise: np.ndarray | None = None) -> np.ndarray:
    """`method.sample` in one batched pass (`exact_rows=False`: equal to within rounding, about 20 times
    faster on CPU than row by row); the guidance rule is `Method.sample`'s."""
    import torch

    from baselines import domain_id

    lam = (method.hparams["guidance"] if guidance is None else guidance) if method.guided else None
    dom = domain_id(domain) if method.uses_domain_embedding else None
    with torch.inference_mode():
        out = method.ema.model.sample(torch.as_tensor(obs, dtype=torch.float32), dom, lam,
                                      noise=None if noise is None else torch.as_tensor(noise, dtype=torch.float32),
                                      exact_rows=False)
    return out.cpu().numpy()


def train_toy(spec: ToyRun):
    """Build and train the method of one `ToyRun` (through `benchmark.harness.train.train`); returns (method, summary)."""
    import torch

    from baselines import METHODS, DiffusionPolicy, default_ratio, make_sampler, make_windows
    from tasks.toy import toy_dataset

    from benchmark.harness.train import TrainConfig, derive_seed, train

    cls = METHODS[spec.method]
    pair, mag, seed = spec.pair, spec.magnitude, spec.seed
    src = make_windows(toy_dataset(pair, "source", mag, spec.n_source, seed), 1, 1) if cls.uses_source else None
    tgt = make_windows(toy_dataset(pair, "target", mag, spec.n_target, seed), 1, 1) if cls.uses_target else None
    val = make_windows(toy_dataset(pair, "target", mag, max(1, spec.n_target // 5), seed, "validation"), 1, 1)
    used = [x for x in (src, tgt) if x is not None]
    torch.manual_seed(derive_seed(seed, "init"))
    policy = DiffusionPolicy(toy_policy_config(spec.width, spec.depth, spec.z_dim,
                                               domain_embedding=cls.uses_domain_embedding))
    fit_toy_normalizer(policy, np.concatenate([x.obs for x in used]), np.concatenate([x.action for x in used]))
    hp: dict[str, Any] = {"batch_size": spec.batch_size}
    if cls.mixes:
        hp["w"] = spec.w if spec.w is not None else default_ratio(spec.n_target, spec.n_source)
        w = hp["w"]
    else:
        w = 1.0 if cls.uses_target else 0.0
    method = cls(policy, hp)
    sampler = make_sampler(cls, src, tgt, spec.batch_size, w, torch.Generator())
    tcfg = TrainConfig(steps=spec.steps, batch_size=spec.batch_size, log_every=spec.steps, ckpt_every=spec.steps,
                       val_every=spec.steps, seed=seed)
    with tempfile.TemporaryDirectory(prefix="toy_run_") as tmp:
        summary = train(method, sampler, tcfg, tmp, val_target=val, progress=False)
    return method, {**summary, "w": w if cls.mixes else None}


def run_toy(spec: ToyRun) -> dict[str, Any]:
    """Train and evaluate one `ToyRun`; returns its config and results (plain JSON types)."""
    from tasks.toy import toy_dataset

    from benchmark.analysis.metrics import representation_metrics

    t0 = time.time()
    method, summary = train_toy(spec)
    cls = type(method)
    pair, mag, seed = spec.pair, spec.magnitude, spec.seed
    data = toy_dataset(pair, "target", mag, spec.n_test, seed, "test")
    obs = np.stack(data.obs)
    noise = _eval_noise(data.episode_seeds)
    out: dict[str, Any] = {"config": {**asdict(spec), "w": summary["w"]}, "train_s": summary["wall_time_s"],
                           "val_target": summary["val_target"]}
    out["eval"] = _outputs(pair, mag, obs, sample_batched(method, obs, "target", noise=noise))
    if cls.guided:
        out["eval"]["guidance"] = method.hparams["guidance"]
        out["guidance"] = {str(lam): _outputs(pair, mag, obs, sample_batched(method, obs, "target", lam, noise))
                           for lam in spec.guidance}
    if spec.metrics:
        o_src = np.stack(toy_dataset(pair, "source", mag, N_PAIRED, seed, "replay").obs)
        o_tgt = np.stack(toy_dataset(pair, "target", mag, N_PAIRED, seed, "replay").obs)
        z = [method.encode(o) for o in (o_src, o_tgt)]
        zc = [method.conditioning(o_src, "source"), method.conditioning(o_tgt, "target")]
        out["metrics"] = representation_metrics(z[0], z[1], zc[0], zc[1], seed=seed)
    out["wall_s"] = time.time() - t0
    return out


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_many(specs: list[ToyRun], cache_dir: str | Path, parallel: int = 2, log=print) -> dict[ToyRun, dict]:
    """Run every spec not yet in `cache_dir` (one JSON per run, named by `ToyRun.key()`); return all results."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(specs))
    results: dict[ToyRun, dict] = {}
    todo = []
    for spec in unique:
        path = cache_dir / f"{spec.key()}.json"
        if path.exists():
            results[spec] = json.loads(path.read_text())
        else:
            todo.append(spec)
    log(f"  {len(unique)} runs, {len(unique) - len(todo)} cached, {len(todo)} to train")

    def store(spec: ToyRun, res: dict) -> None:
        path = cache_dir / f"{spec.key()}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(res, default=float))
        os.replace(tmp, path)
        results[spec] = res

    t0, done = time.time(), 0
    if parallel <= 1 or len(todo) <= 1:
        import torch

        threads = torch.get_num_threads()
        _init_worker()
        try:
            for spec in todo:
                store(spec, run_toy(spec))
                done += 1
                if done % 20 == 0:
                    log(f"    {done}/{len(todo)} ({time.time() - t0:.0f} s)")
        finally:
            torch.set_num_threads(threads)
    else:
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            futures = {pool.submit(run_toy, spec): spec for spec in todo}
            for fut in as_completed(futures):
                store(futures[fut], fut.result())
                done += 1
                if done % 20 == 0:
                    log(f"    {done}/{len(todo)} ({time.time() - t0:.0f} s)")
    return results


# --------------------------------------------------------------------------- statistics

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


def _mixed_share_verdict(share: tuple[float, float, float]) -> str:
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


# --------------------------------------------------------------------------- the study

@dataclass(frozen=True)
class ToySize:
    """Sizes of `cotrain toy` (the default is sized for a few minutes on 2 cores)."""

    seeds: int = 3
    """Seeds for findings 1-4."""
    grid_seeds: int = 2
    """Seeds (replicates) of the Δz × w grid and of the per-pair checks."""
    steps: int = 1000
    """Training steps per run."""
    dz: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0, 10.0, 50.0)
    """Δz values of the grid (a subset of docs/PROTOCOL.md's; `--full` uses all nine)."""
    w: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.3, 0.7, 1.0)
    """w values of the grid (w = 0 is source_only, 1 target_only; a subset of docs/PROTOCOL.md's)."""
    ratio_w: tuple[float, ...] = (0.01, 0.05, 0.1, 0.3, 0.7)
    """w values of the ratio sweep (finding 2)."""
    n_sources: tuple[int, ...] = (300, 1000, 3000)
    """M values of the ratio sweep, N = 30."""
    reweight_w: tuple[float, ...] = (0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    """w values of the reweighting sweep (finding 3)."""
    structured_dz: float = 1.0
    """Δz of findings 1, 2 and 4 (docs/PROTOCOL.md: Δz ≈ 1-3 is the structured regime)."""


FULL = ToySize(seeds=5, grid_seeds=3, steps=2000, dz=STUDY_DZ, w=STUDY_W,
               ratio_w=(0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7), n_sources=(100, 300, 1000, 3000))
"""`cotrain toy --full`: docs/PROTOCOL.md's whole Δz × w grid, more seeds and steps (about an hour on 2 cores)."""


def _method_for(w: float, default: str = "cotrain") -> tuple[str, float | None]:
    if w == 0.0:
        return "source_only", None
    if w == 1.0:
        return "target_only", None
    return default, w


def _stat(results: dict, specs: list[ToyRun], key: str = "error", section: str = "eval") -> tuple[float, float, float]:
    return mean_ci([results[s][section][key] for s in specs])


def toy_study(out_dir: str | Path = "results/toy", runs_dir: str | Path = "runs/toy", size: ToySize = ToySize(),
              parallel: int = 2, command: str = "cotrain toy", log=print) -> Path:
    """Run the five findings and the per-pair checks; write PNGs and `summary.md` into `out_dir`."""
    from baselines import natural_ratio, odds_rule, sqrt_rule
    from tasks.toy import N_SOURCE, N_TARGET, SUCCESS_THRESHOLD, study_magnitude, toy_pairs

    t_start = time.time()
    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(size.seeds))
    gseeds = list(range(size.grid_seeds))
    base = dict(steps=size.steps)
    study, mag_s = "toy/study", study_magnitude(size.structured_dz)
    N, M = N_TARGET, N_SOURCE

    # ---- the specs of every finding
    f1 = {m: [ToyRun(study, m, mag_s, seed=s, metrics=True,
                     guidance=GUIDANCE_GRID if m in ("cfg", "cfg_adda") else (), **base) for s in seeds]
          for m in ALL_METHODS}
    f2 = {(mm, w): [ToyRun(study, "cotrain", mag_s, n_source=mm, w=w, seed=s, **base) for s in seeds]
          for mm in size.n_sources for w in size.ratio_w}
    # target_only never sees the source: its runs do not depend on M, nor (its normalized inputs being the
    # same) on Δz, so finding 1's runs serve findings 2 and 5; finding 1's source_only serves M = N_SOURCE
    f2_target = f1["target_only"]
    f2_source = {mm: f1["source_only"] if mm == M else
                 [ToyRun(study, "source_only", mag_s, n_source=mm, seed=s, **base) for s in seeds]
                 for mm in size.n_sources}
    f3 = {}
    for w in size.reweight_w:
        name, ww = _method_for(w)
        f3[w] = [ToyRun("toy/action_map", name, 1.0, w=ww, seed=s, **base) for s in seeds]
    if size.grid_seeds > size.seeds:
        raise ValueError(f"grid_seeds ({size.grid_seeds}) cannot exceed seeds ({size.seeds})")
    if size.grid_seeds < 2:
        raise ValueError(f"grid_seeds ({size.grid_seeds}) must be at least 2: a best setting is chosen on the other "
                         f"seeds (`loso_choice`)")
    target_only_grid = f1["target_only"][:size.grid_seeds]
    f5 = {}
    for dz in size.dz:
        for w in size.w:
            name, ww = _method_for(w)
            f5[(dz, w)] = target_only_grid if name == "target_only" else [
                (f1["source_only"][s] if name == "source_only" and dz == size.structured_dz else
                 ToyRun(study, name, study_magnitude(dz), w=ww, seed=s, **base)) for s in gseeds]
    checks = {}
    for p in toy_pairs():
        if p.name == study:
            continue
        checks[p.name] = {m: [ToyRun(p.name, m, 1.0, seed=s, **base) for s in gseeds]
                          for m in ("target_only", "cotrain", "cfg_adda")}

    everything = [s for v in f1.values() for s in v] + [s for v in f2.values() for s in v] + f2_target
    everything += [s for v in f2_source.values() for s in v] + [s for v in f3.values() for s in v]
    everything += [s for v in f5.values() for s in v] + [s for c in checks.values() for v in c.values() for s in v]
    log(f"cotrain toy: {len(set(everything))} runs of {size.steps} steps on {parallel} worker(s)")
    n_cached = sum((runs_dir / f"{spec.key()}.json").exists() for spec in set(everything))
    res = run_many(everything, runs_dir, parallel=parallel, log=log)
    t_runs = time.time() - t_start
    verdicts: list[tuple[str, str, str]] = []  # (the study's claim, measured here, verdict)

    lines: list[str] = []
    add = lines.append
    add("# Toy models of sim-and-real co-training: the study's findings, measured\n")
    add(f"Command: `{command}`  ")
    run_s = sum(res[spec]["wall_s"] for spec in set(everything))
    add(f"Runs: {len(set(everything))} ({n_cached} read from the cache `{runs_dir}`, the rest trained by this call in "
        f"{t_runs:.0f} s on {parallel} worker(s)); the runs' own wall times sum to {run_s:.0f} s. Suite "
        f"{SUITE_VERSION}. Timings on shared machines vary with the load.\n")
    verdict_at = len(lines)
    add(f"Setup (tasks/toy.py): N = {N} target and M = {M} source samples unless stated; policy: the suite's "
        f"diffusion policy (residual MLP, width 64, depth 2, z of 16, DDPM 100 / DDIM 10), {size.steps} steps of "
        f"batch 256 through `benchmark.harness.train.train`; target error = mean L2 distance of one sampled action to "
        f"the exact target action over {N_TEST} test inputs; success = error < {SUCCESS_THRESHOLD}. "
        f"Intervals: 95% t intervals over seeds ({size.seeds} seeds for findings 1-4, {size.grid_seeds} for the "
        f"grid and the pair checks); a bracket is [low, high]. Structured regime of findings 1, 2, 4: "
        f"toy/study at Δz = {size.structured_dz:g}. Methods use their default hyperparameters "
        f"(`baselines.hparams`): mixing methods at w = default_ratio(N, M) = "
        f"{res[f1['cotrain'][0]]['config']['w']:.3f}; `cfg` and `cfg_adda` sample at their default λ = -0.5 "
        f"in finding 1. With batch 256, a w under 1/256 still puts one target row in each diffusion batch "
        f"(baselines.data.MixedSampler); the alignment terms of ot, adda and cfg_adda compare their own "
        f"equal-size samples of both domains, whatever w (baselines.make_sampler). Observations are scaled by "
        f"2 / the patch side on every axis, whatever Δz (benchmark/toy/, `fit_toy_normalizer`). Where a claim "
        f"is about the best of several settings, each seed is measured at the setting best on the other seeds "
        f"(`loso_choice`), so the selection favours neither side; where it says the best lies in a region, the "
        f"mean error inside the region is compared with the mean outside, within each seed.\n")

    # ---- finding 1
    add("## 1. Alignment, discernibility and target error per method\n")
    add("Alignment of z: W(z)/spread, the Wasserstein distance between the domains' z on 256 paired inputs "
        "(same patch coordinates in both domains; smaller = more aligned) divided by z's within-domain spread "
        "(each domain's RMS distance to its own mean, averaged over the two; `benchmark.analysis.metrics`), so a method "
        "cannot lower it by shrinking z; and chance-corrected nearest-neighbour retrieval of the paired input "
        "(1 = aligned). Discernibility: held-out accuracy of a 2-layer MLP domain probe on z and on z_cond (z "
        "plus the domain embedding; 0.5 = chance).\n")
    add("| method | W(z)/spread | z spread | NN retrieval | probe MLP z | probe MLP z_cond | structured | "
        "target error | success |")
    add("|---|---|---|---|---|---|---|---|---|")
    f1_rows = {}
    for m in ALL_METHODS:
        sp = f1[m]
        row = {k: _stat(res, sp, k, "metrics") for k in ("align_wasserstein", "z_spread", "align_nn", "discern_mlp",
                                                         "discern_mlp_cond", "structured_alignment")}
        row["error"], row["success"] = _stat(res, sp), _stat(res, sp, "success")
        f1_rows[m] = row
        add(f"| {m} | {fmt_ci(row['align_wasserstein'])} | {fmt_ci(row['z_spread'])} | {fmt_ci(row['align_nn'], 2)} | "
            f"{fmt_ci(row['discern_mlp'], 2)} | {fmt_ci(row['discern_mlp_cond'], 2)} | "
            f"{fmt_ci(row['structured_alignment'], 2)} | {fmt_ci(row['error'])} | {fmt_ci(row['success'], 2)} |")
    _plot_methods(f1_rows, out_dir / "methods.png")
    best_mix = min(MIXING_METHODS, key=lambda m: f1_rows[m]["error"][0])
    add("")
    add(_claims_methods(f1_rows, res, f1, best_mix))

    def paired(a_runs, b_runs, key="error", section="eval"):
        return mean_ci([res[a][section][key] - res[b][section][key] for a, b in zip(a_runs, b_runs)])

    for m in ("ot", "adda"):
        d = paired(f1[m], f1["cotrain"], "align_wasserstein", "metrics")
        verdicts.append((f"{m} aligns z (smaller W(z)/spread than cotrain)",
                         f"W/spread({m}) − W/spread(cotrain) = {fmt_ci(d)}",
                         sign_verdict(d)))
        d = paired(f1[m], f1["cotrain"], "discern_mlp", "metrics")
        verdicts.append((f"{m} (alignment only) loses discernibility of z", f"probe({m}) − probe(cotrain) = "
                         f"{fmt_ci(d, 2)}", sign_verdict(d)))
    others = [m for m in MIXING_METHODS if m != "cfg_adda"]
    rivals = [others[k] for k in loso_choice([[res[s]["eval"]["error"] for s in f1[m]] for m in others])]
    d = mean_ci([res[a]["eval"]["error"] - res[f1[r][i]]["eval"]["error"]
                 for i, (a, r) in enumerate(zip(f1["cfg_adda"], rivals))])
    verdicts.append(("cfg_adda has the lowest target error",
                     f"cfg_adda − the best other co-training method (chosen on the other seeds; per seed "
                     f"{', '.join(rivals)}) = {fmt_ci(d)}", sign_verdict(d)))
    add("\n![methods](methods.png)\n")

    # ---- finding 2
    add("## 2. Target error against the mixing ratio, several N/M\n")
    add("| M | w_n = N/(N+M) | √(N/M) | √N/(√N+√M) | grid w in [w_n, √(N/M)] | error inside − outside "
        "[95%] | lowest mean (grid) | bootstrap range of it | error there | target_only | source_only | "
        "nearer rule (log w) |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    curves = {}
    to_err = _stat(res, f2_target)
    ratio_w = np.array(size.ratio_w)
    contrasts = []
    for mm in size.n_sources:
        ys = np.array([[res[s]["eval"]["error"] for s in f2[(mm, w)]] for w in size.ratio_w])  # (W, seeds)
        opt, rng_lo, rng_hi = _optimum(ratio_w, ys)
        rules = {"w_n": natural_ratio(N, mm), "odds": odds_rule(N, mm), "sqrt": sqrt_rule(N, mm)}
        near = min(rules, key=lambda k: abs(math.log(opt) - math.log(rules[k])))
        dist = ", ".join(f"{k} {abs(math.log10(opt / v)):.2f}" for k, v in rules.items())
        curves[mm] = (ys, rules)
        inside = (ratio_w >= rules["w_n"]) & (ratio_w <= rules["sqrt"])
        diff = inside_minus_outside(ys, inside)
        d = mean_ci(diff)
        in_w = ", ".join(f"{w:g}" for w in ratio_w[inside]) or "none"
        if np.isfinite(diff).all():
            contrasts.append(diff)
        verdicts.append((f"M = {mm}: the best w lies in the window [w_n, √(N/M)] = [{rules['w_n']:.3f}, "
                         f"{rules['sqrt']:.3f}] (odds form √N/(√N+√M) = {rules['odds']:.3f})",
                         f"mean error at the grid w inside ({in_w}) − mean outside, paired within each seed's "
                         f"sweep: {fmt_ci(d)}",
                         sign_verdict(d) if np.isfinite(diff).all() else "not testable (no grid w on one side)"))
        add(f"| {mm} | {rules['w_n']:.3f} | {rules['sqrt']:.3f} | {rules['odds']:.3f} | {in_w} | {fmt_ci(d)} | "
            f"{opt:g} | [{rng_lo:g}, {rng_hi:g}] | {fmt_ci(mean_ci(ys[list(size.ratio_w).index(opt)]))} | "
            f"{fmt_ci(to_err)} | {fmt_ci(_stat(res, f2_source[mm]))} | {near} (|log10| distances: {dist}) |")
    if len(contrasts) > 1:
        d = mean_ci(np.mean(contrasts, axis=0))
        verdicts.append((f"the best w lies in the window [w_n, √(N/M)] (M = {', '.join(map(str, size.n_sources))} "
                         f"pooled)", f"the per-M differences above averaged within each seed: {fmt_ci(d)}",
                         sign_verdict(d)))
    _plot_ratio(size.ratio_w, curves, to_err, N, out_dir / "ratio.png")
    add("\nThe window is [w_n, √(N/M)], as the study writes its rule; the odds form √N/(√N+√M) is beside it. "
        "\"Error inside − outside\": within each seed's sweep, the mean target error at the grid ratios inside "
        "the window minus the mean at those outside (negative: the window is better), with a 95% t interval "
        "over seeds; unlike asking whether the grid's best ratio falls inside, it is unbiased when w has no "
        "effect, whatever the number of grid ratios on each side. The lowest mean, its bootstrap range (the "
        "2.5-97.5 percentile of the argmin over 2000 resamples of the seeds) and the nearer rule (|log w| "
        "distances; the study reports w on a log scale) describe the curve and decide no verdict.\n")
    add("![ratio](ratio.png)\n")

    # ---- finding 3
    add("## 3. Importance reweighting alone (toy/action_map: identical inputs, the target map turned by 90°)\n")
    add("Position of the sampled action between the source map (0) and the target map (1) at the same input "
        "(projection on the segment between them), and the share of samples nearer the target map. Where the "
        "inputs coincide, the denoiser's optimum is the mixture of both domains' actions weighted w : 1 − w "
        "(docs/PROTOCOL.md, \"importance reweighting\"), so both should follow w.\n")
    add("| w | mean position | share nearer target map | target error |")
    add("|---|---|---|---|")
    rew = {}
    for w in size.reweight_w:
        rew[w] = (_stat(res, f3[w], "position"), _stat(res, f3[w], "target_mode"), _stat(res, f3[w]))
        add(f"| {w:g} | {fmt_ci(rew[w][0], 2)} | {fmt_ci(rew[w][1], 2)} | {fmt_ci(rew[w][2])} |")
    _plot_reweighting(rew, out_dir / "reweighting.png")
    ws = np.array(size.reweight_w)
    pos_means = np.array([rew[w][0][0] for w in size.reweight_w])
    from scipy import stats as _st

    rho = _st.spearmanr(ws, pos_means)
    mono = bool(np.all(np.diff(pos_means) > 0))
    add(f"\nSpearman ρ(w, mean position) = {rho.statistic:.2f} over {len(ws)} ratios; the seed-mean position "
        f"is {'strictly increasing' if mono else 'not strictly increasing'} in w. Mean |position − w| over the "
        f"mixed ratios: {np.mean(np.abs(pos_means[1:-1] - ws[1:-1])):.2f}.\n")
    add("![reweighting](reweighting.png)\n")
    verdicts.append(("where representations overlap, w alone moves the action toward the heavier domain",
                     f"position {pos_means[0]:.2f} at w = {ws[0]:g} to {pos_means[-1]:.2f} at w = {ws[-1]:g}; "
                     f"Spearman ρ = {rho.statistic:.2f}", "reproduces" if mono else "does not"))

    # ---- finding 4
    add("## 4. Classifier-free guidance scale (toy/study, structured Δz)\n")
    add("Guidance ε̂ = ε(∅) + (1 + λ)(ε(target) − ε(∅)); λ = 0 is conditional sampling. The models of finding 1, "
        "evaluated at every λ on the same inputs and noise.\n")
    add("| λ | " + " | ".join(f"{m} target error" for m in ("cfg", "cfg_adda")) + " |")
    add("|---|---|---|")
    lam_curves = {}
    for m in ("cfg", "cfg_adda"):
        lam_curves[m] = np.array([[res[s]["guidance"][str(lam)]["error"] for s in f1[m]] for lam in GUIDANCE_GRID])
    for i, lam in enumerate(GUIDANCE_GRID):
        add(f"| {lam:g} | {fmt_ci(mean_ci(lam_curves['cfg'][i]))} | {fmt_ci(mean_ci(lam_curves['cfg_adda'][i]))} |")
    _plot_guidance(lam_curves, out_dir / "guidance.png")
    add("")
    for m in ("cfg", "cfg_adda"):
        c = lam_curves[m]
        best = GUIDANCE_GRID[int(np.argmin(c.mean(axis=1)))]
        diff = mean_ci(c[GUIDANCE_GRID.index(-0.5)] - c[GUIDANCE_GRID.index(0.0)])
        add(f"- {m}: lowest mean error at λ = {best:g}; error(λ = −0.5) − error(λ = 0), paired over seeds: "
            f"{fmt_ci(diff)} ({'−0.5 helps' if diff[2] < 0 else '−0.5 hurts' if diff[1] > 0 else 'not resolved'}).")
        v = sign_verdict(diff)
        verdicts.append((f"{m}: guidance λ = −0.5 beats conditional sampling (λ = 0)",
                         f"lowest mean error at λ = {best:g}; error(−0.5) − error(0) = {fmt_ci(diff)}",
                         v if not (v == "not resolved" and best == -0.5) else "not resolved (lowest mean at −0.5)"))
    add("\n![guidance](guidance.png)\n")

    # ---- finding 5
    add("## 5. The Δz × w grid on toy/study and the two-way analysis of variance\n")
    y = np.array([[[res[s]["eval"]["error"] for s in f5[(dz, w)]] for w in size.w] for dz in size.dz])
    an = two_way_anova(y)
    iv = anova_share_intervals(y)
    cell = y.mean(axis=2)
    i, j = np.unravel_index(np.argmin(cell), cell.shape)
    add(f"Target error, mean over {size.grid_seeds} seeds (rows Δz, columns w; w = 0 is source_only, w = 1 "
        f"target_only):\n")
    add("| Δz \\ w | " + " | ".join(f"{w:g}" for w in size.w) + " |")
    add("|---|" + "---|" * len(size.w))
    for a, dz in enumerate(size.dz):
        add(f"| {dz:g} | " + " | ".join(f"{cell[a, b]:.3f}" for b in range(len(size.w))) + " |")
    add(f"\nLowest mean error {cell[i, j]:.3f} at Δz = {size.dz[i]:g}, w = {size.w[j]:g}.\n")
    add("| source | share of the total sum of squares | 95% bootstrap interval (seeds) | F | p |")
    add("|---|---|---|---|---|")
    for k, label in (("A", "Δz"), ("B", "w"), ("AB", "Δz × w"), ("error", "residual (seeds)")):
        f, p = an["F"].get(k, math.nan), an["p"].get(k, math.nan)
        add(f"| {label} | {an['share'][k]:.3f} | [{iv[k][0]:.3f}, {iv[k][1]:.3f}] | "
            f"{'' if math.isnan(f) else f'{f:.1f}'} | {'' if math.isnan(p) else f'{p:.2g}'} |")
    _plot_grid(size.dz, size.w, cell, an, out_dir / "grid.png")
    mixed_idx = [b for b, w in enumerate(size.w) if 0 < w < 1]
    an_mix = two_way_anova(y[:, mixed_idx]) if len(mixed_idx) > 1 else None
    if an_mix is not None:
        iv_mix = anova_share_intervals(y[:, mixed_idx])
        add(f"\nThe same analysis over the co-training ratios only (0 < w < 1, without source_only and "
            f"target_only): Δz {an_mix['share']['A']:.3f} [{iv_mix['A'][0]:.3f}, {iv_mix['A'][1]:.3f}], "
            f"w {an_mix['share']['B']:.3f} [{iv_mix['B'][0]:.3f}, {iv_mix['B'][1]:.3f}], interaction "
            f"{an_mix['share']['AB']:.3f} [{iv_mix['AB'][0]:.3f}, {iv_mix['AB'][1]:.3f}], residual "
            f"{an_mix['share']['error']:.3f}.")
    sh = an["share"]
    verdicts.append(("ANOVA: Δz has the largest share of the loss variance (about half), w a smaller one "
                     "(about a fifth), the interaction the rest",
                     f"Δz {sh['A']:.2f} [{iv['A'][0]:.2f}, {iv['A'][1]:.2f}], w {sh['B']:.2f} [{iv['B'][0]:.2f}, "
                     f"{iv['B'][1]:.2f}], Δz × w {sh['AB']:.2f}" + (
                         f"; co-training ratios only: Δz {an_mix['share']['A']:.2f}, w {an_mix['share']['B']:.2f}, "
                         f"Δz × w {an_mix['share']['AB']:.2f}" if an_mix else ""),
                     "reproduces" if sh["A"] > sh["B"] > 0 else "does not"))
    y_mix = y[:, mixed_idx]  # (Δz, co-training w, seeds)
    mi, mj = np.unravel_index(np.argmin(cell[:, mixed_idx]), (len(size.dz), len(mixed_idx)))
    moderate = np.array([MODERATE_DZ[0] <= dz <= MODERATE_DZ[1] for dz in size.dz])
    small = np.array([SMALL_W[0] <= size.w[b] <= SMALL_W[1] for b in mixed_idx])
    d_dz = mean_ci(inside_minus_outside(y_mix.mean(axis=1), moderate))
    d_w = mean_ci(inside_minus_outside(y_mix.mean(axis=0), small))
    v_dz, v_w = sign_verdict(d_dz), sign_verdict(d_w)
    verdicts.append((f"the best error lies at a moderate Δz ({MODERATE_DZ[0]:g}-{MODERATE_DZ[1]:g}) and a small w "
                     f"(about {SMALL_W[0]:g}-{SMALL_W[1]:g})",
                     f"over the co-training ratios, paired within each seed: mean error at moderate Δz − at the "
                     f"other Δz {fmt_ci(d_dz)}; at small w − at the other w {fmt_ci(d_w)} (lowest co-training "
                     f"cell: Δz = {size.dz[mi]:g}, w = {size.w[mixed_idx[mj]]:g}, "
                     f"error {cell[mi, mixed_idx[mj]]:.3f})",
                     "reproduces" if v_dz == v_w == "reproduces" else f"Δz: {v_dz}; w: {v_w}"))
    regimes, regime_verdicts = _regimes(res, f5, size)
    add("")
    add(regimes)
    verdicts += regime_verdicts
    add("\n![grid](grid.png)\n")

    # ---- informativeness
    add("## Is each toy pair informative? (`target_only` on its N samples against the best co-trained policy)\n")
    add("docs/PROTOCOL.md (\"The toy model\"): a toy pair shows transfer only where `target_only` is clearly worse than the best "
        "co-trained policy. \"Clearly\": the paired difference over seeds (target_only − best) has a 95% interval "
        "above 0. The best is chosen among the co-trained runs listed, for each seed on the other seeds "
        "(`loso_choice`), so the selection does not favour co-training.\n")
    add("| pair | magnitude | target_only error | best co-trained (per seed) | its error | difference [95%] | "
        "informative |")
    add("|---|---|---|---|---|---|---|")
    info_rows = [("toy/study", f"Δz = {size.structured_dz:g}", f1["target_only"],
                  {m: f1[m] for m in MIXING_METHODS})]
    for pname, runs in checks.items():
        info_rows.append((pname, "1", runs["target_only"], {m: v for m, v in runs.items() if m != "target_only"}))
    for pname, mag_label, to_runs, mixed in info_rows:
        names = list(mixed)
        picks = [names[k] for k in loso_choice([[res[s]["eval"]["error"] for s in mixed[m]] for m in names])]
        chosen = [mixed[m][i] for i, m in enumerate(picks)]
        diff = mean_ci([res[a]["eval"]["error"] - res[b]["eval"]["error"] for a, b in zip(to_runs, chosen)])
        verdict = "yes" if diff[1] > 0 else ("no" if diff[0] <= 0 else "not resolved")
        add(f"| {pname} | {mag_label} | {fmt_ci(_stat(res, to_runs))} | {', '.join(picks)} | "
            f"{fmt_ci(_stat(res, chosen))} | {fmt_ci(diff)} | {verdict} |")
    add("")
    add(f"This call's wall time: {time.time() - t_start:.0f} s.")
    table = ["## The study's claims, measured here\n",
             "Each claim of docs/PROTOCOL.md's toy and method findings, the number it rests on here (95% intervals over "
             "seeds), and a verdict: *reproduces*, *opposite* (resolved, the other way), *does not*, or *not "
             "resolved* (the interval covers no difference). The toy was not tuned toward any of them.\n",
             "| claim (the study's) | measured here | verdict |", "|---|---|---|"]
    table += [f"| {c} | {m} | {v} |" for c, m, v in verdicts]
    lines[verdict_at:verdict_at] = table + [""]
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / "data.json").write_text(json.dumps(
        {"command": command, "size": asdict(size), "runs": [res[s] for s in dict.fromkeys(everything)]},
        default=float))
    log(f"wrote {path} and {len(list(out_dir.glob('*.png')))} figures ({time.time() - t_start:.0f} s)")
    return path


def _optimum(ws: np.ndarray, ys: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Grid argmin of the seed-mean curve ys (W, seeds), and the 95% range of the bootstrap argmin."""
    opt = float(ws[int(np.argmin(ys.mean(axis=1)))])
    rng = np.random.default_rng(seed)
    r = ys.shape[1]
    boot = [ws[int(np.argmin(ys[:, rng.integers(r, size=r)].mean(axis=1)))] for _ in range(n_boot)]
    return opt, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def _claims_methods(rows: dict, res: dict, f1: dict, best_mix: str) -> str:
    """The finding-1 claims of the study, each stated with its measured numbers."""
    out = []
    w_cot = rows["cotrain"]["align_wasserstein"]
    for m in ("ot", "adda"):
        w_m, d_m = rows[m]["align_wasserstein"], rows[m]["discern_mlp"]
        out.append(f"- {m}: W(z)/spread {fmt_ci(w_m)} against cotrain's {fmt_ci(w_cot)} (z spread "
                   f"{fmt_ci(rows[m]['z_spread'])} against {fmt_ci(rows['cotrain']['z_spread'])}); the MLP probe on z "
                   f"reads the domain at {fmt_ci(d_m, 2)} (cotrain {fmt_ci(rows['cotrain']['discern_mlp'], 2)}).")
    for m in ("domain_cond", "cfg", "cfg_adda"):
        out.append(f"- {m}: probe on z_cond {fmt_ci(rows[m]['discern_mlp_cond'], 2)}, W(z)/spread "
                   f"{fmt_ci(rows[m]['align_wasserstein'])}.")
    diff = mean_ci([res[a]["eval"]["error"] - res[b]["eval"]["error"]
                    for a, b in zip(f1["cfg_adda"], f1["cotrain"])])
    out.append(f"- Lowest mean target error among the co-training methods: {best_mix} "
               f"({fmt_ci(rows[best_mix]['error'])}). cfg_adda − cotrain, paired over seeds: {fmt_ci(diff)} "
               f"({'cfg_adda better' if diff[2] < 0 else 'cfg_adda worse' if diff[1] > 0 else 'not resolved'}).")
    return "\n".join(out)


def _regimes(res: dict, f5: dict, size: ToySize) -> tuple[str, list[tuple[str, str, str]]]:
    """The regime claims of docs/PROTOCOL.md's toy, stated with numbers from the grid, and their verdicts.

    Each claim is measured, per Δz and seed, at the co-training ratio with the lowest mean error on the
    other seeds (`loso_choice`), never at the in-sample best ratio (which favours co-training).
    """
    mixed = [w for w in size.w if 0 < w < 1]
    lines, at = [], {}
    for dz in size.dz:
        err, tm = (np.array([[res[s]["eval"][key] for s in f5[(dz, w)]] for w in mixed])
                   for key in ("error", "target_mode"))
        pick = loso_choice(err)
        seeds = np.arange(err.shape[1])
        at[dz] = ([mixed[k] for k in pick], err[pick, seeds], tm[pick, seeds])
        lines.append(f"| {dz:g} | {mixed[int(np.argmin(err.mean(axis=1)))]:g} | "
                     f"{', '.join(f'{w:g}' for w in at[dz][0])} | {fmt_ci(mean_ci(at[dz][1]))} | "
                     f"{fmt_ci(mean_ci(at[dz][2]), 2)} |")
    verdicts = []
    to = None
    if 1.0 in size.w:
        to_err = np.array([res[s]["eval"]["error"] for s in f5[(size.dz[0], 1.0)]])
        to = mean_ci(to_err)
        far = size.dz[-1]
        d = mean_ci(at[far][1] - to_err)
        verdicts.append((f"disjoint (Δz = {far:g}): no transfer",
                         f"co-training at the w chosen on the other seeds ({', '.join(f'{w:g}' for w in at[far][0])}) "
                         f"− target_only = {fmt_ci(d)}",
                         "reproduces" if d[1] > 0 else "does not" if d[2] < 0 else
                         "not resolved (consistent with no transfer)"))
    near = size.dz[0]
    tm = mean_ci(at[near][2])
    verdicts.append((f"overlapping (Δz = {near:g}): bimodal output (the two domains' actions mix)",
                     f"share of samples nearer the target map than the source map at the w chosen on the other "
                     f"seeds ({', '.join(f'{w:g}' for w in at[near][0])}): {fmt_ci(tm, 2)} (per seed "
                     f"{', '.join(f'{v:.2f}' for v in at[near][2])}; one sample per input, so a mixed population, "
                     f"not bimodality per input, is what is measured)",
                     _mixed_share_verdict(tm)))
    mid = [dz for dz in size.dz if MODERATE_DZ[0] <= dz <= MODERATE_DZ[1]]
    if mid:
        shares = [float(at[dz][2].mean()) for dz in mid]
        verdicts.append((f"structured (Δz ≈ {MODERATE_DZ[0]:g}-{MODERATE_DZ[1]:g}): faithful target output",
                         ", ".join(f"Δz = {dz:g}: share {sh:.2f}, error {at[dz][1].mean():.3f}"
                                   for dz, sh in zip(mid, shares)) + " (at the w chosen on the other seeds)",
                         "reproduces" if min(shares) > 0.85 else "does not"))
    head = ("Per Δz, over the co-training ratios: the ratio with the lowest mean error (descriptive), the ratio "
            "each seed is measured at (the lowest mean error on the other seeds), and there the error and the share "
            "of sampled actions nearer the target map than the source map (a faithful target output puts it near "
            "1; a bimodal output, part of its samples on the source map, between 0 and 1)"
            + (f"; target_only: {fmt_ci(to)}" if to else "") + ":\n\n| Δz | lowest mean error at w | w per seed "
            "(chosen on the other seeds) | error | share nearer target map |\n|---|---|---|---|---|")
    return head + "\n" + "\n".join(lines), verdicts


# --------------------------------------------------------------------------- figures

def _fig(ncols: int = 1, width: float = 7.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _err(ci: tuple[float, float, float]) -> list[float]:
    m, lo, hi = ci
    return [0.0, 0.0] if math.isnan(lo) else [m - lo, hi - m]


def _plot_methods(rows: dict, path: Path) -> None:
    fig, axes = _fig(3, 13)
    names = list(rows)
    x = np.arange(len(names))
    for ax, keys, title in ((axes[0], ("align_wasserstein",), "alignment: W(z)/spread (lower = aligned)"),
                            (axes[1], ("discern_mlp", "discern_mlp_cond"), "discernibility: MLP probe accuracy"),
                            (axes[2], ("error",), "target error (lower = better)")):
        width = 0.8 / len(keys)
        for k, key in enumerate(keys):
            vals = [rows[n][key] for n in names]
            ax.bar(x + (k - (len(keys) - 1) / 2) * width, [v[0] for v in vals], width,
                   yerr=np.array([_err(v) for v in vals]).T, capsize=2, label=key)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_title(title, fontsize="medium")
        if len(keys) > 1:
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_ratio(ws, curves: dict, to_err, n: int, path: Path) -> None:
    fig, ax = _fig()
    colors = ["C0", "C1", "C2", "C3", "C4"]
    for c, (mm, (ys, rules)) in zip(colors, curves.items()):
        stats_ = [mean_ci(y) for y in ys]
        ax.errorbar(ws, [s[0] for s in stats_], yerr=np.array([_err(s) for s in stats_]).T, color=c, marker="o",
                    capsize=2, label=f"M = {mm} (N/M = {n / mm:.3g})")
        for style, key in ((":", "w_n"), ("--", "odds"), ("-.", "sqrt")):
            ax.axvline(rules[key], color=c, ls=style, lw=0.8)
    ax.axhline(to_err[0], color="k", lw=0.8, label="target_only")
    ax.set_xscale("log")
    ax.set(xlabel="w (target fraction of each batch); lines: w_n (:), √N/(√N+√M) (--), √(N/M) (-.)",
           ylabel="target error (mean L2)")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_reweighting(rew: dict, path: Path) -> None:
    fig, ax = _fig()
    ws = list(rew)
    for idx, label in ((0, "mean position (0 = source map, 1 = target map)"), (1, "share nearer the target map")):
        vals = [rew[w][idx] for w in ws]
        ax.errorbar(ws, [v[0] for v in vals], yerr=np.array([_err(v) for v in vals]).T, marker="o", capsize=2,
                    label=label)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="pure reweighting: position = w")
    ax.set(xlabel="w", ylabel="position", title="toy/action_map: w alone moves the action between the maps")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_guidance(curves: dict, path: Path) -> None:
    fig, ax = _fig()
    for m, c in curves.items():
        stats_ = [mean_ci(y) for y in c]
        ax.errorbar(GUIDANCE_GRID, [s[0] for s in stats_], yerr=np.array([_err(s) for s in stats_]).T, marker="o",
                    capsize=2, label=m)
    ax.axvline(-0.5, color="grey", ls=":", lw=0.8, label="λ = −0.5 (the study's best)")
    ax.set(xlabel="guidance scale λ", ylabel="target error (mean L2)")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_grid(dzs, ws, cell: np.ndarray, an: dict, path: Path) -> None:
    fig, (ax, ax2) = _fig(2, 11)
    im = ax.imshow(cell, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(ws)), [f"{w:g}" for w in ws])
    ax.set_yticks(range(len(dzs)), [f"{d:g}" for d in dzs])
    for a in range(cell.shape[0]):
        for b in range(cell.shape[1]):
            ax.text(b, a, f"{cell[a, b]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set(xlabel="w", ylabel="Δz", title="target error (mean over seeds)")
    fig.colorbar(im, ax=ax)
    keys = ("A", "B", "AB", "error")
    ax2.bar(["Δz", "w", "Δz × w", "residual"], [an["share"][k] for k in keys], color=["C0", "C1", "C2", "grey"])
    ax2.set(ylabel="share of the total sum of squares", title="two-way ANOVA of the target error")
    fig.savefig(path, dpi=110)
