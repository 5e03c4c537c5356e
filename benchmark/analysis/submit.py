"""`cotrain submit`: add a method's records to the leaderboard if they are valid and follow the protocol.

A record names the track it was made under (`record["track"]`: {"name", "budget"}, set by `cotrain sweep --track`;
none outside a track). A board remembers its track (`track.json`) and takes records of that track alone; a
record of a track is checked against the track's rules at its budget (`check_track`; the external track's, of
policies trained elsewhere, by `benchmark.external.rules.check_external`), one of no track against a `Protocol`.

Every record is checked in full before anything is written: its types and ranges, its internal consistency
(successes within the episodes, the episode list matching the counts, the success rate and the Wilson
interval recomputed from them), its pair, method and seed, and, where the config is whole (as
`RunConfig.to_json` writes it, with `profile_size`), its run id against the config's hash. Each problem
names the file and the field.

A board folder holds versions and one link that alone says which is current::

    board/current -> versions/<v>        swapped with os.replace of a new link (atomic)
    board/versions/<v>/records/<run id>/record.json (and train_log.jsonl), leaderboard.md, .csv, .html, the
        figures (*.png, embedded in the page), track.json
    board/records, board/leaderboard.md, .csv, .html, track.json -> current/...   (fixed links, for readers)

A submission stages a new version beside the current one (the current records plus the new ones, and the
leaderboard of them all) and then swaps `current`; a new board is staged whole beside its folder and renamed
into place. A failure at any step before the swap leaves the board as it was (the staged files are removed).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from benchmark.harness.config import RunConfig, content_hash
from benchmark.harness.lock import RunInProgress, file_lock
from benchmark.harness.run import RECORD_SCHEMA, SUPERSEDED_SCHEMAS
from benchmark.analysis.leaderboard import write_leaderboard
from benchmark.analysis.plots import training_logs
from benchmark.analysis.records import RecordError, load_records
from benchmark.analysis.rules import LEADERBOARD_PROTOCOL, Protocol, check_records, check_track, track_label
from benchmark.analysis.stats import wilson_interval

RUN_ID = re.compile(r"[0-9a-f]{12}")
ROUNDING = 1e-4  # a stored rate or interval bound may differ from its recomputed value by rounding only
NOT_HASHED = ("run_id", "w") + tuple(f.name for f in fields(RunConfig) if not f.compare)
TRAIN_LOG = "train_log.jsonl"  # a record's training log, kept beside it on the board (its training-curve figure)
BOARD_LINKS = ("records", "leaderboard.md", "leaderboard.csv", "leaderboard.html", "track.json")


# -- validation
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) and math.isfinite(x)


def _check_outcome(ev: Any, field: str) -> list[str]:
    """Problems of one domain's evaluation (`eval.target` or `eval.source`), each as `field: problem`."""
    if not isinstance(ev, dict):
        return [f"{field}: expected an object, got {type(ev).__name__}"]
    n, k = ev.get("n"), ev.get("successes")
    if not _is_int(n) or n < 1:
        return [f"{field}.n: expected an integer >= 1, got {n!r}"]
    if not _is_int(k) or not 0 <= k <= n:
        return [f"{field}.successes: expected an integer in [0, n = {n}], got {k!r}"]
    problems = []
    rate = ev.get("success_rate")
    if not _is_number(rate) or not math.isclose(rate, k / n, abs_tol=ROUNDING):
        problems.append(f"{field}.success_rate: {rate!r}, but successes / n = {k}/{n} = {k / n:.4f}")
    ci, wilson = ev.get("ci95"), wilson_interval(k, n)
    if not (isinstance(ci, list) and len(ci) == 2 and all(map(_is_number, ci))
            and all(math.isclose(a, b, abs_tol=ROUNDING) for a, b in zip(ci, wilson))):
        problems.append(f"{field}.ci95: {ci!r}, but the Wilson interval of {k}/{n} is "
                        f"[{wilson[0]:.4f}, {wilson[1]:.4f}]")
    episodes = ev.get("episodes")
    if episodes is None:
        return problems
    if not isinstance(episodes, list) or len(episodes) != n:
        got = f"{len(episodes)} entries" if isinstance(episodes, list) else type(episodes).__name__
        return problems + [f"{field}.episodes: expected a list of n = {n} episodes, got {got}"]
    for i, ep in enumerate(episodes):
        where = f"{field}.episodes[{i}]"
        if not isinstance(ep, dict):
            problems.append(f"{where}: expected an object, got {type(ep).__name__}")
        elif not _is_int(ep.get("seed")) or ep["seed"] < 0:
            problems.append(f"{where}.seed: expected an integer >= 0, got {ep.get('seed')!r}")
        elif not isinstance(ep.get("success"), bool):
            problems.append(f"{where}.success: expected true or false, got {ep.get('success')!r}")
        elif "length" in ep and (not _is_int(ep["length"]) or ep["length"] < 0):
            problems.append(f"{where}.length: expected an integer >= 0, got {ep['length']!r}")
    if problems:
        return problems
    if sum(ep["success"] for ep in episodes) != k:
        problems.append(f"{field}.episodes: {sum(ep['success'] for ep in episodes)} successful episodes, "
                        f"but successes = {k}")
    if len({ep["seed"] for ep in episodes}) != n:
        problems.append(f"{field}.episodes: an episode seed repeats")
    return problems


