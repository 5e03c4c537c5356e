"""Evaluation rollouts: the fixed protocol, run in parallel worker processes.

Every episode is a pure function of (checkpoint, domain, episode seed): the env is reset with
the seed, the sampling noise of its k-th action chunk comes from a generator seeded by
(seed, k), and inference runs on a fixed batch shape (`EVAL_BATCH` rows, padded) with one
thread, so an episode's actions do not depend on which episodes share its batch or how many
workers there are.

`EvalSpec.frozen_frames` asks whether an image policy reads its frames: every camera frame it is given is
the one of a fixed start state of the same domain (`tasks.seeds.FROZEN_FRAME_SEED`), so it acts on its
proprioception and the domain's look alone. A policy that succeeds as often so is blind to where the objects
are, and a visual gap cannot show in its success.
"""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

EVAL_BATCH = 8
_WORKER: dict[str, Any] = {}  # this process's loaded policy and built envs, reused across batches


@dataclass(frozen=True)
class EvalSpec:
    """What to evaluate: a checkpoint in one domain of a pair; `render`: also return each episode's frames
    (`"frames"`: the env's `render()` after the reset and after every step; the simulation is only read);
    `frozen_frames` (image pairs): the policy is given the frames of one fixed start state throughout."""

    checkpoint: str
    pair: str
    domain: str
    magnitude: float
    backend: str = "robosuite"
    device: str = "cpu"
    guidance: float | None = None
    render: bool = False
    frozen_frames: bool = False

    def __post_init__(self) -> None:
        if self.frozen_frames:
            from tasks import get_pair

            observed = get_pair(self.pair).obs
            if observed != "image":
                raise ValueError(f"frozen_frames: pair {self.pair!r} has no camera frames (its observations are "
                                 f"{observed!r})")


def _worker_init() -> None:
    torch.set_num_threads(1)


def _load(spec: EvalSpec) -> tuple[Any, list]:
    """The policy and the envs of `spec` in this process, loaded / built once and kept while
    later batches ask for the same checkpoint and the same env."""
    from baselines import load_checkpoint
    from tasks import get_pair, make_env

    policy_key = (spec.checkpoint, spec.device)
    env_key = (spec.pair, spec.domain, spec.magnitude, spec.backend, spec.render)
    if _WORKER.get("policy_key") != policy_key:
        _WORKER["method"], _WORKER["policy_key"] = load_checkpoint(spec.checkpoint, device=spec.device), policy_key
    if _WORKER.get("env_key") != env_key:
        _close_envs()
        obs = get_pair(spec.pair).obs  # image pairs: dict observations, robosuite only (make_env says so otherwise)
        render_mode = "rgb_array" if spec.render else None
        _WORKER["make_env"] = lambda: make_env(spec.pair, spec.domain, spec.magnitude, obs=obs, backend=spec.backend,
                                               render_mode=render_mode)
        _WORKER["env_key"], _WORKER["envs"] = env_key, []
        _WORKER["frozen"] = None
    if spec.frozen_frames and _WORKER["frozen"] is None:
        if not _WORKER["envs"]:
            _WORKER["envs"].append(_WORKER["make_env"]())
        _WORKER["frozen"] = _frozen_frames(_WORKER["envs"][0])
    return _WORKER["method"], _WORKER["envs"]


def _frozen_frames(env) -> dict[str, np.ndarray]:
    """The camera frames of start state `tasks.seeds.FROZEN_FRAME_SEED` in `env`'s domain (what an evaluation
    with `frozen_frames` gives the policy); `env` is reset there."""
    from tasks.seeds import FROZEN_FRAME_SEED

    obs, _ = env.reset(seed=FROZEN_FRAME_SEED)
    return {key: frame for key, frame in obs.items() if key != "lowdim"}


def _seen(obs, frozen: dict[str, np.ndarray] | None):
    """The observation the policy is given: `obs`, its camera frames replaced by `frozen` where given."""
    return obs if frozen is None else {**obs, **frozen}


def _close_envs() -> None:
    for env in _WORKER.pop("envs", []):
        env.close()
    _WORKER.pop("env_key", None)


def _episode_noise(seed: int, chunk: int, shape: tuple[int, int]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 100_003 + chunk)
    return torch.randn(shape, generator=gen)


