"""The leaderboard track: its grid is the protocol, its records name it, and a board takes its records only."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.analysis.leaderboard import aggregate
from benchmark.analysis.records import load_records
from benchmark.analysis.rules import Protocol
from benchmark.analysis.submit import NOT_HASHED, board_track, submit
from benchmark.cli import main
from benchmark.harness.config import PROFILES, RunConfig, content_hash
from benchmark.harness.grid import NoGapEval, grid_from_dict, load_grid
from benchmark.harness.gridspec import GridError
from benchmark.harness.sweep import wall_seconds
from tasks import get_pair

SMOKE = {"name": "leaderboard", "budget": "smoke"}
MINI = Path(__file__).parent / "data" / "mini_sweep"


def test_the_leaderboard_track_is_the_protocol():
    from baselines import METHODS
    from baselines.data import default_ratio, natural_ratio, odds_rule
    from benchmark.harness.calibrate import Calibration

    union = load_grid(track="leaderboard", budget="full")
    assert union.track == {"name": "leaderboard", "budget": "full"}
    grid = union.parts[0]  # every method at every pair; the other parts add seeds where the spread needs them
    from benchmark.external.rules import eval_protocol

    assert eval_protocol("full").seeds == grid.seeds  # a policy from outside is evaluated as every method is
    assert len(grid.pairs) >= 3 and "stack" in {get_pair(p).base_task for p in grid.pairs}
    assert len({get_pair(p).base_task for p in grid.pairs}) >= 2
    assert set(grid.methods) == set(METHODS.names()) and len(grid.methods) == 8
    assert len(grid.seeds) >= 5 and grid.episodes == 200
    assert grid.profile == Calibration(grid.pairs[0]).profile  # the size its steps were calibrated at
    assert (grid.eval_split, grid.checkpoint_rule) == ("test", "last")
    assert set(grid.steps) == set(grid.pairs)  # one (calibrated) step count per pair, null until then
    runs = grid.runs()
    for cfg in runs:  # each mixing method at its default w, inside the ratio window
        n, m = cfg.resolved().n_target, cfg.resolved().n_source
        w = cfg.method_hparams()["w"]
        if METHODS[cfg.method].mixes:
            assert w == default_ratio(n, m) and natural_ratio(n, m) < w < odds_rule(n, m)
    trained = {(c.pair, c.method, c.magnitude, c.seed) for c in runs}
    assert len(trained) == len(runs) == len(grid.pairs) * len(grid.seeds) * 9
    for pair in grid.pairs:  # the no-gap controls: cotrain trained at magnitude 0, source_only evaluated there
        for seed in grid.seeds:
            assert (pair, "cotrain", 0.0, seed) in trained and (pair, "source_only", 0.0, seed) not in trained
    evaluations = grid.evaluations()
    assert sorted((e.trained.pair, e.trained.seed) for e in evaluations) == sorted(
        (c.pair, c.seed) for c in runs if c.method == "source_only")
    extra = [c for c in union.runs() if c.run_id() not in {r.run_id() for r in runs}]
    like = {(c.pair, c.method, c.magnitude): replace(c, seed=0).run_id() for c in runs}
    for cfg in extra:  # more seeds of the protocol's own runs, nothing else
        assert cfg.seed not in grid.seeds
        assert like[(cfg.pair, cfg.method, cfg.magnitude)] == replace(cfg, seed=0).run_id()
    assert {e.run_id() for e in union.evaluations()} == {e.run_id() for e in evaluations}


@pytest.mark.parametrize("change,message", [
    ({"nogap": {"cotrain": "evaluate"}}, "needs a policy that does not depend on the target"),
    ({"nogap": {"ot": "retrain"}}, "`nogap.ot`: 'ot' is not one of the grid's methods"),
    ({"nogap": {"cotrain": "again"}}, "`nogap.cotrain` must be one of retrain, evaluate"),
    ({"checkpoint_rule": "best_val", "nogap": {"source_only": "evaluate"}}, "without target data under the `last`"),
    ({"checkpoint_rule": "first"}, "`checkpoint_rule` must be one of last, best_val"),
    ({"steps": {"lift/sensing": 100}}, "`steps.lift/sensing`: 'lift/sensing' is not one of the grid's pairs"),
    ({"steps": {"lift/dynamics": 0}}, "`steps.lift/dynamics` must be an integer >= 1 or null"),
])
def test_the_new_grid_keys_are_checked(change, message):
    spec = {"pairs": ["lift/dynamics"], "methods": ["source_only", "cotrain"], **change}
    with pytest.raises(GridError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grid_from_dict(spec)


def test_steps_per_pair_make_new_runs_only_where_they_depart_from_the_profile():
    base = {"pairs": ["lift/dynamics"], "methods": ["cotrain"], "profile": "smoke"}
    plain = grid_from_dict(base).runs()
    same = grid_from_dict({**base, "steps": {"lift/dynamics": PROFILES["smoke"].steps}}).runs()
    longer = grid_from_dict({**base, "steps": {"lift/dynamics": 2 * PROFILES["smoke"].steps}}).runs()
    assert [c.run_id() for c in same] == [c.run_id() for c in plain]
    assert longer[0].steps == 2 * PROFILES["smoke"].steps and longer[0].run_id() != plain[0].run_id()


def _record(item: RunConfig | NoGapEval, track: dict | None, successes: int = 1) -> dict:
    """A record of a run of the grid as the harness writes it, with made-up outcomes on its test start states."""
    from benchmark.harness.evaluate import summarize
    from tasks.seeds import episode_seeds

    cfg = item.trained if isinstance(item, NoGapEval) else item
    n = cfg.resolved().episodes
    episodes = [{"seed": int(s), "success": i < successes, "length": 50}
                for i, s in enumerate(episode_seeds("test", cfg.seed, n))]
    config = {**item.to_json(), "w": cfg.method_hparams()["w"]}
    return {"schema": 2, "run_id": config["run_id"], "config": config, "eval": {"target": summarize(episodes)},
            "metrics": {}, "target_error": None, "track": track}


def _write(records: list[dict], folder: Path) -> Path:
    for rec in records:
        (folder / rec["run_id"]).mkdir(parents=True)
        (folder / rec["run_id"] / "record.json").write_text(json.dumps(rec))
    return folder


def _smoke_records() -> list[dict]:
    grid = load_grid(track="leaderboard", budget="smoke")
    return [_record(item, SMOKE) for item in [*grid.runs(), *grid.evaluations()]]


def _rehashed(rec: dict, **changes) -> dict:
    """`rec` with config changes and the run id its new config hashes to (so only the track's rules refuse it)."""
    from benchmark.harness.evaluate import summarize

    rec = json.loads(json.dumps(rec))
    rec["config"].update(changes)
    if "episodes" in changes:
        rec["eval"]["target"] = summarize(rec["eval"]["target"]["episodes"][:changes["episodes"]])
    rec["run_id"] = rec["config"]["run_id"] = content_hash({k: v for k, v in rec["config"].items()
                                                            if k not in NOT_HASHED})
    return rec


@pytest.mark.parametrize("changes,reason", [
    ({"episodes": 2}, "2 test episodes per seed, the track's rule is 3"),
    ({"checkpoint_rule": "best_val"}, "checkpoint rule 'best_val', the track's is 'last'"),
    ({"eval_split": "validation"}, "evaluated on validation start states; a board reports test ones only"),
    ({"profile": "quick"}, "profile 'quick', the track's is 'smoke'"),
    ({"seed": 7}, "seed 7 is not one of the track's (0)"),
    ({"method": "ot"}, "method 'ot' is not one of the track's (source_only, cotrain)"),
    ({"pair": "lift/sensing"}, "pair 'lift/sensing' is not one of the track's (lift/dynamics)"),
    ({"n_target": 3}, "not one of the track's runs"),
])
def test_a_record_breaking_its_tracks_rules_is_refused_with_the_reason(changes, reason, tmp_path):
    records = _smoke_records()
    cotrain = next(i for i, r in enumerate(records) if r["config"]["method"] == "cotrain")
    records[cotrain] = _rehashed(records[cotrain], **changes)
    with pytest.raises(ValueError) as err:
        submit([_write(records, tmp_path / "runs")], tmp_path / "board")
    assert f"{records[cotrain]['run_id']}: {reason}" in str(err.value)
    assert "track 'leaderboard' (budget 'smoke')" in str(err.value)
    assert not (tmp_path / "board").exists()


def test_a_board_takes_the_whole_grid_of_each_method_of_its_track_only(tmp_path, capsys):
    records = _smoke_records()
    control = next(r for r in records if r["config"]["method"] == "cotrain" and r["config"]["magnitude"] == 0)
    evaluation = next(r for r in records if "checkpoint_of" in r["config"])
    for missing, named in ((control, "cotrain: 1 of the track 'leaderboard' (budget 'smoke')'s runs missing: "
                                     "lift/dynamics m=0 seed=0"),
                           (evaluation, "source_only: 1 of the track 'leaderboard' (budget 'smoke')'s runs "
                                        "missing: lift/dynamics m=0 seed=0 (no-gap evaluation)")):
        with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
            submit([_write([r for r in records if r is not missing], tmp_path / missing["run_id"])], tmp_path / "b")
    board = tmp_path / "board"
    runs = _write(records, tmp_path / "runs")
    assert main(["submit", str(runs), "--leaderboard", str(board)]) == 0
    assert board_track(board) == SMOKE and len(load_records(board / "records")) == len(records)
    # the source_only no-gap evaluation is its row's control: the drop is measured
    table = aggregate(load_records(board / "records"))
    assert table.query("method == 'source_only' and magnitude == 1.0").drop_vs_nogap.notna().all()

    study = _write([{**records[0], "track": {"name": "study", "budget": "smoke"}}], tmp_path / "study")
    untracked = _write([{**records[0], "track": None}], tmp_path / "none")
    for folder, label in ((study, "track 'study' (budget 'smoke')"), (untracked, "no track")):
        capsys.readouterr()
        assert main(["submit", str(folder), "--leaderboard", str(board)]) == 2
        assert (f"the records were made under {label}, but {board} is the board of track 'leaderboard' "
                f"(budget 'smoke')") in capsys.readouterr().err
    with pytest.raises(ValueError, match="records of several tracks"):
        submit([study, _write(records[1:], tmp_path / "others")], tmp_path / "mixed")
    # a board of records made under no track takes none of the track's
    lenient = Protocol(profile="quick", min_seeds=2, min_episodes=10, pairs=("lift/dynamics",), expert_version=1)
    submit([MINI], tmp_path / "untracked", lenient)
    assert board_track(tmp_path / "untracked") is None
    with pytest.raises(ValueError, match="made under track 'leaderboard' .* the board of no track"):
        submit([runs], tmp_path / "untracked", lenient)
    assert len(load_records(board / "records")) == len(records)


@pytest.mark.slow
def test_the_smoke_budget_sweeps_names_its_track_and_is_accepted(tmp_path):
    """`cotrain sweep --track leaderboard --budget smoke`, then `cotrain submit`: real runs (under a minute on 2 cores)."""
    from benchmark.harness.run import execute_run

    runs, board = tmp_path / "runs", tmp_path / "board"
    assert main(["sweep", "--track", "leaderboard", "--budget", "smoke", "--runs-dir", str(runs), "--quiet"]) == 0
    records = load_records(runs)
    assert len(records) == 4 and all(r["track"] == SMOKE for r in records)
    evaluation = next(r for r in records if "checkpoint_of" in r["config"])
    trained = next(r for r in records if r["run_id"] == evaluation["config"]["checkpoint_of"])
    assert (trained["config"]["method"], trained["config"]["magnitude"], evaluation["config"]["magnitude"]) == (
        "source_only", 1.0, 0.0)
    assert evaluation["train"] is None and not (runs / evaluation["run_id"] / "checkpoint").exists()
    assert main(["submit", str(runs), "--leaderboard", str(board)]) == 0
    assert board_track(board) == SMOKE
    # source_only trained again at magnitude 0 is the policy evaluated there: no retraining was needed
    grid = load_grid(track="leaderboard", budget="smoke")
    source_only = next(c for c in grid.runs() if c.method == "source_only")
    retrained = execute_run(replace(source_only, magnitude=0.0), tmp_path / "retrained", progress=False)
    assert retrained["track"] is None
    assert retrained["eval"]["target"]["episodes"] == evaluation["eval"]["target"]["episodes"]


def test_a_sweep_refuses_a_pair_whose_steps_are_pending_and_runs_the_others(tmp_path, capsys):
    import yaml

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"pairs": ["lift/dynamics", "lift/sensing"], "methods": ["source_only"],
                                    "profile": "smoke", "episodes": 1, "steps": {"lift/sensing": None}}))
    argv = ["sweep", str(grid), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 2
    assert "lift/sensing: training steps pending" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing ran
    assert main(argv + ["--dry-run"]) == 0 and "steps pending for lift/sensing" in capsys.readouterr().out
    assert main([*argv, "--only-pair", "lift/dynamics", "--dry-run"]) == 0
    assert "pending" not in capsys.readouterr().out


def test_a_sweep_can_run_some_of_a_tracks_pairs_and_names_a_wrong_one(tmp_path, capsys):
    argv = ["sweep", "--track", "leaderboard", "--budget", "full", "--runs-dir", str(tmp_path), "--dry-run"]
    assert main(argv + ["--only-pair", "lift/sensing"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    listed = [line.split()[2] for line in lines]
    pair = get_pair("lift/sensing")  # each trained run's line names its demo counts
    assert all(f"N={pair.n_target} M={pair.n_source}" in line for line in lines if "evaluates" not in line)
    grid = load_grid(track="leaderboard", budget="full")
    expected = [r for r in [*grid.runs(), *grid.evaluations()] if getattr(r, "pair", None) == "lift/sensing"
                or getattr(getattr(r, "trained", None), "pair", None) == "lift/sensing"]
    assert listed == ["lift/sensing"] * len(expected) and expected
    assert main(argv + ["--only-pair", "square/dynamics"]) == 2
    assert "--only-pair square/dynamics: not among the grid's pairs" in capsys.readouterr().err
    assert main(argv + ["--only-pair", "lift/sensing", "--only-method", "source_only"]) == 0
    listed = [line.split()[2:4] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == [["lift/sensing", "m=1"]] * 5 + [["lift/sensing", "m=0"]] * 5  # 5 seeds and their controls


def test_a_dry_run_counts_each_pairs_methods_done(tmp_path, capsys):
    """Under the list, one line per pair: each method's finished runs out of its runs, controls apart (`@0`)."""
    grid = load_grid(track="leaderboard", budget="full")
    first = next(cfg for cfg in grid.runs() if cfg.pair == "lift/sensing" and cfg.method == "target_only")
    (tmp_path / first.run_id()).mkdir()
    (tmp_path / first.run_id() / "done").touch()  # what marks a finished run folder
    argv = ["sweep", "--track", "leaderboard", "--budget", "full", "--runs-dir", str(tmp_path), "--dry-run"]
    assert main(argv + ["--only-pair", "lift/sensing"]) == 0
    status = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lift/sensing: ")]
    assert len(status) == 1
    counts = dict(entry.rsplit(" ", 1) for entry in status[0].removeprefix("lift/sensing: ").split(", "))
    assert counts["target_only"] == "1/20" and counts["cotrain"] == "0/20" and counts["adda"] == "0/5"
    assert counts["cotrain@0"] == "0/5" and counts["source_only@0"] == "0/5"


def test_a_no_gap_evaluation_trains_a_run_committed_without_its_checkpoint_again(tmp_path):
    import shutil

    import torch

    from baselines.checkpoints import STATE_FILE
    from benchmark.harness.run import NotReproduced, execute_run
    from benchmark.harness.jobs import execute_nogap_eval

    cfg = RunConfig(pair="lift/dynamics", method="source_only", profile="smoke", episodes=2)
    execute_run(cfg, tmp_path, progress=False)
    run_dir = tmp_path / cfg.run_id()
    record = (run_dir / "record.json").read_bytes()
    trained = torch.load(run_dir / "checkpoint" / STATE_FILE, weights_only=False)["policy"]
    shutil.rmtree(run_dir / "checkpoint")  # its small files committed, its checkpoint not
    control = execute_nogap_eval(NoGapEval(cfg), tmp_path)
    assert control["config"]["checkpoint_of"] == cfg.run_id() and (run_dir / "record.json").read_bytes() == record
    again = torch.load(run_dir / "checkpoint" / STATE_FILE, weights_only=False)["policy"]
    assert all(torch.equal(trained[k], again[k]) for k in trained)  # the very policy, trained again

    shutil.rmtree(run_dir / "checkpoint")
    shutil.rmtree(tmp_path / NoGapEval(cfg).run_id())
    summary = json.loads((run_dir / "train_summary.json").read_text())
    (run_dir / "train_summary.json").write_text(json.dumps({**summary, "val_target": summary["val_target"] + 1e-3}))
    with pytest.raises(NotReproduced, match="trained again does not reproduce its record"):
        execute_nogap_eval(NoGapEval(cfg), tmp_path)


# --- grids and budgets made of parts ---------------------------------------------------------------------------

PARTS_BASE = {"pairs": ["lift/dynamics"], "methods": ["cotrain"], "profile": "smoke", "episodes": 3}
PART_SWEEP = {"methods": ["cotrain", "adda"], "w": [0.1, 0.3], "seeds": [0, 1, 2],
              "vary": {"adda": {"adversarial_weight": [0.5]}}}
PART_FEW = {"methods": ["cotrain", "ot", "source_only"], "w": [0.1], "seeds": [0, 1],
            "nogap": {"source_only": "evaluate"}}


def _track_file(folder: Path, budget: dict) -> Path:
    """A grid file with PARTS_BASE as its keys and `budget` as its budget `resolve`."""
    import yaml

    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({**PARTS_BASE, "budgets": {"resolve": budget}}))
    return path


def _ids(items) -> list[str]:
    return [item.run_id() for item in items]


def test_a_budget_made_of_parts_runs_the_union_of_its_parts(tmp_path):
    from benchmark.harness.grid import GridUnion

    grid = load_grid(str(_track_file(tmp_path, {"parts": [PART_SWEEP, PART_FEW]})), budget="resolve")
    sweep, few = grid_from_dict({**PARTS_BASE, **PART_SWEEP}), grid_from_dict({**PARTS_BASE, **PART_FEW})
    overlap = set(_ids(sweep.runs())) & set(_ids(few.runs()))  # cotrain at w = 0.1, seeds 0 and 1
    assert isinstance(grid, GridUnion) and len(overlap) == 2
    assert _ids(grid.runs()) == _ids(sweep.runs()) + [i for i in _ids(few.runs()) if i not in overlap]
    assert _ids(grid.evaluations()) == _ids(few.evaluations()) and few.evaluations()
    assert (grid.methods, grid.seeds, grid.w) == (("cotrain", "adda", "ot", "source_only"), (0, 1, 2), (0.1, 0.3))
    assert (grid.profile, grid.episodes) == ("smoke", 3)


@pytest.mark.parametrize("parts,message", [
    ([PART_SWEEP, {"w": [0.1, 2]}],
     "budget 'resolve', parts[1]: `w` must be a list of numbers in [0, 1] or null (the default ratio), got 2"),
    ([{"colour": "red"}, PART_FEW], "budget 'resolve', parts[0]: unknown keys ['colour']"),
    ([PART_SWEEP, {"methods": ["no_such_method"]}], "budget 'resolve', parts[1]: "),
    ([PART_SWEEP, {"vary": {"adda": {"adversarial_weight": [0.5]}}}],
     "budget 'resolve', parts[1]: `vary.adda`: 'adda' is not one of the grid's methods (cotrain)"),
    ([PART_SWEEP, {"parts": [PART_FEW]}], "budget 'resolve', parts[1]: a part cannot hold `parts`"),
    ([{"budgets": {}}], "budget 'resolve', parts[0]: a part cannot hold `budgets`"),
    ([PART_SWEEP, ["ot"]], "budget 'resolve', parts[1]: a part is a mapping of grid keys, got ['ot']"),
    ([], "budget 'resolve': `parts` must be a non-empty list of mappings of grid keys, got []"),
])
def test_each_bad_part_is_refused_with_its_index_and_key(parts, message, tmp_path):
    with pytest.raises(GridError) as err:
        load_grid(str(_track_file(tmp_path, {"parts": parts})), budget="resolve")
    assert message in str(err.value) and str(tmp_path / "study.yaml") in str(err.value)


def test_parts_that_disagree_on_a_sweep_wide_key_are_refused(tmp_path):
    spec = {**PARTS_BASE, "parts": [{"episodes": 3}, {"episodes": 5, "seeds": [1]}]}
    with pytest.raises(GridError, match=r"the parts disagree on `episodes` \(parts\[0\]: 3, parts\[1\]: 5\)"):
        grid_from_dict(spec)
    # a key given in one part as the value the others have by default agrees
    same = grid_from_dict({**spec, "parts": [{"precision": "fp32"}, {"seeds": [1]}]})
    assert _ids(same.runs()) == _ids(grid_from_dict({**PARTS_BASE, "seeds": [0, 1]}).runs())


def test_a_sweep_of_a_grid_file_made_of_parts_lists_the_union(tmp_path, capsys):
    import yaml

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**PARTS_BASE, "parts": [PART_SWEEP, PART_FEW]}))
    grid = load_grid(str(path))
    argv = ["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--dry-run"]
    assert main(argv) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == _ids([*grid.runs(), *grid.evaluations()]) and len(set(listed)) == len(listed)
    assert main(argv + ["--only-method", "ot"]) == 0  # in the second part only: the first part runs none
    listed = [line.split()[4] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == ["ot", "ot"]


def test_the_studys_view_of_a_budget_made_of_parts_has_the_unions(tmp_path):
    from benchmark.harness.gridspec import union_view
    from benchmark.harness.grid import load_spec
    from benchmark.study.load import StudyData

    spec, _ = load_spec(str(_track_file(tmp_path, {"parts": [PART_SWEEP, PART_FEW]})), budget="resolve")
    view = union_view(spec)
    assert view["methods"] == ["cotrain", "adda", "ot", "source_only"] and view["pairs"] == ["lift/dynamics"]
    assert (view["w"], view["seeds"], view["episodes"]) == ([0.1, 0.3], [0, 1, 2], 3)
    assert view["vary"] == {"adda": {"adversarial_weight": [0.5]}}
    data = StudyData(tmp_path, "study", "resolve", view, [], {}, {})
    assert (data.seeds, data.episodes) == (3, 3)  # seeds per point: the most one part runs
    disjoint = union_view({**spec, "parts": [{"seeds": [0, 1]}, {"seeds": [5, 6], "w": 0.5}]})
    assert disjoint["seeds"] == [0, 1, 5, 6] and disjoint["w"] == [0.5]
    assert StudyData(tmp_path, "study", "resolve", disjoint, [], {}, {}).seeds == 2
    plain, _ = load_spec(track="study", budget="quick")
    assert union_view(plain) is plain  # a budget without parts reports as it is


def test_a_track_made_of_parts_takes_the_records_of_its_runs_only(tmp_path, monkeypatch):
    import yaml

    from benchmark.analysis.rules import check_track
    from benchmark.harness import grid

    parts = [{"methods": ["cotrain"], "seeds": [0, 1]}, {"methods": ["source_only"], "seeds": [0]}]
    (tmp_path / "parted.yaml").write_text(yaml.safe_dump({**PARTS_BASE, "budgets": {"smoke": {"parts": parts}}}))
    monkeypatch.setattr(grid, "TRACKS_DIR", tmp_path)  # the track's file in a folder of its own
    track = {"name": "parted", "budget": "smoke"}
    records = [_record(cfg, track) for cfg in load_grid(track="parted", budget="smoke").runs()]
    assert len(records) == 3 and check_track(records, track) == []
    source_only = next(i for i, r in enumerate(records) if r["config"]["method"] == "source_only")
    records[source_only] = _rehashed(records[source_only], seed=1)  # seed 1 is cotrain's, not source_only's
    assert check_track(records, track) == [
        f"{records[source_only]['run_id']}: pair 'lift/dynamics', method 'source_only' and seed 1 are not together "
        "in any of the track's runs (track 'parted' (budget 'smoke'))",
        "source_only: 1 of the track 'parted' (budget 'smoke')'s runs missing: lift/dynamics m=1 seed=0"]


def test_a_sweep_says_what_is_left_to_run_from_its_finished_records(tmp_path, capsys):
    """Each run to go costs the median of its pair and method's finished records, else of its pair's; a pair with
    no finished run is named, not guessed."""
    import json

    import yaml

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**PARTS_BASE, **PART_SWEEP, "pairs": ["lift/dynamics", "lift/sensing"],
                                    "methods": ["cotrain", "adda", "ot"]}))
    runs_dir = tmp_path / "runs"
    runs = [cfg for cfg in load_grid(str(path)).runs() if cfg.pair == "lift/dynamics"]
    finished = [cfg for cfg in runs if cfg.method == "cotrain"][:2] + [cfg for cfg in runs if cfg.method == "adda"][:1]
    # core-seconds: training x threads + evaluation x workers = 1800, 3600 and 9000
    for cfg, (train_s, threads) in zip(finished, [(600.0, 2), (3000.0, 1), (4200.0, 2)]):
        (runs_dir / cfg.run_id()).mkdir(parents=True)
        (runs_dir / cfg.run_id() / "done").touch()
        (runs_dir / cfg.run_id() / "record.json").write_text(json.dumps(
            {"config": {"threads": threads, "workers": 1}, "timing": {"train_s": train_s, "eval_s": 600.0},
             "train": {"start_step": 0, "steps": 100}}))
    assert main(["sweep", str(path), "--runs-dir", str(runs_dir), "--dry-run", "--parallel", "4"]) == 0
    out = capsys.readouterr().out
    # lift/dynamics: 4 cotrain runs at their median 2700 s, 11 adda at 9000 s, 6 ot at the pair's median 3600 s;
    # four at a time in grid order take 9.5 h, not the 36.5 / 4 = 9.1 that full slots would
    assert "to go: about 36.5 core-hours for 21 runs, about 9.5 h at --parallel 4" in out
    assert "or for 6 of them of its pair" in out
    assert "no run of their pair finished yet: lift/sensing 24 runs" in out


