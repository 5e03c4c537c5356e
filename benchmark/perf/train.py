"""Policy speed on CPU: training samples/s (per network and method) and DDIM inference ms per action chunk.

    python -m benchmark.perf.train [--threads 2] [--steps 30] [--repeats 200]
    python -m benchmark.perf.train --speedup-table [--steps 10] [--rounds 5]

Shapes as in docs/PROTOCOL.md, "Performance shapes": 32-dim observations, 2-step history, chunk 16 x 7, batch 256.
Last line: the per-sample cost of an image policy (84x84 agent view, `conv` encoder) against a low-dimensional one.
Timings move +-20% between runs on shared machines: compare rows of one run, as ratios.

`--speedup-table` prints instead the training speed-ups the suite could adopt, as samples/s per core (one thread)
of the plain denoising-loss update (forward, backward, Adam) at width 256 / batch 256 (the `quick` profile) and
width 512 / batch 1024: fp32 eager (the reference), bf16 autocast (`RunConfig.precision`), `torch.compile` of the
loss, and SEEDS_BATCHED seeds trained as one batched model (`torch.func.stack_module_state` + `vmap`); and an image
policy's update (both cameras, `conv` encoders, batch IMAGE_BATCH) in fp32 and bf16 at IMAGE_SPEEDUP_SIZES. The
variants are timed in alternation (each round runs every one), each the median of its rounds, with its ratio to
fp32.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from baselines import METHODS, PolicyConfig, Windows
from baselines.build import Training, build_policy, build_training
from baselines.methods import AUTOCAST_DTYPES
from baselines.policy import LOWDIM

OBS_DIM, ACTION_DIM, BATCH = 32, 7, 256
IMAGE_BATCH = 256  # the batch image runs train at (the methods' default batch_size)
IMAGE_STEPS_DIVISOR = 10  # image rows time --steps / this updates per round (an image update costs ~30x a low-dim one)
SPEEDUP_SHAPES = ((256, 256), (512, 1024))  # (width, batch) of the speed-up table: quick profile, and larger
IMAGE_SPEEDUP_SIZES = (48, 84)  # frame sides of the speed-up table's image policy rows (lift/visual-48px, the default)


def _windows(n: int, seed: int) -> Windows:
    rng = np.random.default_rng(seed)
    return Windows(rng.normal(size=(n, 2, OBS_DIM)).astype(np.float32),
                   rng.uniform(-1, 1, size=(n, 16, ACTION_DIM)).astype(np.float32), np.zeros(n, np.int64))


def _config(network: str, width: int, **kw) -> PolicyConfig:
    return PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, network=network, width=width, **kw)


def _training(method: str, network: str, width: int, batch: int = BATCH) -> Training:
    """`method` set up at `batch`, w = 0.1, on random windows, warmed up by 3 updates."""
    hp = {"batch_size": batch, "w": 0.1} if METHODS[method].mixes else {"batch_size": batch}
    built = build_training(_config(network, width), method, hp, _windows(4096, 1), _windows(512, 2), seed=0)
    for _ in range(3):
        built.method.update(*built.sampler.next())
    return built


def _samples_per_s(update: Callable[[], None], steps: int, samples: int) -> float:
    """Samples/s of `steps` calls of `update`, each of `samples` samples."""
    start = time.perf_counter()
    for _ in range(steps):
        update()
    return steps * samples / (time.perf_counter() - start)


def training_rate(method: str, network: str, width: int, steps: int) -> tuple[float, float]:
    """(samples/s, million parameters) of `method`'s update at batch 256, w = 0.1."""
    built = _training(method, network, width)
    rate = _samples_per_s(lambda: built.method.update(*built.sampler.next()), steps, BATCH)
    return rate, sum(p.numel() for p in built.policy.parameters()) / 1e6


SEEDS_BATCHED = 5  # seeds in one batched model (the leaderboard's seeds per method)


def _loss_policy(width: int, seed: int):
    data = _windows(4096, 1)
    return build_policy(_config("mlp", width), data.obs, data.action, seed=seed)


def _minibatches(batch: int, copies: int, seed: int):
    """An endless stream of (obs, action) minibatches from random windows, `copies` stacked when > 1."""
    data, rng = _windows(4096, 1), np.random.default_rng(seed)
    obs, action = torch.from_numpy(data.obs), torch.from_numpy(data.action)
    while True:
        rows = torch.from_numpy(rng.integers(0, len(obs), (copies, batch)))
        yield (obs[rows[0]], action[rows[0]]) if copies == 1 else (obs[rows], action[rows])


