"""Scripted experts: closed-loop phase machines on the true state, one per base task.

Each expert tracks end-effector waypoints (approach above, descend, grasp, lift / carry, place or
insert, then a stable hold: never rising after success). The position law is proportional, steeper
far from the target, damped near it (robust to action latency and scale) and with an integral term
that acts only while the arm is stalled (payload sag, posture pull). Orientation stays top-down:
rotations are computed relative to a levelled copy of the orientation at reset, so no robot's eef
site frame matters; the gripper turns about the vertical to the object's grasp axis, within the
wrist's joint range. Closed on the true state, the experts compensate dynamics, action and
embodiment gaps and are blind to sensing gaps. `noise` adds per-episode waypoint offsets and
speeds and per-step Gaussian action noise, so demos are diverse. `observed=True` reads the object
poses from what the policy sees (`env.last_obs`, sensing gaps applied) instead.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from common.registry import Registry

if TYPE_CHECKING:
    from .env import CotrainEnv

EXPERT_VERSION = 2  # bumped whenever an expert's behaviour changes: part of the demo cache key and run id

POS_GAIN = 6.0  # action units per metre of position error (1 unit = 5 cm of OSC goal offset) ...
NEAR, FAR_GAIN = 0.02, 10.0  # ... and FAR_GAIN more per metre beyond NEAR metres (fast far, gentle near)
INT_GAIN, INT_LIMIT = 3.0, 0.5  # integral action per metre and step while stalled, and its bound
VEL_GAIN = 20.0  # action units per metre/step of eef velocity (damping: robust to action latency) ...
DAMP_RADIUS = 0.05  # ... within DAMP_RADIUS metres of the target, fading out by twice that
STALL = 0.001  # metres per step under which the eef counts as stalled
ROT_GAIN = 0.6  # fraction of the orientation error commanded per step ...
ROT_MAX = 0.4  # ... at most this many rotation action units (a slow turn keeps the wrist on its branch)
ROT_UNIT = 0.5  # radians per rotation action unit (robosuite OSC_POSE output_max)
YAW_MARGIN = 0.5  # radians kept clear of the wrist joint's limits
SLOW = {"descend": 0.5, "lower": 0.5, "insert": 0.5}  # speed caps of the careful phases
OPEN, CLOSE = -1.0, 1.0
DIVE = 0.03  # metres below a waypoint that descents aim at (switching phase on reaching it)


def _rotvec(mat: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle) of a 3x3 rotation matrix."""
    angle = np.arccos(np.clip((np.trace(mat) - 1.0) / 2.0, -1.0, 1.0))
    axis = np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    if angle < 1e-6:
        return axis / 2.0
    if np.pi - angle < 1e-4:  # axis from the symmetric part near a half turn
        w, v = np.linalg.eigh((mat + mat.T) / 2.0)
        return v[:, np.argmax(w)] * angle
    return axis / (2.0 * np.sin(angle)) * angle


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector `a` onto unit vector `b` (not antiparallel)."""
    v, c = np.cross(a, b), float(np.dot(a, b))
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def yaw_of(quat_xyzw: np.ndarray) -> float:
    """Heading (rotation about the vertical) of a quaternion (x, y, z, w)."""
    x, y, z, w = quat_xyzw
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def wrap(angle: float, period: float = 2.0 * np.pi) -> float:
    """`angle` wrapped into [-period / 2, period / 2)."""
    return float((angle + period / 2.0) % period - period / 2.0)


class Expert:
    """Base of the scripted experts: the phase machine state and the pose-tracking action law.

    Subclasses implement `plan(state, env) -> (eef target position, gripper yaw, gripper
    command)`; yaw is relative to the orientation at reset, about the world vertical.
    """

    def __init__(self, noise: float = 0.0, rng: np.random.Generator | None = None, observed: bool = False):
        self.noise = float(noise)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.observed = observed

    def jitter(self, scale: float) -> float:
        """A per-episode offset, uniform in +-`scale * noise`."""
        return scale * self.noise * float(self.rng.uniform(-1.0, 1.0))

    def reset(self, env: "CotrainEnv") -> None:
        """Per episode: level the reset orientation, find the fingers' closing axis, draw variations."""
        rot = env.sim.data._data.site_xmat[env._eef_site].reshape(3, 3).copy()
        down = np.argmax(-rot[2])  # the eef axis pointing most nearly down
        self.level = _rotation_between(rot[:, down], np.array([0.0, 0.0, -1.0])) @ rot
        self.close_yaw0 = self._closing_yaw(env)
        self.yaw_range = self._yaw_range(env)
        self.speed = 1.0 - 0.5 * self.noise * float(self.rng.uniform())
        self.phase, self.t_phase = "approach", 0
        self.integral, self.prev_eef, self.stalled = np.zeros(3), None, 0

    def _closing_yaw(self, env: "CotrainEnv") -> float:
        """Heading of the axis along which the fingers close (left pad to right pad)."""
        model, data = env.sim.model._model, env.sim.data._data
        gripper = env.rs.robots[0].gripper["right"]
        pads = [data.geom_xpos[[model.geom(g).id for g in gripper.important_geoms[k]]].mean(0)
                for k in ("left_fingerpad", "right_fingerpad")]
        d = pads[1] - pads[0]
        return float(np.arctan2(d[1], d[0]))

    @staticmethod
    def _yaw_range(env: "CotrainEnv") -> tuple[float, float]:
        """Gripper yaws (relative to reset) that the last arm joint reaches, less a margin."""
        model, data = env.sim.model._model, env.sim.data._data
        joint = model.dof_jntid[env.arm_dofs()[-1]]
        if not model.jnt_limited[joint]:
            return -np.inf, np.inf
        q = data.qpos[model.jnt_qposadr[joint]]
        sign = np.sign(data.xaxis[joint][2])  # the wrist axis points (nearly) straight up or down
        low, high = sorted(sign * (model.jnt_range[joint] - q))
        return low + YAW_MARGIN, high - YAW_MARGIN

    def in_reach(self, yaw: float) -> bool:
        return bool(self.yaw_range[0] <= yaw <= self.yaw_range[1])

    def grasp_yaw(self, axis_yaw: float, period: float, near: float = 0.0) -> float:
        """Gripper yaw (relative to reset) closing along `axis_yaw` (modulo `period`) nearest to `near`."""
        return near + wrap(axis_yaw - self.close_yaw0 - near, period)

    def state(self, env: "CotrainEnv") -> dict[str, np.ndarray]:
        """What the expert acts on: the true state, or the observation the policy sees."""
        return dict(env.last_obs) if self.observed else env.privileged_state()

    def goto(self, phase: str) -> None:
        self.phase, self.t_phase = phase, 0

    def plan(self, state: dict[str, np.ndarray], env: "CotrainEnv") -> tuple[np.ndarray, float, float]:
        raise NotImplementedError

    def act(self, env: "CotrainEnv") -> np.ndarray:
        """The 7-dim action for the current step."""
        state = self.state(env)
        eef, rot = state["eef_pos"], env.sim.data._data.site_xmat[env._eef_site].reshape(3, 3)
        velocity = eef - self.prev_eef if self.prev_eef is not None else np.zeros(3)
        self.prev_eef = eef.copy()
        self.stalled = self.stalled + 1 if np.linalg.norm(velocity) < STALL else 0
        target, yaw, grip = self.plan(state, env)
        self.t_phase += 1
        error = target - eef
        dist = float(np.linalg.norm(error))
        gain = POS_GAIN + FAR_GAIN * max(dist - NEAR, 0.0) / max(dist, 1e-9)
        self.integral[np.sign(self.integral) != np.sign(error)] = 0.0
        if self.stalled:  # a steady offset (payload, posture), not a transient
            self.integral = np.clip(self.integral + INT_GAIN * error, -INT_LIMIT, INT_LIMIT)
        speed = self.speed * SLOW.get(self.phase, 1.0)
        action = np.zeros(7)
        damping = VEL_GAIN * np.clip(2.0 - dist / DAMP_RADIUS, 0.0, 1.0)  # near the target only
        action[:3] = np.clip(gain * error + self.integral - damping * velocity, -speed, speed)
        turn = ROT_GAIN * _rotvec(_rot_z(yaw) @ self.level @ rot.T) / ROT_UNIT
        action[3:6] = turn * min(1.0, ROT_MAX / max(float(np.linalg.norm(turn)), 1e-9))
        action[:6] += self.rng.normal(0.0, 0.1 * self.noise, 6) * np.array([1, 1, 1, 0.3, 0.3, 0.3])
        action[6] = grip
        return np.clip(action, -1.0, 1.0)


