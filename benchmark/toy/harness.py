"""The toy pairs' hooks in the harness (`tasks.BaseTask.harness` of the `toy` base task): sampled demos,
the toy policy and its normalizer, and exact evaluation.

Observation normalization. The suite's policies min-max normalize each observation dimension.
On the toy that would erase the geometry the toy is about: `toy/study`'s height coordinate takes
the values {0, Δz}, which per-dimension min-max maps to {-1, 1} for every Δz, so Δz = 0.01 and
Δz = 50 would reach the network identically. Toy policies therefore centre each dimension (the
midrange of the training inputs) and scale all three axes by one constant that does not depend on
the data, 2 / `tasks.toy.PATCH_SIDE`: a patch always spans [-1, 1] along u and v, at the same
resolution for every Δz, and the height gap keeps its size relative to the patch (Δz = 50 is
50 patch half-widths). What changed (toy pair version 2): the scale was 2 / the largest range of the
training inputs, so at Δz = 50 the co-trained policy saw each patch 25 times smaller than at Δz ≤ 2
and "disjoint" also meant "coarser input". This is a choice of this suite; the study does not say how
its toy normalized its inputs.

Evaluation is exact: the L2 error of one sampled action per test input to the known optimal action,
"success" = error under `tasks.toy.SUCCESS_THRESHOLD`; on the target, also where each action lies
between the source and the target map, and for guided methods the same at every `GUIDANCE_GRID` scale.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.harness.config import RunConfig
from benchmark.harness.run import PairHooks

if TYPE_CHECKING:
    from baselines import DiffusionPolicy, Method, PolicyConfig

GUIDANCE_GRID = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
"""Guidance scales λ at which a guided method's target outputs are also measured."""


def toy_policy_config(width: int, depth: int, z_dim: int, network: str = "mlp") -> PolicyConfig:
    """The policy of a toy pair: one observation (3), one action (2), encoder as wide as the noise net."""
    from baselines import PolicyConfig
    from tasks.toy import ACTION_DIM, OBS_DIM

    if network != "mlp":
        raise ValueError("toy pairs use the MLP noise network (a horizon of 1 has nothing for a U-Net to convolve)")
    return PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, n_obs_steps=1, horizon=1, n_action_steps=1,
                        network="mlp", width=width, depth=depth, z_dim=z_dim, encoder_hidden=width)


def fit_toy_normalizer(policy: DiffusionPolicy, obs: np.ndarray, action: np.ndarray) -> None:
    """Fit the policy's normalizers with one fixed observation scale, 2 / the patch side (module docstring).

    obs: (K, 1, 3) training windows, centred per dimension on their midrange; action: (K, 1, 2),
    per-dimension min-max. The scale does not depend on the data, so neither on Δz.
    """
    import torch

    from tasks.toy import PATCH_SIDE

    policy.fit_normalizer(obs, action)
    flat = np.asarray(obs, dtype=np.float64).reshape(-1, np.shape(obs)[-1])
    policy.obs_normalizer.center.copy_(torch.as_tensor((flat.max(axis=0) + flat.min(axis=0)) / 2))
    policy.obs_normalizer.scale.fill_(2.0 / PATCH_SIDE)


def _eval_noise(seeds: list[int]) -> np.ndarray:
    """Per-input sampling noise (n, 1, 2), each row from a generator seeded by its input's episode seed."""
    from benchmark.harness.evaluate import _episode_noise
    from tasks.toy import ACTION_DIM

    return np.stack([_episode_noise(s, 0, (1, ACTION_DIM)).numpy() for s in seeds])


