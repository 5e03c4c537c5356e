"""Recorded observations for the export's numerical check: histories given by the caller, from a dataset,
from the run's cached target demos, or from a short rollout of the policy in the target domain.

An observation batch is a (K, T_o, D) array, or for an image policy a dict {"lowdim": that,
<camera>: (K, T_o, H, W, 3) uint8}.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

NOISE_SEED = 0  # seed of the check's fixed noise (and of the rollout's sampling)


def map_obs(fn: Any, obs: Any) -> Any:
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def obs_row(obs: Any, i: int) -> Any:
    return map_obs(lambda x: x[i], obs)


def stack_obs(items: list) -> Any:
    """Observations (or histories) stacked along a new first axis; dicts key by key, "lowdim" as float32."""
    if isinstance(items[0], dict):
        return {k: np.stack([x[k] for x in items]).astype(np.float32 if k == "lowdim" else items[0][k].dtype)
                for k in items[0]}
    return np.asarray(np.stack(items), np.float32)


def histories(dataset: Any, n_obs_steps: int, count: int, image_keys: tuple[str, ...] = ()) -> Any:
    from baselines.data import make_windows

    windows = make_windows(dataset, n_obs_steps, 1, image_keys=image_keys)
    keep = np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int))
    return windows.observations(keep)


def recorded_observations(run_dir: Path, config: dict, method: Any, layout: tuple[tuple[str, int], ...], count: int,
                          observations: Any) -> tuple[Any, str]:
    """(K, T_o, D) histories (an image policy: the observation dict) and a sentence saying where they come from."""
    from tasks.dataset import load_dataset

    pcfg = method.policy.config
    if observations is not None and not isinstance(observations, (str, Path)):
        if isinstance(observations, dict):
            obs = {k: np.asarray(v, np.float32 if k == "lowdim" else None) for k, v in observations.items()}
        else:
            obs = np.asarray(observations, np.float32)
        return map_obs(lambda x: x[:count], obs), "observation histories given to export_bundle"
    keys = pcfg.image_keys
    if observations is not None:
        return (histories(load_dataset(observations, layout), pcfg.n_obs_steps, count, keys),
                f"dataset {observations}")
    found = find_demos(run_dir.parent / "_demos", config)
    if found is not None:
        what, path = found
        return histories(load_dataset(path, layout), pcfg.n_obs_steps, count, keys), f"{what} ({path.name})"
    return rollout_observations(config, method, count), "a short rollout of the policy in the target domain"


def find_demos(demos_dir: Path, config: dict) -> tuple[str, Path] | None:
    """The run's cached target demos: its replay set, else its training demos, else its validation set.

    Files are recognized by their attributes (pair, domain, magnitude, backend where recorded) and by
    the seed stream their episode seeds fall in (tasks.seeds), not by the cache's hash.
    """
    import h5py

    from tasks.seeds import SPAN, STREAM_BASE

    wanted = {"replay": "the run's target replay demos", "target_demos": "the run's target demos",
              "validation": "the run's target validation demos"}
    found: dict[str, Path] = {}
    for path in sorted(demos_dir.glob("*.hdf5")) if demos_dir.is_dir() else []:
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["data"].attrs.items()}
                demos = [k for k in f["data"] if k.startswith("demo_")]
                seed = int(f["data"][demos[0]].attrs["episode_seed"]) if demos else None
        except (OSError, KeyError, ValueError):
            continue
        if (attrs.get("pair") != config.get("pair") or attrs.get("domain") != "target" or seed is None
                or not np.isclose(float(attrs.get("magnitude", -1)), float(config.get("magnitude", 1.0)))):
            continue
        if "backend" in attrs and "backend" in config and attrs["backend"] != config["backend"]:
            continue
        for stream in wanted:
            start = STREAM_BASE[stream] + int(config.get("seed", 0)) * SPAN
            if start <= seed < start + SPAN:
                found.setdefault(stream, path)
    for stream, what in wanted.items():
        if stream in found:
            return what, found[stream]
    return None


def rollout_observations(config: dict, method: Any, count: int) -> Any:
    """Histories seen by the PyTorch policy in one target episode (at most `count` steps)."""
    from collections import deque

    from tasks import get_pair, make_env
    from tasks.seeds import episode_seeds

    pcfg = method.policy.config
    env = make_env(config["pair"], "target", config["magnitude"], obs=get_pair(config["pair"]).obs,
                   backend=config.get("backend", "robosuite"))
    try:
        obs, _ = env.reset(seed=episode_seeds("validation", config.get("seed", 0), 1)[0])
        hist = deque([obs] * pcfg.n_obs_steps, maxlen=pcfg.n_obs_steps)
        out, gen = [], torch.Generator().manual_seed(NOISE_SEED)
        while len(out) < count:
            with torch.inference_mode():
                chunk = method.sample(map_obs(lambda x: x[None], stack_obs(list(hist))), "target", generator=gen)[0]
            for action in chunk[: pcfg.n_action_steps]:
                out.append(stack_obs(list(hist)))
                obs, _, terminated, truncated, _ = env.step(action)
                hist.append(obs)
                if terminated or truncated or len(out) >= count:
                    return stack_obs(out)
        return stack_obs(out)
    finally:
        env.close()

