"""Calibration: learning curves on validation start states, the warm-started ladder, the chosen length."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from baselines.checkpoints import STATE_FILE
from benchmark.harness.calibrate import (SOURCE_EVAL, Calibration, _converged, _curve_row, _gain_text, curves,
                                         run_calibration, write_report)
from benchmark.harness.run import execute_run, read_json

PAIR = "lift/dynamics"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("calibration")
    cal = Calibration(PAIR, ladder=(20, 40), seeds=(0,), episodes=4, profile="smoke", methods=("source_only",))
    run_calibration(cal, runs_dir, progress=False, log=lambda *a: None)
    return cal, runs_dir


def test_a_warm_started_run_is_the_run_trained_from_scratch(calibrated, tmp_path):
    """The 40-step run of the ladder resumed from the 20-step run's checkpoint: the same weights and the
    same episodes as 40 steps trained in one go."""
    cal, runs_dir = calibrated
    cfg = cal.run("source_only", 0, 40)
    laddered = runs_dir / cfg.run_id()
    assert read_json(laddered / "train_summary.json")["start_step"] == 20
    fresh = execute_run(cfg, tmp_path, progress=False)
    assert read_json(tmp_path / cfg.run_id() / "train_summary.json")["start_step"] == 0
    assert fresh["eval"]["target"] == read_json(laddered / "record.json")["eval"]["target"]
    a = torch.load(laddered / "checkpoint" / STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / cfg.run_id() / "checkpoint" / STATE_FILE, weights_only=True)
    for key, value in a["policy"].items():
        assert torch.equal(value, b["policy"][key]), key


def test_curves_use_validation_states_and_measure_source_only_in_both_domains(calibrated, tmp_path):
    cal, runs_dir = calibrated
    data = curves(cal, runs_dir)
    info = data["methods"]["source_only"]
    assert list(data["methods"]) == ["source_only"]
    assert [row["steps"] for row in info["curve"]] == [20, 40] and all(r["seeds"] == 1 for r in info["curve"])
    assert len(info["gains"]) == 1 and all("source_success" in row for row in info["curve"])
    assert all(row["source_seeds"] == 1 for row in info["curve"])
    record = read_json(runs_dir / cal.run("source_only", 0, 20).run_id() / "record.json")
    assert record["config"]["eval_split"] == "validation" and record["config"]["steps"] == 20
    assert read_json(runs_dir / cal.run("source_only", 0, 20).run_id() / SOURCE_EVAL)["n"] == 4
    text = write_report(cal, runs_dir, tmp_path / "report").read_text()
    assert text.count("| source_only |") == 2 and "Chosen training length" in text


def test_the_report_states_the_command_that_runs_its_calibration(calibrated, tmp_path):
    """The command in the report, parsed by the CLI, is the calibration it reports (non-default options included)."""
    import shlex

    from benchmark.cli import build_parser
    from benchmark.harness.calibrate import command, report_dir

    cal, runs_dir = calibrated
    line = command(cal, runs_dir, tmp_path / "report")
    assert line in write_report(cal, runs_dir, tmp_path / "report").read_text()
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert Calibration(args.pair, ladder=tuple(args.ladder), seeds=tuple(args.seeds), episodes=args.episodes,
                       methods=tuple(args.methods), profile=args.profile) == cal
    assert args.runs_dir == str(runs_dir)
    assert args.out == str(tmp_path / "report")  # a report beside the pair's own names its folder
    own = f"cotrain calibrate {PAIR} --runs-dir {runs_dir}"
    assert command(Calibration(PAIR), runs_dir) == command(Calibration(PAIR), runs_dir, report_dir(PAIR)) == own


@pytest.mark.parametrize("folder", ["lift_dynamics", "lift_sensing", "lift_sensing_dynamics", "stack_dynamics",
                                    "lift_visual-48px", "lift_visual-48px_cotrain6000"])
def test_a_committed_calibration_report_is_written_again_from_its_committed_runs(folder, tmp_path, monkeypatch):
    """The calibrations the study's training lengths rest on: each report, rerun by its own command (with
    `--report-only`) from the committed records, is the committed one (the command's line aside: it names the
    folder written)."""
    import shlex

    from benchmark.cli import main

    root = Path(__file__).parents[1]
    committed = (root / "results" / "calibration" / folder / "README.md").read_text()
    line = next(x for x in committed.splitlines() if x.startswith("Command: `")).split("`")[1]
    monkeypatch.chdir(root)  # the command's runs folder is relative to the repository
    main([*shlex.split(line)[1:], "--report-only", "--out", str(tmp_path)])
    again = (tmp_path / "README.md").read_text()

    def body(text: str) -> list[str]:
        return [x for x in text.splitlines() if not x.startswith("Command: `")]
    assert body(again) == body(committed) and len(body(committed)) > 10


def test_the_chosen_length_is_the_first_from_which_no_doubling_gains_anything_resolved():
    ladder = (500, 1000, 2000, 4000)
    rising = {"gain": 0.2, "lo": 0.05, "hi": 0.3}
    flat = {"gain": 0.02, "lo": -0.04, "hi": 0.08}

    def curve(*shapes):
        return [dict(shape, **{"from": n}) for shape, n in zip(shapes, ladder)]

    assert _converged(ladder, curve(rising, flat, flat)) == 1000
    assert _converged(ladder, curve(flat, flat, flat)) == 500
    assert _converged(ladder, curve(flat, rising, flat)) == 2000  # a pause at 500, then a resolved gain
    assert _converged(ladder, curve(rising, flat, rising)) is None  # still rising at the ladder's end
    assert _converged(ladder, curve(rising, rising, rising)) is None
    assert _converged(ladder, curve(rising, flat)) is None  # incomplete


def test_a_source_success_over_fewer_seeds_than_its_row_says_so():
    row = {"steps": 3000, "seeds": 2, "success": 0.12, "ci95": (0.07, 0.19), "source_success": 0.93,
           "source_seeds": 2, "frozen_success": 0.52, "frozen_seeds": 1}
    assert _curve_row("source_only", row, None)[4] == "0.930 (frames frozen 0.520 on 1 of 2 seeds)"
    assert _curve_row("source_only", {**row, "source_seeds": 1}, None)[4].startswith("0.930 on 1 of 2 seeds (")


def test_a_zero_width_gain_interval_is_not_printed_as_an_interval():
    assert _gain_text({"gain": 0.0, "lo": 0.0, "hi": 0.0}) == "+0.000 (no interval: every resample gives it)"
    assert _gain_text({"gain": 0.05, "lo": -0.01, "hi": 0.12}) == "+0.050 [-0.010, +0.120]"


@pytest.mark.parametrize("bad", [dict(ladder=(500, 900)), dict(ladder=(500,)), dict(seeds=()),
                                 dict(episodes=0), dict(pair="lift/nonsense"), dict(methods=("ot",))])
def test_a_bad_calibration_is_refused_naming_the_input(bad):
    with pytest.raises((ValueError, KeyError)):
        Calibration(**{"pair": PAIR, **bad})


def test_the_leaderboard_criteria_are_read_at_the_chosen_length_and_a_stale_calibration_says_so(tmp_path, monkeypatch):
    import benchmark.harness.calibrate as C

    def row(steps, success, source=None, frozen=None):
        return {"steps": steps, "seeds": 3, "success": success, **({"source_success": source} if source else {}),
                **({"frozen_success": frozen} if frozen else {})}

    data = {"steps": 2000, "profile": "quick", "n_target": 10, "n_source": 100, "methods": {
        "target_only": {"curve": [row(1000, 0.9), row(2000, 0.35)]},
        "source_only": {"curve": [row(2000, 0.9, 0.95)]}, "cotrain": {"curve": [row(2000, 0.5)]}}}
    text = "\n".join(C.facts(data))
    assert "target_only 0.35 in the target: meets [0.2, 0.7]" in text  # read at 2000 steps, not 1000
    assert "a drop of 0.05: misses >= 0.15" in text and "M/N = 10: meets" in text
    assert "reads its frames" not in text  # a low-dimensional pair has no frames to freeze
    data["methods"]["source_only"]["curve"] = [row(2000, 0.4, 0.42, 0.41)]  # an image policy blind to its frames
    assert "source_only reads its frames: 0.41 in the source with them frozen against 0.42, a drop of 0.01: " \
           "misses >= 0.15" in "\n".join(C.facts(data))
    data["methods"]["source_only"]["curve"] = [row(2000, 0.4, 0.9, 0.3)]
    assert "a drop of 0.60: meets >= 0.15" in "\n".join(C.facts(data))
    monkeypatch.setattr(C, "REPORTS", tmp_path)
    assert C.committed_facts("lift/sensing") is None
    (tmp_path / "lift_sensing").mkdir()
    now = Calibration("lift/sensing").run("target_only", 0, 500)
    write = lambda **kw: (tmp_path / "lift_sensing" / "curves.json").write_text(json.dumps({**data, **kw}))
    write(pair_version=now.hashed_dict()["pair_version"], n_target=now.n_target, n_source=now.n_source)
    assert C.committed_facts("lift/sensing")[0].startswith("chosen training length 2000 steps")
    write(pair_version=now.hashed_dict()["pair_version"] - 1, n_target=now.n_target, n_source=now.n_source)
    assert C.committed_facts("lift/sensing")[0].startswith("stale: calibrated at version")


def test_a_source_run_committed_before_its_source_evaluation_is_trained_again_for_it(calibrated, tmp_path):
    """A finished `source_only` run whose folder holds its small files only (committed before its success in the
    source was cached): the calibration trains it again for its checkpoint and writes the evaluation it lacked."""
    import shutil

    cal, runs_dir = calibrated
    for steps in cal.ladder:
        name = cal.run("source_only", 0, steps).run_id()
        shutil.copytree(runs_dir / name, tmp_path / name, ignore=shutil.ignore_patterns("checkpoint", SOURCE_EVAL))
    run_calibration(cal, tmp_path, progress=False, log=lambda *a: None)
    for steps in cal.ladder:
        name = cal.run("source_only", 0, steps).run_id()
        assert read_json(tmp_path / name / SOURCE_EVAL) == read_json(runs_dir / name / SOURCE_EVAL)
        assert (tmp_path / name / "checkpoint").exists()
