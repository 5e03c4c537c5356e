"""One run: demos -> training -> evaluation -> representation metrics -> record.json.

Each stage writes its output into the run directory (named by the config hash) and is skipped
when that output exists, so a crashed or killed run resumes where it stopped and a finished
run (`done` marker) is never redone. A run holds its folder's lock (`benchmark.harness.lock`) while it
works, so a second process of the same run stops at once and names the first.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from benchmark.harness.config import SUITE_VERSION, RunConfig, content_hash
from benchmark.harness.lock import run_lock

if TYPE_CHECKING:
    from baselines import DiffusionPolicy, PolicyConfig

RECORD_SCHEMA = 2
# Why each older schema's records are refused: their measures are not today's.
SUPERSEDED_SCHEMAS = {
    1: "measured before alignment became scale-free (W was not divided by z's spread), before probes were "
       "split by replay episode, and before alignment terms drew equal-size samples of both domains; "
       "re-run it with this suite version",
}
EXPERT_NOISE = 0.1
REPLAY_PAIRS = 256
METRIC_CHUNK = 64  # replay rows encoded at a time
RAW_IMAGE_POOL = 4  # image pixels pooled 4 x 4 for the raw-history probe (84x84 -> 21x21)


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float))
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)  # a full disk or an interruption leaves no partial file
        if isinstance(err, OSError) and err.filename is None:  # a failed write names no file: name it
            err.filename = str(path)
        raise


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class PairHooks:
    """What a run does that depends on its pair's kind: the robot tasks' way (demos from scripted experts in
    the simulator, a policy on the robot layout, rollouts). A base task names its hooks
    (`tasks.BaseTask.harness`); the toy's are `benchmark.toy.harness.ToyHooks`."""

    def demo_backend(self, cfg: RunConfig) -> str | None:
        """What generates the pair's demos (part of their cache key): the simulation backend."""
        return cfg.backend

    def write_demos(self, path: Path, cfg: RunConfig, domain: str, magnitude: float, n: int, stream: str,
                    progress: bool) -> None:
        """Write `n` demos of `domain` at `magnitude` from the seed stream `stream` of `cfg.seed` to `path`."""
        from tasks.demos import generate_demos

        generate_demos(cfg.pair, domain, magnitude, n, cfg.seed, path, expert_noise=EXPERT_NOISE,
                       progress=progress, stream=stream, backend=cfg.backend)

    def policy_config(self, cfg: RunConfig, width: int, depth: int) -> PolicyConfig:
        """The run's policy (`baselines.PolicyConfig`); the builder sets its domain embedding and obs noise."""
        from baselines import PolicyConfig
        from tasks import get_pair
        from tasks.base_tasks import pair_layout
        from tasks.core import IMAGE_CAMERAS

        pair = get_pair(cfg.pair)
        # image pairs: a conv image encoder per camera, z_dim features per frame (z = image features + low-dim z),
        # whole frames: no random crop (its jitter exceeds the displacement of Lift's cube in the agent view, and
        # with it `lift/visual-48px`'s source policy read its frames only from about 3000 steps; without, by 750)
        image = dict(image_keys=IMAGE_CAMERAS, image_feat_dim=cfg.size.z_dim, crop=None) if pair.obs == "image" else {}
        return PolicyConfig(obs_dim=sum(n for _, n in pair_layout(pair)), action_dim=7,
                            network=cfg.network, width=width, depth=depth, z_dim=cfg.size.z_dim, **image)

    def fit_normalizer(self, policy: DiffusionPolicy, obs: np.ndarray, action: np.ndarray) -> None:
        """Fit the policy's normalizers on its training windows (`baselines.build.NormalizerFit`)."""
        policy.fit_normalizer(obs, action)

    def evaluate(self, cfg: RunConfig, run_dir: Path, progress: bool,
                 domains: tuple[str, ...] | None = None, frozen_frames: bool = False) -> dict[str, Any]:
        """The evaluation stage: success of rollouts from the split's start states in `domains` (default: the
        target alone; a policy's success without the gap is its no-gap control's, the target at magnitude 0);
        `frozen_frames` (image pairs): the policy is given one fixed start state's frames throughout
        (`benchmark.harness.evaluate.EvalSpec`)."""
        from benchmark.harness.evaluate import EVAL_BATCH, EvalPool, EvalSpec, evaluate, summarize
        from tasks.seeds import episode_seeds

        seeds = episode_seeds(cfg.eval_split, cfg.seed, cfg.episodes)
        domains = domains or ("target",)
        t0 = time.time()
        out: dict[str, Any] = {}
        with EvalPool(min(cfg.workers, -(-len(seeds) // EVAL_BATCH))) as pool:
            for domain in domains:
                spec = EvalSpec(str(run_dir / "checkpoint"), cfg.pair, domain, cfg.magnitude, backend=cfg.backend,
                                device=cfg.device, frozen_frames=frozen_frames)
                out[domain] = summarize(evaluate(spec, seeds, progress=progress, pool=pool))
        out["wall_s"] = time.time() - t0
        return out


def pair_hooks(pair: str) -> PairHooks:
    """The hooks of `pair`'s base task (`tasks.BaseTask.harness`)."""
    from importlib import import_module

    from tasks import BASE_TASKS, get_pair

    module, name = BASE_TASKS[get_pair(pair).base_task].harness.split(":")
    return getattr(import_module(module), name)()


def demo_path(runs_dir: Path, pair: str, domain: str, magnitude: float, n: int, seed: int, stream: str,
              backend: str | None) -> Path:
    """Cache file of a demo set: `runs_dir/_demos/<content hash>.hdf5`.

    backend: what generates the demos (`PairHooks.demo_backend`; None: sampled without a simulator).
    """
    from tasks import get_pair
    from tasks.experts import EXPERT_VERSION

    key = {"pair": pair, "version": get_pair(pair).version, "expert_version": EXPERT_VERSION, "domain": domain,
           "magnitude": magnitude if domain == "target" else 0.0, "n": n, "seed": seed, "stream": stream,
           "expert_noise": EXPERT_NOISE, "backend": backend, "suite_version": SUITE_VERSION}
    return runs_dir / "_demos" / f"{content_hash(key)}.hdf5"


def ensure_demos(runs_dir: Path, cfg: RunConfig, domain: str, n: int, stream: str, progress: bool = True) -> Path:
    """Generate (once) and return the cached demo file of `cfg`'s pair in `domain`."""
    hooks = pair_hooks(cfg.pair)
    magnitude = cfg.magnitude if domain == "target" else 0.0
    path = demo_path(runs_dir, cfg.pair, domain, magnitude, n, cfg.seed, stream, hooks.demo_backend(cfg))
    if not path.exists():
        hooks.write_demos(path, cfg, domain, magnitude, n, stream, progress)
    return path


def _windows(path: Path, layout, policy_cfg):
    from baselines.data import make_windows
    from tasks.dataset import load_dataset

    return make_windows(load_dataset(path, layout), policy_cfg.n_obs_steps, policy_cfg.horizon,
                        image_keys=policy_cfg.image_keys)


def stage_train(cfg: RunConfig, run_dir: Path, demos: dict[str, Path], hp: dict[str, Any], progress: bool) -> dict:
    from baselines import METHODS
    from baselines.build import build_training
    from tasks import get_pair
    from tasks.base_tasks import pair_layout

    from benchmark.harness.train import TrainConfig, train

    hooks = pair_hooks(cfg.pair)
    method_cls = METHODS[cfg.method]
    layout = pair_layout(get_pair(cfg.pair))
    size = cfg.size
    # the recipe's architecture hyperparameters (None: the profile's)
    pcfg = hooks.policy_config(cfg, hp["width"] or size.width, hp["depth"] or size.depth)
    src = _windows(demos["source"], layout, pcfg) if method_cls.uses_source else None
    tgt = _windows(demos["target"], layout, pcfg) if method_cls.uses_target else None
    val = _windows(demos["validation"], layout, pcfg)
    built = build_training(pcfg, cfg.method, hp, src, tgt, cfg.seed, device=cfg.device, fit=hooks.fit_normalizer,
                           precision=cfg.precision)
    steps = cfg.steps or size.steps
    tcfg = TrainConfig(steps=steps, batch_size=hp["batch_size"], ckpt_every=size.ckpt_every,
                       log_every=max(1, steps // 50), val_every=max(1, steps // 10), seed=cfg.seed,
                       device=cfg.device, num_threads=cfg.threads, log_csv=cfg.log_csv)
    return train(built.method, built.sampler, tcfg, run_dir, val_target=val, progress=progress)


def stage_eval(cfg: RunConfig, run_dir: Path, progress: bool) -> dict:
    return pair_hooks(cfg.pair).evaluate(cfg, run_dir, progress)


def paired_replay(src_path: Path, tgt_path: Path, layout, n_obs_steps: int, horizon: int,
                  image_keys: tuple[str, ...] = ()):
    """Paired observation windows from the same initial conditions run in both domains.

    Episodes are matched by episode seed and steps by time index (up to the shorter episode);
    at most REPLAY_PAIRS pairs, evenly spaced. Returns (src_obs, tgt_obs, src_act, tgt_act, episode):
    `episode` (n,) the replay episode of each pair (the probes' split unit); with `image_keys` the
    observations are dicts {"lowdim": (n, T_o, D), <camera>: (n, T_o, H, W, 3) uint8}.
    """
    from baselines.data import make_windows
    from baselines.policy import map_obs
    from tasks.dataset import load_dataset

    src, tgt = load_dataset(src_path, layout), load_dataset(tgt_path, layout)
    tgt_index = {s: i for i, s in enumerate(tgt.episode_seeds)}
    parts: list[list[np.ndarray]] = [[], [], [], [], []]
    for i, seed in enumerate(src.episode_seeds):
        if seed not in tgt_index:
            continue
        j = tgt_index[seed]
        ws = make_windows(src.select([i]), n_obs_steps, horizon, image_keys=image_keys)
        wt = make_windows(tgt.select([j]), n_obs_steps, horizon, image_keys=image_keys)
        t = min(len(ws.obs), len(wt.obs))
        keep = np.arange(t)
        for k, arr in enumerate((ws.observations(keep), wt.observations(keep), src.actions[i][:t],
                                 tgt.actions[j][:t], np.full(t, i))):
            parts[k].append(arr)
    if not parts[0]:
        raise RuntimeError("no replay episode succeeded in both domains; the metrics need paired states")
    arrays = [{key: np.concatenate([x[key] for x in p]) for key in p[0]} if isinstance(p[0], dict)
              else np.concatenate(p) for p in parts]
    n = len(arrays[2])
    keep = np.unique(np.linspace(0, n - 1, min(REPLAY_PAIRS, n)).astype(int))
    return tuple(map_obs(lambda x: x[keep], a) for a in arrays)


def _raw_features(obs) -> np.ndarray:
    """What the raw-history probe reads, flat per row: the low-dimensional history, and for image
    observations each camera's frames average-pooled RAW_IMAGE_POOL x RAW_IMAGE_POOL, in [0, 1] (the
    full-resolution pixels would make the MLP probe slower than the whole run)."""
    if not isinstance(obs, dict):
        return obs.reshape(len(obs), -1)
    parts = [obs["lowdim"].reshape(len(obs["lowdim"]), -1)]
    for key in sorted(k for k in obs if k != "lowdim"):
        frames = obs[key].astype(np.float32) / 255.0
        n, t, h, w, c = frames.shape
        p = RAW_IMAGE_POOL
        pooled = frames[:, :, :h - h % p, :w - w % p].reshape(n, t, h // p, p, w // p, p, c).mean((3, 5))
        parts.append(pooled.reshape(n, -1))
    return np.concatenate(parts, 1)


def stage_metrics(cfg: RunConfig, run_dir: Path, replay: dict[str, Path]) -> dict[str, float]:
    import torch

    from baselines import load_checkpoint
    from baselines.policy import map_obs
    from tasks import get_pair
    from tasks.base_tasks import pair_layout

    from benchmark.analysis.metrics import gromov_wasserstein, raw_discernibility, representation_metrics

    method = load_checkpoint(str(run_dir / "checkpoint"), device=cfg.device)
    pcfg = method.policy.config
    layout = pair_layout(get_pair(cfg.pair))
    o_src, o_tgt, a_src, a_tgt, episode = paired_replay(replay["source"], replay["target"], layout,
                                                        pcfg.n_obs_steps, pcfg.horizon, pcfg.image_keys)
    step = METRIC_CHUNK if pcfg.image_keys else len(a_src)  # image policies: chunks of rows bound the memory
    chunks = [np.arange(len(a_src))[i:i + step] for i in range(0, len(a_src), step)]

    def read(fn, obs, *args) -> np.ndarray:
        return np.concatenate([np.asarray(fn(map_obs(lambda x: x[c], obs), *args)) for c in chunks])

    with torch.inference_mode():
        z = [read(method.encode, o) for o in (o_src, o_tgt)]
        zc = [read(method.conditioning, o, d) for o, d in ((o_src, "source"), (o_tgt, "target"))]
        shallow = [read(method.shallow_features, o) for o in (o_src, o_tgt)]
    metrics = representation_metrics(z[0], z[1], zc[0], zc[1], seed=cfg.seed, groups=episode)
    # Gromov-Wasserstein on the shallow features (the image encoder's output; a low-dim policy's first layer)
    metrics["align_gw_shallow"] = gromov_wasserstein(shallow[0], shallow[1], seed=cfg.seed)
    x_src, x_tgt = _raw_features(o_src), _raw_features(o_tgt)
    raw = raw_discernibility(x_src, x_tgt, seed=cfg.seed, groups=episode)
    raw_act = raw_discernibility(np.concatenate([x_src, a_src.reshape(len(a_src), -1)], 1),
                                 np.concatenate([x_tgt, a_tgt.reshape(len(a_tgt), -1)], 1), seed=cfg.seed,
                                 groups=episode)
    metrics.update({f"raw_discern_{k}": v for k, v in raw.items()})
    metrics.update({f"raw_discern_obs_action_{k}": v for k, v in raw_act.items()})
    metrics["replay_pairs"] = int(len(a_src))
    metrics["replay_episodes"] = int(len(np.unique(episode)))
    return metrics


@contextmanager
def _doing(what: str) -> Iterator[None]:
    """Name what the run was doing in an OSError raised in the block (the CLI's one-line message)."""
    try:
        yield
    except OSError as err:
        err.add_note(what)
        raise


def execute_run(cfg: RunConfig, runs_dir: str | Path = "runs", progress: bool = True,
                track: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Run (or resume, or read back) one run under its folder's lock; returns its record.

    `track` ({"name", "budget"}, from a sweep of a track) is named in the record as `track`; a run outside any
    track names none. A finished run's record is read back as it was made.

    Raises `RunInProgress` where another process holds the run's lock (`benchmark.harness.lock`).
    """
    cfg = cfg.resolved()
    runs_dir = Path(runs_dir)
    run_dir = runs_dir / cfg.run_id()
    if (run_dir / "done").exists():
        return read_json(run_dir / "record.json")
    with _doing(f"creating the folder of run {run_dir.name}"):
        run_dir.mkdir(parents=True, exist_ok=True)
    # numpy's BLAS on the run's threads, as torch: the metrics' sums do not depend on the machine's core count
    with run_lock(run_dir), threadpool_limits(limits=cfg.threads):
        if (run_dir / "done").exists():  # finished by another process while this one waited for its lock
            return read_json(run_dir / "record.json")
        return _execute_locked(cfg, runs_dir, run_dir, progress, track)


def training_demos(cfg: RunConfig, runs_dir: Path, progress: bool) -> dict[str, Path]:
    """The demo files a run trains on (made once, cached under `runs_dir/_demos`): source, target, and the
    target validation demos (a fifth of N, at least one) its validation loss is measured on."""
    return {"source": ensure_demos(runs_dir, cfg, "source", cfg.n_source, "source_demos", progress),
            "target": ensure_demos(runs_dir, cfg, "target", cfg.n_target, "target_demos", progress),
            "validation": ensure_demos(runs_dir, cfg, "target", max(1, cfg.n_target // 5), "validation", progress)}


def config_of_record(config: dict[str, Any]) -> RunConfig:
    """The `RunConfig` a record's `config` was made from; ValueError where this suite would give it another run
    id (a record of an older pair, method or suite version: its run cannot be trained again here)."""
    from dataclasses import fields

    if "checkpoint_of" in config:
        raise ValueError(f"run {config.get('run_id')} evaluates run {config['checkpoint_of']}'s checkpoint: it has "
                         f"no training of its own")
    names = {f.name for f in fields(RunConfig)} - {"hparams"}
    cfg = RunConfig(**{k: config[k] for k in names if k in config},
                    hparams=tuple(sorted((config.get("hparams") or {}).items())))
    if cfg.run_id() != config.get("run_id"):
        raise ValueError(f"run {config.get('run_id')}: this suite gives its config the run id {cfg.run_id()} (a "
                         f"record of an older pair, method or suite version), so it cannot be trained again here")
    return cfg


class NotReproduced(RuntimeError):
    """A run trained again for its checkpoint does not reproduce its record."""


def restore_checkpoint(cfg: RunConfig, runs_dir: str | Path, progress: bool = False,
                       log: Callable[[str], None] | None = None) -> None:
    """Make sure a finished run's folder has its checkpoint: where it lacks one (its small files committed
    without it), train the run again (saying so to `log`), put the checkpoint in place and leave its record as it
    was. Training is deterministic at the run's device and threads: `NotReproduced` where the retrained
    final validation loss is not the recorded one."""
    cfg = cfg.resolved()
    runs_dir = Path(runs_dir)
    run_dir = runs_dir / cfg.run_id()
    if (run_dir / "checkpoint").exists():
        return
    with run_lock(run_dir), threadpool_limits(limits=cfg.threads):
        if (run_dir / "checkpoint").exists():
            return
        if log is not None:
            log(f"run {run_dir.name}: no checkpoint here; training it again (deterministic)")
        recorded = read_json(run_dir / "train_summary.json")["val_target"]
        scratch = run_dir / ".retrain"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        with _doing(f"training run {run_dir.name} again for its checkpoint"):
            again = stage_train(cfg, scratch, training_demos(cfg, runs_dir, progress), cfg.to_json()["hparams"],
                                progress)["val_target"]
        if again != recorded:
            raise NotReproduced(f"run {run_dir.name} trained again does not reproduce its record (final validation "
                               f"loss {again!r}, recorded {recorded!r}): another machine or library version; its "
                               f"checkpoint is left in {scratch}")
        os.replace(scratch / "checkpoint", run_dir / "checkpoint")
        shutil.rmtree(scratch)


def _execute_locked(cfg: RunConfig, runs_dir: Path, run_dir: Path, progress: bool,
                    track: dict[str, str | None] | None) -> dict[str, Any]:
    from benchmark.harness.fingerprint import fingerprint

    config = cfg.to_json()
    if (run_dir / "config.json").exists() and read_json(run_dir / "config.json")["run_id"] != config["run_id"]:
        raise RuntimeError(f"{run_dir}/config.json belongs to another run")
    hp = config["hparams"]
    with _doing(f"writing the config of run {run_dir.name}"):
        write_json(run_dir / "config.json", config)

    n_replay = cfg.size.replay_episodes
    started = time.perf_counter()
    with _doing(f"generating the demos of run {run_dir.name}"):
        demos = training_demos(cfg, runs_dir, progress)
        replay = {d: ensure_demos(runs_dir, cfg, d, n_replay, "replay", progress) for d in ("source", "target")}
    demos_s = time.perf_counter() - started  # near 0 where another run of this seed made them

    needs_model = not ((run_dir / "eval.json").exists() and (run_dir / "metrics.json").exists())
    if not (run_dir / "train_summary.json").exists() or (needs_model and not (run_dir / "checkpoint").exists()):
        # (a run folder copied without its checkpoint retrains before evaluating)
        with _doing(f"training run {run_dir.name}"):
            write_json(run_dir / "train_summary.json", stage_train(cfg, run_dir, demos, hp, progress))
    train_summary = read_json(run_dir / "train_summary.json")
    if not (run_dir / "eval.json").exists():
        with _doing(f"evaluating run {run_dir.name}"):
            write_json(run_dir / "eval.json", stage_eval(cfg, run_dir, progress))
    evaluation = read_json(run_dir / "eval.json")
    metrics_s = None  # measured in an earlier process: not known
    if not (run_dir / "metrics.json").exists():
        started = time.perf_counter()
        with _doing(f"measuring run {run_dir.name}"):
            write_json(run_dir / "metrics.json", stage_metrics(cfg, run_dir, replay))
        metrics_s = time.perf_counter() - started
    metrics = read_json(run_dir / "metrics.json")

    record = {
        "schema": RECORD_SCHEMA, "run_id": config["run_id"],
        "config": {**config, "w": hp["w"]},
        "eval": evaluation, "metrics": metrics, "target_error": evaluation["target"].get("target_error"),
        "train": train_summary,
        "timing": {"train_s": train_summary["wall_time_s"], "eval_s": evaluation.get("wall_s"), "demos_s": demos_s,
                   "metrics_s": metrics_s},
        "fingerprint": fingerprint(cfg.device), "track": track,
    }
    with _doing(f"writing the record of run {run_dir.name}"):
        write_json(run_dir / "record.json", record)
        (run_dir / "done").touch()
    return record
