"""`cotrain videos`: a finished run's own test episodes re-simulated with rendering on, checked against its
record, and linked from the leaderboard page; a record the re-simulation disagrees with is labelled so."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from benchmark.analysis.leaderboard import write_leaderboard
from benchmark.analysis.records import load_records, read_record
from benchmark.analysis.videos import DIFFERS_LABEL, MATCH_LABEL, parse_video_name, record_videos
from benchmark.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished smoke run of lift/dynamics (fast backend) with two target test episodes."""
    from benchmark.harness.config import RunConfig
    from benchmark.harness.run import execute_run

    runs = tmp_path_factory.mktemp("video_runs")
    record = execute_run(RunConfig(pair="lift/dynamics", method="target_only", profile="smoke", episodes=2), runs,
                         progress=False)
    return runs / record["run_id"]


def _page(board: Path) -> str:
    return write_leaderboard(load_records(board.parent / "runs"), board)["html"].read_text(encoding="utf-8")


def test_a_run_committed_without_its_checkpoint_is_filmed_after_training_it_again(run_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / run_dir.name, ignore=shutil.ignore_patterns("checkpoint"))
    assert main(["videos", str(runs), "--out", str(tmp_path / "media"), "--episodes", "1", "--quiet"]) == 2
    assert "--train-missing" in capsys.readouterr().err
    assert main(["videos", str(runs), "--out", str(tmp_path / "media"), "--episodes", "1", "--train-missing"]) == 0
    assert "training it again" in capsys.readouterr().out
    (gif,) = (tmp_path / "media").iterdir()
    assert parse_video_name(gif.name)["matches"]  # the very episode of the record, from the retrained policy


def test_video_is_the_records_episode_and_a_tampered_record_is_labelled(run_dir, tmp_path):
    runs, board = tmp_path / "runs", tmp_path / "board"
    shutil.copytree(run_dir, runs / run_dir.name)
    run = runs / run_dir.name
    recorded = read_record(run / "record.json")["eval"]["target"]["episodes"][0]

    (gif,) = record_videos(run, board / "media", episodes=1, fmt="gif")
    filmed = parse_video_name(gif.name)
    assert (filmed["episode_seed"], filmed["success"], filmed["matches"]) == (recorded["seed"], recorded["success"], True)
    with Image.open(gif) as frames:
        assert frames.n_frames == recorded["length"] + 1  # the reset, then every step of the record's length
    page = _page(board)
    assert f'src="media/{quote(gif.name)}"' in page and MATCH_LABEL.replace("'", "&#x27;") in page
    assert f'<b class="differs">{DIFFERS_LABEL}</b>' not in page

    # the record says otherwise: the re-simulation keeps its own outcome and says it differs, in name and page
    record = json.loads((run / "record.json").read_text())
    record["eval"]["target"]["episodes"][0]["success"] = not recorded["success"]
    (run / "record.json").write_text(json.dumps(record))
    assert main(["videos", str(runs), "--out", str(board / "media"), "--episodes", "1", "--format", "mp4",
                 "--quiet"]) == 0
    (mp4,) = (board / "media").iterdir()  # the earlier video of this episode is replaced
    filmed = parse_video_name(mp4.name)
    assert mp4.suffix == ".mp4" and mp4.stat().st_size > 1000 and mp4.stem.endswith("__resim-differs")
    assert (filmed["success"], filmed["matches"]) == (recorded["success"], False)
    page = _page(board)
    assert f'href="media/{quote(mp4.name)}"' in page and f'<b class="differs">{DIFFERS_LABEL}</b>' in page
