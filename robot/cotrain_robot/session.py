"""An evaluation session of an exported policy on an arm (real, remote or the simulated stand-in).

`arm_eval` resets the robot, runs each episode through a `PolicyRunner` (safety checks, hold), takes
each episode's success from the robot where it can tell (the stand-in) or from the operator, and
writes, after every episode:

- `episodes.hdf5`: every episode as a demonstration in the suite's robomimic layout
  (`cotrain_robot.episodes`): observations in the bundle's layout, the actions sent (a hold
  included), rewards 1 at the last step of a successful episode; `data.attrs` carry the pair, the
  domain ("target"), the source ("arm-eval"), the bundle's provenance and one summary per episode;
- `summary.json`: successes, rate, the 95% Wilson interval, the per-episode records (seed, success,
  length, stop reason, hold, violations, inference timing), the runner's settings and safety limits.

An episode stopped by a safety check or a lost connection counts as a failure; a lost connection also
ends the session (the arm server holds the arm). An operator interrupt (Ctrl-C) holds the arm, asks
for that episode's success and ends the session.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from .bundle import BundleError, BundlePolicy, load_bundle
from .client import remote_robot
from .episodes import write_episodes
from .robot import Robot
from .runner import Episode, PolicyRunner
from .safety import SafetyLimits

log = logging.getLogger(__name__)
SUMMARY_FILE, EPISODES_FILE = "summary.json", "episodes.hdf5"


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson (1927) score interval of a binomial proportion, as cotrain-bench reports it; n = 0 gives (nan, nan)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p, z2 = successes / n, z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def bundle_test_seeds(spec: dict[str, Any], run_seed: int, count: int) -> list[int]:
    """The first `count` episode seeds of run seed `run_seed` by the bundle's rule (policy.json `evaluation`):
    the suite's test start states, the same for every method evaluated in simulation."""
    rule = spec.get("evaluation")
    if rule is None:
        raise BundleError("the bundle states no evaluation seeds (exported before they were recorded): give seeds")
    if not 0 <= run_seed < rule["max_run_seed"]:
        raise ValueError(f"run seed must be in [0, {rule['max_run_seed']}), got {run_seed}")
    if not 0 <= count <= rule["seeds_per_run_seed"]:
        raise ValueError(f"count must be in [0, {rule['seeds_per_run_seed']}], got {count}")
    start = rule["first_seed"] + run_seed * rule["seeds_per_run_seed"]
    return list(range(start, start + count))


