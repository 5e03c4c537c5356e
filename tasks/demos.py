"""Demonstration generation: a scripted expert in one domain, successful episodes kept."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.dataset import Dataset

from .base_tasks import LAYOUT_VERSION
from .core import TaskPair
from .dataset import write_dataset
from .make import make_env
from .pairs import get_pair
from .seeds import SPAN, demo_stream, episode_seeds

MAX_ATTEMPTS_PER_DEMO = 5


def check_output_path(out: str | Path) -> Path:
    """Raise ValueError unless `out` can be written (its folder exists or can be made, and is writable)."""
    out = Path(out)
    parent = out.parent.resolve()
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"cannot write {out}: {existing} is not a writable directory")
    if out.is_dir():
        raise ValueError(f"cannot write {out}: it is a directory")
    return out


def generate_demos(pair: str | TaskPair, domain: str, magnitude: float, n: int, seed: int, out: str | Path,
                   expert_noise: float = 0.1, progress: bool = True, stream: str | None = None,
                   backend: str = "robosuite", overwrite: bool = True) -> Path:
    """Run the pair's expert in `domain` until `n` successful episodes, and write them to `out`.

    Episode seeds come from the domain's own seed range for `seed` (tasks.seeds), so source and
    target demos never share an initial state. backend: the simulation backend that runs the episodes
    (`make_env`'s). The file records how many episodes were tried, the backend and the layout version.
    overwrite: replace a file at `out` (the harness's demo cache: the same key makes the same demos); False:
    refuse, before any episode runs (ValueError) and again when the file is put in place (FileExistsError).
    """
    from .experts import EXPERT_VERSION, make_expert

    task_pair = get_pair(pair)
    if n < 1:
        raise ValueError(f"demo count n must be >= 1, got {n}")
    if domain not in ("source", "target"):
        raise ValueError(f"domain must be 'source' or 'target', got {domain!r}")
    out = check_output_path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists (pass overwrite=True / --overwrite to replace it)")
    max_tries = min(SPAN, MAX_ATTEMPTS_PER_DEMO * n + 10)
    seeds = episode_seeds(stream or demo_stream(domain), seed, max_tries)
    env = make_env(task_pair, domain, magnitude, obs=task_pair.obs, backend=backend)
    expert = make_expert(task_pair.base_task, noise=expert_noise, seed=seed)
    demos = Dataset([], [], env.layout)
    tried = 0
    bar = tqdm(total=n, desc=f"demos {task_pair.name} {domain}", disable=not progress, leave=False)
    try:
        for ep_seed in seeds:
            if demos.n_demos >= n:
                break
            tried += 1
            obs, actions, rewards = rollout_expert(env, expert, ep_seed)
            if rewards[-1] > 0:
                if isinstance(obs, dict):  # image env: cameras beside the flat layout
                    for key, frames in obs.items():
                        if key != "lowdim":
                            demos.images.setdefault(key, []).append(frames)
                    obs = obs["lowdim"]
                demos.obs.append(obs)
                demos.actions.append(actions)
                demos.rewards.append(rewards)
                demos.episode_seeds.append(ep_seed)
                bar.update(1)
    finally:
        bar.close()
        env.close()
    if demos.n_demos < n:
        raise RuntimeError(f"{task_pair.name} {domain}@{magnitude}: the expert succeeded in only "
                           f"{demos.n_demos} of {tried} episodes; {n} demos were asked for")
    demos.attrs = {
        "pair": task_pair.name, "pair_version": task_pair.version, "base_task": task_pair.base_task,
        "domain": domain, "magnitude": magnitude if domain == "target" else 0.0,
        "gaps": [[g.name, g.magnitude] for g in env.domain.gaps], "expert": task_pair.base_task,
        "expert_version": EXPERT_VERSION, "expert_noise": expert_noise, "seed": seed, "tried": tried,
        "kept": demos.n_demos, "backend": env.backend, "layout_version": LAYOUT_VERSION,
        "env_args": {"env_name": env.task.env_name, "type": 1,
                     "env_kwargs": {"pair": task_pair.name, "domain": domain, "magnitude": magnitude}},
    }
    return write_dataset(out, demos, overwrite=overwrite)


def rollout_expert(env, expert, episode_seed: int) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One expert episode from `episode_seed`: observations (T, D), actions (T, 7), rewards (T,).

    For an image env the observations are a dict of stacked arrays: "lowdim" (T, D) float32 and
    one (T, H, W, 3) uint8 per camera key.
    """
    obs, _ = env.reset(seed=episode_seed)
    expert.reset(env)
    all_obs, actions, rewards = [], [], []
    while True:
        action = expert.act(env)
        all_obs.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    if isinstance(all_obs[0], dict):
        stacked = {key: np.stack([o[key] for o in all_obs]) for key in all_obs[0]}
    else:
        stacked = np.asarray(all_obs, np.float32)
    return stacked, np.asarray(actions, np.float32), np.asarray(rewards, np.float32)
