"""The shared training recipe's knobs (warm-up, EMA ramp, observation noise, width and depth), validation
start states for choosing it, and the search that chose it (benchmark/harness/recipe.py)."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import METHODS, DiffusionPolicy, PolicyConfig, validate_hparams
from baselines.build import build_training
from baselines.ema import EMA
from benchmark.harness import recipe
from benchmark.harness.config import RunConfig
from benchmark.harness.run import execute_run
from benchmark.harness.train import TrainConfig, train
from tasks.seeds import episode_seeds

BATCH = 32
RESULTS = Path(__file__).resolve().parents[1] / "results"


def build(lift_datasets, **hparams):
    """(method, sampler) of `cotrain` on a tiny policy on the Lift datasets (`obs_noise` from hparams)."""
    cfg = PolicyConfig(obs_dim=lift_datasets[0].obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=32,
                       depth=1, z_dim=8, encoder_hidden=32)
    built = build_training(cfg, "cotrain", {"lr": 1e-3, "batch_size": BATCH, "w": 0.25, **hparams}, *lift_datasets,
                           seed=0)
    return built.method, built.sampler


def test_lr_warmup_ramps_linearly_then_holds(lift_datasets):
    warm, sampler = build(lift_datasets, lr_warmup=4)
    lrs = []
    for _ in range(6):
        warm.update(*sampler.next())
        lrs.append(warm.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    # the ramp is the step actually taken: Adam's first step moves each weight by about lr
    moved = {}
    for warmup in (0, 4):
        method, sampler = build(lift_datasets, lr_warmup=warmup)
        before = [p.detach().clone() for p in method.policy.parameters()]
        method.update(*sampler.next())
        moved[warmup] = sum((p - b).abs().sum().item() for p, b in zip(method.policy.parameters(), before))
        assert method.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 if warmup == 0 else 2.5e-4)
    assert moved[4] / moved[0] == pytest.approx(0.25, rel=0.05)


def test_ema_ramps():
    model = torch.nn.Linear(1, 1, bias=False)
    classic, power = EMA(model, 0.999), EMA(model, 0.999, power=0.75)
    for n in (0, 1, 10, 100, 10**5):
        classic.num_updates = power.num_updates = n
        assert classic.current_decay() == pytest.approx(min(0.999, (1 + n) / (10 + n)))
        assert power.current_decay() == pytest.approx(min(0.999, 1 - (1 + n) ** -0.75))
    power.num_updates = 1
    with torch.no_grad():
        start = power.model.weight.item()
        model.weight.fill_(start + 1.0)
    power.update(model)  # the averaged weight moves by (1 - decay) of the gap
    assert power.model.weight.item() == pytest.approx(start + 2 ** -0.75, rel=1e-6)
    with pytest.raises(ValueError, match="power"):
        EMA(model, 0.99, power=1.5)


def test_observation_noise_is_training_only(lift_datasets):
    noisy, sampler = build(lift_datasets, obs_noise=0.1)
    obs = sampler.next()[1]["obs"][:4]
    clean = DiffusionPolicy(replace(noisy.policy.config, obs_noise=0.0))
    clean.load_state_dict(noisy.policy.state_dict())
    assert noisy.policy.training and not torch.equal(noisy.policy.encode(obs), noisy.policy.encode(obs))
    assert torch.equal(clean.encode(obs), clean.encode(obs))
    assert torch.equal(noisy.policy.eval().encode(obs), clean.eval().encode(obs))  # evaluation: no noise
    assert torch.equal(noisy.ema.model.encode(obs), clean.encode(obs))
    noisy.policy.train()
    with pytest.raises(ValueError, match="obs_noise"):
        METHODS["cotrain"](DiffusionPolicy(clean.config), {"obs_noise": 0.1})
    with pytest.raises(ValueError, match="obs_noise"):
        PolicyConfig(obs_dim=4, action_dim=2, obs_noise=-0.1)
    assert "obs_noise" not in clean.config.to_dict()  # noise-free checkpoints read as before the knob
    assert PolicyConfig.from_dict(noisy.policy.config.to_dict()) == noisy.policy.config


def test_recipe_knobs_resume_exactly(lift_datasets, tmp_path):
    """20 steps straight equal 10, a restart, and 10 more, with every recipe knob on."""
    knobs = {"lr_warmup": 15, "ema_power": 0.75, "ema_decay": 0.999, "obs_noise": 0.05, "weight_decay": 1e-2}
    config = lambda steps: TrainConfig(steps=steps, batch_size=BATCH, log_every=5, ckpt_every=10, seed=3)  # noqa: E731
    straight, sampler = build(lift_datasets, **knobs)
    train(straight, sampler, config(20), tmp_path / "a", progress=False)
    first, sampler = build(lift_datasets, **knobs)
    train(first, sampler, config(10), tmp_path / "b", progress=False)
    resumed, sampler = build(lift_datasets, **knobs)
    assert train(resumed, sampler, config(20), tmp_path / "b", progress=False)["start_step"] == 10
    for mine, theirs in zip(straight.ema.model.parameters(), resumed.ema.model.parameters()):
        assert torch.equal(mine, theirs)
    assert (tmp_path / "a" / "train_log.jsonl").read_text() == (tmp_path / "b" / "train_log.jsonl").read_text()


def test_recipe_hparams_are_checked():
    for name, value in (("lr_warmup", -1), ("lr_warmup", 2.5), ("ema_power", 1.5), ("obs_noise", -0.1),
                        ("width", 8), ("depth", 0)):
        with pytest.raises(ValueError, match=f"{name}="):
            validate_hparams("target_only", {name: value})
    assert validate_hparams("cotrain", {"width": None, "depth": None}) == {"width": None, "depth": None}


def test_eval_split_is_validated_and_hashed():
    base = RunConfig(pair="lift/dynamics", method="target_only", profile="smoke")
    assert base.eval_split == "test"
    assert base.run_id() != replace(base, eval_split="validation").run_id()
    with pytest.raises(ValueError, match="eval_split"):
        replace(base, eval_split="train")
    with pytest.raises(ValueError, match="toy pairs"):
        RunConfig(pair="toy/shift", method="target_only", profile="toy", eval_split="validation")


def test_a_validation_run_uses_validation_states_and_the_recipe(tmp_path):
    """A real smoke run on validation start states, width, depth and observation noise from the hparams."""
    hp = (("width", 48), ("depth", 2), ("obs_noise", 0.02), ("lr_warmup", 10))
    cfg = RunConfig(pair="lift/dynamics", method="cotrain", profile="smoke", episodes=3, eval_split="validation",
                    hparams=hp)
    record = execute_run(cfg, tmp_path, progress=False)
    assert [e["seed"] for e in record["eval"]["target"]["episodes"]] == episode_seeds("validation", 0, 3)
    assert set(record["eval"]) == {"target", "wall_s"}  # no source rollouts on validation states
    meta = json.loads((tmp_path / record["run_id"] / "checkpoint" / "checkpoint.json").read_text())
    assert (meta["policy"]["width"], meta["policy"]["depth"], meta["policy"]["obs_noise"]) == (48, 2, 0.02)
    assert meta["hparams"]["lr_warmup"] == 10 and record["config"]["eval_split"] == "validation"


def test_search_points_and_summary():
    ids = set()
    for name, (_, hp) in recipe.POINTS.items():
        assert set(hp) == set(recipe.BEFORE)  # every knob explicit: run ids survive a change of defaults
        runs = recipe.point_runs(name)
        assert len(runs) == len(recipe.PAIRS) * len(recipe.METHODS) * len(recipe.SEEDS)
        for cfg in runs:
            assert cfg.eval_split == "validation" and cfg.profile == recipe.PROFILE
            assert {k: cfg.method_hparams()[k] for k in hp} == hp
        ids |= {cfg.run_id() for cfg in runs}
    assert len(ids) == sum(len(recipe.point_runs(n)) for n in recipe.POINTS)
    rows = [{"point": point, "pair": pair, "pair_version": 1, "method": method, "seed": seed,
             "success": np.mean(outcomes), "outcomes": outcomes}
            for point, shift in ((recipe.BASELINE, 0), ("lr3e-4_wu200", 1))
            for pair in recipe.PAIRS for method in recipe.METHODS for seed in recipe.SEEDS
            for outcomes in [[int(i < 5 + 5 * shift) for i in range(20)]]]
    summary = {s["point"]: s for s in recipe.summarize(rows)}
    assert summary[recipe.BASELINE]["mean"] == pytest.approx(0.25) and "diff" not in summary[recipe.BASELINE]
    assert summary["lr3e-4_wu200"]["mean"] == pytest.approx(0.5) == summary["lr3e-4_wu200"]["cotrain"]
    assert summary["lr3e-4_wu200"]["diff"] == pytest.approx(0.25)
    assert summary["lr3e-4_wu200"]["runs"] == 18


def test_the_report_reads_the_committed_runs_by_their_own_config(tmp_path):
    """The committed search, 180 runs of pair version 2, is read whole although today's code names other runs
    for two of its pairs (recalibrated since); a run of another protocol beside them is not read; the committed
    report comes back byte for byte."""
    runs = tmp_path / "runs"
    shutil.copytree(RESULTS / "recipe" / "runs", runs)
    other = next((RESULTS / "study" / "runs").glob("*/done")).parent
    shutil.copytree(other, runs / other.name)
    rows = recipe.collect(runs)
    assert len(rows) == 180 and other.name not in {r["run_id"] for r in rows}
    assert set(Counter(r["point"] for r in rows).values()) == {18} and len({r["point"] for r in rows}) == 10
    assert {(r["pair"], r["pair_version"]) for r in rows} == {(p, 2) for p in recipe.PAIRS}
    today = {cfg.run_id() for name in recipe.POINTS for cfg in recipe.point_runs(name) if cfg.pair == "lift/dynamics"}
    assert not today & {r["run_id"] for r in rows}  # looked up by today's run ids, these runs would be missing
    text = recipe.write_report(runs).read_text()
    assert "`lift/dynamics` v2 (60 runs)" in text and text == (RESULTS / "recipe" / "search.md").read_text()
    assert (tmp_path / "search.csv").read_text() == (RESULTS / "recipe" / "search.csv").read_text()
