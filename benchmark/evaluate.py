"""Evaluation rollouts: the fixed protocol, run in parallel worker processes.

Every episode is a pure function of (checkpoint, domain, episode seed): the env is reset with
the seed, the sampling noise of its k-th action chunk comes from a generator seeded by
(seed, k), and inference runs on a fixed batch shape (`EVAL_BATCH` rows, padded) with one
thread, so an episode's actions do not depend on which episodes share its batch or how many
workers there are.
"""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

EVAL_BATCH = 8
_WORKER: dict[str, Any] = {}


@dataclass(frozen=True)
class EvalSpec:
    """What to evaluate: a checkpoint in one domain of a pair."""

    checkpoint: str
    pair: str
    domain: str
    magnitude: float
    backend: str = "robosuite"
    device: str = "cpu"
    guidance: float | None = None


def _init_worker(spec: EvalSpec) -> None:
    from baselines import load_checkpoint
    from tasks import get_pair, make_env

    torch.set_num_threads(1)
    _WORKER["method"] = load_checkpoint(spec.checkpoint, device=spec.device)
    _WORKER["envs"] = []
    _WORKER["spec"] = spec
    obs = get_pair(spec.pair).obs  # image pairs: dict observations, robosuite only (make_env says so otherwise)
    _WORKER["make_env"] = lambda: make_env(spec.pair, spec.domain, spec.magnitude, obs=obs, backend=spec.backend)


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


def _run_batch(seeds: list[int]) -> list[dict[str, Any]]:
    """Run up to EVAL_BATCH episodes in lockstep in this process."""
    method, spec, envs = _WORKER["method"], _WORKER["spec"], _WORKER["envs"]
    while len(envs) < len(seeds):  # built on first need, reused by later batches
        envs.append(_WORKER["make_env"]())
    envs = envs[: len(seeds)]
    cfg = method.policy.config
    histories, results, chunks = [], [None] * len(seeds), [0] * len(seeds)
    for env, seed in zip(envs, seeds):
        obs, _ = env.reset(seed=seed)
        histories.append(deque([obs] * cfg.n_obs_steps, maxlen=cfg.n_obs_steps))
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
                histories[i].append(ob)
                if terminated or truncated:
                    results[i] = {"seed": seeds[i], "success": bool(info["is_success"]), "length": env.t}
                    active.remove(i)
                    break
    return results


def evaluate(spec: EvalSpec, seeds: list[int], workers: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    """Episodes from `seeds` (in order): [{"seed", "success", "length"}]."""
    batches = [seeds[i:i + EVAL_BATCH] for i in range(0, len(seeds), EVAL_BATCH)]
    bar = tqdm(total=len(seeds), desc=f"eval {spec.domain}", disable=not progress, leave=False)
    out: list[dict[str, Any]] = []
    try:
        if workers == 1:
            threads = torch.get_num_threads()
            _init_worker(spec)
            try:
                for batch in batches:
                    out += _run_batch(batch)
                    bar.update(len(batch))
            finally:
                for env in _WORKER.pop("envs", []):
                    env.close()
                _WORKER.clear()
                torch.set_num_threads(threads)
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(batches)), initializer=_init_worker, initargs=(spec,)) as pool:
                for res in pool.imap(_run_batch, batches):
                    out += res
                    bar.update(len(res))
    finally:
        bar.close()
    return out


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success count, rate and 95% Wilson interval of a list of episodes."""
    from .stats import wilson_interval

    n = len(episodes)
    k = sum(e["success"] for e in episodes)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "successes": k, "success_rate": k / n if n else float("nan"), "ci95": [lo, hi],
            "episodes": episodes}