def _eager_update(width: int, batch: int, precision: str = "fp32", compiled: bool = False) -> Callable[[], None]:
    """One plain denoising-loss update of one policy: fp32, bf16 autocast, or its loss under `torch.compile`."""
    policy = _loss_policy(width, 0)
    opt, stream = torch.optim.Adam(policy.parameters(), lr=1e-4), _minibatches(batch, 1, 0)
    loss = torch.compile(policy.loss) if compiled else policy.loss

    def minibatch() -> dict[str, torch.Tensor]:
        obs, action = next(stream)
        return {"obs": obs, "action": action}
    return _adam_update(loss, minibatch, opt, precision)


def _adam_update(loss: Callable, minibatch: Callable[[], dict], opt: torch.optim.Optimizer,
                 precision: str) -> Callable[[], None]:
    """One update: `loss` of the next `minibatch()` (its per-sample values, averaged) in fp32 or under the
    precision's autocast, backward, `opt`'s step."""
    dtype = AUTOCAST_DTYPES[precision]

    def update() -> None:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext():
            value = loss(minibatch())[0].mean()
        value.backward()
        opt.step()
    return update


def _batched_update(width: int, batch: int) -> Callable[[], None]:
    """One update of SEEDS_BATCHED policies (seeds 0..) as one model: parameters stacked, the loss vmapped,
    one Adam over the stacked tensors (elementwise, so each seed's step is its own). The normalizer buffers
    are shared: every seed fits the same windows here."""
    policies = [_loss_policy(width, seed) for seed in range(SEEDS_BATCHED)]
    params, _ = stack_module_state(policies)
    params = {name: value.detach().requires_grad_() for name, value in params.items()}
    buffers, opt = dict(policies[0].named_buffers()), torch.optim.Adam(list(params.values()), lr=1e-4)
    stream, steps = _minibatches(batch, SEEDS_BATCHED, 0), policies[0].config.num_train_timesteps

    def one_seed(p, obs, action, noise, t):
        return functional_call(policies[0], (p, buffers), ({"obs": obs, "action": action},),
                               {"noise": noise, "timesteps": t}, strict=True)[0].mean()
    # functional_call calls forward: the loss is what is timed
    policies[0].forward = policies[0].loss
    losses = vmap(one_seed)

    def update() -> None:
        obs, action = next(stream)
        opt.zero_grad()
        losses(params, obs, action, torch.randn_like(action), torch.randint(steps, obs.shape[:2])).sum().backward()
        opt.step()
    return update


def speedup_rates(width: int, batch: int, steps: int, rounds: int) -> dict[str, float]:
    """Median samples/s per core of each variant over `rounds` of `steps` updates, timed in alternation."""
    variants = {"fp32": (_eager_update(width, batch), batch),
                "bf16": (_eager_update(width, batch, "bf16"), batch),
                "compile": (_eager_update(width, batch, compiled=True), batch),
                f"vmap x{SEEDS_BATCHED}": (_batched_update(width, batch), batch * SEEDS_BATCHED)}
    for update, _ in variants.values():
        for _ in range(3):  # warm-up (and torch.compile's compilation)
            update()
    return _alternated_medians(variants, steps, rounds)


