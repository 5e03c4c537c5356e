"""`cotrain submit` and `cotrain analyze` on the committed mini sweep."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.analysis.analyze import analyze, correlations, metrics_frame
from benchmark.cli import main
from benchmark.analysis.leaderboard import load_records
from benchmark.analysis.submit import Protocol, check_records, submit

MINI = Path(__file__).parent / "data" / "mini_sweep"
LENIENT = Protocol(profile="quick", min_seeds=2, min_episodes=10, pairs=("lift/dynamics",), expert_version=1)


def test_mini_sweep_follows_a_matching_protocol_and_is_added(tmp_path):
    paths = submit([MINI], tmp_path / "board", LENIENT)
    assert len(list((tmp_path / "board" / "records").glob("*/record.json"))) == len(load_records(MINI))
    assert "cotrain" in Path(paths["md"]).read_text()


def test_protocol_violations_are_all_named():
    problems = check_records(load_records(MINI))  # the leaderboard protocol: full profile, 50 episodes, 3 seeds
    text = "\n".join(problems)
    assert "profile 'quick', the protocol is 'full'" in text
    assert "10 episodes, the protocol needs 50" in text
    assert "2 seed(s), the protocol needs 3" in text
    assert "no records for square/dynamics, stack/dynamics" in text
    assert "expert version 1, the protocol is 2" in text


def test_submit_refuses_and_writes_nothing(tmp_path, capsys):
    assert main(["submit", str(MINI), "--leaderboard", str(tmp_path / "board")]) == 2
    assert "do not follow the protocol" in capsys.readouterr().err
    assert not (tmp_path / "board").exists()


def test_submit_refuses_another_suite_version(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(MINI, runs)
    path = next(runs.glob("*/record.json"))
    rec = json.loads(path.read_text())
    rec["config"]["suite_version"] = "0.0.1"
    path.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="suite version 0.0.1"):
        submit([runs], tmp_path / "board", LENIENT)


def test_analyze_correlates_metrics_with_success(tmp_path):
    df = metrics_frame(load_records(MINI))
    assert df["align_wasserstein_norm"].between(0, 1).all()
    table = correlations(df)
    row = table[(table.group == "all") & (table.metric == "discern_mlp_cond")].iloc[0]
    assert row.n == len(df)
    paths = analyze(MINI, tmp_path, metric="discern_mlp_cond")
    assert paths["png"].stat().st_size > 0 and "Spearman" in paths["md"].read_text()
    with pytest.raises(ValueError, match="metric 'nope' is in no record"):
        analyze(MINI, tmp_path, metric="nope")
