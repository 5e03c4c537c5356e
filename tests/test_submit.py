"""`cotrain submit` and `cotrain analyze` on the committed mini sweep."""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.analysis.analyze import analyze, correlations, metrics_frame
from benchmark.cli import main
from benchmark.analysis.records import load_records
from benchmark.analysis.rules import LEADERBOARD_PROTOCOL, Protocol, check_records
from benchmark.analysis.submit import submit

MINI = Path(__file__).parent / "data" / "mini_sweep"
LENIENT = Protocol(profile="quick", min_seeds=2, min_episodes=10, pairs=("lift/dynamics",), expert_version=1)


def test_mini_sweep_follows_a_matching_protocol_and_is_added(tmp_path):
    paths = submit([MINI], tmp_path / "board", LENIENT)
    assert len(list((tmp_path / "board" / "records").glob("*/record.json"))) == len(load_records(MINI))
    assert "cotrain" in Path(paths["md"]).read_text()


def test_a_board_carries_its_figures_and_the_records_training_logs(tmp_path):
    """The published page embeds the leaderboard's figures, drawn into the board's version; a record's training
    log travels beside it, so a later version still draws its training curve."""
    runs = tmp_path / "runs"
    shutil.copytree(MINI, runs)
    first, *rest = sorted(runs.glob("*/record.json"))
    (first.parent / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n"
                                                          for s in (10, 20, 30)))
    submit([first], tmp_path / "board", Protocol(profile="quick", min_seeds=1, min_episodes=10,
                                                  pairs=("lift/dynamics",), expert_version=1))
    board = tmp_path / "board"
    assert (board / "records" / first.parent.name / "train_log.jsonl").read_bytes() == \
        (first.parent / "train_log.jsonl").read_bytes()
    submit(rest, board, LENIENT)  # a second version keeps the first record's log
    assert (board / "records" / first.parent.name / "train_log.jsonl").exists()
    figures = {p.name for p in (board / "current").glob("*.png")}
    assert {"success_per_pair.png", "diff_vs_cotrain.png", "training_curves.png"} <= figures
    page = (board / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") == len(figures)


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


# -- every record value is checked before anything is written
def _mini_record() -> tuple[str, dict]:
    path = sorted(MINI.glob("*/record.json"))[0]
    return path.parent.name, json.loads(path.read_text())


def _set(rec: dict, dotted: str, value) -> None:
    *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    for key in parents:
        rec = rec[key]
    rec[last] = value


@pytest.mark.parametrize("field,value,named", [
    ("eval.target.successes", 75, "eval.target.successes"),
    ("eval.target.successes", "three", "eval.target.successes"),
    ("eval.target.successes", 5, "eval.target.success_rate"),  # 4 of the 10 episodes succeed
    ("eval.target.success_rate", 0.9, "eval.target.success_rate"),
    ("eval.target.ci95", [0.0, 1.0], "eval.target.ci95"),
    ("eval.target.n", 0, "eval.target.n"),
    ("eval.target.n", 12, "eval.target.success_rate"),
    ("eval.target.episodes", [], "eval.target.episodes"),
    ("eval.target.episodes.0.success", "yes", "eval.target.episodes[0].success"),
    ("eval.target.episodes.1.seed", 1001000, "eval.target.episodes: an episode seed repeats"),
    ("eval.source", [1], "eval.source"),
    ("eval", None, "eval: expected an object"),
    ("config.seed", -1, "config.seed"),
    ("config.seed", "one", "config.seed"),
    ("config.pair", "lift/nope", "config.pair: unknown pair 'lift/nope'"),
    ("config.method", "os:system", "config.method: unknown method 'os:system'"),
    ("config.magnitude", 2, "config.magnitude"),
    ("config.w", "0.1", "config.w"),
    ("config.episodes", 20, "eval.target.n: 10 episodes, but config.episodes is 20"),
    ("config.run_id", "0123456789ab", "config.run_id"),
    ("config", [], "config: expected an object"),
    ("run_id", "../../../etc", "run_id: expected 12 hexadecimal digits"),
    ("schema", 1, "schema: a schema-1 record"),
    ("metrics.discern_mlp_cond", "high", "metrics.discern_mlp_cond"),
])
def test_each_invalid_value_is_refused_naming_file_and_field(field, value, named, tmp_path, capsys):
    run_id, rec = _mini_record()
    _set(rec, field, value)
    shutil.copytree(MINI, tmp_path / "runs")  # the others follow the protocol: this value alone is wrong
    path = tmp_path / "runs" / run_id / "record.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(ValueError) as err:
        submit([tmp_path / "runs"], tmp_path / "board", LENIENT)
    assert f"{path}: {named}" in str(err.value)
    assert main(["submit", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "board")]) == 2
    assert named in capsys.readouterr().err  # one message, no traceback
    assert not (tmp_path / "board").exists()


