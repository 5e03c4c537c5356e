"""`check_method`: a conformance check of a method class, in the spirit of Gymnasium's `check_env`.

It trains a tiny policy for a few steps on small synthetic source and target demos and checks that the
class is declared completely, that every returned term is finite and every declared loss term
(`Method.loss_terms`) changes from step to step, enters the total loss and sends gradient to each module it
claims, that sampling is deterministic given the noise, and that a checkpoint round-trips (the same
actions after reloading). A failure raises `MethodCheckError` naming the method and the check.
"""
from __future__ import annotations

import math
import tempfile
from typing import Any

import numpy as np
import torch

from common.dataset import Dataset

from .checkpoints import restore_checkpoint, save_checkpoint
from .data import make_windows
from .methods import Method, make_sampler
from .policy import DiffusionPolicy, PolicyConfig

OBS_DIM, ACTION_DIM, DEMOS, DEMO_STEPS, BATCH = 5, 3, 4, 24, 32
CHECK_HPARAMS = {"lr": 1e-3, "batch_size": BATCH}  # plus w = 0.5 for mixing methods


class MethodCheckError(AssertionError):
    """A method class failed one of `check_method`'s checks."""


def synthetic_demos(domain: str, seed: int) -> Dataset:
    """DEMOS random-walk demos of one domain: the action is a fixed linear map of the observation; the
    target's observations are shifted and scaled (a domain gap an alignment term can act on)."""
    rng = np.random.default_rng(seed)
    mapping = np.random.default_rng(0).normal(size=(OBS_DIM, ACTION_DIM)).astype(np.float32)
    data = Dataset([], [], (("state", OBS_DIM),), {"domain": domain})
    for _ in range(DEMOS):
        obs = np.cumsum(rng.normal(scale=0.3, size=(DEMO_STEPS, OBS_DIM)), axis=0).astype(np.float32)
        data.obs.append(obs * 1.5 + 2.0 if domain == "target" else obs)
        data.actions.append(np.tanh(obs @ mapping))
    return data


def tiny_policy_config(cls: type[Method]) -> PolicyConfig:
    return PolicyConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, horizon=4, n_action_steps=2, width=32, depth=1,
                        z_dim=8, encoder_hidden=32, num_inference_steps=4, domain_embedding=cls.uses_domain_embedding)


def _module(method: Method, path: str) -> torch.nn.Module:
    obj: Any = method
    for part in path.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, torch.nn.Module):
        raise AttributeError(path)
    return obj


def _nonzero(grads: tuple[torch.Tensor | None, ...]) -> bool:
    return any(g is not None and bool((g != 0).any()) for g in grads)


def check_method(cls: type, hparams: dict[str, Any] | None = None, steps: int = 6, seed: int = 0
                 ) -> dict[str, list[float]]:
    """Check the method class `cls` (see the module docstring); returns its per-step terms.

    hparams: overrides of the method's defaults (after `CHECK_HPARAMS`). Raises `MethodCheckError`.
    """
    label = f"{getattr(cls, '__qualname__', cls)!s} ({getattr(cls, 'name', '')!r})"

    def fail(check: str, detail: str) -> MethodCheckError:
        return MethodCheckError(f"check_method: method {label} fails the {check} check: {detail}")

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise fail("declaration", "it is not a subclass of baselines.Method")
    if not cls.name or not cls.description:
        raise fail("declaration", "it needs a non-empty `name` and `description`")
    if not cls.loss_terms:
        raise fail("declaration", "`loss_terms` declares no term")
    for name, (default, sampler) in cls.hparam_space.items():
        try:
            if default is not None:
                sampler.check(name, default)
        except (ValueError, AttributeError) as err:
            raise fail("declaration", f"hyperparameter {name!r}: default outside its limits ({err})") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _check_training(cls, {**CHECK_HPARAMS, **({"w": 0.5} if cls.mixes else {}), **(hparams or {})},
                               steps, seed, fail)


