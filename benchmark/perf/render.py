"""Rendering benchmark: 84x84 agent-view frames/s (cheap vs default settings) and env steps/s per image pair.

    python -m benchmark.perf.render [--frames 200] [--steps 150]
    python -m benchmark.perf.render --size-table [--sizes 84 64 48] [--frames 200] [--train-steps 6] [--rounds 3]

The compared measurements of one table row run in alternating chunks, so that load drifts on a shared
machine hit both alike: read the ratios. `--size-table` prints instead what the frame size costs: ms per
cheap agent-view frame of `lift/visual`'s target domain, and samples/s of the image policy's loss update
(`benchmark.perf.train.loss_step_rate`, whole frames of both cameras, one torch thread), each
with its ratio to the first size.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from benchmark.perf.rollout import smooth_actions
from benchmark.perf.train import IMAGE_BATCH, loss_step_rate
from tasks import PAIRS, custom_pair, make_env
from tasks.render import make_renderer
from tasks.visual import IMAGE_SIZE, SMALL_SIZES, VISUAL_TASKS

SEED = 0
SIZE_PAIR = "lift/visual"
DEFAULT_SIZES = (IMAGE_SIZE, *sorted({s for sizes in SMALL_SIZES.values() for s in sizes}, reverse=True))


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


def frame_ms(pair: str, sizes: list[int], frames: int) -> dict[int, float]:
    """Milliseconds per cheap agent-view frame of `pair`'s target domain, rendered at each of `sizes`."""
    env = make_env(pair, "target", obs="image", seed=SEED)
    renderers = {size: make_renderer(env.sim.model._model, size) for size in sizes}
    try:
        env.reset()
        rates = alternating_rates({size: (lambda i, r=r: env.render_camera(renderer=r))
                                   for size, r in renderers.items()}, frames)
        return {size: 1e3 / rate for size, rate in rates.items()}
    finally:
        for renderer in renderers.values():
            renderer.close()
        env.close()


def train_rates(sizes: list[int], steps: int, rounds: int) -> dict[int, float]:
    """The image policy's loss-update samples/s at each frame size: the median of `rounds` alternated rounds."""
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            rates[size].append(loss_step_rate(True, steps, image_size=size))
    return {size: statistics.median(r) for size, r in rates.items()}


def print_size_table(sizes: list[int], frames: int, steps: int, rounds: int) -> None:
    """The frame-size table (`--size-table`), ratios to the first size."""
    torch.set_num_threads(1)
    ms, rates = frame_ms(SIZE_PAIR, sizes, frames), train_rates(sizes, steps, rounds)
    print(f"{SIZE_PAIR} target, cheap rendering ({frames} frames per size, alternated); image policy loss update "
          f"(mlp-256, conv encoder, batch {IMAGE_BATCH}, 1 thread, median of {rounds} rounds of {steps})")
    print(f"{'size':>5} {'ms/frame':>9} {'x':>6} {'samples/s':>10} {'x':>6}")
    first = sizes[0]
    for size in sizes:
        print(f"{size:>5} {ms[size]:9.3f} {ms[size] / ms[first]:6.2f} {rates[size]:10.1f} "
              f"{rates[size] / rates[first]:6.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames rendered per setting and task, or size")
    parser.add_argument("--steps", type=int, default=150, help="env steps per pair and observation kind")
    parser.add_argument("--size-table", action="store_true", help="print only the frame-size cost table")
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=list(DEFAULT_SIZES),
                        help="frame sides of the size table, the first the reference")
    parser.add_argument("--train-steps", type=int, default=6, help="timed loss updates per round (size table)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated training rounds per size (size table)")
    args = parser.parse_args(argv)
    if args.size_table:
        print_size_table(args.sizes, args.frames, args.train_steps, args.rounds)
        return
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
