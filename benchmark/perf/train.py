"""Policy speed on CPU: training samples/s (per network and method) and DDIM inference ms per action chunk.

    python -m benchmark.perf.train [--threads 2] [--steps 30] [--repeats 200]
    python -m benchmark.perf.train --precision-table [--steps 10] [--rounds 5]

Shapes as in docs/PROTOCOL.md, "Performance shapes": 32-dim observations, 2-step history, chunk 16 x 7, batch 256.
Last line: the per-sample cost of an image policy (84x84 agent view, `conv` encoder) against a low-dimensional one.
Timings move +-20% between runs on shared machines: compare rows of one run, as ratios.

`--precision-table` prints instead the `cotrain` update's samples/s per core (one thread) in fp32 and under bf16
autocast (`RunConfig.precision`) at width 256 / batch 256 (the `quick` profile) and width 512 / batch 1024: the
two precisions timed in alternation (fp32, bf16, fp32, ...), each the median of its rounds, and their ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from baselines import METHODS, PolicyConfig, Windows
from baselines.build import Training, build_policy, build_training
from benchmark.harness.config import PRECISIONS
from baselines.policy import LOWDIM

OBS_DIM, ACTION_DIM, BATCH = 32, 7, 256
IMAGE_BATCH = 64  # the batch image runs train at
PRECISION_SHAPES = ((256, 256), (512, 1024))  # (width, batch) of the precision table: quick profile, and larger


def _windows(n: int, seed: int) -> Windows:
    rng = np.random.default_rng(seed)
    return Windows(rng.normal(size=(n, 2, OBS_DIM)).astype(np.float32),
                   rng.uniform(-1, 1, size=(n, 16, ACTION_DIM)).astype(np.float32), np.zeros(n, np.int64))


def _config(network: str, width: int, **kw) -> PolicyConfig:
    return PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, network=network, width=width, **kw)


def _training(method: str, network: str, width: int, batch: int = BATCH, precision: str = "fp32") -> Training:
    """`method` set up at `batch`, w = 0.1, on random windows, warmed up by 3 updates."""
    hp = {"batch_size": batch, "w": 0.1} if METHODS[method].mixes else {"batch_size": batch}
    built = build_training(_config(network, width), method, hp, _windows(4096, 1), _windows(512, 2), seed=0,
                           precision=precision)
    for _ in range(3):
        built.method.update(*built.sampler.next())
    return built


def _updates_per_s(built: Training, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        built.method.update(*built.sampler.next())
    return steps / (time.perf_counter() - start)


def training_rate(method: str, network: str, width: int, steps: int) -> tuple[float, float]:
    """(samples/s, million parameters) of `method`'s update at batch 256, w = 0.1."""
    built = _training(method, network, width)
    return _updates_per_s(built, steps) * BATCH, sum(p.numel() for p in built.policy.parameters()) / 1e6


def precision_rates(width: int, batch: int, steps: int, rounds: int) -> dict[str, float]:
    """Median samples/s of the `cotrain` update per precision, over `rounds` of `steps` updates each, the
    precisions timed in alternation so that a change of the machine's load falls on both."""
    built = {precision: _training("cotrain", "mlp", width, batch, precision) for precision in PRECISIONS}
    rates: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    for _ in range(rounds):
        for precision in PRECISIONS:
            rates[precision].append(_updates_per_s(built[precision], steps) * batch)
    return {precision: statistics.median(r) for precision, r in rates.items()}


def print_precision_table(steps: int, rounds: int) -> None:
    """The precision table (`--precision-table`), at one torch thread, with the load average it ran under."""
    torch.set_num_threads(1)
    print(f"cotrain update, 1 thread (samples/s per core), median of {rounds} alternated rounds of {steps} updates; "
          f"torch {torch.__version__}, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'width':>6}{'batch':>7}{'fp32':>10}{'bf16':>10}{'bf16/fp32':>11}")
    for width, batch in PRECISION_SHAPES:
        rate = precision_rates(width, batch, steps, rounds)
        print(f"{width:>6}{batch:>7}{rate['fp32']:>10,.0f}{rate['bf16']:>10,.0f}{rate['bf16'] / rate['fp32']:>10.2f}x")
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


def loss_step_rate(image: bool, steps: int, batch: int = IMAGE_BATCH) -> float:
    """Samples/s of one plain denoising-loss update (forward, backward, Adam) of the default MLP policy,
    low-dimensional or with an 84x84 agent-view camera (the `conv` image encoder), at `batch`."""
    from tasks.visual import IMAGE_SIZE

    config = PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, image_keys=("agentview",) if image else ())
    data = _windows(batch, 0)
    policy = build_policy(config, data.obs, data.action, seed=0)
    obs = torch.from_numpy(data.obs)
    if image:
        frames = torch.randint(0, 256, (batch, config.n_obs_steps, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
        obs = {LOWDIM: obs, "agentview": frames}
    minibatch = {"obs": obs, "action": torch.from_numpy(data.action)}
    opt = torch.optim.Adam(policy.parameters(), lr=1e-4)

    def update() -> None:
        opt.zero_grad()
        policy.loss(minibatch)[0].mean().backward()
        opt.step()

    for _ in range(2):
        update()
    start = time.perf_counter()
    for _ in range(steps):
        update()
    return steps * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.train", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (the U-Net runs a fifth)")
    parser.add_argument("--repeats", type=int, default=200, help="timed DDIM chunks (the U-Net runs a tenth)")
    parser.add_argument("--precision-table", action="store_true",
                        help="print only the fp32 / bf16 table of the cotrain update at 1 thread (--steps per round)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternated timing rounds per precision (precision table)")
    args = parser.parse_args(argv)
    if args.precision_table:
        print_precision_table(args.steps, args.rounds)
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
    lowdim, image = (loss_step_rate(img, max(1, args.steps // 3)) for img in (False, True))
    print(f"\nImage policy (mlp-256, conv encoder, one {IMAGE_BATCH}-sample loss update): {image:,.0f} samples/s "
          f"against {lowdim:,.0f} low-dimensional, {lowdim / image:.1f}x the cost per sample")


if __name__ == "__main__":
    main()