def _ask_success(ask: Callable[[str], str], index: int, ep: Episode) -> bool:
    while True:
        answer = ask(f"episode {index} (seed {ep.seed}, {ep.length} steps, {ep.stop_reason}): success? [y/n] ")
        answer = answer.strip().lower()
        if answer in ("y", "yes", "1"):
            return True
        if answer in ("n", "no", "0"):
            return False


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def arm_eval(bundle_dir: str | Path, robot_spec: str | Robot, episodes: int, out_dir: str | Path,
             seeds: list[int] | None = None, ask_operator: Callable[[str], str] | None = input,
             backend: str = "onnx", limits: SafetyLimits | None = None, execution_horizon: int | None = None,
             temporal_ensembling: float | None = None, max_steps: int | None = None, seed: int = 0,
             realtime: bool | None = None, timeout_s: float = 2.0, threads: int | None = 1,
             make_robot: Callable[[str, float], Robot] = remote_robot) -> dict[str, Any]:
    """Run `episodes` episodes of the bundle on the robot and write `episodes.hdf5` and `summary.json`.

    robot_spec: a `Robot` object (connected here, closed by the caller), or a spec that `make_robot(spec,
    timeout_s)` turns into one (connected and closed here): by default `tcp://host:port` of an `ArmServer`
    (cotrain-bench's `benchmark.deploy.standin.make_robot` adds its simulated stand-in, `sim:<pair>`).
    seeds: per-episode seeds (reset of a simulated robot and the policy's noise); default: the bundle's
    test seeds of run seed `seed` (`bundle_test_seeds`). ask_operator: asks the operator
    (success on a real arm, "ready?" before each episode); None makes a real-arm session refuse to run.
    max_steps: control steps per episode (default: the robot's horizon where it states one).
    realtime: keep the control period (default: on for robots that are not simulated).
    threads: inference threads (1: one chunk gains nothing from more; None: the backend's default).
    Returns the summary.
    """
    policy = load_bundle(bundle_dir, backend, num_threads=threads)
    owned = isinstance(robot_spec, str)  # a robot made here is closed here; a given one stays the caller's
    robot = make_robot(robot_spec, timeout_s) if owned else robot_spec
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds) if seeds is not None else bundle_test_seeds(policy.spec, seed, episodes)
    if len(seeds) < episodes:
        raise ValueError(f"{episodes} episodes need as many seeds, got {len(seeds)}")
    robot.connect()
    t0 = time.time()
    results: list[Episode] = []
    summary: dict[str, Any] = {}
    try:
        info = robot.info()
        simulated = info.get("kind") == "sim"
        if not simulated and ask_operator is None:
            raise ValueError("a real arm needs an operator (ask_operator) to judge success")
        steps = max_steps or info.get("horizon")
        if not steps:
            raise ValueError("the robot states no horizon: give max_steps")
        runner = PolicyRunner(policy, robot, limits or SafetyLimits.from_bundle(policy.spec), execution_horizon,
                              temporal_ensembling, realtime=(not simulated) if realtime is None else realtime)
        prov = policy.spec.get("provenance", {})
        attrs = {"pair": info.get("pair", prov.get("pair")), "domain": "target", "source": "arm-eval",
                 "robot": str(robot_spec) if isinstance(robot_spec, str) else type(robot_spec).__name__,
                 "robot_info": info, "bundle": str(bundle_dir), "bundle_run_id": prov.get("run_id"),
                 "method": prov.get("method"), "backend": backend,
                 "env_args": {"env_name": "arm-eval", "type": 1, "env_kwargs": {"robot": str(robot_spec)}}}
        aborted = None
        for index in range(episodes):
            if not simulated:
                answer = ask_operator(f"episode {index + 1}/{episodes}: reset the scene, then Enter (q to stop) ")
                if answer.strip().lower() == "q":
                    aborted = "stopped by the operator"
                    break
            ep = runner.run_episode(seeds[index], int(steps))
            if ep.success is None:
                ep.success = _ask_success(ask_operator, index + 1, ep) if ask_operator else False
            results.append(ep)
            log.info("episode %d seed %s: success %s (%s, %d steps)", index + 1, ep.seed, ep.success,
                     ep.stop_reason, ep.length)
            if ep.stop_reason == "connection_lost":
                aborted = f"connection lost in episode {index + 1}: the arm server holds the arm"
            elif ep.stop_reason == "interrupt":
                aborted = f"operator interrupt in episode {index + 1}"
            summary = _summary(policy, runner, robot_spec, info, results, aborted, t0, backend)
            summary["episodes_in_hdf5"] = write_episodes(out / EPISODES_FILE, policy.layout, results, attrs)
            _write_json(out / SUMMARY_FILE, summary)
            if aborted:
                break
        if not results:
            summary = _summary(policy, runner, robot_spec, info, results, aborted, t0, backend)
            summary["episodes_in_hdf5"] = 0
            _write_json(out / SUMMARY_FILE, summary)
    finally:
        if owned:
            robot.close()
    return summary


def _summary(policy: BundlePolicy, runner: PolicyRunner, robot_spec: Any, info: dict, results: list[Episode],
             aborted: str | None, t0: float, backend: str) -> dict[str, Any]:
    n = len(results)
    k = sum(bool(ep.success) for ep in results)
    lo, hi = wilson_interval(k, n)
    prov = policy.spec.get("provenance", {})
    return {"n": n, "successes": k, "success_rate": k / n if n else None, "ci95": [lo, hi] if n else None,
            "aborted": aborted, "episodes": [ep.summary() for ep in results],
            "robot": str(robot_spec) if isinstance(robot_spec, str) else type(robot_spec).__name__,
            "robot_info": info, "bundle": str(policy.dir), "backend": backend,
            "policy": {"run_id": prov.get("run_id"), "method": prov.get("method"), "pair": prov.get("pair"),
                       "success_in_simulation": prov.get("success")},
            "runner": runner.settings(), "wall_s": time.time() - t0,
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