EXPERTS: Registry[type[Expert]] = Registry("expert")


class _PickExpert(Expert):
    """Shared pick logic: approach above the object, descend, close, wait for the fingers."""

    obj = "cube"
    yaw_period = np.pi / 2  # a cube can be grasped across either pair of faces

    def reset(self, env):
        super().reset(env)
        self.above = 0.08 + self.jitter(0.02)
        self.grasp_dz = self.jitter(0.005)
        self.grasp_xy = np.array([self.jitter(0.004), self.jitter(0.004)])
        self.grip_prev = 0.0
        self.yaw: float | None = None

    def preferred_yaw(self, state: dict[str, np.ndarray]) -> float:
        """Of the object's grasp yaws, the first pick takes the one nearest to this (reset: 0)."""
        return 0.0

    def grasp_point(self, state: dict[str, np.ndarray]) -> np.ndarray:
        return state[f"{self.obj}_pos"] + np.array([*self.grasp_xy, self.grasp_dz])

    def grasp_axis_yaw(self, state: dict[str, np.ndarray]) -> float:
        return yaw_of(state[f"{self.obj}_quat"])

    def pick(self, state: dict[str, np.ndarray]) -> tuple[np.ndarray, float, float] | None:
        """Target while picking; None once the object is held."""
        eef, goal = state["eef_pos"], self.grasp_point(state)
        xy_error = np.linalg.norm((goal - eef)[:2])
        if self.phase == "approach":
            if self.yaw is None:
                self.yaw = self.grasp_yaw(self.grasp_axis_yaw(state), self.yaw_period, near=self.preferred_yaw(state))
            self.yaw = self.grasp_yaw(self.grasp_axis_yaw(state), self.yaw_period, near=self.yaw)
            target = goal + np.array([0.0, 0.0, self.above])
            if xy_error < 0.01 and eef[2] < target[2] + 0.03:
                self.goto("descend")
            return target, self.yaw, OPEN
        if self.phase == "descend":  # aim below the grasp point so the descent keeps its speed
            landed = self.t_phase > 5 and self.stalled >= 3 and xy_error <= 0.01  # fingers on the table
            if eef[2] < goal[2] + 0.003 or landed:
                self.goto("grasp")
                self.grip_open = 0.0
            elif xy_error > 0.03:
                self.goto("approach")
            target = goal - np.array([0.0, 0.0, DIVE])
            if xy_error > 0.01:  # hover until back over the grasp point
                target[2] = eef[2]
            return target, self.yaw, OPEN
        if self.phase == "grasp":  # wait until the fingers have closed (some start late) and stopped
            grip = float(state["gripper"][0])
            self.grip_open = max(self.grip_open, grip)
            closed = self.grip_open - grip > 0.1 or self.t_phase >= 20
            if self.t_phase >= 5 and closed and abs(grip - self.grip_prev) < 0.005:
                self.goto("held")
            self.grip_prev = grip
            return goal, self.yaw, CLOSE
        return None

    def restart(self, state: dict[str, np.ndarray]) -> tuple[np.ndarray, float, float]:
        """The object was lost: pick it again from the start (grasp yaw chosen afresh)."""
        self.goto("approach")
        self.yaw = None
        return self.pick(state)

    def held(self, state: dict[str, np.ndarray]) -> bool:
        """Whether the object is still between the fingers (else the expert starts over)."""
        return bool(np.linalg.norm(self.grasp_point(state) - state["eef_pos"]) < 0.05)

    def carry(self, state: dict[str, np.ndarray], obj_target: np.ndarray) -> np.ndarray:
        """Eef target that brings the held object to `obj_target` (closed loop on the object)."""
        return state["eef_pos"] + obj_target - state[f"{self.obj}_pos"]


