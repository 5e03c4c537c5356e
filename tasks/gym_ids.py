"""Gymnasium ids of every simulated pair and domain: `cotrain/<task>-<family>-<domain>-v<version>`.

Importing this module registers them, the one registration the suite does on import: Gymnasium 1.x
finds environments by importing the module that registers them (`gymnasium.register_envs(tasks.gym_ids)`,
or `gymnasium.make("tasks.gym_ids:cotrain/lift-dynamics-target-v3")`, which imports it), and has no
plugin entry points. The suite's own registries (pairs, gap factors, methods) stay explicit.

Each id makes `tasks.make_env(pair, domain, obs=<the pair's>)`; keyword arguments of
`gymnasium.make` pass through to `make_env` (magnitude, backend, seed, render_mode, obs). The
version is the pair's (`TaskPair.version`), so a changed pair definition is a new id. The toy
pairs have no simulator and so no id; a factor pair (`lift+object_mass@0.5`) is made with
`make_env` (its names are unbounded and outside Gymnasium's id syntax).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from .base_tasks import BASE_TASKS
from .env import CotrainEnv
from .make import make_env
from .pairs import PAIRS

NAMESPACE = "cotrain"
DOMAINS = ("source", "target")


def make_pair_env(**kwargs: Any) -> gym.Env:
    """The entry point of every id: `make_env(**kwargs)` (the id's pair, domain and obs, then the caller's)."""
    return make_env(**kwargs)


make_pair_env.metadata = CotrainEnv.metadata  # read by gymnasium.make to check render_mode and wrap "rgb_array_list"


def env_id(pair: str, domain: str) -> str:
    """The Gymnasium id of `domain` of the registered pair `pair` (`lift/dynamics` -> `cotrain/lift-dynamics-...`)."""
    task, family = pair.split("/")
    return f"{NAMESPACE}/{task}-{family}-{domain}-v{PAIRS[pair].version}"


def simulated_pairs() -> list[str]:
    """The registered pairs with a simulator environment (every pair but the toy ones), sorted."""
    return sorted(name for name, pair in PAIRS.items() if BASE_TASKS[pair.base_task].simulated)


def register_ids() -> list[str]:
    """Register one id per simulated pair and domain; return the ids."""
    ids = []
    for name in simulated_pairs():
        pair = PAIRS[name]
        for domain in DOMAINS:
            ids.append(env_id(name, domain))
            gym.register(ids[-1], entry_point=f"{__name__}:make_pair_env",
                         kwargs={"pair": name, "domain": domain, "obs": pair.obs},
                         max_episode_steps=BASE_TASKS[pair.base_task].horizon)
    return ids


IDS = register_ids()
