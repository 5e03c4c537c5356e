"""The harness end to end on real runs at the `smoke` profile: run, resume, sweeps, executors."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.harness.config import RunConfig
from benchmark.harness.evaluate import EvalPool, EvalSpec, evaluate
from benchmark.analysis.stats import wilson_interval
from benchmark.harness.run import RECORD_SCHEMA, execute_run
from tasks.seeds import episode_seeds

PAIR = "lift/dynamics"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def record(runs_dir) -> dict:
    return execute_run(RunConfig(pair=PAIR, method="cfg_adda", profile="smoke"), runs_dir, progress=False)


def test_run_writes_a_complete_record(record, runs_dir):
    run_dir = runs_dir / record["run_id"]
    for name in ("config.json", "record.json", "train_log.jsonl", "done", "checkpoint"):
        assert (run_dir / name).exists(), name
    assert record["schema"] == RECORD_SCHEMA
    metrics = record["metrics"]
    assert metrics["probe_folds"] == 2 and metrics["replay_episodes"] == 4 and metrics["z_spread"] > 0
    target = record["eval"]["target"]
    assert target["n"] == 4 and len(target["episodes"]) == 4
    assert target["successes"] == sum(e["success"] for e in target["episodes"])
    assert target["success_rate"] == target["successes"] / target["n"]
    assert tuple(target["ci95"]) == pytest.approx(wilson_interval(target["successes"], target["n"]))
    assert set(record["eval"]) == {"target", "wall_s"}  # without the gap: the no-gap control's evaluation
    assert [e["seed"] for e in target["episodes"]] == episode_seeds("test", 0, 4)
    for key in ("align_wasserstein", "discern_mlp_cond", "structured_alignment", "raw_discern_mlp"):
        assert key in record["metrics"], key
    assert record["config"]["hparams"]["w"] is not None
    assert record["fingerprint"]["packages"]["robosuite"] == "1.5.2"
    demos = sorted((runs_dir / "_demos").glob("*.hdf5"))
    assert len(demos) == 5  # source, target, validation, and one replay set per domain
    assert record["timing"]["demos_s"] > 0 and record["timing"]["metrics_s"] > 0  # what the Cost tables sum


def test_finished_run_is_never_redone(record, runs_dir):
    path = runs_dir / record["run_id"] / "record.json"
    before = path.stat().st_mtime_ns
    again = execute_run(RunConfig(pair=PAIR, method="cfg_adda", profile="smoke"), runs_dir, progress=False)
    assert path.stat().st_mtime_ns == before
    assert again == record


def test_crashed_run_resumes_from_its_last_stage(record, runs_dir):
    run_dir = runs_dir / record["run_id"]
    train_mtime = (run_dir / "train_summary.json").stat().st_mtime_ns
    for name in ("eval.json", "metrics.json", "record.json", "done"):
        (run_dir / name).unlink()
    again = execute_run(RunConfig(pair=PAIR, method="cfg_adda", profile="smoke"), runs_dir, progress=False)
    assert (run_dir / "train_summary.json").stat().st_mtime_ns == train_mtime
    assert [e["success"] for e in again["eval"]["target"]["episodes"]] == \
        [e["success"] for e in record["eval"]["target"]["episodes"]]
    assert again["metrics"] == record["metrics"]
    for name in ("record.json", "done"):  # the metrics measured by an earlier process: their time is not known
        (run_dir / name).unlink()
    assert execute_run(RunConfig(pair=PAIR, method="cfg_adda", profile="smoke"), runs_dir,
                       progress=False)["timing"]["metrics_s"] is None


def test_config_hash_covers_numbers_not_execution():
    """Evaluation workers change nothing; the device and the training thread count change the order of
    floating-point sums, hence the numbers, so they are part of a run's identity."""
    base = RunConfig(pair=PAIR, method="cotrain", profile="smoke")
    assert base.run_id() == replace(base, workers=4).run_id()
    assert base.run_id() != replace(base, device="cuda").run_id()
    assert base.run_id() != replace(base, threads=2).run_id()
    assert base.run_id() != replace(base, seed=1).run_id()
    assert base.run_id() != replace(base, hparams=(("w", 0.2),)).run_id()
    assert base.run_id() != replace(base, magnitude=0.5).run_id()


def test_success_does_not_depend_on_workers_or_a_reused_pool(record, runs_dir):
    """Two pooled workers give the in-process episodes; an EvalPool keeps policy and envs across
    evaluations, and switching domain must rebuild the envs."""
    checkpoint = str(runs_dir / record["run_id"] / "checkpoint")
    target, source = (EvalSpec(checkpoint, PAIR, d, 1.0) for d in ("target", "source"))
    seeds = episode_seeds("test", 0, 8)
    with EvalPool(2) as pool:
        pooled = [evaluate(spec, seeds, progress=False, pool=pool) for spec in (target, source, target)]
    in_process = evaluate(target, seeds, workers=1, progress=False)
    assert [e["seed"] for e in in_process] == seeds
    assert pooled[0] == pooled[2] == in_process
    assert pooled[1] == evaluate(source, seeds, workers=1, progress=False)


def test_cli_bad_inputs_exit_nonzero_and_touch_nothing(tmp_path, capsys):
    from benchmark.cli import main

    cases = [
        (["run", "--pair", "lift/nope", "--runs-dir", str(tmp_path)], "unknown task pair"),
        (["run", "--pair", PAIR, "--method", "magic", "--runs-dir", str(tmp_path)], "unknown method"),
        (["run", "--pair", PAIR, "--magnitude", "1.5", "--runs-dir", str(tmp_path)], "outside [0, 1]"),
        (["run", "--pair", PAIR, "--set", "w=0", "--profile", "smoke", "--runs-dir", str(tmp_path)], "source_only"),
        (["run", "--pair", PAIR, "--set", "bogus=1", "--runs-dir", str(tmp_path)], "bogus"),
        (["leaderboard", str(tmp_path / "missing")], "not a directory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not any(tmp_path.iterdir())


def test_bad_grids_are_refused(tmp_path, capsys):
    from benchmark.cli import main

    bad = {
        "unknown key": "pairs: [lift/dynamics]\nmethods: [cotrain]\nepochs: 3\n",
        "unknown method": "pairs: [lift/dynamics]\nmethods: [magic]\n",
        "unknown task pair": "pairs: [nowhere]\nmethods: [cotrain]\n",
        "not valid YAML": "pairs: [lift/dynamics\n",
    }
    for message, text in bad.items():
        path = tmp_path / "grid.yaml"
        path.write_text(text)
        assert main(["sweep", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(path), "--executor", "slurm"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'slurm'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_bad_record_is_named(tmp_path, capsys):
    from benchmark.cli import main

    run = tmp_path / "abc"
    run.mkdir()
    (run / "record.json").write_text("{not json")
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "abc/record.json" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["record.json"]
