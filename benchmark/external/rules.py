"""The external track: policies trained elsewhere, evaluated under the leaderboard track's evaluation protocol
at one of its budgets (its pairs, seeds, gap magnitude, test start states and episodes per seed), their records
named by the policy's name and reported digest, and the rules a board of the external track checks them by."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from benchmark.harness.config import PROFILES, SUITE_VERSION, RunConfig, content_hash

EXTERNAL_TRACK = "external"
REFERENCE_TRACK = "leaderboard"
"""The track whose evaluation protocol external policies are evaluated under."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
"""A policy's name: what the board's method column shows."""


@dataclass(frozen=True)
class EvalProtocol:
    """The evaluation protocol of the leaderboard track at one budget."""

    budget: str
    pairs: tuple[str, ...]
    seeds: tuple[int, ...]
    magnitude: float
    episodes: int
    profile: str

    @property
    def track(self) -> dict[str, str]:
        """What an external record names as its track."""
        return {"name": EXTERNAL_TRACK, "budget": self.budget}

    def backend(self, pair: str) -> str:
        """The simulation backend the track's runs of `pair` are evaluated on."""
        return RunConfig(pair=pair, profile=self.profile).backend


def eval_protocol(budget: str) -> EvalProtocol:
    """The leaderboard track's evaluation protocol at `budget`; ValueError for a budget it does not have."""
    from benchmark.harness.grid import GridUnion, load_grid
    from benchmark.harness.gridspec import GridError

    try:
        grid = load_grid(track=REFERENCE_TRACK, budget=budget)
    except GridError as err:
        raise ValueError(f"budget {budget!r}: {err}") from None
    # the protocol every method runs: a budget made of parts adds seeds to some methods only (its first part is
    # the grid of every method)
    grid = grid.parts[0] if isinstance(grid, GridUnion) else grid
    return EvalProtocol(budget, tuple(grid.pairs), tuple(grid.seeds), max(grid.magnitudes),
                        grid.episodes or PROFILES[grid.profile].episodes, grid.profile)


def record_id(config: dict[str, Any]) -> str:
    """An external record's id: the hash of its config (the policy's name and digest, the protocol, the declared
    training data), so another policy, or another version of one, never shares a record."""
    return content_hash({k: v for k, v in config.items() if k != "run_id"})


def check_external(records: list[dict], track: dict) -> list[str]:
    """Every reason the (valid) records break the external track's rules at `track`'s budget: self-reported,
    a well-formed name and digest, an id that is the hash of the config, and the leaderboard track's pair, seed,
    magnitude, backend, test start states, episodes per seed and versions."""
    from tasks import get_pair
    from tasks.seeds import episode_seeds

    label = f"track {EXTERNAL_TRACK!r} (budget {track.get('budget')!r})"
    try:
        protocol = eval_protocol(track.get("budget"))
    except ValueError as err:
        return [f"{label}: its rules cannot be read ({err})"]
    problems = []
    for rec in records:
        cfg, rid, target = rec["config"], rec["run_id"], rec["eval"]["target"]
        found = []
        if rec.get("self_reported") is not True:
            found.append("self_reported: an external record is self-reported (true)")
        if not isinstance(cfg.get("method"), str) or not NAME.fullmatch(cfg["method"]):
            found.append(f"config.method: the policy's name {cfg.get('method')!r} is not 1 to 64 letters, digits, "
                         "'_', '.', '+' or '-'")
        if not isinstance(cfg.get("digest"), str) or not cfg["digest"]:
            found.append(f"config.digest: expected the digest the policy reported, got {cfg.get('digest')!r}")
        if record_id(cfg) != rid:
            found.append(f"run_id: the config hashes to {record_id(cfg)!r}")
        for key, allowed in (("pair", protocol.pairs), ("seed", protocol.seeds)):
            if cfg.get(key) not in allowed:
                found.append(f"{key} {cfg.get(key)!r} is not one of the track's ({', '.join(map(str, allowed))})")
        if cfg.get("magnitude") != protocol.magnitude:
            found.append(f"magnitude {cfg.get('magnitude')!r}, the track's is {protocol.magnitude:g}")
        if target["n"] != protocol.episodes:
            found.append(f"{target['n']} test episodes per seed, the track's rule is {protocol.episodes}")
        if cfg.get("suite_version") != SUITE_VERSION:
            found.append(f"suite version {cfg.get('suite_version')} (this suite is {SUITE_VERSION})")
        if not found:  # the pair and seed are the track's: their versions, backend and start states
            if cfg.get("pair_version") != get_pair(cfg["pair"]).version:
                found.append(f"{cfg['pair']} version {cfg.get('pair_version')} (current {get_pair(cfg['pair']).version})")
            if cfg.get("backend") != protocol.backend(cfg["pair"]):
                found.append(f"backend {cfg.get('backend')!r}, the track's is {protocol.backend(cfg['pair'])!r}")
            if {e["seed"] for e in target.get("episodes") or []} != set(episode_seeds("test", cfg["seed"], target["n"])):
                found.append("its episodes are not the test start states of its seed")
        problems += [f"{rid}: {problem} ({label})" for problem in found]
    return problems
