"""Hyperparameter distributions, and the functions reading a space of them (a method class's `hparam_space`:
a default and a search distribution per name; DomainBed's `hparams_registry.py`). `baselines.methods` reads a
method's space by its registered name (`default_hparams`, `random_hparams`, ...).

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
"""name -> (default, search distribution): a method class's `hparam_space`."""


def _seed(seed: int, key: str, name: str) -> int:
    digest = hashlib.sha256(f"{seed}/{key}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def defaults(spec: Spec) -> dict[str, Value]:
    return {name: default for name, (default, _) in spec.items()}


def draw(key: str, spec: Spec, seed: int) -> dict[str, Value]:
    """One random draw: each hyperparameter from its own stream, seeded by hash(seed, key, name)."""
    return {name: sampler.sample(np.random.default_rng(_seed(seed, key, name))) for name, (_, sampler) in spec.items()}


def validate(key: str, spec: Spec, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return `overrides` if every name is in `spec` and every value within its limits (None is accepted where
    the default is None, and `w=None` always: single-domain methods have no mixing ratio); raise ValueError
    naming the first that is not (and `key`, the method whose space it is)."""
    for name, value in overrides.items():
        if name == "w" and value is None:
            continue
        if name not in spec:
            raise ValueError(f"unknown hyperparameter {name!r} for method {key!r}; known: {', '.join(spec)}")
        default, sampler = spec[name]
        if not (value is None and default is None):
            sampler.check(name, value)
    return dict(overrides)


def table(spec: Spec) -> str:
    """A table of a space: name, default, search distribution and limits."""
    width = max(len(n) for n in spec)
    return "\n".join(f"{name:<{width}}  default {default!s:<8}  {sampler}" for name, (default, sampler) in spec.items())
