"""Rendering benchmark: 84x84 agent-view frames/s (cheap vs default settings) and env steps/s per image pair.

Run: `python -m benchmark.perf.render`. The compared measurements of one table row run in
alternating chunks, so that load drifts on a shared machine hit both alike: read the ratios.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

from benchmark.perf.rollout import smooth_actions
from tasks import PAIRS, custom_pair, make_env
from tasks.visual import VISUAL_TASKS, make_renderer

SEED = 0


def alternating_rates(calls: dict[str, Callable[[int], object]], n: int, rounds: int = 5) -> dict[str, float]:
    """Calls/s of each `call(i)` over i < n, run in `rounds` alternating chunks after one untimed call each."""
    for call in calls.values():
        call(0)
    elapsed = dict.fromkeys(calls, 0.0)
    for chunk in np.array_split(np.arange(n), rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for i in chunk:
                call(int(i))
            elapsed[name] += time.perf_counter() - start
    return {name: n / seconds for name, seconds in elapsed.items()}


def render_rates(task: str, frames: int) -> dict[str, float]:
    """Agent-view frames/s of one base task's source domain, cheap and default settings."""
    env = make_env(custom_pair(task, []), "source", obs="image", seed=SEED)
    default = make_renderer(env.sim.model._model, cheap=False)
    try:
        env.reset()
        return alternating_rates({"cheap": lambda i: env.render_camera(),
                                  "default": lambda i: env.render_camera(renderer=default)}, frames)
    finally:
        default.close()
        env.close()


def step_rates(pair: str, steps: int) -> dict[str, float]:
    """Target-domain env steps/s of an image pair (cheap rendering) and of the same pair with obs="lowdim"."""
    envs = {"image": make_env(pair, "target", obs="image", seed=SEED),
            "lowdim": make_env(pair, "target", obs="lowdim", seed=SEED)}
    actions = smooth_actions(steps)
    try:
        for env in envs.values():
            env.reset()
        return alternating_rates({name: (lambda i, env=env: env.step(actions[i])) for name, env in envs.items()},
                                 steps)
    finally:
        for env in envs.values():
            env.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames rendered per setting and task")
    parser.add_argument("--steps", type=int, default=150, help="env steps per pair and observation kind")
    args = parser.parse_args(argv)
    print("84x84 agent-view rendering, frames/s (cheap: no shadows, reflections, skybox, multisampling)")
    print(f"{'task':<8} {'cheap':>8} {'default':>8} {'ratio':>6}")
    for task in VISUAL_TASKS:
        rates = render_rates(task, args.frames)
        print(f"{task:<8} {rates['cheap']:8.1f} {rates['default']:8.1f} {rates['cheap'] / rates['default']:6.2f}")
    print("\nenv steps/s, target domain at magnitude 1 (image: cheap rendering, one camera)")
    print(f"{'pair':<24} {'image':>8} {'lowdim':>8} {'ratio':>6}")
    for pair in (name for name in PAIRS.names() if PAIRS[name].obs == "image"):
        rates = step_rates(pair, args.steps)
        print(f"{pair:<24} {rates['image']:8.1f} {rates['lowdim']:8.1f} {rates['image'] / rates['lowdim']:6.2f}")


if __name__ == "__main__":
    main()
