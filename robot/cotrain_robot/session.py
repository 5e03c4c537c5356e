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

An episode stopped by a safety check counts as a failure and the session goes on. A lost connection,
a robot error, an operator interrupt (Ctrl-C: the arm is held and the operator judges that episode)
or the operator's stop ends the session early: `summary.json` then has `complete: false` and `stopped`
({reason, episode, detail, hold_confirmed}), and `aborted` says in words what is known: after a lost
link, whether the arm server confirmed that it holds the arm (a server that went silent cannot).

The output folder is made and tested for writing before the robot is connected; a session that fails
before writing anything leaves no folder behind.
"""
from __future__ import annotations

import datetime as dt
import errno
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
    try:
        tmp.write_text(json.dumps(obj, indent=2, default=float))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _os_error_line(err: OSError, path: Path) -> str:
    why = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
           errno.ENOSPC: "no space left on the device"}.get(err.errno or 0, err.strerror or str(err))
    return f"cannot write {err.filename or path}: {why}"


def _make_output_folder(out: Path) -> list[Path]:
    """Create `out` (and missing parents) and check that a file can be written in it; returns the folders
    created here, deepest first. RuntimeError naming the path and the reason otherwise."""
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        _remove_empty(created)
        raise RuntimeError(_os_error_line(err, out)) from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or never made): it and its parents stay


def _stop_record(index: int, ep: Episode) -> dict[str, Any] | None:
    """What ended the session in episode `index` (1-based), or None when the session goes on."""
    if ep.stop_reason not in ("connection_lost", "robot_error", "interrupt"):
        return None
    detail = ep.violations[-1]["detail"] if ep.violations else ep.stop_reason
    return {"reason": ep.stop_reason, "episode": index, "detail": detail, "hold_confirmed": ep.held}


def _stop_message(stop: dict[str, Any]) -> str:
    """The stop in words, claiming only what this side knows."""
    where = f"in episode {stop['episode']}"
    if stop["reason"] == "operator_stop":
        return f"stopped by the operator before episode {stop['episode']}"
    runner_hold = ("the runner sent the hold action" if stop["hold_confirmed"]
                   else "the hold action could not be sent: check the arm")
    if stop["reason"] == "interrupt":
        return f"operator interrupt {where}: {runner_hold}"
    if stop["reason"] == "robot_error":
        return f"robot error {where} ({stop['detail']}): {runner_hold}"
    return f"connection lost {where} ({stop['detail']}): " + (
        "the arm server confirmed that it holds the arm" if stop["hold_confirmed"] else
        "the arm server did not confirm a hold, so whether the arm is held is unknown: check the arm")


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
    Returns the summary (`complete` false when the session ended early, see the module docstring).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    policy = load_bundle(bundle_dir, backend, num_threads=threads)
    seeds = list(seeds) if seeds is not None else bundle_test_seeds(policy.spec, seed, episodes)
    if len(seeds) < episodes:
        raise ValueError(f"{episodes} episodes need as many seeds, got {len(seeds)}")
    owned = isinstance(robot_spec, str)  # a robot made here is closed here; a given one stays the caller's
    robot = make_robot(robot_spec, timeout_s) if owned else robot_spec
    out = Path(out_dir)
    created = _make_output_folder(out)
    try:
        return _run_session(policy, robot, robot_spec, episodes, out, seeds, ask_operator, backend, limits,
                            execution_horizon, temporal_ensembling, max_steps, realtime, owned)
    except OSError as err:
        raise RuntimeError(_os_error_line(err, out)) from None
    finally:
        _remove_empty(created)


def _run_session(policy: BundlePolicy, robot: Robot, robot_spec: str | Robot, episodes: int, out: Path,
                 seeds: list[int], ask_operator: Callable[[str], str] | None, backend: str,
                 limits: SafetyLimits | None, execution_horizon: int | None, temporal_ensembling: float | None,
                 max_steps: int | None, realtime: bool | None, owned: bool) -> dict[str, Any]:
    """`arm_eval`'s session on a built robot and a writable `out`."""
    results: list[Episode] = []
    summary: dict[str, Any] = {}
    t0 = time.time()
    try:
        robot.connect()
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
                 "robot_info": info, "bundle": str(policy.dir), "bundle_run_id": prov.get("run_id"),
                 "method": prov.get("method"), "backend": backend,
                 "env_args": {"env_name": "arm-eval", "type": 1, "env_kwargs": {"robot": str(robot_spec)}}}
        stop: dict[str, Any] | None = None
        for index in range(episodes):
            if not simulated:
                answer = ask_operator(f"episode {index + 1}/{episodes}: reset the scene, then Enter (q to stop) ")
                if answer.strip().lower() == "q":
                    stop = {"reason": "operator_stop", "episode": index + 1, "detail": "q at the prompt",
                            "hold_confirmed": None}
                    break
            ep = runner.run_episode(seeds[index], int(steps))
            if ep.success is None:
                ep.success = _ask_success(ask_operator, index + 1, ep) if ask_operator else False
            results.append(ep)
            log.info("episode %d seed %s: success %s (%s, %d steps)", index + 1, ep.seed, ep.success,
                     ep.stop_reason, ep.length)
            stop = _stop_record(index + 1, ep)
            summary = _summary(policy, runner, robot_spec, info, results, episodes, stop, t0, backend)
            summary["episodes_in_hdf5"] = write_episodes(out / EPISODES_FILE, policy.layout, results, attrs)
            _write_json(out / SUMMARY_FILE, summary)
            if stop:
                break
        if stop and stop["reason"] == "operator_stop" or not results:
            summary = _summary(policy, runner, robot_spec, info, results, episodes, stop, t0, backend)
            summary["episodes_in_hdf5"] = sum(1 for ep in results if ep.length)
            _write_json(out / SUMMARY_FILE, summary)
    finally:
        if owned:
            robot.close()
    return summary


def _summary(policy: BundlePolicy, runner: PolicyRunner, robot_spec: Any, info: dict, results: list[Episode],
             requested: int, stop: dict[str, Any] | None, t0: float, backend: str) -> dict[str, Any]:
    n = len(results)
    k = sum(bool(ep.success) for ep in results)
    lo, hi = wilson_interval(k, n)
    prov = policy.spec.get("provenance", {})
    return {"n": n, "successes": k, "success_rate": k / n if n else None, "ci95": [lo, hi] if n else None,
            "episodes_requested": requested, "complete": stop is None and n == requested, "stopped": stop,
            "aborted": _stop_message(stop) if stop else None, "episodes": [ep.summary() for ep in results],
            "robot": str(robot_spec) if isinstance(robot_spec, str) else type(robot_spec).__name__,
            "robot_info": info, "bundle": str(policy.dir), "backend": backend,
            "policy": {"run_id": prov.get("run_id"), "method": prov.get("method"), "pair": prov.get("pair"),
                       "success_in_simulation": prov.get("success")},
            "runner": runner.settings(), "wall_s": time.time() - t0,
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
