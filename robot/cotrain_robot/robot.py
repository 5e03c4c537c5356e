"""The robot interface a policy runner drives, and the errors a robot raises.

Contract of a `Robot` (implement it for your arm's driver; `cotrain_robot.client.RemoteRobot` is the same
interface over a socket, and cotrain-bench's `SimRobot` the simulated stand-in):

- A driver speaks quaternions: `robot_state()` returns `eef_pos` (3, metres), `eef_quat` (4, unit
  quaternion x, y, z, w; either sign) and `gripper` (1, opening in [0, 1]: 0 closed, 1 fully open), and
  `object_poses()` per object `<obj>_pos` (3, m) and `<obj>_quat` (4, x y z w). `get_observation` turns
  them into the bundle's layout keys (policy.json `observation.layout`): every `<name>_quat` becomes
  `<name>_rot6d` (6, `rot6d`: the first two columns of its rotation matrix, continuous where a quaternion
  flips sign), and `<obj>_rel_pos` (3, m, object minus end effector) is added. Poses are in the POLICY
  FRAME: the simulation's world frame, whose axes are aligned with the robot base frame, with the robot
  base at policy.json `observation.robot_base_position_world`. A driver that reads poses in its base
  frame converts them with `cotrain_robot.geometry.to_policy_frame`. The end-effector point and orientation are those of the
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
"""
from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from .geometry import rot6d

HOLD_GRIPPER_KEEP = 0.0  # gripper command meaning "keep the current state" (before any command was sent)


class ConnectionLost(RuntimeError):
    """The link to a remote robot dropped (no reply in time, or the server held the arm): the episode stops.

    hold_confirmed: the arm server said it holds the arm (its `link_lost` reply); False when it went
    silent, so whether the arm is held is not known on this side."""

    def __init__(self, message: str, hold_confirmed: bool = False):
        super().__init__(message)
        self.hold_confirmed = hold_confirmed


class RobotError(RuntimeError):
    """The robot (or its server) reported an error executing a command."""


class _StderrHandler(logging.StreamHandler):
    """Writes each record to `sys.stderr` as it is then (a redirected stderr included)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def log_to_stderr(level: int = logging.INFO) -> None:
    """Show this package's log lines (`cotrain_robot.*` loggers: violations, holds, timing) on stderr."""
    logger = logging.getLogger("cotrain_robot")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


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

