"""Gap ablations (`cotrain ablate`): the source policy is trained once per seed and evaluated in every cell, the
grid resumes, the reports carry every cell and the expert."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark.ablation.items import CellEval, ExpertEval
from benchmark.ablation.plan import Ablation, describe_level
from benchmark.ablation.report import _independent_excess, drop_correlations
from benchmark.analysis.stats import paired_bootstrap_stat
from benchmark.ablation.stages import load_spec, stage_ablations
from benchmark.cli import main
from benchmark.harness.config import RunConfig
from tasks import GAP_FACTORS

LADDER = (0.0, 0.25, 0.5, 0.75, 1.0)


def test_plan_trains_the_source_policy_once_per_seed_and_evaluates_it_in_every_cell():
    ablation = Ablation(task="lift", factors=("obs_bias", "action_latency", "embodiment_sawyer"), magnitudes=LADDER,
                        methods=("source_only", "cotrain"), seeds=(0, 1), episodes=3, profile="smoke")
    steps = GAP_FACTORS["action_latency"].max_steps
    assert ablation.levels("action_latency") == tuple(sorted({round(m * steps) / steps for m in LADDER}))
    assert ablation.levels("embodiment_sawyer") == (0.0, 1.0)  # categorical: off and on
    assert ablation.levels("obs_bias") == LADDER
    above_zero = [c for c in ablation.cells() if c[1] > 0]
    items = ablation.items()
    trained = [i for i in items if isinstance(i, RunConfig)]
    source = [i for i in trained if i.method == "source_only"]
    assert sorted(i.seed for i in source) == [0, 1] and all(i.pair == "lift" and i.magnitude == 0 for i in source)
    evaluations = [i for i in items if isinstance(i, CellEval)]
    assert {i.trained.run_id() for i in evaluations} == {i.run_id() for i in source}
    assert len(evaluations) == len(above_zero) * 2  # every cell above 0, per seed, once
    cotrain = [i for i in trained if i.method == "cotrain"]
    assert len(cotrain) == (len(above_zero) + 1) * 2  # magnitude 0 is one cell for every factor
    assert {i.pair for i in evaluations} == {i.pair for i in cotrain} - {"lift"}
    assert len([i for i in items if isinstance(i, ExpertEval)]) == (len(above_zero) + 1) * 2


def test_a_factor_set_moves_its_factors_together_and_shares_the_base_task():
    ablation = Ablation(task="lift", factors=("obs_bias", "action_latency", "obs_bias+action_latency",
                                              "embodiment_sawyer+obs_noise"),
                        magnitudes=LADDER, methods=("source_only",), seeds=(0,), episodes=3, profile="smoke")
    cells = {m: ablation.cell_pair("obs_bias+action_latency", m)[0] for m in ablation.levels("obs_bias+action_latency")}
    assert cells == {0.0: "lift", 0.25: "lift+action_latency@0.3333+obs_bias@0.25",
                     0.5: "lift+action_latency@0.6667+obs_bias@0.5", 0.75: "lift+action_latency@0.6667+obs_bias@0.75",
                     1.0: "lift+action_latency+obs_bias"}
    assert describe_level("obs_bias+action_latency", 0.25) == "action_latency 1 steps"
    # its categorical factor is on above 0, as that factor alone
    assert ablation.cell_pair("embodiment_sawyer+obs_noise", 0.25)[0] == "lift+embodiment_sawyer+obs_noise@0.25"
    evaluations = [i for i in ablation.items() if isinstance(i, CellEval)]
    assert len({i.trained.run_id() for i in evaluations}) == 1  # one source policy for singles and sets alike
    assert len(evaluations) == len({i.pair for i in evaluations}) == len([c for c in ablation.cells() if c[1] > 0])
    # a set of two factors that step the same: ladder magnitudes with one physical value are one cell, the largest
    steps_only = Ablation(task="lift", factors=("embodiment_sawyer+action_latency",), magnitudes=LADDER,
                          methods=("source_only",), seeds=(0,), episodes=3, profile="smoke")
    assert steps_only.levels("embodiment_sawyer+action_latency") == (0.0, 0.25, 0.75, 1.0)


def test_compounding_reads_independent_failures_as_none_and_shared_ones_as_less():
    """Start states fail under factor a where u < 0.3 and under b where v < 0.5, u and v independent: together they
    fail where either does, as independence predicts; if b fails the very start states a fails, the set costs less."""
    rng = np.random.default_rng(0)
    u, v = rng.random((3, 400)), rng.random((3, 400))
    base = {s: np.ones(400) for s in range(3)}
    a = {s: (u[s] >= 0.3).astype(float) for s in range(3)}
    b = {s: (v[s] >= 0.5).astype(float) for s in range(3)}
    either = {s: a[s] * b[s] for s in range(3)}
    excess, lo, hi = paired_bootstrap_stat([base, a, b, either], _independent_excess)
    assert lo < 0 < hi and abs(excess) < 0.03
    same = {s: (u[s] >= 0.5).astype(float) for s in range(3)}  # b's failures inside a's
    excess, lo, hi = paired_bootstrap_stat([base, a, same, {s: a[s] * same[s] for s in range(3)}], _independent_excess)
    assert hi < 0 and excess == pytest.approx(np.mean([a[s].mean() * same[s].mean() - same[s].mean()
                                                       for s in range(3)]), abs=0.02)
    nothing = {s: np.zeros(400) for s in range(3)}  # together the task breaks: they compound
    assert paired_bootstrap_stat([base, a, b, nothing], _independent_excess)[1] > 0.25


def test_the_representation_is_read_against_the_drop_over_cells_above_zero():
    rows = [{"method": "source_only", "magnitude": m, "drop": d, "align_wasserstein": a, "raw_discern_mlp": r}
            for m, d, a, r in [(0.0, math.nan, 0.0, 0.5), (0.5, 0.1, 0.2, 0.9), (1.0, 0.6, 0.5, 0.6),
                               (0.5, 0.3, 0.3, 0.7), (1.0, 0.9, 0.8, 0.8)]]
    rows += [{**r, "method": "expert"} for r in rows] + [{**r, "method": "cotrain"} for r in rows[:3]]
    assert drop_correlations(rows) == [  # magnitude 0 left out; cotrain's 2 cells too few; the expert has no z
        {"method": "source_only", "measure": "align_wasserstein", "rho": pytest.approx(1.0), "cells": 4},
        {"method": "source_only", "measure": "raw_discern_mlp", "rho": pytest.approx(-0.4), "cells": 4}]
    # equal drops tie, whatever the float rounding of the differences that made them
    tied = [{**r, "drop": 0.3} if r["drop"] == 0.6 else r for r in rows]
    noisy = [{**r, "drop": 0.3 + 1e-15} if r["drop"] == 0.6 and r["magnitude"] == 1.0 else r for r in rows]
    assert drop_correlations(noisy) == drop_correlations(tied)


@pytest.mark.parametrize("factors,message", [
    (("obs_bias+obs_bias",), "factor set 'obs_bias+obs_bias' names a factor twice"),
    (("obs_bias+gravity",), "unknown gap factor 'gravity'"),
    (("embodiment_sawyer+embodiment_ur5e",), "both replace the robot"),
])
def test_a_bad_factor_set_is_refused_naming_it(factors, message):
    with pytest.raises((KeyError, ValueError)) as info:
        Ablation(task="lift", factors=factors, methods=("source_only",), seeds=(0,), episodes=3, profile="smoke")
    assert message in str(info.value)


def test_reference_spec_builds_and_its_second_stage_waits_for_the_first(tmp_path):
    spec = load_spec()
    first, second = list(spec["stages"])
    ablations = stage_ablations(spec, first, tmp_path)
    assert {a.task for a in ablations} == {"lift", "stack"}
    assert all(len(a.seeds) >= 3 and set(a.methods) == {"source_only"} for a in ablations)
    with pytest.raises(ValueError, match="ranks factors by stage .*: run that stage first"):
        stage_ablations(spec, second, tmp_path)


def test_one_task_of_a_spec_runs_its_later_stage_once_its_own_first_stage_is_done(tmp_path):
    spec, committed = load_spec(), Path(__file__).parents[1] / "results" / "ablation" / "runs"
    (lift,) = stage_ablations(spec, "methods", committed, "lift")  # whatever the other task's state
    assert lift.task == "lift" and lift.factors == ("embodiment_sawyer", "obs_bias", "action_noise")
    with pytest.raises(ValueError, match="the sensitivity of lift has no drop yet"):
        stage_ablations(spec, "methods", tmp_path, "lift")
    with pytest.raises(ValueError, match="task 'square' is not in the spec; its tasks: lift, stack"):
        stage_ablations(spec, "sensitivity", tmp_path, "square")


def test_the_compounding_spec_reads_its_sets_against_the_reference_ablations_own_cells(tmp_path):
    spec = load_spec(Path(__file__).parents[1] / "benchmark" / "ablation" / "compounding.yaml")
    (sets,) = stage_ablations(spec, "compounding", tmp_path)
    reference = next(a for a in stage_ablations(load_spec(), "sensitivity", tmp_path) if a.task == sets.task)
    singles = {sets.item(m, s, f, level).run_id() for m in (*sets.methods, "expert") for s in sets.seeds
               for f, level in sets.cells() if "+" not in f}  # every item of a factor alone, the trainings too
    assert singles and singles <= {i.run_id() for i in reference.items()}
    assert {f for f in sets.factors if "+" not in f} >= {n for f in sets.factors for n in f.split("+")}


@pytest.mark.parametrize("report", ["sensitivity/lift", "sensitivity/stack", "methods/lift", "methods/stack",
                                    "compounding/lift"])
def test_a_committed_ablation_report_is_written_again_from_its_committed_runs(report, tmp_path, monkeypatch):
    """Each committed ablation report, rerun by its own command (with `--report-only`) from the committed
    records, is the committed one, its Cost table included (the command's line aside: it names the folder)."""
    import shlex

    root = Path(__file__).parents[1]
    committed = (root / "results" / "ablation" / report / "summary.md").read_text()
    line = next(x for x in committed.splitlines() if x.startswith("Command: `")).split("`")[1]
    monkeypatch.chdir(root)  # the command's spec and runs folder are relative to the repository
    assert main([*shlex.split(line)[1:], "--report-only", "--out", str(tmp_path)]) == 0
    again = (tmp_path / report / "summary.md").read_text()

    def body(text: str) -> list[str]:
        return [x for x in text.splitlines() if not x.startswith("Command: `")]
    assert body(again) == body(committed) and "## Cost" in committed


def test_a_task_trains_at_its_own_demo_counts_and_length_and_a_misspelt_key_is_refused(tmp_path):
    spec = load_spec()
    for ablation in stage_ablations(spec, "sensitivity", tmp_path):
        own = spec["tasks"][ablation.task]
        item = ablation.item("source_only", ablation.seeds[0], ablation.factors[0], 1.0)
        trained = item.trained if hasattr(item, "trained") else item
        assert (trained.n_target, trained.n_source) == (own["n_target"], own["n_source"])
        assert trained.steps == own.get("steps")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**spec, "tasks": {"lift": {"n_targets": 10}}}))
    with pytest.raises(ValueError, match="task 'lift': unknown keys n_targets"):
        load_spec(bad)


