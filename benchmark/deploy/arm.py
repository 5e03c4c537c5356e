"""Running an exported policy on a robot arm: the robot interface, safety checks and the policy runner.

Contract of a `Robot` (implement it for your arm's driver; `SimRobot` is the simulated stand-in and
`benchmark.deploy.arm_net.RemoteRobot` the same interface over a socket):

- A driver speaks quaternions: `robot_state()` returns `eef_pos` (3, metres), `eef_quat` (4, unit
  quaternion x, y, z, w; either sign) and `gripper` (1, opening in [0, 1]: 0 closed, 1 fully open), and
  `object_poses()` per object `<obj>_pos` (3, m) and `<obj>_quat` (4, x y z w). `get_observation` turns
  them into the bundle's layout keys (policy.json `observation.layout`): every `<name>_quat` becomes
  `<name>_rot6d` (6, `rot6d`: the first two columns of its rotation matrix, continuous where a quaternion
  flips sign), and `<obj>_rel_pos` (3, m, object minus end effector) is added. Poses are in the POLICY
  FRAME: the simulation's world frame, whose axes are aligned with the robot base frame, with the robot
  base at policy.json `observation.robot_base_position_world`. A driver that reads poses in its base
  frame converts them with `to_policy_frame`. The end-effector point and orientation are those of the
  simulated grip site: compare your tool frame with policy.json `observation.reference_eef_pose` (the
  home pose) and calibrate a fixed tool offset if they differ.
- Actions are the bundle's action layout (policy.json `action`): for the robosuite tasks 7 floats in
  [-1, 1], an OSC_POSE delta: `a[0:3]` x `action.position_scale_m` metres of end-effector motion along
  the base axes, `a[3:6]` x `action.rotation_scale_rad` radians (axis-angle) of rotation, `a[6]` the
  gripper (> 0 close, < 0 open, 0 keep the current state). Each action is one control step (policy.json
  `chunk.control_hz`): `send_action` should command the move and return without waiting for it to
  finish. A zero motion with the gripper command kept is the HOLD action: the arm keeps its pose.

Object poses: a low-dimensional policy needs the objects' poses, which a real arm does not measure. The
`object_poses()` hook is where your perception plugs in; `Robot.get_observation` combines it with
`robot_state()` and computes the relative positions. A fiducial-marker sketch (OpenCV ArUco, a
calibrated camera with a known camera-to-base transform `T_base_cam`, one marker per object)::

    def object_poses(self):
        frame = self.camera.read()
        corners, ids, _ = cv2.aruco.ArucoDetector(DICT, PARAMS).detectMarkers(frame)
        out = {}
        for c, i in zip(corners, ids.ravel()):
            name = MARKER_TO_OBJECT[i]                       # e.g. {7: "cube"}
            ok, rvec, tvec = cv2.solvePnP(MARKER_CORNERS_3D, c[0], K, DIST)
            R_cam_obj = cv2.Rodrigues(rvec)[0]
            p_base = T_base_cam[:3, :3] @ tvec.ravel() + T_base_cam[:3, 3] + OBJECT_CENTRE_OFFSET[name]
            q_base = quat_from_matrix(T_base_cam[:3, :3] @ R_cam_obj)   # x, y, z, w
            out[f"{name}_pos"], out[f"{name}_quat"] = to_policy_frame(p_base, q_base, BASE_POS, BASE_QUAT)
        return out

Safety (policy side, before any action leaves the runner): `SafetyLimits` / `SafetyChecker` refuse an
action that is not finite, lies outside the action limits (beyond a small tolerance; inside it the
action is clipped), would put the end-effector target outside the workspace box, or moves the end
effector more than the maximum step; a non-finite observation is refused too. On a refusal or an
operator interrupt (Ctrl-C) the runner sends the hold action, logs the violation and ends the episode
as failed (an interrupted episode is judged by the operator). `ConnectionLost` (raised by a remote
robot when the link drops) ends the episode as failed; the arm server holds the arm on its side.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

HOLD_GRIPPER_KEEP = 0.0  # gripper command meaning "keep the current state" (before any command was sent)


class ConnectionLost(RuntimeError):
    """The link to a remote robot dropped (no reply in time, or the server held the arm): the episode stops."""


class RobotError(RuntimeError):
    """The robot (or its server) reported an error executing a command."""


def log_to_stderr(level: int = logging.INFO) -> None:
    """Show the adapter's log lines (`benchmark.*` loggers: violations, holds, timing) on stderr."""
    logger = logging.getLogger("benchmark")
    if not any(getattr(h, "_cotrain_arm", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._cotrain_arm = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


# -- frames
def quat_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Hamilton product q1 * q2 of quaternions in (x, y, z, w) order."""
    x1, y1, z1, w1 = np.asarray(q1, float)
    x2, y2, z2, w2 = np.asarray(q2, float)
    return np.array([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vector v rotated by the unit quaternion q (x, y, z, w)."""
    q = np.asarray(q, float)
    u, w = q[:3], q[3]
    v = np.asarray(v, float)
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def quat_matrix(q: Any) -> np.ndarray:
    """The rotation matrix (3, 3) of the quaternion q (x, y, z, w), normalized here; q and -q give the same."""
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)],
                     [2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)],
                     [2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)]])


