"""Short real episodes for tests: a noisy move toward the cube, then the gripper closed halfway."""
from __future__ import annotations

import numpy as np

from common.dataset import Dataset
from tasks import make_env


def scripted_rollouts(pair: str, domain: str, episodes: int, steps: int, seed: int, obs: str = "lowdim") -> Dataset:
    """`episodes` episodes of `steps` steps of a Lift pair in `domain` (with its camera frames for obs="image")."""
    env = make_env(pair, domain, obs=obs)
    rng = np.random.default_rng(seed)
    data = Dataset([], [], env.layout, {"pair": pair, "domain": domain})
    try:
        for episode in range(episodes):
            observation, info = env.reset(seed=seed * 1000 + episode)
            lowdim, frames, actions = [], [], []
            for t in range(steps):
                flat = observation["lowdim"] if obs == "image" else observation
                action = np.zeros(7, np.float32)
                toward_cube = env.unwrapped.last_obs["cube_rel_pos"]  # what the env observed (image pairs: not in `flat`)
                action[:3] = np.clip(10 * toward_cube + 0.2 * rng.normal(size=3), -1, 1)
                action[6] = 1.0 if t >= steps // 2 else -1.0
                lowdim.append(flat)
                if obs == "image":
                    frames.append({k: v for k, v in observation.items() if k != "lowdim"})
                actions.append(action)
                observation, *_ = env.step(action)
            data.obs.append(np.asarray(lowdim, np.float32))
            if obs == "image":
                for key in frames[0]:
                    data.images.setdefault(key, []).append(np.asarray([f[key] for f in frames]))
            data.actions.append(np.asarray(actions, np.float32))
            data.rewards.append(np.zeros(steps, np.float32))
            data.episode_seeds.append(info["episode_seed"])
    finally:
        env.close()
    return data