def _folders(runs: Path) -> dict[str, dict]:
    return {p.name: json.loads((p / "config.json").read_text()) for p in runs.iterdir() if (p / "config.json").exists()}


@pytest.mark.slow  # five smoke trainings, three evaluations and four expert cells: about a minute on one core
def test_ablation_end_to_end_resumes_and_reports_every_cell(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    argv = ["ablate", "--task", "lift", "--factors", "obs_bias", "action_latency", "obs_bias+action_latency",
            "--magnitudes", "0", "1",
            "--methods", "source_only", "target_only", "--seeds", "0", "--episodes", "2", "--profile", "smoke",
            "--runs-dir", str(runs), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    folders = _folders(runs)
    source = [k for k, c in folders.items() if c["method"] == "source_only" and "checkpoint_of" not in c]
    assert len(source) == 1  # trained once for the seed ...
    evaluations = [c for c in folders.values() if "checkpoint_of" in c]
    assert len(evaluations) == 3 and all(c["checkpoint_of"] == source[0] for c in evaluations)  # ... evaluated per cell
    assert "lift+action_latency+obs_bias" in {c["pair"] for c in evaluations}  # the set: its factors together
    measured = [json.loads((runs / c["run_id"] / "metrics.json").read_text()) for c in evaluations]
    # ... and measured there
    assert all(0.0 <= m["raw_discern_mlp"] <= 1.0 and m["align_wasserstein"] >= 0.0 for m in measured)
    trained = runs / source[0]
    stamps = {p: p.stat().st_mtime_ns for p in (trained / "train_summary.json", trained / "checkpoint" / "state.pt")}
    capsys.readouterr()

    assert main(argv) == 0
    assert "0 to run" in capsys.readouterr().out
    assert _folders(runs) == folders
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # an evaluation finished before it measured (an older suite's) is measured on the next call, its evaluation kept
    cell = runs / evaluations[0]["run_id"]
    (cell / "metrics.json").unlink()
    evaluated = (cell / "eval.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert "1 to run" in capsys.readouterr().out
    assert json.loads((cell / "metrics.json").read_text()) == measured[0]
    assert json.loads((cell / "record.json").read_text())["metrics"] == measured[0]
    assert (cell / "eval.json").stat().st_mtime_ns == evaluated and {p: p.stat().st_mtime_ns for p in stamps} == stamps

    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    cells = {(r["factor"], float(r["magnitude"])) for r in rows}
    assert cells == {(f, m) for f in ("obs_bias", "action_latency", "obs_bias+action_latency") for m in (0.0, 1.0)}
    for method in ("source_only", "target_only", "expert"):
        mine = [r for r in rows if r["method"] == method]
        assert {(r["factor"], float(r["magnitude"])) for r in mine} == cells
        assert all(int(r["episodes"]) == 2 and not math.isnan(float(r["success"])) for r in mine)
        assert all(math.isnan(float(r["align_wasserstein"])) == (method == "expert") for r in mine)
    summary = (out / "summary.md").read_text()
    assert "## Expert" in summary and "## Sensitivity of the source policy" in summary
    assert "## Factor sets: do their drops compound?" in summary  # the set read against its factors alone
    cost = summary.split("## Cost")[1]  # each item once: the source policy trained once, evaluated in 3 cells
    assert "| source_only | 4 (1) |" in cost and "| target_only | 4 (4) |" in cost and "| all | 8 (5) |" in cost
    assert "The expert's 4 cells" in cost
    against = summary.split("## Against `target_only`")[1].split("##")[0]
    assert against.count("| (base task) | 0 | source_only |") == 1  # the shared magnitude-0 cell, once
    assert against.count("| source_only |") == 4  # and each cell above 0
    with (out / "compounding.csv").open() as f:
        compounded = list(csv.DictReader(f))
    assert {(r["factor"], float(r["magnitude"]), r["method"]) for r in compounded} == {
        ("obs_bias+action_latency", 1.0, m) for m in ("source_only", "target_only")}
    assert all((out / name).stat().st_size > 0 for name in
               ("success_vs_magnitude.png", "sensitivity.png", "representation_vs_magnitude.png", "sensitivity.csv"))


def test_an_ablations_cost_counts_each_item_once():
    """The base task's cell is every factor's: its records are counted once, and the expert's cells apart."""
    from benchmark.ablation.report import EXPERT, costs
    from benchmark.analysis.cost import cost

    def record(run_id, method, train_s, eval_s):
        return {"run_id": run_id, "config": {"method": method, "threads": 1, "workers": 2},
                "timing": {"train_s": train_s, "eval_s": eval_s}, "train": {} if train_s else None}

    base, cell = record("base", "source_only", 3600.0, 900.0), record("cell", "source_only", 0.0, 900.0)
    expert = {"config": {"run_id": "e0"}, "eval": {"wall_s": 1800.0}}
    found = {("obs_bias", 0.0, "source_only"): {0: base}, ("action_noise", 0.0, "source_only"): {0: base},
             ("obs_bias", 1.0, "source_only"): {0: cell},
             ("obs_bias", 0.0, EXPERT): {0: expert}, ("action_noise", 0.0, EXPERT): {0: expert}}
    records, cells, hours = costs(found)
    assert sorted(r["run_id"] for r in records) == ["base", "cell"] and (cells, hours) == (1, 0.5)
    row = cost(records, by="method").set_index("method").loc["source_only"]  # evaluation x its 2 workers
    assert (row.runs, row.trained, row.train_h, row.eval_h) == (2, 1, 1.0, 1.0)


def test_every_success_panel_spans_the_whole_magnitude_range():
    """A factor measured at magnitude 0 alone (its cells to come) is drawn on the same 0-1 axis as the others."""
    from benchmark.ablation.figures import success_figure

    row = dict(method="source_only", success=0.9, ci_lo=0.8, ci_hi=0.95)
    rows = [{**row, "factor": "object_mass", "magnitude": m} for m in (0.0, 0.5, 1.0)]
    rows.append({**row, "factor": "obs_bias", "magnitude": 0.0})
    fig = success_figure(rows)
    lows, highs = zip(*(ax.get_xlim() for ax in fig.axes[:2]))
    assert max(lows) < 0.0 and min(highs) > 1.0


def test_every_factor_has_a_line_of_its_own_in_the_representation_figure():
    """Thirteen factors (the low-dimensional ones) draw thirteen distinct lines, beyond the colour cycle's ten."""
    from benchmark.ablation.figures import representation_figure

    rows = [dict(factor=f"factor_{i}", method="source_only", magnitude=m, raw_discern_mlp=0.5 + m / 4,
                 align_wasserstein=m) for i in range(13) for m in (0.0, 1.0)]
    lines = representation_figure(rows).axes[0].get_lines()
    looks = {(str(line.get_color()), line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(lines) == 13 and len(looks) == 13