def rot6d(q: Any) -> np.ndarray:
    """The orientation a policy sees, from the quaternion q (x, y, z, w): the first two columns of its
    rotation matrix, (r00, r10, r20, r01, r11, r21), i.e. the body's x and y axes in the frame.

    Unlike a quaternion with a fixed sign convention it has one value per rotation and moves
    continuously with it (each entry by at most the rotation angle), so no input jumps where the
    quaternion's sign would flip (Zhou et al. 2019). The simulation (`tasks.env`) and `Robot.get_observation`
    both compute it here.
    """
    return quat_matrix(q)[:, :2].T.reshape(6)


def to_policy_frame(position_base: np.ndarray, quat_base: np.ndarray | None, base_position_world: Any,
                    base_quat_world: Any = (0.0, 0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray | None]:
    """A pose in the robot base frame -> the policy frame (policy.json `observation.robot_base_*_world`).

    position in metres; quaternions (x, y, z, w), returned normalized (its sign does not matter: see `rot6d`).
    """
    qb = np.asarray(base_quat_world, float)
    pos = quat_rotate(qb, position_base) + np.asarray(base_position_world, float)
    if quat_base is None:
        return pos, None
    q = quat_multiply(qb, quat_base)
    return pos, q / np.linalg.norm(q)


# -- the robot interface
@runtime_checkable
class RobotProtocol(Protocol):
    """What the runner calls; `Robot` is a base class implementing the shared parts."""

    def connect(self) -> None: ...
    def reset(self, seed: int | None = None) -> None: ...
    def get_observation(self) -> dict[str, np.ndarray]: ...
    def send_action(self, action: np.ndarray) -> None: ...
    def close(self) -> None: ...


class Robot:
    """Base class of a robot the `PolicyRunner` drives. Subclass it for your arm's driver.

    Implement `connect`, `reset`, `robot_state`, `object_poses`, `send_action` and `close` (units and frames
    in the module docstring). Optional: `done()` (the episode ended on the robot's side, e.g. a stand-in's
    success test), `success()` (None: ask the operator), `info()` (a dict the evaluation records).
    """

    kind = "real"

    def connect(self) -> None:
        """Open the driver connection (called once before the first episode)."""

    def reset(self, seed: int | None = None) -> None:
        """Bring the arm to its home pose and wait until the scene is reset. `seed` is used by simulated
        robots only (a real arm's start state is whatever the operator set up)."""
        raise NotImplementedError

    def robot_state(self) -> dict[str, np.ndarray]:
        """`eef_pos` (3, m), `eef_quat` (4, x y z w, either sign), `gripper` (1, opening in [0, 1]), in the
        policy frame."""
        raise NotImplementedError

    def object_poses(self) -> dict[str, np.ndarray]:
        """Perception hook: `<obj>_pos` (3, m) and `<obj>_quat` (4, x y z w) per object, in the policy frame.

        A low-dimensional policy cannot see; return the poses your perception measures (see the fiducial
        sketch in the module docstring). `get_observation` computes the relative positions and the `rot6d`.
        """
        raise NotImplementedError

    def get_observation(self) -> dict[str, np.ndarray]:
        """The current observation in the layout's keys: robot state + object poses, each `<name>_quat` as
        `<name>_rot6d`, + `<obj>_rel_pos`."""
        state, poses = self.robot_state(), self.object_poses()
        obs = {}
        for key, value in {**state, **poses}.items():
            if key.endswith("_quat"):
                obs[key[:-len("_quat")] + "_rot6d"] = rot6d(value)
            else:
                obs[key] = np.asarray(value, dtype=np.float64)
        for key in poses:
            if key.endswith("_pos") and not key.endswith("_rel_pos"):
                obs[key[:-len("_pos")] + "_rel_pos"] = obs[key] - obs["eef_pos"]
        return obs

    def send_action(self, action: np.ndarray) -> None:
        """Command one control step (see the module docstring); return without waiting for the motion."""
        raise NotImplementedError

    def done(self) -> bool:
        """Whether the robot side ended the episode (a stand-in's success or horizon); False on a real arm."""
        return False

    def success(self) -> bool | None:
        """The episode's success where the robot can tell (a stand-in); None: the operator is asked."""
        return None

    def info(self) -> dict[str, Any]:
        """Facts the evaluation records (kind, name, horizon if any)."""
        return {"kind": self.kind, "name": type(self).__name__}

    def close(self) -> None:
        """Release the driver (the arm should be holding)."""


# -- safety
@dataclass(frozen=True)
class SafetyLimits:
    """Checks applied to every action before it leaves the runner. Positions in the policy frame (m).

    None for a limit disables it; `from_bundle` fills the action limits and scales from policy.json.
    """

    action_low: tuple[float, ...] | None = None
    """Lower action limit per dimension (default: the bundle's)."""
    action_high: tuple[float, ...] | None = None
    """Upper action limit per dimension (default: the bundle's)."""
    action_tolerance: float = 0.05
    """An action beyond its limits by more than this is refused; within it, clipped to the limits."""
    workspace_low: tuple[float, float, float] | None = None
    """Lower corner of the box the commanded end-effector target must stay in (m)."""
    workspace_high: tuple[float, float, float] | None = None
    """Upper corner of that box (m)."""
    max_eef_step_m: float | None = None
    """Largest commanded end-effector translation in one control step (m)."""
    position_scale_m: float | None = None
    """Metres of end-effector motion per unit of a[0:3] (default: the bundle's `action.position_scale_m`)."""
    gripper_index: int | None = None
    """Index of the gripper command (kept by the hold action); default: the bundle's `gripper` entry."""

    def __post_init__(self) -> None:
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ValueError("give both workspace_low and workspace_high, or neither")
        if self.workspace_low is not None and np.any(np.asarray(self.workspace_low) >= np.asarray(self.workspace_high)):
            raise ValueError(f"workspace_low {self.workspace_low} must be below workspace_high {self.workspace_high}")
        if self.max_eef_step_m is not None and self.max_eef_step_m <= 0:
            raise ValueError(f"max_eef_step_m must be > 0, got {self.max_eef_step_m}")
        if self.action_tolerance < 0:
            raise ValueError(f"action_tolerance must be >= 0, got {self.action_tolerance}")
        if (self.workspace_low is not None or self.max_eef_step_m is not None) and self.position_scale_m is None:
            raise ValueError("workspace and step limits need position_scale_m (SafetyLimits.from_bundle sets it)")

    @classmethod
    def from_bundle(cls, spec: dict[str, Any], **overrides: Any) -> "SafetyLimits":
        """Limits with the bundle's action limits, position scale and gripper index, plus `overrides`."""
        act = spec["action"]
        grip = next((e["index"] for e in act.get("layout", []) if e.get("name") == "gripper"), None)
        base = {"action_low": tuple(act["low"]), "action_high": tuple(act["high"]),
                "position_scale_m": act.get("position_scale_m"), "gripper_index": grip}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SafetyChecker:
    """Applies `SafetyLimits` to (action, observation) pairs and builds hold actions."""

    def __init__(self, limits: SafetyLimits, action_dim: int):
        self.limits, self.action_dim = limits, action_dim
        self.motion_dims = [i for i in range(action_dim) if i != limits.gripper_index]

    def check_observation(self, flat_obs: np.ndarray) -> list[str]:
        bad = ~np.isfinite(flat_obs)
        return [f"non-finite observation at indices {np.flatnonzero(bad).tolist()}"] if bad.any() else []

    def check(self, action: np.ndarray, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """(the action to send, [(kind, detail)] violations); any violation means: do not send, hold."""
        lim = self.limits
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (self.action_dim,):
            return a, [("action_shape", f"action of shape {a.shape}, expected ({self.action_dim},)")]
        if not np.isfinite(a).all():
            return a, [("nan_action", f"non-finite action {a.tolist()}")]
        out: list[tuple[str, str]] = []
        if lim.action_low is not None and lim.action_high is not None:
            low, high = np.asarray(lim.action_low, np.float32), np.asarray(lim.action_high, np.float32)
            beyond = np.maximum(low - a, a - high)
            if (beyond > lim.action_tolerance).any():
                i = int(np.argmax(beyond))
                out.append(("action_limit", f"a[{i}] = {a[i]:.4g} outside [{low[i]:.4g}, {high[i]:.4g}] "
                                            f"by more than {lim.action_tolerance}"))
            a = np.clip(a, low, high)
        if lim.position_scale_m is not None and (lim.max_eef_step_m is not None or lim.workspace_low is not None):
            delta = a[:3].astype(np.float64) * lim.position_scale_m
            if lim.max_eef_step_m is not None and np.linalg.norm(delta) > lim.max_eef_step_m:
                out.append(("eef_step", f"commanded end-effector step {np.linalg.norm(delta):.4f} m exceeds "
                                        f"{lim.max_eef_step_m} m"))
            if lim.workspace_low is not None:
                target = np.asarray(observation["eef_pos"], np.float64).reshape(3) + delta
                if (target < lim.workspace_low).any() or (target > lim.workspace_high).any():
                    out.append(("workspace", f"end-effector target {np.round(target, 4).tolist()} outside the box "
                                             f"{list(lim.workspace_low)} .. {list(lim.workspace_high)}"))
        return a, out

    def hold_action(self, last_action: np.ndarray | None) -> np.ndarray:
        """Zero motion, gripper command kept (the last one sent, or 'keep' when none was)."""
        hold = np.zeros(self.action_dim, np.float32)
        gi = self.limits.gripper_index
        if gi is not None:
            hold[gi] = HOLD_GRIPPER_KEEP if last_action is None else float(last_action[gi])
        return hold


# -- the runner
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

    policy: a `benchmark.deploy.bundle.BundlePolicy` (normalization, domain token and guidance are inside it).
    execution_horizon: actions of a chunk executed before the next prediction (default: the bundle's
        `n_action_steps`; 1 with temporal ensembling).
    temporal_ensembling: None, or the decay m of ACT's temporal ensemble (Zhao et al. 2023): every
        stored chunk that covers step t votes for its action at t with weight exp(-m * i), i = 0 for the
        oldest; m = 0.01 is ACT's. Chunks are predicted every `execution_horizon` steps.
    realtime: sleep to keep the control period (a real arm); False steps as fast as the robot allows.
    Noise: chunk k of an episode with seed s uses numpy default_rng([s, k]) (reproducible anywhere).
    A warning is logged when an inference takes longer than the control period.
    """

    def __init__(self, policy: Any, robot: Any, limits: SafetyLimits | None = None,
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
        self.execution_horizon = int(execution_horizon or default_h)
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
        except ConnectionLost:
            return  # the server holds the arm on its side
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
            ep.held = True  # by the server's link watchdog
        except RobotError as err:
            self._violation(ep, step, "robot_error", str(err))
            ep.stop_reason = "robot_error"
            self._hold(ep, flat)
        ep.wall_s = time.perf_counter() - t_start
        if ep.stop_reason in ("done", "max_steps", "interrupt"):
            try:
                ep.success = self.robot.success()
            except (ConnectionLost, RobotError) as err:
                self._violation(ep, step, "connection_lost", str(err))
                ep.stop_reason, ep.success = "connection_lost", False
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


# -- the simulated stand-in
class SimRobot(Robot):
    """A `Robot` backed by one domain of a task pair (`tasks.make_env`, imported when connecting).

    seed: the first reset's seed when `reset` is given none (later unseeded resets draw from it).

    Observations are the env's own (with its sensing gaps), split into the layout's keys as float32;
    `robot_state`/`object_poses` give the same poses as a driver would (quaternions, float64), so the
    base class's `get_observation` on them reproduces the env's observation. Actions step the env;
    `done()`/`success()` are the env's termination and success test. Actions sent after the episode
    ended are ignored.
    """

    kind = "sim"

    def __init__(self, pair: str, domain: str = "target", magnitude: float = 1.0, backend: str = "robosuite",
                 seed: int | None = None):
        self.pair, self.domain, self.magnitude, self.backend, self.seed = pair, domain, magnitude, backend, seed
        self.env: Any = None
        self._obs: np.ndarray | None = None
        self._done = self._success = False
        self.actions_received: list[np.ndarray] = []

    def connect(self) -> None:
        if self.env is None:
            from tasks import make_env

            self.env = make_env(self.pair, self.domain, self.magnitude, backend=self.backend, seed=self.seed)
            self.layout = tuple(self.env.layout)

    def reset(self, seed: int | None = None) -> None:
        self.connect()
        self._obs, _ = self.env.reset(seed=seed)
        self._done = self._success = False

    def _split(self) -> dict[str, np.ndarray]:
        if self._obs is None:
            raise RobotError("no observation: call reset() first")
        out, i = {}, 0
        for key, n in self.layout:
            out[key] = self._obs[i:i + n].copy()
            i += n
        return out

    def get_observation(self) -> dict[str, np.ndarray]:
        return self._split()

    def _poses(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The env's observed poses (sensing gaps applied, quaternions as a driver gives them) at `keys`."""
        if self._obs is None:
            raise RobotError("no observation: call reset() first")
        return {k: np.array(self.env.last_obs[k]) for k in keys}

    def robot_state(self) -> dict[str, np.ndarray]:
        return self._poses(["eef_pos", "eef_quat", "gripper"])

    def object_poses(self) -> dict[str, np.ndarray]:
        return self._poses([f"{obj}_{part}" for obj in self.env.task.objects for part in ("pos", "quat")])

    def send_action(self, action: np.ndarray) -> None:
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        self.actions_received.append(a.copy())
        if self._obs is None or self._done:
            return
        self._obs, _, terminated, truncated, info = self.env.step(a)
        self._success = self._success or bool(info["is_success"])
        self._done = bool(terminated or truncated)

    def done(self) -> bool:
        return self._done

    def success(self) -> bool | None:
        return self._success

    def info(self) -> dict[str, Any]:
        self.connect()
        return {"kind": self.kind, "name": f"sim:{self.pair}", "pair": self.pair, "domain": self.domain,
                "magnitude": self.magnitude, "backend": self.backend, "horizon": int(self.env.horizon),
                "layout": [list(k) for k in self.layout]}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


def parse_sim_spec(spec: str) -> tuple[str, float]:
    """`sim:<pair>` or `sim:<pair>@<magnitude>` -> (pair, magnitude)."""
    body = spec[len("sim:"):]
    pair, _, mag = body.partition("@")
    if not pair:
        raise ValueError(f"robot spec {spec!r}: expected sim:<pair>[@<magnitude>]")
    return pair, float(mag) if mag else 1.0


def make_robot(spec: str, timeout_s: float = 2.0, domain: str = "target") -> Any:
    """`sim:<pair>[@<magnitude>]` -> an in-process `SimRobot`; `tcp://host:port` -> a `RemoteRobot`."""
    if spec.startswith("sim:"):
        pair, magnitude = parse_sim_spec(spec)
        return SimRobot(pair, domain, magnitude)
    if spec.startswith(("tcp://", "ipc://")):
        from benchmark.deploy.arm_net import RemoteRobot

        return RemoteRobot(spec, timeout_s=timeout_s)
    raise ValueError(f"unknown robot spec {spec!r}: use sim:<pair> or tcp://host:port")


Asker = Callable[[str], str]