def _check_method(cfg: dict, external: bool = False) -> str | None:
    """Why `config.method` names no method this suite knows (None if it does), or for an external record no
    policy name; imports nothing."""
    from baselines import METHODS

    method = cfg.get("method")
    if not isinstance(method, str):
        return f"config.method: expected a string, got {method!r}"
    if external:
        from benchmark.external.rules import NAME

        return None if NAME.fullmatch(method) else f"config.method: {method!r} is not a policy name ({NAME.pattern})"
    identity = cfg.get("method_identity")
    if method in METHODS.names() or (":" in method and isinstance(identity, dict)
                                     and identity.get("import") == method):
        return None
    return f"config.method: unknown method {method!r} (known: {', '.join(METHODS.names())})"


def _check_config(cfg: Any, run_id: str, external: bool = False) -> list[str]:
    from tasks import get_pair

    if not isinstance(cfg, dict):
        return [f"config: expected an object, got {type(cfg).__name__}"]
    problems = []
    try:
        if not isinstance(cfg.get("pair"), str):
            raise ValueError
        get_pair(cfg["pair"])
    except (KeyError, ValueError):
        problems.append(f"config.pair: unknown pair {cfg.get('pair')!r}")
    problem = _check_method(cfg, external)
    problems += [problem] if problem else []
    for name in ("seed", "n_target", "n_source"):
        if not _is_int(cfg.get(name)) or cfg[name] < 0:
            problems.append(f"config.{name}: expected an integer >= 0, got {cfg.get(name)!r}")
    if not _is_number(cfg.get("magnitude")) or not 0 <= cfg["magnitude"] <= 1:
        problems.append(f"config.magnitude: expected a number in [0, 1], got {cfg.get('magnitude')!r}")
    if cfg.get("w") is not None and (not _is_number(cfg["w"]) or not 0 <= cfg["w"] <= 1):
        problems.append(f"config.w: expected null or a number in [0, 1], got {cfg['w']!r}")
    if "episodes" in cfg and (not _is_int(cfg["episodes"]) or cfg["episodes"] < 1):
        problems.append(f"config.episodes: expected an integer >= 1, got {cfg['episodes']!r}")
    if not isinstance(cfg.get("profile"), str):
        problems.append(f"config.profile: expected a string, got {cfg.get('profile')!r}")
    if "run_id" in cfg and cfg["run_id"] != run_id:
        problems.append(f"config.run_id: {cfg['run_id']!r}, but the record's run_id is {run_id!r}")
    if not problems and "profile_size" in cfg:  # a whole config (`RunConfig.to_json`): its hash is the run id
        expected = content_hash({k: v for k, v in cfg.items() if k not in NOT_HASHED})
        if expected != run_id:
            problems.append(f"run_id: {run_id!r}, but the config hashes to {expected!r}")
    return problems


def _is_external(track: Any) -> bool:
    from benchmark.external.rules import EXTERNAL_TRACK

    return isinstance(track, dict) and track.get("name") == EXTERNAL_TRACK