def _padded_batch(histories: list[deque], active: list[int]) -> np.ndarray | dict[str, np.ndarray]:
    """The active episodes' histories in a zero-padded (EVAL_BATCH, T_o, ...) batch: an array, or for
    image observations a dict of arrays ("lowdim" float32, cameras uint8)."""
    first = histories[active[0]][0]
    if isinstance(first, dict):
        out = {k: np.zeros((EVAL_BATCH, len(histories[active[0]]), *np.shape(v)), np.float32 if k == "lowdim"
                           else np.asarray(v).dtype) for k, v in first.items()}
        for i in active:
            for key, value in out.items():
                value[i] = np.stack([ob[key] for ob in histories[i]])
        return out
    out = np.zeros((EVAL_BATCH, len(histories[active[0]]), len(first)), np.float32)
    for i in active:
        out[i] = np.stack(histories[i])
    return out


def _run_batch(spec: EvalSpec, seeds: list[int]) -> list[dict[str, Any]]:
    """Run up to EVAL_BATCH episodes of `spec` in lockstep in this process."""
    method, envs = _load(spec)
    while len(envs) < len(seeds):  # built on first need, reused by later batches
        envs.append(_WORKER["make_env"]())
    envs = envs[: len(seeds)]
    cfg = method.policy.config
    histories, results, chunks = [], [None] * len(seeds), [0] * len(seeds)
    frames: list[list[np.ndarray]] = [[] for _ in seeds]
    frozen = _WORKER["frozen"] if spec.frozen_frames else None
    for env, seed, episode_frames in zip(envs, seeds, frames):
        obs, _ = env.reset(seed=seed)
        obs = _seen(obs, frozen)
        histories.append(deque([obs] * cfg.n_obs_steps, maxlen=cfg.n_obs_steps))
        if spec.render:
            episode_frames.append(env.render())
    active = list(range(len(seeds)))
    while active:
        obs = _padded_batch(histories, active)
        noise = torch.zeros(EVAL_BATCH, cfg.horizon, cfg.action_dim)
        for i in active:
            noise[i] = _episode_noise(seeds[i], chunks[i], (cfg.horizon, cfg.action_dim))
            chunks[i] += 1
        with torch.inference_mode():
            actions = method.sample(obs, spec.domain, guidance=spec.guidance, noise=noise)
        for i in list(active):
            env = envs[i]
            for action in actions[i, : cfg.n_action_steps]:
                ob, _, terminated, truncated, info = env.step(action)
                histories[i].append(_seen(ob, frozen))
                if spec.render:
                    frames[i].append(env.render())
                if terminated or truncated:
                    results[i] = {"seed": seeds[i], "success": bool(info["is_success"]), "length": env.t}
                    if spec.render:
                        results[i]["frames"] = frames[i]
                    active.remove(i)
                    break
    return results


class EvalPool:
    """Evaluation workers kept across evaluations: `workers` spawned processes (1: this process),
    each keeping its loaded policy and built envs while consecutive evaluations share them, so the
    evaluations of a run, or a guidance sweep, pay the start-up once."""

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init) if workers > 1 else None
        self._threads = torch.get_num_threads()

    def run(self, spec: EvalSpec, batches: list[list[int]]):
        """Yield each batch's episodes, in order."""
        if self._pool is not None:
            yield from self._pool.imap(partial(_run_batch, spec), batches)
            return
        torch.set_num_threads(1)
        try:
            for batch in batches:
                yield _run_batch(spec, batch)
        finally:
            torch.set_num_threads(self._threads)

    def close(self) -> None:
        """Stop the workers (or release this process's policy and envs)."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
        else:
            _close_envs()
            _WORKER.clear()

    def __enter__(self) -> EvalPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def evaluate(spec: EvalSpec, seeds: list[int], workers: int = 1, progress: bool = True,
             pool: EvalPool | None = None) -> list[dict[str, Any]]:
    """Episodes from `seeds` (in order): [{"seed", "success", "length"}], on `pool` if given, else on
    `workers` processes started for this call."""
    batches = [seeds[i:i + EVAL_BATCH] for i in range(0, len(seeds), EVAL_BATCH)]
    own = pool is None
    pool = EvalPool(min(workers, max(len(batches), 1))) if own else pool
    out: list[dict[str, Any]] = []
    try:
        with tqdm(total=len(seeds), desc=f"eval {spec.domain}", disable=not progress, leave=False) as bar:
            for res in pool.run(spec, batches):
                out += res
                bar.update(len(res))
    finally:
        if own:
            pool.close()
    return out


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success count, rate and 95% Wilson interval of a list of episodes."""
    from benchmark.analysis.stats import wilson_interval

    n = len(episodes)
    k = sum(e["success"] for e in episodes)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "successes": k, "success_rate": k / n if n else float("nan"), "ci95": [lo, hi],
            "episodes": episodes}