def _alternated_medians(variants: dict[str, tuple[Callable[[], None], int]], steps: int,
                        rounds: int) -> dict[str, float]:
    """Median samples/s of each variant (update, samples per update) over `rounds` rounds of `steps` updates, every
    round running every variant in turn, so load drifts hit them alike."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (update, samples) in variants.items():
            rates[name].append(_samples_per_s(update, steps, samples))
    return {name: statistics.median(r) for name, r in rates.items()}


def print_speedup_table(steps: int, rounds: int) -> None:
    """The speed-up table (`--speedup-table`), at one torch thread, with the load average it ran under."""
    torch.set_num_threads(1)
    print(f"plain denoising-loss update, 1 thread (samples/s per core, and the ratio to fp32), median of {rounds} "
          f"alternated rounds of {steps} updates; torch {torch.__version__}, load average before "
          f"{os.getloadavg()[0]:.2f}")
    for width, batch in SPEEDUP_SHAPES:
        rates = speedup_rates(width, batch, steps, rounds)
        cells = "  ".join(f"{name} {rate:,.0f} ({rate / rates['fp32']:.2f}x)" for name, rate in rates.items())
        print(f"width {width:>4}, batch {batch:>4}:  {cells}")
    for size in IMAGE_SPEEDUP_SIZES:
        rates = image_speedup(size, max(2, steps // IMAGE_STEPS_DIVISOR), rounds)
        print(f"image policy, {size}x{size} frames of both cameras, batch {IMAGE_BATCH}:  "
              + "  ".join(f"{name} {rate:,.0f} ({rate / rates['fp32']:.2f}x)" for name, rate in rates.items()))
    print(f"load average after {os.getloadavg()[0]:.2f}")


def ddim_ms(network: str, width: int, guidance: float | None, repeats: int) -> float:
    """Milliseconds for one DDIM action chunk at batch 1 (guidance: one fused conditional + null pass)."""
    data = _windows(512, 0)
    policy = build_policy(_config(network, width, domain_embedding=True), data.obs, data.action, seed=0).eval()
    obs = torch.from_numpy(_windows(1, 3).obs)
    with torch.inference_mode():
        for _ in range(max(3, repeats // 10)):
            policy.sample(obs, 1, guidance)
        start = time.perf_counter()
        for _ in range(repeats):
            policy.sample(obs, 1, guidance)
    return (time.perf_counter() - start) / repeats * 1e3


def _loss_update(image: bool, batch: int, image_size: int | None = None,
                 precision: str = "fp32") -> Callable[[], None]:
    """One plain denoising-loss update (forward, backward, Adam) of the default MLP policy, low-dimensional or
    with an image pair's cameras (IMAGE_CAMERAS) of `image_size` (None: 84) square frames (a `conv` image encoder
    each, on whole frames as the harness's), at `batch`, in fp32 or under bf16 autocast; warmed up by 2 updates."""
    from tasks.core import IMAGE_CAMERAS, IMAGE_SIZE

    size = image_size or IMAGE_SIZE
    image_cfg = dict(image_keys=IMAGE_CAMERAS, crop=None) if image else {}
    config = PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, **image_cfg)
    data = _windows(batch, 0)
    policy = build_policy(config, data.obs, data.action, seed=0)
    obs = torch.from_numpy(data.obs)
    if image:  # channels-last frames, as datasets and envs give them
        obs = {LOWDIM: obs, **{key: torch.randint(0, 256, (batch, config.n_obs_steps, size, size, 3), dtype=torch.uint8)
                               for key in IMAGE_CAMERAS}}
    minibatch = {"obs": obs, "action": torch.from_numpy(data.action)}
    update = _adam_update(policy.loss, lambda: minibatch, torch.optim.Adam(policy.parameters(), lr=1e-4), precision)
    for _ in range(2):
        update()
    return update


def loss_step_rate(image: bool, steps: int, batch: int = IMAGE_BATCH, image_size: int | None = None) -> float:
    """Samples/s of `_loss_update`'s fp32 update."""
    return _samples_per_s(_loss_update(image, batch, image_size), steps, batch)


def image_speedup(size: int, steps: int, rounds: int) -> dict[str, float]:
    """Median samples/s per core of an image policy's update (`size` square frames, IMAGE_BATCH) in fp32 and
    under bf16 autocast, over `rounds` alternated rounds of `steps` updates."""
    return _alternated_medians({precision: (_loss_update(True, IMAGE_BATCH, size, precision), IMAGE_BATCH)
                                for precision in ("fp32", "bf16")}, steps, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.train", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (the U-Net runs a fifth)")
    parser.add_argument("--repeats", type=int, default=200, help="timed DDIM chunks (the U-Net runs a tenth)")
    parser.add_argument("--speedup-table", action="store_true",
                        help="print only the speed-up table (fp32, bf16, torch.compile, batched seeds) at 1 thread "
                             "(--steps per round)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternated timing rounds per variant (speed-up table)")
    args = parser.parse_args(argv)
    if args.speedup_table:
        print_speedup_table(args.steps, args.rounds)
        return
    torch.set_num_threads(args.threads)
    steps = PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM).num_inference_steps
    print(f"torch {torch.__version__}, {args.threads} threads, batch {BATCH}, obs {OBS_DIM}, chunk 16x{ACTION_DIM}")
    print(f"{'network':<10}{'method':<12}{'params':>8}{'train samples/s':>17}{f'DDIM-{steps} ms':>13}"
          f"{'guided ms':>11}")
    for network, width, methods in (("mlp", 256, ("cotrain", "ot", "cfg_adda")), ("mlp", 512, ("cotrain",)),
                                    ("unet", 256, ("cotrain",))):
        slow = network == "unet"
        n_steps, repeats = (max(1, args.steps // 5), max(1, args.repeats // 10)) if slow else (args.steps, args.repeats)
        plain, guided = ddim_ms(network, width, None, repeats), ddim_ms(network, width, -0.5, repeats)
        for method in methods:
            rate, params = training_rate(method, network, width, n_steps)
            print(f"{f'{network}-{width}':<10}{method:<12}{params:>7.2f}M{rate:>17,.0f}{plain:>13.2f}{guided:>11.2f}")
    lowdim = loss_step_rate(False, max(1, args.steps // 3))
    image = loss_step_rate(True, max(2, args.steps // IMAGE_STEPS_DIVISOR))
    print(f"\nImage policy (mlp-256, conv encoder, one {IMAGE_BATCH}-sample loss update): {image:,.0f} samples/s "
          f"against {lowdim:,.0f} low-dimensional, {lowdim / image:.1f}x the cost per sample")


if __name__ == "__main__":
    main()
