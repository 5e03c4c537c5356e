"""`cotrain submit`: add a method's records to the leaderboard if they follow the protocol."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tasks.experts import EXPERT_VERSION

from benchmark.harness.config import SUITE_VERSION
from benchmark.analysis.leaderboard import RecordError, load_records, read_record, write_leaderboard


@dataclass(frozen=True)
class Protocol:
    """What a leaderboard record must satisfy."""

    profile: str = "full"
    """Size profile of every run."""
    min_seeds: int = 3
    """Seeds per (pair, method, w)."""
    min_episodes: int = 50
    """Evaluation episodes per domain and seed."""
    pairs: tuple[str, ...] = ("lift/dynamics", "stack/dynamics", "square/dynamics")
    """Pairs every submission covers."""
    expert_version: int = EXPERT_VERSION
    """Version of the scripted experts that made every run's demos."""


LEADERBOARD_PROTOCOL = Protocol()


def check_records(records: list[dict], protocol: Protocol = LEADERBOARD_PROTOCOL) -> list[str]:
    """Every reason the records break the protocol (empty when they follow it)."""
    from tasks import get_pair

    problems = []
    seeds: dict[tuple, set] = {}
    for rec in records:
        cfg, rid = rec["config"], rec.get("run_id", "?")
        if cfg.get("suite_version") != SUITE_VERSION:
            problems.append(f"{rid}: suite version {cfg.get('suite_version')} (this suite is {SUITE_VERSION})")
        if cfg.get("expert_version") != protocol.expert_version:
            problems.append(f"{rid}: expert version {cfg.get('expert_version')}, "
                            f"the protocol is {protocol.expert_version}")
        try:
            pair = get_pair(cfg["pair"])
        except (KeyError, ValueError):
            problems.append(f"{rid}: unknown pair {cfg['pair']!r}")
        else:
            if cfg.get("pair_version") != pair.version:
                problems.append(f"{rid}: {cfg['pair']} version {cfg.get('pair_version')} (current {pair.version})")
        if cfg.get("profile") != protocol.profile:
            problems.append(f"{rid}: profile {cfg.get('profile')!r}, the protocol is {protocol.profile!r}")
        if rec["eval"]["target"]["n"] < protocol.min_episodes:
            problems.append(f"{rid}: {rec['eval']['target']['n']} episodes, the protocol needs {protocol.min_episodes}")
        seeds.setdefault((cfg["pair"], cfg["method"], cfg.get("w")), set()).add(cfg["seed"])
    for (pair, method, w), s in sorted(seeds.items(), key=str):
        if len(s) < protocol.min_seeds:
            problems.append(f"{pair} {method} w={w}: {len(s)} seed(s), the protocol needs {protocol.min_seeds}")
    for method in sorted({m for _, m, _ in seeds}):
        missing = set(protocol.pairs) - {p for p, m, _ in seeds if m == method}
        if missing:
            problems.append(f"{method}: no records for {', '.join(sorted(missing))}")
    return problems


def submit(record_paths: list[str | Path], board_dir: str | Path,
           protocol: Protocol = LEADERBOARD_PROTOCOL) -> dict[str, Path]:
    """Check the records (files or run folders) and, if all follow the protocol, copy them into
    `board_dir/records/` and rewrite the leaderboard there. Raises ValueError listing every problem."""
    records = []
    for path in map(Path, record_paths):
        found = load_records(path) if path.is_dir() else [read_record(path)]
        if not found:
            raise RecordError(f"{path}: no record.json")
        records += found
    problems = check_records(records, protocol)
    if problems:
        raise ValueError("records do not follow the protocol:\n  " + "\n  ".join(problems))
    board = Path(board_dir)
    for rec in records:
        dest = board / "records" / rec["run_id"] / "record.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(rec, indent=2, sort_keys=True))
    return write_leaderboard(load_records(board / "records"), board)

