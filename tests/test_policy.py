"""The diffusion policy: normalization, shapes, sampling rules, batch independence, a numerical regression."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import DiffusionPolicy, Normalizer, PolicyConfig, make_windows
from baselines.build import build_policy

REGRESSION = Path(__file__).parent / "data" / "policy_regression.npz"
REGEN_ENV = "COTRAIN_REGEN_POLICY_REGRESSION"  # set to 1 to rewrite REGRESSION from the current code



def tiny(network: str = "mlp", obs_dim: int = 18, action_dim: int = 7, seed: int = 0, **kw) -> DiffusionPolicy:
    """A tiny policy with normalizer statistics from fixed random data."""
    cfg = PolicyConfig(obs_dim=obs_dim, action_dim=action_dim, horizon=8, n_action_steps=4, network=network,
                       width=32, depth=1, z_dim=8, encoder_hidden=32, **kw)
    rng = np.random.default_rng(seed)
    return build_policy(cfg, rng.normal(size=(64, 2, obs_dim)), rng.normal(size=(64, 8, action_dim)), seed)


def test_normalizer_handles_zero_range_and_round_trips():
    data = np.random.default_rng(0).normal(size=(100, 4))
    data[:, 2] = 0.25  # a constant dimension (e.g. a top-down expert's rotation)
    norm = Normalizer(4)
    norm.fit(data)
    x = torch.as_tensor(data, dtype=torch.float32)
    y = norm(x)
    assert torch.isfinite(y).all() and y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    assert torch.all(y[:, 2] == 0) and norm.scale[2] == 1
    assert torch.allclose(norm.unnormalize(y), x, atol=1e-6)
    assert set(norm.state_dict()) == {"center", "scale", "fitted"}


def test_config_validation_and_round_trip():
    cfg = PolicyConfig(obs_dim=18, action_dim=7)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    for bad in (dict(network="transformer"), dict(n_action_steps=20), dict(width=0), dict(ema_decay=1.0),
                dict(network="unet", horizon=10), dict(num_inference_steps=200)):
        with pytest.raises(ValueError):
            PolicyConfig(obs_dim=18, action_dim=7, **bad)
    with pytest.raises(ValueError, match="unknown PolicyConfig fields"):
        PolicyConfig.from_dict({**cfg.to_dict(), "heads": 4})


def test_observation_layout_mismatch_raises(lift_datasets):
    source, _ = lift_datasets
    windows = make_windows(source, 2, 8)
    policy = DiffusionPolicy(PolicyConfig(obs_dim=source.obs_dim + 3, action_dim=7, horizon=8, width=32))
    expected = rf"\(2, {source.obs_dim}\) per sample do not match .*\(2, {source.obs_dim + 3}\)"
    with pytest.raises(ValueError, match=expected):
        policy.fit_normalizer(windows.obs, windows.action)
    with pytest.raises(ValueError, match="do not match"):
        tiny(obs_dim=source.obs_dim + 3).encode(torch.from_numpy(windows.obs[:2]))
    with pytest.raises(RuntimeError, match="not fitted"):
        DiffusionPolicy(PolicyConfig(obs_dim=source.obs_dim, action_dim=7)).encode(torch.from_numpy(windows.obs[:2]))


@pytest.mark.parametrize("network", ["mlp", "unet"])
def test_loss_and_sample_shapes(network, lift_datasets):
    source, _ = lift_datasets
    policy = tiny(network, obs_dim=source.obs_dim, domain_embedding=True)
    w = make_windows(source, 2, 8)
    batch = {"obs": torch.from_numpy(w.obs[:5]), "action": torch.from_numpy(w.action[:5]),
             "domain": torch.zeros(5, dtype=torch.long)}
    loss, z = policy.loss(batch)
    assert loss.shape == (5,) and z.shape == (5, 8) and torch.isfinite(loss).all()
    noise, t = torch.randn(5, 8, 7), torch.arange(5) * 7
    assert torch.equal(policy.loss(batch, noise=noise, timesteps=t)[0], policy.loss(batch, noise=noise, timesteps=t)[0])
    assert policy.conditioning(batch["obs"], batch["domain"]).shape == (5, 8 + 16)
    actions = policy.sample(batch["obs"], 1, noise=noise)
    assert actions.shape == (5, 8, 7) and torch.isfinite(actions).all()
    assert torch.equal(actions, policy.sample(batch["obs"], 1, noise=noise))
    assert not torch.equal(actions, policy.sample(batch["obs"], 0, noise=noise))


@pytest.mark.parametrize("network", ["mlp", "unet"])
def test_guidance_zero_is_plain_conditional_sampling(network):
    policy = tiny(network, domain_embedding=True)
    obs, noise = torch.randn(3, 2, 18), torch.randn(3, 8, 7)
    plain = policy.sample(obs, 1, noise=noise)
    assert torch.equal(policy.sample(obs, 1, guidance=0.0, noise=noise), plain)
    assert torch.equal(policy.sample(obs, 1, guidance=None, noise=noise), plain)
    for lam in (-0.5, 1.0):
        assert not torch.allclose(policy.sample(obs, 1, guidance=lam, noise=noise), plain)
    # lambda = -1 is the unconditional (null-token) model
    assert torch.allclose(policy.sample(obs, 1, guidance=-1.0, noise=noise, exact_rows=False),
                          policy.sample(obs, 2, noise=noise, exact_rows=False), atol=1e-5)
    # no domain embedding: guidance does not apply
    no_domain = tiny(network)
    assert torch.equal(no_domain.sample(obs, 1, guidance=2.0, noise=noise), no_domain.sample(obs, noise=noise))


@pytest.mark.parametrize("network", ["mlp", "unet"])
@pytest.mark.parametrize("guidance", [None, -0.5])
def test_rows_are_batch_independent(network, guidance):
    policy = tiny(network, domain_embedding=True)
    gen = torch.Generator().manual_seed(0)
    obs, noise = torch.randn(6, 2, 18, generator=gen), torch.randn(6, 8, 7, generator=gen)
    domain = torch.tensor([0, 1, 1, 0, 1, 0])
    batched = policy.sample(obs, domain, guidance=guidance, noise=noise)
    for i in (0, 3, 5):
        alone = policy.sample(obs[i:i + 1], domain[i:i + 1], guidance=guidance, noise=noise[i:i + 1])
        assert torch.equal(alone[0], batched[i])
    fast = policy.sample(obs, domain, guidance=guidance, noise=noise, exact_rows=False)
    # one batched pass: equal up to rounding (~1e-6 per denoiser call, amplified by DDIM at high noise)
    assert torch.allclose(fast, batched, atol=1e-2)


def _regression_policy(network: str) -> DiffusionPolicy:
    """A tiny policy whose weights follow a fixed formula (no RNG, no stored weights) and fixed statistics."""
    policy = DiffusionPolicy(PolicyConfig(obs_dim=5, action_dim=3, horizon=8, n_action_steps=4, network=network,
                                          width=32, depth=1, z_dim=8, encoder_hidden=32, domain_embedding=True))
    with torch.no_grad():
        for i, p in enumerate(policy.parameters()):
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.7 + i).view_as(p) / fan_in ** 0.5)
    rng = np.random.default_rng(99)
    policy.fit_normalizer(rng.normal(size=(32, 2, 5)), rng.normal(size=(32, 8, 3)))
    return policy


def _regression_outputs(policy: DiffusionPolicy, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    obs, noise = torch.from_numpy(inputs["obs"]), torch.from_numpy(inputs["noise"])
    batch = {"obs": obs, "action": torch.from_numpy(inputs["action"]), "domain": torch.tensor([0, 1, 1])}
    with torch.no_grad():
        loss, z = policy.loss(batch, noise=noise, timesteps=torch.tensor([3, 50, 99]))
        out = {"z": z, "z_cond": policy.conditioning(obs, batch["domain"]), "loss": loss,
               "sample": policy.sample(obs, 1, noise=noise),
               "guided": policy.sample(obs, 1, guidance=-0.5, noise=noise)}
    return {k: v.numpy() for k, v in out.items()}


def _regression_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    shapes = {"obs": (3, 2, 5), "action": (3, 8, 3), "noise": (3, 8, 3)}
    return {k: rng.normal(size=shape).astype(np.float32) for k, shape in shapes.items()}


def regenerate_regression() -> None:
    """Rewrite REGRESSION: fixed inputs, and per network its state_dict keys and outputs."""
    arrays = {f"input.{k}": v for k, v in _regression_inputs().items()}
    for network in ("mlp", "unet"):
        policy = _regression_policy(network)
        arrays[f"{network}.keys"] = np.array(list(policy.state_dict()))
        outputs = _regression_outputs(policy, _regression_inputs())
        arrays.update({f"{network}.output.{k}": v for k, v in outputs.items()})
    REGRESSION.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REGRESSION, **arrays)


@pytest.mark.parametrize("network", ["mlp", "unet"])
def test_numerical_regression(network):
    """Fixed weights on stored inputs with stored noise reproduce the stored outputs, and the state_dict keys
    (what checkpoints hold) are unchanged. Set REGEN_ENV=1 to rewrite the file from the current code."""
    if os.environ.get(REGEN_ENV) == "1" and network == "mlp":
        regenerate_regression()
    data = np.load(REGRESSION)
    policy = _regression_policy(network)
    assert list(policy.state_dict()) == data[f"{network}.keys"].tolist()
    inputs = {k[len("input."):]: data[k] for k in data if k.startswith("input.")}
    for key, value in _regression_outputs(policy, inputs).items():
        np.testing.assert_allclose(value, data[f"{network}.output.{key}"], atol=1e-5, err_msg=f"{network} {key}")
