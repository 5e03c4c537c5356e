"""Hyperparameters per method: a default and a search distribution each (DomainBed `hparams_registry.py`).

Each hyperparameter of a random draw comes from its own stream, seeded by a hash of (seed, method,
name), so adding a hyperparameter never changes the others' draws. An override is accepted when it
lies within the hyperparameter's limits (wider than its search range where a value outside the search
range is still meaningful, e.g. any w in (0, 1)).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.registry import Registry

Value = float | int | bool | None


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]; overrides accepted within `limits` (default: [low, high])."""

    low: float
    high: float
    limits: tuple[float, float] | None = None
    integer: bool = False
    log: bool = False

    def sample(self, rng: np.random.Generator) -> float | int:
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        value = rng.uniform(lo, hi)
        value = math.exp(value) if self.log else value
        return int(round(value)) if self.integer else float(value)

    def check(self, name: str, value: Any) -> None:
        lo, hi = self.limits or (self.low, self.high)
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not lo <= value <= hi or not math.isfinite(value):
            kind = "an integer" if self.integer else "a number"
            raise ValueError(f"hyperparameter {name}={value!r} must be {kind} in [{lo:g}, {hi:g}]")

    def __str__(self) -> str:
        text = f"{'log' if self.log else ''}uniform{'-int' if self.integer else ''}({self.low:g}, {self.high:g})"
        return text + (f", limits [{self.limits[0]:g}, {self.limits[1]:g}]" if self.limits else "")


def loguniform(low: float, high: float, limits: tuple[float, float] | None = None, integer: bool = False) -> Uniform:
    return Uniform(low, high, limits, integer, log=True)


@dataclass(frozen=True)
class Choice:
    """One of `values`; overrides accepted within `limits` (numbers) or among `values` (limits None)."""

    values: tuple
    limits: tuple[float, float] | None = None

    def sample(self, rng: np.random.Generator) -> Value:
        return self.values[int(rng.integers(len(self.values)))]

    def check(self, name: str, value: Any) -> None:
        if self.limits is None:
            if value not in self.values or type(value) is not type(self.values[0]):
                raise ValueError(f"hyperparameter {name}={value!r} must be one of {list(self.values)}")
            return
        integer = all(isinstance(v, int) for v in self.values)
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        lo, hi = self.limits
        if isinstance(value, bool) or not ok_type or not lo <= value <= hi:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"hyperparameter {name}={value!r} must be {kind} in [{lo:g}, {hi:g}]")

    def __str__(self) -> str:
        text = "choice(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in self.values) + ")"
        return text + (f", limits [{self.limits[0]:g}, {self.limits[1]:g}]" if self.limits else "")


Sampler = Uniform | Choice
Spec = dict[str, tuple[Value, Sampler]]