def test_run_id_is_checked_against_the_config_hash():
    from benchmark.analysis.submit import check_record
    from benchmark.harness.config import RunConfig

    run = RunConfig(pair="lift/dynamics", method="target_only", seed=1, episodes=10)
    other = RunConfig(pair="lift/dynamics", method="target_only", seed=1, episodes=10, n_target=run.resolved().n_target + 1)
    _, rec = _mini_record()
    rec.update(run_id=run.run_id(), config={**run.to_json(), "w": None})  # as `cotrain run` writes it
    assert check_record(rec) == []
    rec["config"] = {**other.to_json(), "run_id": run.run_id(), "w": None}  # another run's config
    assert check_record(rec) == [f"run_id: {run.run_id()!r}, but the config hashes to {other.run_id()!r}"]


# -- publishing is atomic
ONE_SEED = Protocol(profile="quick", min_seeds=1, min_episodes=10, pairs=("lift/dynamics",), expert_version=1)
_WRITE_EVENTS = ("open", "os.mkdir", "os.rename", "os.symlink", "os.chmod", "os.remove", "os.rmdir",
                 "os.unlink", "shutil.copyfile")
_INJECTION: dict = {"root": None, "step": 0, "fail_at": 0, "event": None, "hooked": False}


def _fail_at_step(event: str, args: tuple) -> None:
    """Audit hook: the `fail_at`-th file-system write below `root` raises OSError instead of happening."""
    root = _INJECTION["root"]
    if root is None or event not in _WRITE_EVENTS:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR))
        paths = [path] if writes else []
    else:
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    if not any(os.fsdecode(p).startswith(root) for p in paths):
        return
    _INJECTION["step"] += 1
    if _INJECTION["step"] == _INJECTION["fail_at"]:
        _INJECTION["event"] = event
        raise OSError(errno.EIO, f"injected failure at write {_INJECTION['step']} ({event})", os.fsdecode(paths[0]))


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below `root`: a link's target, a file's bytes, a folder's mode."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", path.stat().st_mode)
            else:
                out[rel] = ("file", path.read_bytes())
    return out


@pytest.mark.parametrize("existing", [False, True], ids=["new board", "existing board"])
def test_a_failure_at_any_publishing_step_leaves_the_board_as_it_was(existing, tmp_path):
    first, second = sorted(MINI.glob("*/record.json"))[:4], sorted(MINI.glob("*/record.json"))[4:]
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    if existing:
        submit(first, pristine / "board", ONE_SEED)
    before = _snapshot(pristine)
    work = tmp_path / "work"
    if not _INJECTION["hooked"]:  # audit hooks cannot be removed: one for the session, inert unless armed
        sys.addaudithook(_fail_at_step)
        _INJECTION["hooked"] = True
    failed, kinds = 0, set()
    for fail_at in range(1, 200):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work, symlinks=True)
        _INJECTION.update(root=str(work), step=0, fail_at=fail_at)
        try:
            submit(second, work / "board", ONE_SEED)
        except OSError as err:
            assert "injected failure" in str(err)
        else:
            if _INJECTION["step"] < fail_at:
                break  # every write of the submission has failed once
            # a failure after the swap (removing the old version): the new board stands
            assert len(load_records(work / "board" / "records")) == len(first) * existing + len(second)
            continue
        finally:
            _INJECTION["root"] = None
        failed += 1
        assert _snapshot(work) == before, f"write {fail_at} failed and the board changed"
        if _INJECTION["event"] not in kinds:  # the board is as it was; after each kind of failed write, once:
            kinds.add(_INJECTION["event"])
            submit(second, work / "board", ONE_SEED)  # a later submission works
            assert len(load_records(work / "board" / "records")) == len(first) * existing + len(second)
    assert failed >= 5 and {"open", "os.rename"} <= kinds