def test_the_wall_time_to_go_follows_the_order_the_runs_are_started_in():
    """Each run goes to the first slot to come free, in the sweep's order: five 41-minute runs two at a time take
    three rounds, and a long run last waits for a slot."""
    assert wall_seconds([41.0] * 5, 2) == 123.0
    assert wall_seconds([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert wall_seconds([1.0, 1.0, 3.0], 2) == 4.0
    assert wall_seconds([2.0, 5.0, 1.0], 1) == 8.0
    assert wall_seconds([], 4) == 0.0


def test_a_time_limit_starts_only_the_runs_that_end_within_it(tmp_path, capsys):
    """Real smoke runs: a run with no estimate (no finished record of its pair) starts; once one is finished, a
    run of its pair and method that its estimate says would end past the limit is left for the next sweep (said,
    not failed), and a longer limit starts it. A duration that does not parse is named."""
    import yaml

    from benchmark.harness.jobs import is_done

    base = {"pairs": ["lift/dynamics"], "methods": ["cotrain"], "seeds": [0], "profile": "smoke", "episodes": 2}
    one, both = tmp_path / "one.yaml", tmp_path / "both.yaml"
    one.write_text(yaml.safe_dump({**base, "w": [0.1]}))
    both.write_text(yaml.safe_dump({**base, "w": [0.1, 0.3]}))
    runs_dir = tmp_path / "runs"  # a smoke run takes about 2 core-seconds: ten times the limit
    assert main(["sweep", str(one), "--runs-dir", str(runs_dir), "--time-limit", "0.2s", "--quiet"]) == 0
    assert "sweep: 1 finished, 0 failed, 0 in progress elsewhere\n" in capsys.readouterr().out
    assert main(["sweep", str(both), "--runs-dir", str(runs_dir), "--time-limit", "0.2s", "--parallel", "2",
                 "--quiet"]) == 0
    assert "0 finished, 0 failed, 0 in progress elsewhere, 1 not started: by their estimates they would end " \
           "after --time-limit" in capsys.readouterr().out
    later = next(cfg for cfg in load_grid(str(both)).runs() if dict(cfg.hparams)["w"] == 0.3)
    assert not is_done(later, runs_dir)
    assert main(["sweep", str(both), "--runs-dir", str(runs_dir), "--time-limit", "1h", "--parallel", "2",
                 "--quiet"]) == 0
    assert is_done(later, runs_dir) and "sweep: 1 finished" in capsys.readouterr().out
    assert main(["sweep", str(both), "--runs-dir", str(runs_dir), "--time-limit", "soon"]) == 2
    assert "--time-limit 'soon': expected a duration" in capsys.readouterr().err


def test_a_time_limit_learns_each_finished_runs_cost(tmp_path):
    """A run with no estimate at the start is allowed; once a run of its pair and method finishes, the limit reads
    its record and holds back a run of that kind that would end past it (as image runs on a fresh folder)."""
    import json

    import yaml

    from benchmark.harness.sweep import RunCosts, TimeLimit

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"pairs": ["lift/dynamics"], "methods": ["cotrain", "adda"], "w": [0.1, 0.3],
                                    "seeds": [0], "profile": "smoke"}))
    runs = load_grid(str(path)).runs()
    first, second = [cfg for cfg in runs if cfg.method == "cotrain"]
    other = next(cfg for cfg in runs if cfg.method == "adda")
    limit = TimeLimit(600.0, RunCosts(tmp_path))
    assert limit.allows(second) and limit.costs.estimate(second) == (None, False)
    (tmp_path / first.run_id()).mkdir()
    (tmp_path / first.run_id() / "record.json").write_text(json.dumps(
        {"config": {"threads": 1, "workers": 1}, "timing": {"train_s": 2400.0, "eval_s": 600.0},
         "train": {"start_step": 0, "steps": 100}}))
    limit.costs.learn(first)
    assert limit.costs.estimate(second) == (3000.0, False) and limit.costs.estimate(other) == (3000.0, True)
    assert not limit.allows(second)