def _check_training(cls: type[Method], hp: dict[str, Any], steps: int, seed: int, fail: Any) -> dict[str, list[float]]:
    config = tiny_policy_config(cls)
    src, tgt = (make_windows(synthetic_demos(d, seed + i), config.n_obs_steps, config.horizon)
                for i, d in enumerate(("source", "target")))
    used = [w for w, on in ((src, cls.uses_source), (tgt, cls.uses_target)) if on]
    policy = DiffusionPolicy(config)
    policy.fit_normalizer(np.concatenate([w.obs for w in used]), np.concatenate([w.action for w in used]))
    try:
        method = cls(policy, hp)
    except Exception as err:
        raise fail("construction", f"{type(err).__name__}: {err}") from None
    w = hp["w"] if cls.mixes else float(cls.uses_target)
    sampler = make_sampler(cls, src, tgt, BATCH, w, torch.Generator().manual_seed(seed))

    try:
        logs = [method.update(*sampler.next()) for _ in range(steps)]
    except Exception as err:
        raise fail("training", f"update raised {type(err).__name__}: {err}") from None
    history = {k: [log.get(k, math.nan) for log in logs] for k in logs[0]}
    for term in cls.loss_terms:
        if term not in history:
            raise fail("terms", f"declared term {term!r} is not among the returned terms {sorted(history)}")
    for term, values in history.items():
        if not all(math.isfinite(v) for v in values):
            raise fail("finite", f"term {term!r} is not finite over {steps} steps: {values}")
    for term in cls.loss_terms:
        if min(history[term]) == max(history[term]):
            raise fail("varying", f"term {term!r} is constant over {steps} steps ({history[term][0]})")

    _check_gradients(method, sampler, fail)
    _check_sampling(method, cls, config, sampler, fail)
    return history


def _check_gradients(method: Method, sampler: Any, fail: Any) -> None:
    """Each declared term enters the total loss and sends gradient to every module it claims."""
    loss, terms = method.objective(method.prepare(*sampler.next()))
    for term, paths in type(method).loss_terms.items():
        value = terms[term]
        if not (isinstance(value, torch.Tensor) and value.requires_grad):
            raise fail("gradient", f"term {term!r} is detached from every parameter, so it sends no gradient "
                                   f"to {', '.join(paths) or 'any module'}")
        if not _nonzero(torch.autograd.grad(loss, value, retain_graph=True, allow_unused=True)):
            raise fail("gradient", f"term {term!r} does not enter the total loss (its weight in it is zero)")
        for path in paths:
            try:
                params = [p for p in _module(method, path).parameters() if p.requires_grad]
            except AttributeError:
                raise fail("declaration", f"term {term!r} names module {path!r}, which the method lacks") from None
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            if not _nonzero(grads):
                raise fail("gradient", f"term {term!r} sends no gradient to {path}")
    method.optimizer.zero_grad(set_to_none=True)


def _check_sampling(method: Method, cls: type[Method], config: PolicyConfig, sampler: Any, fail: Any) -> None:
    """Sampling is deterministic given the noise, and a checkpoint reloads to the same actions."""
    source, target = sampler.next()
    obs = (target if cls.uses_target else source)["obs"][:3]
    noise = torch.randn(3, config.horizon, config.action_dim, generator=torch.Generator().manual_seed(1))
    try:
        first = {d: method.sample(obs, d, noise=noise) for d in ("source", "target")}
    except Exception as err:
        raise fail("sampling", f"sample raised {type(err).__name__}: {err}") from None
    for domain, actions in first.items():
        if actions.shape != (3, config.horizon, config.action_dim) or not np.isfinite(actions).all():
            raise fail("sampling", f"{domain} actions have shape {actions.shape} or are not finite")
        if not np.array_equal(method.sample(obs, domain, noise=noise), actions):
            raise fail("sampling", f"two {domain} samples from the same noise differ")
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, method)
        reloaded = cls(DiffusionPolicy(config), method.hparams)
        try:
            restore_checkpoint(tmp, reloaded)
        except ValueError as err:
            raise fail("save/load", str(err)) from None
        try:
            same = reloaded.step == method.step and all(
                np.array_equal(reloaded.sample(obs, domain, noise=noise), actions) for domain, actions in first.items())
        except Exception as err:
            raise fail("save/load", f"the reloaded method cannot sample: {type(err).__name__}: {err}") from None
    if not same:
        raise fail("save/load", "the reloaded method samples other actions from the same noise (or is at another step)")