def _protocol_records(out: Path) -> list[Path]:
    """Records of `target_only` that follow the leaderboard protocol (3 pairs x 3 seeds, 50 episodes), made
    from a golden record with outcomes drawn per run; one folder per run."""
    from benchmark.harness.config import content_hash
    from benchmark.harness.evaluate import summarize
    from tasks import get_pair

    _, base = _mini_record()
    rng = np.random.default_rng(0)
    for pair in LEADERBOARD_PROTOCOL.pairs:
        for seed in range(LEADERBOARD_PROTOCOL.min_seeds):
            config = {**base["config"], "pair": pair, "pair_version": get_pair(pair).version, "seed": seed,
                      "profile": "full", "episodes": 50, "expert_version": LEADERBOARD_PROTOCOL.expert_version}
            episodes = [{"seed": 5000 + i, "success": bool(s), "length": 60} for i, s in enumerate(rng.random(50) < 0.5)]
            rec = {**base, "run_id": content_hash(config), "config": config, "eval": {"target": summarize(episodes)}}
            (out / rec["run_id"]).mkdir(parents=True)
            (out / rec["run_id"] / "record.json").write_text(json.dumps(rec))
    return sorted(out.glob("*/record.json"))


@pytest.mark.parametrize("existing", [False, True], ids=["new board", "existing board"])
def test_an_unwritable_leaderboard_folder_gives_one_line_and_stays_as_it_was(existing):
    from unprivileged import reachable_dir, run_cotrain

    with reachable_dir() as root:
        records = _protocol_records(root / "runs")
        parent = root / "results"
        parent.mkdir()
        if existing:
            lift = [r for r in records if json.loads(r.read_text())["config"]["pair"] == "lift/dynamics"]
            submit(lift, parent / "board", Protocol(profile="full", pairs=("lift/dynamics",)))
            assert len(load_records(parent / "board" / "records")) == 3
        for folder in [parent, *parent.rglob("*")]:
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o555)
        home = root / "home"  # the user's caches (matplotlib's fonts) are not the board's business
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        before = _snapshot(root)
        proc = run_cotrain(["submit", str(root / "runs"), "--leaderboard", str(parent / "board")], home=home)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "permission denied" in lines[0], proc.stderr
        assert lines[0].startswith("cotrain submit: error: permission denied: ")
        assert lines[0].endswith(f"(while writing the leaderboard {parent / 'board'}, which is left as it was)")
        assert {k: v for k, v in _snapshot(root).items() if not k.startswith("home/")} == before
        for folder in [parent, *parent.rglob("*")]:
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o755)
        assert main(["submit", str(root / "runs"), "--leaderboard", str(parent / "board")]) == 0
        assert len(load_records(parent / "board" / "records")) == len(records)


def test_a_folder_that_is_not_a_board_is_refused(tmp_path, capsys):
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a leaderboard folder"):
        submit([MINI], tmp_path / "board", LENIENT)
    assert [p.name for p in (tmp_path / "board").iterdir()] == ["notes.txt"]


def test_a_second_submission_to_a_board_in_use_is_refused_naming_the_first(tmp_path, capsys):
    import subprocess

    from benchmark.analysis.submit import _lock_path

    board = tmp_path / "board"
    hold = ("import sys, time\nfrom pathlib import Path\nfrom benchmark.harness.lock import file_lock\n"
            f"with file_lock(Path({str(_lock_path(board))!r}), 'board'):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["submit", str(MINI), "--leaderboard", str(board)]) == 2
        err = capsys.readouterr().err
        assert f"{board} is being updated by another submission (pid {holder.pid} on host" in err
        assert not board.exists()
    finally:
        holder.kill()
        holder.wait()
    submit([MINI], board, LENIENT)  # the lock ends with its holder
    assert len(load_records(board / "records")) == len(load_records(MINI))