@EXPERTS.register("lift")
class LiftExpert(_PickExpert):
    """Pick the cube and hold it 10 cm above the table (success needs 4 cm)."""

    def reset(self, env):
        super().reset(env)
        self.hold_z = env.rs.table_offset[2] + 0.10 + self.jitter(0.02)

    def plan(self, state, env):
        picking = self.pick(state)
        if picking is not None:
            return picking
        if not self.held(state):
            return self.restart(state)
        if self.phase == "held":
            self.hold = np.array([*state["eef_pos"][:2], self.hold_z])
            self.goto("lift")
        return self.hold, self.yaw, CLOSE


@EXPERTS.register("stack")
class StackExpert(_PickExpert):
    """Pick cube A, carry it above cube B, lower it onto B, open, and hold still."""

    obj = "cubeA"

    def reset(self, env):
        super().reset(env)
        self.clearance = 0.03 + self.jitter(0.01)
        self.place_xy = np.array([self.jitter(0.004), self.jitter(0.004)])
        self.risen = False  # cube A has risen clear of B since the grasp (then it may move over B)

    def preferred_yaw(self, state):
        """Close the fingers across the line from A to B, so that no finger lands on B."""
        a_to_b = state["cubeB_pos"][:2] - state["cubeA_pos"][:2]
        return wrap(np.arctan2(a_to_b[1], a_to_b[0]) + np.pi / 2 - self.close_yaw0, np.pi)

    def plan(self, state, env):
        picking = self.pick(state)
        if picking is not None:
            return picking
        if self.phase in ("held", "carry", "lower") and not self.held(state):
            return self.restart(state)
        if self.phase == "held":
            self.goto("carry")
            self.risen = False
        cube_a, cube_b = state["cubeA_pos"], state["cubeB_pos"]
        rest_z = cube_b[2] + self.half_height(env, "cubeB") + self.half_height(env, "cubeA")
        above_b = np.array([*(cube_b[:2] + self.place_xy), rest_z])
        if self.phase == "carry":
            target = above_b + np.array([0.0, 0.0, self.clearance])
            self.risen = self.risen or cube_a[2] > rest_z + 0.01
            if not self.risen:  # first rise clear of B, then move over it
                target[:2] = cube_a[:2]
            if np.linalg.norm((above_b - cube_a)[:2]) < 0.006 and abs(target[2] - cube_a[2]) < 0.01:
                self.goto("lower")
            return self.carry(state, target), self.yaw, CLOSE
        if self.phase == "lower":
            if cube_a[2] < rest_z + 0.004 or self.t_phase > 30:
                self.goto("release")
                self.hold = state["eef_pos"].copy()
            return self.carry(state, above_b - np.array([0.0, 0.0, DIVE])), self.yaw, CLOSE
        return self.hold, self.yaw, OPEN

    @staticmethod
    def half_height(env: "CotrainEnv", obj: str) -> float:
        """Half the height of a box object, from its geometry (object-size gaps included)."""
        model = env.sim.model._model
        body = model.body(env.task.bodies[env.task.objects.index(obj)]).id
        geoms = np.flatnonzero((model.geom_bodyid == body) & (model.geom_type == 6))  # mjGEOM_BOX
        return float(np.max(model.geom_size[geoms, 2]))


