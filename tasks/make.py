"""`make_env`: the gymnasium env of one domain of a pair, by observation kind and simulation backend."""
from __future__ import annotations

import gymnasium as gym

from .base_tasks import BASE_TASKS
from .core import TaskPair
from .env import CotrainEnv
from .pairs import get_pair
from .visual import ImageEnv


def make_env(pair: str | TaskPair, domain: str = "source", magnitude: float = 1.0, obs: str = "lowdim",
             backend: str = "robosuite", seed: int | None = None, render_mode: str | None = None) -> gym.Env:
    """A gymnasium env for one domain of `pair` (a registered name or a `TaskPair`).

    magnitude: scales the target domain's gap factors (the source domain has none).
    obs: "lowdim" (flat layout) or "image". backend: "robosuite" (reference) or "fast".
    seed: used by the first `reset()` that is given none. render_mode: None or "rgb_array".
    """
    task_pair = get_pair(pair) if isinstance(pair, str) else pair
    if not BASE_TASKS[task_pair.base_task].env_name:
        raise ValueError(f"pair {task_pair.name!r} has no simulator environment (toy pairs are sampled by tasks.toy)")
    if obs not in ("lowdim", "image"):
        raise ValueError(f"obs must be 'lowdim' or 'image', got {obs!r}")
    if backend not in ("robosuite", "fast"):
        raise ValueError(f"backend must be 'robosuite' or 'fast', got {backend!r}")
    if obs == "image":
        if backend == "fast":
            raise NotImplementedError("image observations need backend='robosuite'")
        return ImageEnv(task_pair, domain, magnitude, seed, render_mode=render_mode)
    if backend == "fast":
        from .fast import FastEnv  # here: it loads robosuite and compiles with numba, which `import tasks` need not

        return FastEnv(task_pair, domain, magnitude, seed, render_mode)
    return CotrainEnv(task_pair, domain, magnitude, seed, render_mode)
