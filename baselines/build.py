"""The one way a training run is set up: windows -> policy -> normalizer -> method -> sampler.

`build_training` is what the harness (`benchmark.harness.run`), the toy, the performance benchmark and
the tests train from, so a policy is initialized, normalized and fed the same way everywhere. Seeds:
the initial weights come from the run seed's `init` stream (`derive_seed`), the sampler's generator
from the run seed itself (`benchmark.harness.train.train` reseeds it from its own stream).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from common.dataset import Dataset

from .data import MixedSampler, Windows, make_windows
from .methods import AUTOCAST_DTYPES, METHODS, Method, make_sampler, resolve_hparams
from .policy import DiffusionPolicy, PolicyConfig

NormalizerFit = Callable[[DiffusionPolicy, np.ndarray, np.ndarray], None]
"""Fits a policy's normalizers from training observations (K, T_o, D) and actions (K, H, A)."""


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named stream of a run seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1


def min_max(policy: DiffusionPolicy, obs: np.ndarray, action: np.ndarray) -> None:
    """The default normalizer fit: per-dimension min-max of observations and actions."""
    policy.fit_normalizer(obs, action)


@dataclass(frozen=True)
class Training:
    """A method ready to train: its policy (initialized, normalizers fitted), the method over it, and the
    sampler of its batches."""

    policy: DiffusionPolicy
    method: Method
    sampler: MixedSampler


def _windows(data: Windows | Dataset | None, config: PolicyConfig) -> Windows | None:
    if data is None or isinstance(data, Windows):
        return data
    return make_windows(data, config.n_obs_steps, config.horizon, image_keys=config.image_keys)


def build_policy(config: PolicyConfig, obs: np.ndarray, action: np.ndarray, seed: int,
                 fit: NormalizerFit = min_max) -> DiffusionPolicy:
    """A policy with initial weights from `seed`'s `init` stream and normalizers fitted by `fit`."""
    torch.manual_seed(derive_seed(seed, "init"))
    policy = DiffusionPolicy(config)
    fit(policy, obs, action)
    return policy


def build_training(config: PolicyConfig, method: str, hparams: dict[str, Any] | None,
                   source: Windows | Dataset | None, target: Windows | Dataset | None, seed: int,
                   device: str = "cpu", fit: NormalizerFit = min_max, precision: str = "fp32") -> Training:
    """Set up `method` (a key of `baselines.METHODS`) on a policy of `config`.

    source, target: windows (or datasets, windowed as `config` says) of the two domains; a domain the
    method does not train on is ignored and may be None. The policy takes its domain embedding from the
    method and its `obs_noise` from the hyperparameters; its normalizers are fitted by `fit` on the windows
    the method trains on. hparams: overrides of the method's defaults; a mixing method needs `w`. The
    sampler draws batches of the `batch_size` hyperparameter. precision: the method's training arithmetic, a key
    of `baselines.methods.AUTOCAST_DTYPES` (`bf16`: forward pass and loss under bf16 autocast).
    """
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST_DTYPES)}, got {precision!r}")
    cls = METHODS[method]
    hp = resolve_hparams(method, hparams)
    if cls.mixes and hp["w"] is None:
        raise ValueError(f"method {method!r} mixes the domains: give its w (e.g. baselines.default_ratio(N, M))")
    config = replace(config, domain_embedding=cls.uses_domain_embedding, obs_noise=hp["obs_noise"])
    src = _windows(source, config) if cls.uses_source else None
    tgt = _windows(target, config) if cls.uses_target else None
    for used, windows, name in ((cls.uses_source, src, "source"), (cls.uses_target, tgt, "target")):
        if used and windows is None:
            raise ValueError(f"method {method!r} trains on {name} windows, got None")
    used = [x for x in (src, tgt) if x is not None]
    policy = build_policy(config, np.concatenate([x.obs for x in used]), np.concatenate([x.action for x in used]),
                          seed, fit)
    built = cls(policy, hparams, device=device)  # after the policy: extra modules draw from the same stream
    built.precision = precision
    w = hp["w"] if cls.mixes else (1.0 if cls.uses_target else 0.0)
    return Training(policy, built, make_sampler(cls, src, tgt, hp["batch_size"], w,
                                                torch.Generator().manual_seed(seed)))