def check_record(rec: Any) -> list[str]:
    """Every reason `rec` is not a valid record (types, ranges, consistency), each `field: problem`."""
    if not isinstance(rec, dict):
        return [f"expected a JSON object, got {type(rec).__name__}"]
    schema = rec.get("schema")
    if schema in SUPERSEDED_SCHEMAS:
        return [f"schema: a schema-{schema} record, refused: it was {SUPERSEDED_SCHEMAS[schema]}"]
    if schema != RECORD_SCHEMA:
        return [f"schema: expected {RECORD_SCHEMA}, got {schema!r}"]
    run_id = rec.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        return [f"run_id: expected 12 hexadecimal digits, got {run_id!r}"]
    problems = _check_config(rec.get("config"), run_id, _is_external(rec.get("track")))
    ev = rec.get("eval")
    if not isinstance(ev, dict):
        return problems + [f"eval: expected an object, got {type(ev).__name__}"]
    problems += _check_outcome(ev.get("target"), "eval.target")
    if ev.get("source") is not None:
        problems += _check_outcome(ev["source"], "eval.source")
    cfg, target = rec.get("config"), ev.get("target")
    if (not problems and _is_int(cfg.get("episodes")) and cfg["episodes"] != target["n"]):
        problems.append(f"eval.target.n: {target['n']} episodes, but config.episodes is {cfg['episodes']}")
    metrics = rec.get("metrics", {})
    if not isinstance(metrics, dict):
        problems.append(f"metrics: expected an object, got {type(metrics).__name__}")
    else:
        problems += [f"metrics.{k}: expected a number or null, got {v!r}" for k, v in metrics.items()
                     if v is not None and not _is_number(v)]
    if rec.get("target_error") is not None and not _is_number(rec["target_error"]):
        problems.append(f"target_error: expected a number or null, got {rec['target_error']!r}")
    track = rec.get("track")
    if track is not None and not (isinstance(track, dict) and set(track) == {"name", "budget"}
                                  and isinstance(track["name"], str)
                                  and (track["budget"] is None or isinstance(track["budget"], str))):
        problems.append(f"track: expected null or {{\"name\": a string, \"budget\": a string or null}}, got {track!r}")
    return problems


def read_submission(record_paths: list[str | Path]) -> dict[str, tuple[Path, dict]]:
    """The records (files or run folders searched for `record.json`) by run id, each with its file.

    Raises RecordError listing every invalid record as `file: field: problem`."""
    files, problems = [], []
    for path in map(Path, record_paths):
        found = sorted(path.rglob("record.json")) if path.is_dir() else [path]
        if not found:
            problems.append(f"{path}: no record.json")
        files += found
    records: dict[str, tuple[Path, dict]] = {}
    for file in files:
        try:
            rec = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            problems.append(f"{file}: not a readable JSON record ({err})")
            continue
        found = check_record(rec)
        problems += [f"{file}: {p}" for p in found]
        if found:
            continue
        if rec["run_id"] in records and records[rec["run_id"]][1] != rec:
            problems.append(f"{file}: run_id: {rec['run_id']} is also in {records[rec['run_id']][0]}, "
                            "with other contents")
        records[rec["run_id"]] = (file, rec)
    if problems:
        raise RecordError("invalid records:\n  " + "\n  ".join(problems))
    return records


# -- publishing
def _stage_version(version: Path, old_records: Path | None, records: dict[str, tuple[Path, dict]],
                   track: dict | None) -> None:
    """Fill `version` with the board's track, the current board's records (bytes as they are), the new ones, each
    with its training log where it has one (`train_log.jsonl` beside the record), the figures and the leaderboard
    (whose page embeds the figures)."""
    (version / "track.json").write_text(json.dumps(track, sort_keys=True))
    (version / "records").mkdir()
    for old in sorted(old_records.glob("*/record.json")) if old_records else []:
        if old.parent.name not in records:
            shutil.copytree(old.parent, version / "records" / old.parent.name)
    for run_id, (path, rec) in sorted(records.items()):
        (version / "records" / run_id).mkdir()
        (version / "records" / run_id / "record.json").write_text(json.dumps(rec, indent=2, sort_keys=True))
        if (path.parent / TRAIN_LOG).is_file():
            shutil.copyfile(path.parent / TRAIN_LOG, version / "records" / run_id / TRAIN_LOG)
    title = ("cotrain-bench: policies trained elsewhere (self-reported)" if _is_external(track)
             else f"cotrain-bench leaderboard: {track_label(track)}" if track else "cotrain-bench leaderboard")
    recs = load_records(version / "records")
    write_leaderboard(recs, version, title=title, logs=training_logs(recs, version / "records"))


