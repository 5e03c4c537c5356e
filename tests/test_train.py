"""Training windows, the mixed sampler, ratio rules, and the shared training loop (logging, exact resume)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from baselines import (MixedSampler, PolicyConfig, default_ratio, make_windows, natural_ratio, odds_rule,
                       sqrt_rule)
from baselines.build import build_training
from benchmark.harness.train import TrainConfig, train, validation_loss, validation_set
from common.dataset import Dataset



def test_windows_pad_history_and_chunk():
    obs = np.arange(4, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    act = 10 + np.arange(4, dtype=np.float32)[:, None]
    w = make_windows(Dataset([obs, obs[:2]], [act, act[:2]], (("x", 2),)), n_obs_steps=2, horizon=3)
    assert w.obs.shape == (6, 2, 2) and w.action.shape == (6, 3, 1) and w.obs.dtype == np.float32
    assert w.demo_index.tolist() == [0, 0, 0, 0, 1, 1]
    assert w.obs[0, :, 0].tolist() == [0, 0] and w.obs[3, :, 0].tolist() == [2, 3]
    assert w.action[0, :, 0].tolist() == [10, 11, 12] and w.action[3, :, 0].tolist() == [13, 13, 13]
    assert w.action[5, :, 0].tolist() == [11, 11, 11]


def test_mixed_sampler(lift_datasets):
    src, tgt = (make_windows(d, 2, 8) for d in lift_datasets)
    assert len(src) == 60 and src.obs_dim == lift_datasets[0].obs_dim
    s, t = MixedSampler(src, tgt, 32, 0.1, torch.Generator().manual_seed(0)).next()
    assert (len(s["obs"]), len(t["obs"])) == (29, 3)
    assert s["domain"].eq(0).all() and t["domain"].eq(1).all() and t["action"].shape == (3, 8, 7)
    assert [len(b["obs"]) for b in MixedSampler(src, tgt, 32, 0.001, torch.Generator()).next()] == [31, 1]
    assert MixedSampler(src, None, 32, 0.0, torch.Generator()).next()[1] is None
    assert MixedSampler(None, tgt, 32, 1.0, torch.Generator()).next()[0] is None
    a, b = (MixedSampler(src, tgt, 16, 0.5, torch.Generator().manual_seed(3)).next() for _ in range(2))
    assert torch.equal(a[0]["obs"], b[0]["obs"]) and torch.equal(a[1]["action"], b[1]["action"])
    with pytest.raises(ValueError, match="needs target windows"):
        MixedSampler(src, None, 32, 0.3, torch.Generator())
    with pytest.raises(ValueError, match="w .* must be in"):
        MixedSampler(src, tgt, 32, 1.5, torch.Generator())


def test_ratio_rules():
    assert natural_ratio(50, 3000) == pytest.approx(50 / 3050)
    assert sqrt_rule(50, 3000) == pytest.approx(math.sqrt(50 / 3000))
    assert odds_rule(50, 3000) / (1 - odds_rule(50, 3000)) == pytest.approx(math.sqrt(50 / 3000))
    for n, m in ((5, 50), (50, 3000), (10, 100), (20, 200)):
        assert natural_ratio(n, m) < default_ratio(n, m) < odds_rule(n, m)
    with pytest.raises(ValueError):
        natural_ratio(0, 10)


def _setup(name: str, lift_datasets, width: int = 32):
    cfg = PolicyConfig(obs_dim=lift_datasets[0].obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=width,
                       depth=1, z_dim=8, encoder_hidden=32)
    src, tgt = (make_windows(d, cfg.n_obs_steps, cfg.horizon) for d in lift_datasets)
    extra = {"grl_warmup": 5} if "adda" in name else {}
    built = build_training(cfg, name, {"lr": 3e-3, "batch_size": 32, "w": 0.25, **extra}, src, tgt, seed=0)
    return built.method, built.sampler, tgt


def _config(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=32, log_every=5, ckpt_every=10, val_every=10, seed=7)


def test_resume_is_exact(lift_datasets, tmp_path):
    """20 steps straight vs 10 steps, a fresh process-like restart, 10 more: identical weights and logs."""
    method, sampler, val = _setup("cfg_adda", lift_datasets)
    summary = train(method, sampler, _config(20), tmp_path / "a", val_target=val, progress=False)
    assert summary["start_step"] == 0 and summary["samples_per_s"] > 0
    assert math.isfinite(summary["val_target"]) and {"loss", "diffusion", "adv"} <= set(summary["final"])

    first, sampler1, _ = _setup("cfg_adda", lift_datasets)
    train(first, sampler1, _config(10), tmp_path / "b", val_target=val, progress=False)
    with open(tmp_path / "b" / "train_log.jsonl", "a") as log:  # a line written after the checkpoint, then a crash
        log.write(json.dumps({"step": 11, "loss": 0.0}) + "\n")
    resumed, sampler2, _ = _setup("cfg_adda", lift_datasets)
    assert train(resumed, sampler2, _config(20), tmp_path / "b", val_target=val, progress=False)["start_step"] == 10

    for key, value in method.state_dict()["policy"].items():
        assert torch.equal(value, resumed.state_dict()["policy"][key]), key
    for mine, theirs in zip(method.ema.model.parameters(), resumed.ema.model.parameters()):
        assert torch.equal(mine, theirs)
    for mine, theirs in zip(method.extra.parameters(), resumed.extra.parameters()):
        assert torch.equal(mine, theirs)
    log_a = (tmp_path / "a" / "train_log.jsonl").read_text()
    assert log_a == (tmp_path / "b" / "train_log.jsonl").read_text()
    lines = [json.loads(line) for line in log_a.splitlines()]
    assert [r["step"] for r in lines] == [5, 10, 15, 20]
    assert "val_target" in lines[1] and "val_target" not in lines[0]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint", "train_log.jsonl"]


def test_validation_loss_is_deterministic(lift_datasets):
    method, sampler, val = _setup("cotrain", lift_datasets)
    method.update(*sampler.next())
    fixed = validation_set(val, seed=0)
    assert validation_loss(method, fixed) == validation_loss(method, validation_set(val, seed=0))


def test_bad_training_input(lift_datasets, tmp_path):
    method, sampler, _ = _setup("cotrain", lift_datasets)
    with pytest.raises(ValueError, match="batch size 32 differs"):
        train(method, sampler, TrainConfig(steps=2, batch_size=64), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        TrainConfig(steps=0)
    train(method, sampler, TrainConfig(steps=2, batch_size=32), tmp_path / "run", progress=False)
    wider, sampler, _ = _setup("cotrain", lift_datasets, width=64)
    with pytest.raises(ValueError, match="width: 32 vs 64"):
        train(wider, sampler, TrainConfig(steps=4, batch_size=32), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "checkpoint" / "checkpoint.json").read_text())["step"] == 2
