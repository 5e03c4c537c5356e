"""The policy runner: observations in, actions out at the control rate, with the safety checks between.

On a refusal by the safety checks or an operator interrupt (Ctrl-C) the runner sends the hold action,
logs the violation and ends the episode as failed (an interrupted episode is judged by the operator).
`ConnectionLost` (raised by a remote robot when the link drops) ends the episode as failed; the arm
server holds the arm on its side when it is still running, and the episode records `held` only when the
server confirmed it.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .robot import ConnectionLost, Robot, RobotError
from .safety import SafetyChecker, SafetyLimits

log = logging.getLogger(__name__)


@dataclass
class Episode:
    """One rollout as the runner saw it. obs[t] is the observation before actions[t] was sent."""

    seed: int | None
    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    success: bool | None = None
    stop_reason: str = ""
    """`done` (the robot ended it), `max_steps`, `safety`, `interrupt`, `connection_lost` or `robot_error`."""
    held: bool = False
    violations: list[dict[str, Any]] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    late_inferences: int = 0
    late_steps: int = 0
    wall_s: float = 0.0

    @property
    def length(self) -> int:
        return len(self.actions)

    def summary(self) -> dict[str, Any]:
        inf = np.asarray(self.inference_ms) if self.inference_ms else np.zeros(1)
        return {"seed": self.seed, "success": self.success, "length": self.length, "stop_reason": self.stop_reason,
                "held": self.held, "violations": self.violations, "inference_ms_mean": float(inf.mean()),
                "inference_ms_max": float(inf.max()), "late_inferences": self.late_inferences,
                "late_steps": self.late_steps, "wall_s": self.wall_s}


class PolicyRunner:
    """Turns observations into actions at the control rate, with the safety checks in between.

    policy: a `cotrain_robot.bundle.BundlePolicy` (normalization, domain token and guidance are inside it).
    execution_horizon: actions of a chunk executed before the next prediction (default: the bundle's
        `n_action_steps`; 1 with temporal ensembling).
    temporal_ensembling: None, or the decay m of ACT's temporal ensemble (Zhao et al. 2023): every
        stored chunk that covers step t votes for its action at t with weight exp(-m * i), i = 0 for the
        oldest; m = 0.01 is ACT's. Chunks are predicted every `execution_horizon` steps.
    realtime: sleep to keep the control period (a real arm); False steps as fast as the robot allows.
    Noise: chunk k of an episode with seed s uses numpy default_rng([s, k]) (reproducible anywhere).
    A warning is logged when an inference takes longer than the control period.
    """

    def __init__(self, policy: Any, robot: Robot, limits: SafetyLimits | None = None,
                 execution_horizon: int | None = None, temporal_ensembling: float | None = None,
                 control_hz: float | None = None, realtime: bool = False):
        if getattr(policy, "image_keys", ()):
            raise NotImplementedError(f"the runner feeds low-dimensional observations only; this bundle also needs "
                                      f"camera frames {list(policy.image_keys)} (call its act/act_chunk with them)")
        self.policy, self.robot = policy, robot
        self.limits = limits if limits is not None else SafetyLimits.from_bundle(policy.spec)
        self.checker = SafetyChecker(self.limits, policy.action_dim)
        if temporal_ensembling is not None and temporal_ensembling < 0:
            raise ValueError(f"temporal_ensembling decay must be >= 0, got {temporal_ensembling}")
        self.ensemble = temporal_ensembling
        default_h = 1 if temporal_ensembling is not None else policy.n_action_steps
        self.execution_horizon = default_h if execution_horizon is None else int(execution_horizon)
        if not 1 <= self.execution_horizon <= policy.horizon:
            raise ValueError(f"execution_horizon {self.execution_horizon} must be in [1, {policy.horizon}]")
        self.control_hz = float(control_hz or policy.control_hz)
        self.period = 1.0 / self.control_hz
        self.realtime = realtime
        self.keys = [k for k, _ in policy.layout]

    def settings(self) -> dict[str, Any]:
        return {"execution_horizon": self.execution_horizon, "temporal_ensembling": self.ensemble,
                "control_hz": self.control_hz, "realtime": self.realtime, "limits": self.limits.to_dict()}

    def _noise(self, seed: int | None, chunk: int) -> np.ndarray:
        rng = np.random.default_rng(None if seed is None else [int(seed), chunk])
        return rng.standard_normal((self.policy.horizon, self.policy.action_dim)).astype(np.float32)

    def _violation(self, ep: Episode, step: int, kind: str, detail: str, action: Any = None) -> None:
        entry = {"step": step, "kind": kind, "detail": detail}
        if action is not None:
            entry["action"] = np.asarray(action, float).round(6).tolist()
        ep.violations.append(entry)
        log.warning("episode seed %s step %d: %s: %s", ep.seed, step, kind, detail)

    def _hold(self, ep: Episode, obs: np.ndarray | None) -> None:
        hold = self.checker.hold_action(ep.actions[-1] if ep.actions else None)
        try:
            self.robot.send_action(hold)
        except ConnectionLost as err:
            ep.held = err.hold_confirmed  # a live server holds the arm on its side
            return
        except RobotError as err:
            log.error("episode seed %s: the hold action failed: %s", ep.seed, err)
            return
        ep.held = True
        if obs is not None:
            ep.obs.append(obs)
            ep.actions.append(hold)

    def run_episode(self, seed: int | None, max_steps: int) -> Episode:
        """Reset the robot and run one episode of at most `max_steps` control steps."""
        ep = Episode(seed=seed)
        t_start = time.perf_counter()
        flat: np.ndarray | None = None
        step = 0
        try:
            self.robot.reset(seed)
            observation = self.robot.get_observation()
            flat = self.policy.flatten(observation)
            history = deque([flat] * self.policy.n_obs_steps, maxlen=self.policy.n_obs_steps)
            chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=self.policy.horizon)
            n_chunks = 0
            for step in range(max_steps):
                tick = time.perf_counter()
                problems = self.checker.check_observation(flat)
                if problems:
                    self._violation(ep, step, "nan_observation", problems[0])
                    ep.stop_reason = "safety"
                    self._hold(ep, None)
                    break
                if step % self.execution_horizon == 0:
                    t0 = time.perf_counter()
                    chunk = self.policy.act_chunk(np.stack(history), self._noise(seed, n_chunks))
                    ms = (time.perf_counter() - t0) * 1e3
                    n_chunks += 1
                    ep.inference_ms.append(ms)
                    if ms > self.period * 1e3:
                        ep.late_inferences += 1
                        if ep.late_inferences <= 3:
                            log.warning("inference took %.1f ms, more than the control period %.1f ms", ms,
                                        self.period * 1e3)
                    chunks.append((step, chunk))
                action = self._select(chunks, step)
                to_send, violations = self.checker.check(action, observation)
                if violations:
                    for kind, detail in violations:
                        self._violation(ep, step, kind, detail, action)
                    ep.stop_reason = "safety"
                    self._hold(ep, flat)
                    break
                self.robot.send_action(to_send)
                ep.obs.append(flat)
                ep.actions.append(to_send)
                if self.realtime:
                    left = self.period - (time.perf_counter() - tick)
                    if left > 0:
                        time.sleep(left)
                    else:
                        ep.late_steps += 1
                observation = self.robot.get_observation()
                flat = self.policy.flatten(observation)
                history.append(flat)
                if self.robot.done():
                    ep.stop_reason = "done"
                    break
            else:
                ep.stop_reason = "max_steps"
        except KeyboardInterrupt:
            self._violation(ep, step, "interrupt", "operator interrupt (Ctrl-C): arm held")
            ep.stop_reason = "interrupt"
            self._hold(ep, flat)
        except ConnectionLost as err:
            self._violation(ep, step, "connection_lost", str(err))
            ep.stop_reason = "connection_lost"
            ep.held = err.hold_confirmed  # by the server's link watchdog, when it said so
        except RobotError as err:
            self._violation(ep, step, "robot_error", str(err))
            ep.stop_reason = "robot_error"
            self._hold(ep, flat)
        ep.wall_s = time.perf_counter() - t_start
        if ep.stop_reason in ("done", "max_steps", "interrupt"):
            try:
                ep.success = self.robot.success()
            except ConnectionLost as err:
                self._violation(ep, step, "connection_lost", str(err))
                ep.stop_reason, ep.success, ep.held = "connection_lost", False, err.hold_confirmed
            except RobotError as err:
                self._violation(ep, step, "robot_error", str(err))
                ep.stop_reason, ep.success = "robot_error", False
            if ep.stop_reason == "interrupt" and ep.success is not None:
                ep.success = bool(ep.success)
        else:
            ep.success = False
        return ep

    def _select(self, chunks: deque, step: int) -> np.ndarray:
        """The action for `step`: the newest chunk's entry, or the temporal ensemble of all covering chunks."""
        start, chunk = chunks[-1]
        if self.ensemble is None:
            return chunk[step - start]
        votes = [c[step - s] for s, c in chunks if 0 <= step - s < len(c)]  # oldest first
        weights = np.exp(-self.ensemble * np.arange(len(votes)))
        return (np.tensordot(weights / weights.sum(), np.asarray(votes, np.float64), axes=1)).astype(np.float32)