def _link(target: str, at: Path) -> None:
    """Make `at` a symlink to `target`, atomically replacing what `at` was."""
    tmp = at.with_name(f".{at.name}.link-{os.getpid()}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, at)
    except BaseException:
        os.unlink(tmp)
        raise


def _version_dir(versions: Path) -> Path:
    """A new, uniquely named version folder in `versions` (made if missing), with the umask's permissions."""
    versions.mkdir(exist_ok=True)
    version = Path(tempfile.mkdtemp(prefix="", dir=versions))
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(version, 0o777 & ~mask)
    except BaseException:
        version.rmdir()
        raise
    return version


def _new_board(board: Path, records: dict[str, tuple[Path, dict]], track: dict | None) -> None:
    """Stage a whole board beside `board` and rename it into place (`board` absent or an empty folder)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{board.name}.staging-", dir=board.parent))
    try:
        version = _version_dir(staging / "versions")
        _stage_version(version, None, records, track)
        os.symlink(f"versions/{version.name}", staging / "current")
        for name in BOARD_LINKS:
            os.symlink(f"current/{name}", staging / name)
        os.chmod(staging, version.stat().st_mode)
        os.replace(staging, board)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_version(board: Path, records: dict[str, tuple[Path, dict]], track: dict | None) -> None:
    """Stage a new version of an existing board, then swap `current` to it and drop the older versions."""
    version = _version_dir(board / "versions")
    try:
        _stage_version(version, board / "current" / "records", records, track)
        _link(f"versions/{version.name}", board / "current")
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    for stale in (board / "versions").iterdir():  # the board is already new: a leftover here is harmless
        if stale.name != version.name:
            shutil.rmtree(stale, ignore_errors=True)


def _is_board(board: Path) -> bool:
    current = board / "current"
    return current.is_symlink() and os.readlink(current).startswith("versions/") and current.is_dir()


def board_track(board: Path) -> dict | None:
    """The track a board takes records of (None: records of no track)."""
    path = board / "current" / "track.json"
    return json.loads(path.read_text()) if path.is_file() else None


def submit(record_paths: list[str | Path], board_dir: str | Path,
           protocol: Protocol = LEADERBOARD_PROTOCOL) -> dict[str, Path]:
    """Check the records (files or run folders) and, if all are valid, of the board's track and follow its rules
    (`check_track`; `protocol` for records of no track), publish them with the board's other records and their
    leaderboard as the board's new version (module docstring). A new board takes the records' track.

    Raises RecordError naming each invalid record's file and field, ValueError for records of several tracks or of
    another track than the board's (naming both), listing every rule a record breaks, or for a folder that is not
    a board, and the OSError of a write that failed (noted with the board; the board is left as it was)."""
    records = read_submission(record_paths)
    recs = [rec for _, rec in records.values()]
    tracks = {json.dumps(rec.get("track"), sort_keys=True): rec.get("track") for rec in recs}
    if len(tracks) > 1:
        raise ValueError("records of several tracks (" + ", ".join(sorted(map(track_label, tracks.values())))
                         + "): each track's records go to a board of their own")
    track = next(iter(tracks.values()), None)
    board = Path(board_dir)
    if not board.parent.is_dir():  # a refused submission makes no folder
        _refuse_unless_fit(board, recs, track, protocol)
        board.parent.mkdir(parents=True, exist_ok=True)
    try:  # one submission at a time per board: checked and published under its lock
        with file_lock(_lock_path(board), f"board {board}"):
            _refuse_unless_fit(board, recs, track, protocol)
            return _publish(board, records, track)
    except RunInProgress as busy:
        owner = busy.owner
        raise RuntimeError(f"{board} is being updated by another submission (pid {owner.get('pid', '?')} on host "
                           f"{owner.get('host', '?')}); submit again when it has ended") from None


def _lock_path(board: Path) -> Path:
    """The board's lock file: in the temporary folder, named by the board's absolute path (so a failed
    publication leaves the board's own folder exactly as it was, lock file included)."""
    digest = hashlib.sha256(str(board.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"cotrain-board-{digest}.lock"


def _refuse_unless_fit(board: Path, recs: list[dict], track: dict | None, protocol: Protocol) -> None:
    """ValueError where `board` is no board (nor a new or empty folder), takes another track's records, or
    where the records break their track's rules (`protocol` for records of no track)."""
    is_board = _is_board(board)
    if not is_board and board.exists() and (not board.is_dir() or any(board.iterdir())):
        raise ValueError(f"{board} is not a leaderboard folder (no current -> versions/ link); "
                         "give a new or empty folder")
    if is_board and board_track(board) != track:
        raise ValueError(f"the records were made under {track_label(track)}, but {board} is the board of "
                         f"{track_label(board_track(board))}: submit them to a board of their own")
    if _is_external(track):
        from benchmark.external.rules import check_external

        problems = check_external(recs, track)
    else:
        problems = check_track(recs, track) if track is not None else check_records(recs, protocol)
    if problems:
        raise ValueError("records do not follow the protocol:\n  " + "\n  ".join(problems))


def _publish(board: Path, records: dict[str, tuple[Path, dict]], track: dict | None) -> dict[str, Path]:
    """Publish `records` as the board's new version (a new board where there is none)."""
    try:
        if _is_board(board):
            _add_version(board, records, track)
        else:
            _new_board(board, records, track)
    except OSError as err:
        err.add_note(f"writing the leaderboard {board}, which is left as it was")
        raise
    return {key: board / f"leaderboard.{key}" for key in ("md", "csv", "html")}