_BASE: Spec = {
    "lr": (1e-3, loguniform(1e-4, 3e-3, limits=(1e-7, 1.0))),
    "weight_decay": (1e-6, loguniform(1e-8, 1e-3, limits=(0.0, 1.0))),
    "batch_size": (256, Choice((64, 128, 256, 512), limits=(2, 65536))),
    # None: the policy config's ema_decay
    "ema_decay": (None, Uniform(0.99, 0.999, limits=(0.0, 0.9999))),
    # The shared training recipe (the same for every method; results/recipe/ holds the search that set it):
    # steps of linear learning-rate warm-up from lr / lr_warmup to lr; 0: none
    "lr_warmup": (0, loguniform(50, 1000, limits=(0, 10**8), integer=True)),
    # EMA warm-up ramp: 0 is (1 + n) / (10 + n), p > 0 is 1 - (1 + n)^-p (baselines.policy.EMA)
    "ema_power": (0.0, Uniform(0.5, 0.9, limits=(0.0, 1.0))),
    # std of Gaussian noise on the normalized low-dimensional observations, training only
    "obs_noise": (0.0, Choice((0.0, 0.01, 0.03, 0.1), limits=(0.0, 10.0))),
    # noise-network width and residual blocks; None: the profile's
    "width": (None, Choice((256, 512, 1024), limits=(16, 8192))),
    "depth": (None, Choice((2, 3, 4, 6), limits=(1, 64))),
}
# The target fraction of each batch. None: baselines.data.default_ratio(N, M), resolved by the caller.
_MIX: Spec = {"w": (None, loguniform(0.005, 0.8, limits=(1e-6, 1 - 1e-6)))}
_OT: Spec = {
    "ot_weight": (0.1, loguniform(0.01, 1.0, limits=(0.0, 1e3))),
    # entropic epsilon, relative to the batch's mean transport cost
    "ot_reg": (0.05, loguniform(0.01, 0.5, limits=(1e-4, 1e2))),
    # 0: balanced OT; > 0: unbalanced, the KL marginal relaxation tau (relative to the mean cost)
    "ot_unbalanced": (0.0, Choice((0.0, 0.1, 1.0, 10.0), limits=(0.0, 1e4))),
    # weight of the normalized action chunks' mean squared difference in the cost
    "ot_action_cost": (1.0, Uniform(0.0, 5.0, limits=(0.0, 1e3))),
}
_ADV: Spec = {
    # reversal coefficient at the end of the warm-up (the study's regimes use 0, 0.05 and 0.5)
    "adversarial_weight": (0.05, loguniform(0.005, 1.0, limits=(0.0, 1e3))),
    "disc_hidden": (128, Choice((64, 128, 256), limits=(1, 4096))),
    # steps over which the coefficient ramps by Ganin's 2 / (1 + exp(-10 p)) - 1; 0: no ramp
    "grl_warmup": (1000, loguniform(100, 10000, limits=(0, 10**8), integer=True)),
}
_CFG: Spec = {
    "p_uncond": (0.15, Uniform(0.1, 0.2, limits=(0.0, 1.0))),
    # guidance lambda at sampling: the study's sweep over [-2, 2] peaks at -0.5 for CFG and CFG-ADDA
    "guidance": (-0.5, Uniform(-2.0, 2.0, limits=(-10.0, 10.0))),
}

HPARAMS: Registry[Spec] = Registry("method")
for _name, _spec in {
    "target_only": _BASE,
    "source_only": _BASE,
    "cotrain": {**_BASE, **_MIX},
    "domain_cond": {**_BASE, **_MIX},
    "ot": {**_BASE, **_MIX, **_OT},
    "adda": {**_BASE, **_MIX, **_ADV},
    "cfg": {**_BASE, **_MIX, **_CFG},
    "cfg_adda": {**_BASE, **_MIX, **_ADV, **_CFG},
}.items():
    HPARAMS.register(_name, _spec)


def _seed(seed: int, method: str, name: str) -> int:
    digest = hashlib.sha256(f"{seed}/{method}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def default_hparams(method: str) -> dict[str, Value]:
    return {name: default for name, (default, _) in HPARAMS[method].items()}


def random_hparams(method: str, seed: int) -> dict[str, Value]:
    """One random draw: each hyperparameter from its own stream, seeded by hash(seed, method, name)."""
    return {name: sampler.sample(np.random.default_rng(_seed(seed, method, name)))
            for name, (_, sampler) in HPARAMS[method].items()}


def validate_hparams(method: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return `overrides` if every name is known to `method` and every value within its limits (None
    is accepted where the default is None, and `w=None` by every method: single-domain methods have
    no mixing ratio); raise ValueError naming the first that is not."""
    spec = HPARAMS[method]
    for name, value in overrides.items():
        if name == "w" and value is None:
            continue
        if name not in spec:
            raise ValueError(f"unknown hyperparameter {name!r} for method {method!r}; known: {', '.join(spec)}")
        default, sampler = spec[name]
        if not (value is None and default is None):
            sampler.check(name, value)
    return dict(overrides)


def resolve_hparams(method: str, overrides: dict[str, Any] | None = None) -> dict[str, Value]:
    """The defaults of `method` updated with validated `overrides`."""
    return {**default_hparams(method), **validate_hparams(method, overrides or {})}


def describe(method: str) -> str:
    """A table of `method`'s hyperparameters: name, default, search distribution and limits."""
    spec = HPARAMS[method]
    width = max(len(n) for n in spec)
    return "\n".join(f"{name:<{width}}  default {default!s:<8}  {sampler}" for name, (default, sampler) in spec.items())
