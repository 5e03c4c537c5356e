"""Training precision (`RunConfig.precision`): fp32 runs keep their ids, bf16 is another run, trains its forward
pass and loss under bf16 autocast with fp32 weights, optimizer and validation, and a bad precision is refused."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from baselines import PolicyConfig, make_windows
from baselines.build import build_training
from baselines.methods import AUTOCAST_DTYPES
from benchmark.cli import build_parser, main
from benchmark.harness.config import PRECISIONS, RunConfig
from benchmark.harness.gridspec import GridError
from benchmark.harness.grid import grid_from_dict
from benchmark.harness.train import TrainConfig, train, validation_loss, validation_set

PAIR = "lift/dynamics"
# ids of these configs computed before `precision` existed: an fp32 run must keep its id (and its folder)
IDS_BEFORE_PRECISION = {
    "39aa4c65eab1": RunConfig(pair=PAIR),
    "8eab771d9979": RunConfig(pair=PAIR, method="source_only", seed=3, profile="smoke", steps=7),
    "a406b8710233": RunConfig(pair=PAIR, magnitude=0.5, profile="smoke", hparams=(("w", 0.3),), threads=2,
                              checkpoint_rule="best_val"),
}
LOSS_BAND = 0.1  # relative: bf16 rounding over 5 steps of a tiny network (see the test)


def test_fp32_keeps_run_ids_and_bf16_is_another_run():
    for run_id, cfg in IDS_BEFORE_PRECISION.items():
        assert cfg.precision == "fp32" and cfg.run_id() == run_id
        assert "precision" not in cfg.to_json()
        bf16 = replace(cfg, precision="bf16")
        assert bf16.run_id() != run_id and bf16.to_json()["precision"] == "bf16"
    assert tuple(AUTOCAST_DTYPES) == PRECISIONS  # the harness's names are the methods' autocast keys


def test_bad_precision_is_refused_naming_it():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        RunConfig(pair=PAIR, precision="fp16")
    with pytest.raises(ValueError, match="bf16.*cpu or cuda.*'meta'"):
        RunConfig(pair=PAIR, precision="bf16", device="meta")
    with pytest.raises(GridError, match="`precision` must be one of fp32, bf16, got 'half'"):
        grid_from_dict({"pairs": [PAIR], "methods": ["cotrain"], "precision": "half"})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--pair", PAIR, "--precision", "fp16"])


def test_grid_and_sweep_option_set_the_precision(tmp_path, capsys):
    """A grid's `precision` reaches its runs; `cotrain sweep --precision` replaces it (dry run: no training)."""
    spec = {"pairs": [PAIR], "methods": ["cotrain"], "profile": "smoke"}
    fp32_ids = {cfg.run_id() for cfg in grid_from_dict(spec).runs()}
    bf16 = grid_from_dict({**spec, "precision": "bf16"}).runs()
    assert [cfg.precision for cfg in bf16] == ["bf16"] and fp32_ids.isdisjoint(cfg.run_id() for cfg in bf16)
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"pairs: [{PAIR}]\nmethods: [cotrain]\nprofile: smoke\n")
    for option, ids in (([], fp32_ids), (["--precision", "bf16"], {bf16[0].run_id()})):
        capsys.readouterr()
        assert main(["sweep", str(grid), "--runs-dir", str(tmp_path / "runs"), "--dry-run", *option]) == 0
        assert all(run_id in capsys.readouterr().out for run_id in ids)


def _first_linear_dtypes(net: nn.Module) -> list[torch.dtype]:
    """Output dtypes of a noise network's first linear layer, recorded as they are computed."""
    seen: list[torch.dtype] = []
    layer = next(m for m in net.modules() if isinstance(m, nn.Linear))
    layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_bf16_training_smoke(lift_datasets, tmp_path):
    """5 steps on the same seed in fp32 and bf16: bf16 runs its forward pass in bf16 and keeps weights, EMA and
    validation in fp32; its loss is finite and within LOSS_BAND of fp32's.

    The band only says both precisions compute the same loss up to bf16 rounding (8 mantissa bits, ~0.4% per
    operation; the same noise, timesteps and batches on the same seed). It is no claim about what bf16 training
    reaches: that takes full runs (target validation loss and paired success over many episodes)."""
    cfg = PolicyConfig(obs_dim=lift_datasets[0].obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=32,
                       depth=1, z_dim=8, encoder_hidden=32)
    src, tgt = (make_windows(d, cfg.n_obs_steps, cfg.horizon) for d in lift_datasets)
    tcfg = TrainConfig(steps=5, batch_size=32, log_every=5, ckpt_every=5, val_every=5, seed=3)
    loss, dtypes = {}, {}
    for precision in PRECISIONS:
        built = build_training(cfg, "cotrain", {"batch_size": 32, "w": 0.25}, src, tgt, seed=3, precision=precision)
        seen = _first_linear_dtypes(built.policy.net)
        summary = train(built.method, built.sampler, tcfg, tmp_path / precision, val_target=tgt, progress=False)
        loss[precision], dtypes[precision] = summary["final"]["loss"], set(seen)
        assert math.isfinite(summary["val_target"])
        assert all(p.dtype == torch.float32 for p in [*built.policy.parameters(), *built.method.ema.model.parameters()])
        seen_ema = _first_linear_dtypes(built.method.ema.model.net)
        validation_loss(built.method, validation_set(tgt, 3))
        assert set(seen_ema) == {torch.float32}  # validation and evaluation (EMA weights) outside autocast
        log = [json.loads(line) for line in (tmp_path / precision / "train_log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == 5
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    assert math.isfinite(loss["bf16"]) and loss["bf16"] != loss["fp32"]
    assert abs(loss["bf16"] - loss["fp32"]) <= LOSS_BAND * loss["fp32"]
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'int8'"):
        build_training(cfg, "cotrain", {"batch_size": 32, "w": 0.25}, src, tgt, seed=3, precision="int8")


@pytest.mark.slow
def test_cli_run_trains_in_bf16(tmp_path, capsys):
    """`cotrain run --precision bf16` trains under autocast (a training log unlike fp32's on the same seed) and names
    the precision in its config and record, under an id of its own (two toy smoke runs, ~8 s)."""
    toy = ["--pair", "toy/shift", "--method", "target_only", "--profile", "smoke", "--episodes", "1"]
    logs = {}
    for precision in PRECISIONS:
        runs = tmp_path / precision
        assert main(["run", *toy, "--runs-dir", str(runs), "--quiet", "--precision", precision]) == 0
        run_id = RunConfig(pair="toy/shift", method="target_only", profile="smoke", episodes=1,
                           precision=precision).run_id()
        record = json.loads((runs / run_id / "record.json").read_text())
        assert record["config"].get("precision", "fp32") == precision
        assert json.loads((runs / run_id / "config.json").read_text()).get("precision", "fp32") == precision
        logs[precision] = [json.loads(line) for line in (runs / run_id / "train_log.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert [r["step"] for r in logs["bf16"]] == [r["step"] for r in logs["fp32"]]
    assert all(math.isfinite(r["loss"]) for r in logs["bf16"]) and logs["bf16"] != logs["fp32"]
