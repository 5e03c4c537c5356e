"""What a record must satisfy to enter a board: the rules of the track it was made under (`check_track`: the
track's grid at its budget, `benchmark/harness/tracks/`), or a `Protocol` for records made under no track."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.experts import EXPERT_VERSION

from benchmark.harness.config import PROFILES, SUITE_VERSION


@dataclass(frozen=True)
class Protocol:
    """What a record made under no track must satisfy to enter a board of no track."""

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


def _version_problems(rec: dict, expert_version: int) -> list[str]:
    """Why a record's suite, expert or pair version is not today's, and why its start states are not the test ones."""
    from tasks import get_pair

    cfg, rid = rec["config"], rec["run_id"]
    problems = []
    if cfg.get("suite_version") != SUITE_VERSION:
        problems.append(f"{rid}: suite version {cfg.get('suite_version')} (this suite is {SUITE_VERSION})")
    if cfg.get("expert_version") != expert_version:
        problems.append(f"{rid}: expert version {cfg.get('expert_version')}, the protocol is {expert_version}")
    pair = get_pair(cfg["pair"])
    if cfg.get("pair_version") != pair.version:
        problems.append(f"{rid}: {cfg['pair']} version {cfg.get('pair_version')} (current {pair.version})")
    if cfg.get("eval_split", "test") != "test":
        problems.append(f"{rid}: evaluated on {cfg['eval_split']} start states; a board reports test ones only")
    return problems


def check_records(records: list[dict], protocol: Protocol = LEADERBOARD_PROTOCOL) -> list[str]:
    """Every reason the (valid) records of no track break the protocol (empty when they follow it)."""
    problems = []
    seeds: dict[tuple, set] = {}
    for rec in records:
        cfg, rid = rec["config"], rec["run_id"]
        problems += _version_problems(rec, protocol.expert_version)
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


def track_label(track: dict | None) -> str:
    """`track 'leaderboard' (budget 'full')`, or `no track`."""
    if track is None:
        return "no track"
    return f"track {track['name']!r}" + (f" (budget {track['budget']!r})" if track["budget"] else "")


def _describe(item: Any) -> str:
    cfg = getattr(item, "trained", item)
    kind = " (no-gap evaluation)" if item is not cfg else ""
    return f"{cfg.pair} m={0.0 if kind else cfg.magnitude:g} seed={cfg.seed}{kind}"


def _track_runs(grid: Any, device: str, threads: int) -> dict[str, Any]:
    """The track's runs and no-gap evaluations by run id, at a device and thread count (both hashed)."""
    from dataclasses import replace

    from benchmark.harness.grid import NoGapEval

    runs = [replace(cfg, device=device, threads=threads) for cfg in grid.runs()]
    runs += [NoGapEval(replace(ev.trained, device=device, threads=threads)) for ev in grid.evaluations()]
    return {item.run_id(): item for item in runs}


def check_track(records: list[dict], track: dict) -> list[str]:
    """Every reason the (valid) records break `track`'s rules at its budget: pair, method, seed, test episodes
    per seed, profile, checkpoint rule, test start states, versions, and a run id among the track's runs; and,
    for each method submitted, every run of the track's grid there (its no-gap controls included)."""
    from benchmark.harness.grid import load_grid
    from benchmark.harness.gridspec import GridError

    label = track_label(track)
    try:
        grid = load_grid(track=track["name"], budget=track["budget"])
    except GridError as err:
        return [f"{label}: its rules cannot be read ({err})"]
    episodes = grid.episodes or PROFILES[grid.profile].episodes
    expected: dict[tuple, dict[str, Any]] = {}  # (device, threads) -> the track's runs by id
    together = {(c.pair, c.method, c.seed) for c in grid.runs()}  # of a grid made of parts: not every combination
    problems = []
    for rec in records:
        cfg, rid = rec["config"], rec["run_id"]
        problems += _version_problems(rec, EXPERT_VERSION)
        found = [f"{key} {cfg.get(key)!r} is not one of the track's ({', '.join(map(str, allowed))})"
                 for key, allowed in (("pair", grid.pairs), ("method", grid.methods), ("seed", grid.seeds))
                 if cfg.get(key) not in allowed]
        if not found and (cfg.get("pair"), cfg.get("method"), cfg.get("seed")) not in together:
            found.append(f"pair {cfg.get('pair')!r}, method {cfg.get('method')!r} and seed {cfg.get('seed')!r} are "
                         "not together in any of the track's runs")
        if rec["eval"]["target"]["n"] != episodes:
            found.append(f"{rec['eval']['target']['n']} test episodes per seed, the track's rule is {episodes}")
        if cfg.get("profile") != grid.profile:
            found.append(f"profile {cfg.get('profile')!r}, the track's is {grid.profile!r}")
        if cfg.get("checkpoint_rule") != grid.checkpoint_rule:
            found.append(f"checkpoint rule {cfg.get('checkpoint_rule')!r}, the track's is {grid.checkpoint_rule!r}")
        where = (cfg.get("device", "cpu"), cfg.get("threads", 1))
        if where not in expected:
            try:
                expected[where] = _track_runs(grid, *where)
            except (TypeError, ValueError):
                expected[where] = {}
        if not found and rid not in expected[where]:
            found.append("not one of the track's runs: its magnitude, N, M, w, training steps, network or "
                         "hyperparameters differ from the track's")
        problems += [f"{rid}: {problem} ({label})" for problem in found]
    for where, runs in sorted(expected.items(), key=str):
        submitted = {r["run_id"] for r in records if (r["config"].get("device", "cpu"), r["config"].get("threads", 1)) == where}
        for method in sorted({r["config"]["method"] for r in records if r["run_id"] in submitted}):
            missing = [_describe(item) for rid, item in runs.items() if item.method == method and rid not in submitted]
            if missing:
                problems.append(f"{method}: {len(missing)} of the {label}'s runs missing: "
                                + ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else ""))
    return problems
