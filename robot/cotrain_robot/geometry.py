"""Frames and orientations: quaternion algebra (x, y, z, w order), the continuous `rot6d` a policy sees,
and the conversion of robot-base-frame poses into the policy frame."""
from __future__ import annotations

from typing import Any

import numpy as np


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
    quaternion's sign would flip (Zhou et al. 2019). The simulation (`tasks.env` of cotrain-bench) and
    `Robot.get_observation` both compute it here.
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