def _target_outputs(pair: str, magnitude: float, obs: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    """Target error and success of actions, and where they lie between the source map (0) and the target map
    (1): the mean position and the share nearer the target map (NaN where the maps coincide)."""
    from tasks.toy import SUCCESS_THRESHOLD, action_error, map_position

    err = action_error(pair, magnitude, obs, actions)
    pos = map_position(pair, magnitude, obs, actions)
    valid = ~np.isnan(pos)
    return {"action_error": float(err.mean()), "success_rate": float((err < SUCCESS_THRESHOLD).mean()),
            "position": float(np.nanmean(pos)) if valid.any() else math.nan,
            "target_mode": float((pos[valid] > 0.5).mean()) if valid.any() else math.nan}


def evaluate_toy(method: Method, pair: str, magnitude: float, domain: str, n: int, seed: int,
                 guidance: float | None = None) -> dict[str, Any]:
    """Exact evaluation of `method` in `domain` on the first `n` inputs of the test stream of `seed`.

    Returns {"n", "successes", "success_rate", "ci95" (Wilson over inputs), "action_error" (mean L2
    distance to the domain's optimal action), "error_threshold", "episodes": [{"seed", "success",
    "error"}]}, plus for the target domain "target_error" (= action_error), "position" and "target_mode"
    (`_target_outputs`).
    """
    from tasks.seeds import episode_seeds
    from tasks.toy import SUCCESS_THRESHOLD, action_error, toy_dataset

    from benchmark.analysis.stats import wilson_interval

    data = toy_dataset(pair, domain, magnitude, n, seed, "test")
    obs = np.stack(data.obs)  # (n, 1, 3)
    seeds = episode_seeds("test", seed, n)
    actions = method.sample(obs, domain, guidance=guidance, noise=_eval_noise(seeds))
    err = action_error(pair, magnitude, obs, actions, domain=domain)
    ok = err < SUCCESS_THRESHOLD
    k = int(ok.sum())
    out = {"n": n, "successes": k, "success_rate": k / n if n else math.nan, "ci95": list(wilson_interval(k, n)),
           "action_error": float(err.mean()), "error_threshold": SUCCESS_THRESHOLD,
           "episodes": [{"seed": s, "success": bool(o), "error": float(e)} for s, o, e in zip(seeds, ok, err)]}
    if domain == "target":
        out["target_error"] = out["action_error"]
        pos = _target_outputs(pair, magnitude, obs, actions)
        out.update(position=pos["position"], target_mode=pos["target_mode"])
    return out


def guidance_sweep(method: Method, pair: str, magnitude: float, n: int, seed: int) -> dict[str, dict[str, float]]:
    """`_target_outputs` of a guided method at every `GUIDANCE_GRID` scale, on the target test inputs and
    noise `evaluate_toy` uses; keyed by str(λ)."""
    from tasks.seeds import episode_seeds
    from tasks.toy import toy_dataset

    obs = np.stack(toy_dataset(pair, "target", magnitude, n, seed, "test").obs)
    noise = _eval_noise(episode_seeds("test", seed, n))
    return {str(lam): _target_outputs(pair, magnitude, obs, method.sample(obs, "target", guidance=lam, noise=noise))
            for lam in GUIDANCE_GRID}


class ToyHooks(PairHooks):
    """The harness's hooks for toy pairs: exact samples for demos, the toy policy, exact evaluation."""

    def demo_backend(self, cfg: RunConfig) -> str | None:
        return None  # sampled without a simulator

    def write_demos(self, path: Path, cfg: RunConfig, domain: str, magnitude: float, n: int, stream: str,
                    progress: bool) -> None:
        from tasks.dataset import write_dataset
        from tasks.toy import toy_dataset

        write_dataset(path, toy_dataset(cfg.pair, domain, magnitude, n, cfg.seed, stream))

    def policy_config(self, cfg: RunConfig, width: int, depth: int) -> PolicyConfig:
        return toy_policy_config(width, depth, cfg.size.z_dim, cfg.network)

    def fit_normalizer(self, policy: DiffusionPolicy, obs: np.ndarray, action: np.ndarray) -> None:
        fit_toy_normalizer(policy, obs, action)

    def evaluate(self, cfg: RunConfig, run_dir: Path, progress: bool,
                 domains: tuple[str, ...] = ("target", "source")) -> dict[str, Any]:
        """Exact errors on the test inputs of `domains`; a guided method's target outputs at every scale."""
        from baselines import load_checkpoint

        t0 = time.time()
        method = load_checkpoint(str(Path(run_dir) / "checkpoint"), device=cfg.device)
        out: dict[str, Any] = {domain: evaluate_toy(method, cfg.pair, cfg.magnitude, domain, cfg.episodes, cfg.seed)
                               for domain in domains}
        if method.guided:
            out["target"]["guidance"] = guidance_sweep(method, cfg.pair, cfg.magnitude, cfg.episodes, cfg.seed)
        out["wall_s"] = time.time() - t0
        return out