def test_a_time_limit_leaves_the_evaluation_of_a_run_it_did_not_start_waiting_with_it(tmp_path, capsys):
    """A no-gap evaluation of a trained checkpoint whose run the limit left for later is left with it, not
    started (it would fail on a missing run); the next sweep runs both. Seed 0 runs for real first; its records'
    timing then says a training takes far longer than the limit and an evaluation far less."""
    import json

    import yaml

    base = {"pairs": ["lift/dynamics"], "methods": ["source_only"], "profile": "smoke", "episodes": 2,
            "nogap": {"source_only": "evaluate"}}
    one, both = tmp_path / "one.yaml", tmp_path / "both.yaml"
    one.write_text(yaml.safe_dump({**base, "seeds": [0]}))
    both.write_text(yaml.safe_dump({**base, "seeds": [0, 1]}))
    runs_dir = tmp_path / "runs"
    assert main(["sweep", str(one), "--runs-dir", str(runs_dir), "--quiet"]) == 0
    for path in runs_dir.glob("*/record.json"):
        record = json.loads(path.read_text())
        trained = record["train"] is not None
        record["timing"] = {"train_s": 1e6 if trained else 0.0, "eval_s": 0.01}
        path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["sweep", str(both), "--runs-dir", str(runs_dir), "--time-limit", "1h", "--quiet"]) == 0
    assert "sweep: 0 finished, 0 failed, 0 in progress elsewhere, 2 not started" in capsys.readouterr().out
    assert main(["sweep", str(both), "--runs-dir", str(runs_dir), "--quiet"]) == 0
    assert "sweep: 2 finished, 0 failed" in capsys.readouterr().out