NUT_GOAL_YAWS = (np.pi / 2, np.pi, -np.pi / 2)  # nut headings square to the peg, handle not away


@EXPERTS.register("square")
class SquareExpert(_PickExpert):
    """NutAssemblySquare: grasp the nut's handle, turn the nut square to the peg, carry it over
    the peg, lower it onto the peg, let go (the nut drops to the table around the peg), hold."""

    obj = "nut"
    yaw_period = np.pi  # the handle is grasped across its width, either way round

    def reset(self, env):
        super().reset(env)
        self.peg = env.rs.sim.data.body_xpos[env.rs.peg1_body_id].copy()
        self.peg_top = self.peg[2] + env.sim.model._model.geom_size[self.peg_geom(env), 2]
        self.clearance = 0.03 + self.jitter(0.01)
        self.risen = False  # the nut has risen clear of the peg since the grasp (then it may move over it)
        # grasp the handle (the geom farthest along the nut's x axis) on the part clear of the ring:
        # 0.3 of its half-length beyond its centre, give or take
        model = env.sim.model._model
        geoms = np.flatnonzero(model.geom_bodyid == model.body(env.task.bodies[0]).id)
        handle = geoms[np.argmax(model.geom_pos[geoms, 0])]
        self.handle = float(model.geom_pos[handle, 0] + (0.3 + self.jitter(0.2)) * model.geom_size[handle, 0])

    @staticmethod
    def peg_geom(env: "CotrainEnv") -> int:
        model = env.sim.model._model
        return int(np.flatnonzero(model.geom_bodyid == env.rs.peg1_body_id)[0])

    def grasp_point(self, state):
        yaw = yaw_of(state["nut_quat"])
        return state["nut_pos"] + np.array([self.handle * np.cos(yaw), self.handle * np.sin(yaw), self.grasp_dz])

    def grasp_axis_yaw(self, state):
        return yaw_of(state["nut_quat"]) + np.pi / 2

    def preferred_yaw(self, state):
        """Plan the grasp and the nut's turn together: the nut turns square to the peg with its
        handle toward the robot or sideways (never away: out of reach over the peg), by the least
        angle that keeps the wrist clear of its limits at grasp and after the turn."""
        nut_yaw = yaw_of(state["nut_quat"])
        grasp = self.grasp_yaw(nut_yaw + np.pi / 2, np.pi)

        def cost(plan: tuple[float, float]) -> float:
            g, goal = plan
            turn = wrap(goal - nut_yaw)
            return abs(turn) + 0.3 * abs(g) + 10.0 * (2 - self.in_reach(g) - self.in_reach(g + turn))

        plans = [(g, goal) for g in (grasp - np.pi, grasp, grasp + np.pi) for goal in NUT_GOAL_YAWS]
        g, self.nut_goal_yaw = min(plans, key=cost)
        return g

    def plan(self, state, env):
        picking = self.pick(state)
        if picking is not None:
            return picking
        if self.phase in ("held", "carry", "insert") and not self.held(state):
            return self.restart(state)
        nut, nut_yaw = state["nut_pos"], yaw_of(state["nut_quat"])
        if self.phase == "held":
            self.goto("carry")
            self.risen = False
        nut_turn = wrap(self.nut_goal_yaw - nut_yaw)
        yaw = self.gripper_yaw(env) + nut_turn
        over_peg = np.array([self.peg[0], self.peg[1], self.peg_top + self.clearance])
        if self.phase == "carry":
            target = over_peg.copy()
            self.risen = self.risen or nut[2] > self.peg_top + 0.015
            if not self.risen:  # first rise clear of the peg, then move over it
                target[:2] = nut[:2]
            if np.linalg.norm((over_peg - nut)[:2]) < 0.004 and abs(nut_turn) < 0.05:
                self.goto("insert")
            return self.carry(state, target), yaw, CLOSE
        if self.phase == "insert":
            if nut[2] < self.peg_top - 0.06 or self.t_phase > 40 or (self.t_phase > 10 and self.stalled >= 5):
                self.goto("release")
                self.hold, self.hold_yaw = state["eef_pos"].copy(), yaw
            if np.linalg.norm((over_peg - nut)[:2]) > 0.008 and nut[2] > self.peg_top:
                self.goto("carry")
            target = np.array([self.peg[0], self.peg[1], self.peg_top - 0.06 - DIVE])
            return self.carry(state, target), yaw, CLOSE
        return self.hold, self.hold_yaw, OPEN

    def gripper_yaw(self, env: "CotrainEnv") -> float:
        """The gripper's current yaw relative to the levelled reset orientation."""
        rot = env.sim.data._data.site_xmat[env._eef_site].reshape(3, 3) @ self.level.T
        return float(np.arctan2(rot[1, 0], rot[0, 0]))


def make_expert(base_task: str, noise: float = 0.0, seed: int = 0, observed: bool = False) -> Expert:
    """The scripted expert of `base_task`, its randomness seeded by `seed`."""
    return EXPERTS[base_task](noise=noise, rng=np.random.default_rng(seed), observed=observed)
