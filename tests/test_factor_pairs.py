"""Factor pairs (`lift+object_mass@0.5+obs_bias`): one identity per factor set, from parsing to records."""
from __future__ import annotations

import json

import pytest

from benchmark.analysis.leaderboard import aggregate
from benchmark.analysis.records import load_records
from benchmark.harness.config import RunConfig
from benchmark.harness.run import execute_run
from benchmark.harness.grid import grid_from_dict, load_grid
from benchmark.harness.sweep import run_sweep
from tasks import GAP_FACTORS, GapFactor, custom_pair, describe_pair, get_pair


def test_spellings_of_one_factor_set_are_one_pair():
    canonical = "lift+object_mass@0.5+obs_bias"
    for spelling in ("lift+obs_bias+object_mass@0.5", "lift+object_mass@0.50+obs_bias@1", canonical):
        assert get_pair(spelling).name == canonical, spelling
    assert custom_pair("lift", ["obs_bias", GapFactor("object_mass", 0.5)]).name == canonical
    pair = get_pair(canonical)
    assert [(g.name, g.magnitude) for g in pair.target.gaps] == [("object_mass", 0.5), ("obs_bias", 1.0)]
    # a step-valued factor is named by the steps it applies: 0.5 and 0.75 of 3 steps are both 2 steps
    latency = GAP_FACTORS["action_latency"]
    assert latency.step_count(0.5) == latency.step_count(0.75) == 2
    assert get_pair("lift+action_latency@0.5").name == get_pair("lift+action_latency@0.75").name
    assert get_pair("lift+action_latency@0.5").name != get_pair("lift+action_latency@0.25").name
    named = get_pair("lift+action_latency@0.5")
    assert get_pair(named.name) == named  # the canonical name reads back as itself
    assert get_pair("lift+object_color").obs == "image"


def test_distinct_factor_sets_have_distinct_run_ids():
    sets = ["lift+object_mass@0.5", "lift+object_mass@0.6", "lift+object_mass", "lift+object_mass@0.5+obs_bias",
            "stack+object_mass@0.5", "lift+action_latency@0.25", "lift+action_latency@0.5", "lift",
            "lift+joint_damping+object_friction+object_mass", "lift/dynamics"]
    ids = [RunConfig(pair=p, profile="smoke").run_id() for p in sets]
    assert len(set(ids)) == len(sets)
    for a, b in [("lift+obs_bias+object_mass@0.5", "lift+object_mass@0.5+obs_bias"),
                 ("lift+action_latency@0.5", "lift+action_latency@0.75")]:
        cfg_a, cfg_b = RunConfig(pair=a, profile="smoke"), RunConfig(pair=b, profile="smoke")
        assert cfg_a.pair == cfg_b.pair and cfg_a.run_id() == cfg_b.run_id()


@pytest.mark.parametrize("name,error,message", [
    ("lfit+obs_bias", KeyError, "pair 'lfit+obs_bias': unknown base task 'lfit'"),
    ("lift+gravity", KeyError, "pair 'lift+gravity': unknown gap factor 'gravity'"),
    ("lift+", ValueError, "malformed factor ''"),
    ("lift+obs_bias@", ValueError, "malformed factor 'obs_bias@'"),
    ("lift+obs_bias@half", ValueError, "magnitude 'half' of factor 'obs_bias' is not a number"),
    ("lift+obs_bias@1.5", ValueError, "magnitude 1.5 is outside [0, 1]"),
    ("lift+obs_bias+obs_bias@0.5", ValueError, "factor 'obs_bias' is given twice"),
    ("lift+embodiment_sawyer@0.5", ValueError, "factor 'embodiment_sawyer' is categorical"),
    ("lift+embodiment_ur5e+embodiment_sawyer", ValueError,
     "factors 'embodiment_sawyer' and 'embodiment_ur5e' both replace the robot"),
    ("toy+obs_bias", ValueError, "base task 'toy' has no simulator"),
    ("nowhere", KeyError, "unknown task pair 'nowhere'"),
])
def test_bad_factor_pairs_name_the_bad_input(name, error, message):
    with pytest.raises(error) as info:
        get_pair(name)
    assert message in info.value.args[0]


def test_stated_magnitudes_and_categorical_factors_refuse_a_scaling_run_magnitude():
    with pytest.raises(ValueError, match=r"states its factors' magnitudes \(@\).*not 0.5"):
        RunConfig(pair="lift+object_mass@0.5+obs_bias", magnitude=0.5)
    grid = grid_from_dict({"pairs": ["lift+obs_bias+object_mass@0.5"], "methods": ["cotrain"], "nogap_control": True})
    assert [(c.pair, c.magnitude) for c in grid.runs()] == [  # as written, and the no-gap control
        ("lift+object_mass@0.5+obs_bias", 0.0), ("lift+object_mass@0.5+obs_bias", 1.0)]
    assert RunConfig(pair="lift+object_mass+obs_bias", magnitude=0.5).magnitude == 0.5
    assert get_pair("lift+embodiment_sawyer@0").target.gaps[0].magnitude == 0.0
    with pytest.raises(ValueError, match="'embodiment_sawyer' is categorical, so the run magnitude is 0 or 1"):
        RunConfig(pair="lift+embodiment_sawyer", magnitude=0.5)


def test_a_factor_pair_is_described_like_a_registered_one(capsys):
    from benchmark.cli import main

    assert main(["tasks", "show", "lift+obs_bias+object_mass@0.5"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text == describe_pair("lift+obs_bias+object_mass@0.5")
    assert text.startswith("lift+object_mass@0.5+obs_bias (version 2, base task lift, observations lowdim)")
    assert "object_mass at 0.5, obs_bias at the run's magnitude" in text
    for factor in ("object_mass@0.5", "obs_bias"):
        assert f"    {factor} " in text and GAP_FACTORS[factor.split("@")[0]].unit in text
    assert describe_pair("lift/dynamics").startswith("lift/dynamics (version 3")  # N, M set by its calibration


def test_a_factor_pair_sweeps_and_runs_into_its_own_folder(tmp_path):
    canonical = "lift+object_mass@0.5+obs_bias"
    grid = tmp_path / "grid.yaml"
    grid.write_text("pairs: [lift+obs_bias+object_mass@0.5]\nmethods: [target_only]\nprofile: smoke\nepisodes: 2\n")
    launched = run_sweep(load_grid(str(grid)), tmp_path, progress=False)
    assert list(launched.values()) == [None]
    records = load_records(tmp_path)
    assert [r["config"]["pair"] for r in records] == [canonical]
    run_dir = tmp_path / records[0]["run_id"]
    assert json.loads((run_dir / "config.json").read_text())["pair"] == canonical
    assert set(aggregate(records)["pair"]) == {canonical}
    trained = (run_dir / "train_log.jsonl").stat().st_mtime_ns
    # another spelling of the same set is the same run: read back from its folder, not redone
    record = execute_run(RunConfig(pair="lift+object_mass@0.50+obs_bias@1", method="target_only", profile="smoke",
                                   episodes=2), tmp_path, progress=False)
    assert record["run_id"] == run_dir.name and record["config"]["pair"] == canonical
    assert (run_dir / "train_log.jsonl").stat().st_mtime_ns == trained
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != "_demos") == [run_dir.name]
