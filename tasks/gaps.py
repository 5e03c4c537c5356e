"""Gap factors: each a small class that applies one controlled difference at a magnitude.

A factor acts at up to four points of the environment's life, each a no-op by default:
`robosuite_kwargs` (construction), `on_build` (model edits, once; the env never hard-resets),
`on_reset` (per episode), and `action` / `observe` (per step, on what the policy sends and sees).
Magnitude 0 changes nothing; what magnitude 1 means, in physical units, is the class's `unit`.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from .core import GapFactor
from common.registry import Registry

if TYPE_CHECKING:
    from .env import CotrainEnv


MAGNITUDE_DECIMALS = 3  # a continuous factor's magnitude in a pair's identity is rounded to 0.001


class GapEffect:
    """Base of every gap factor implementation: magnitude-aware no-op hooks."""

    family: str = ""
    unit: str = ""
    categorical: bool = False
    max_steps: int = 0  # step-valued factors: delay = round(magnitude * max_steps)
    replaces: str = ""  # what of the task the factor swaps out whole (the robot): one such factor per pair

    def __init__(self, magnitude: float):
        self.check_categorical(magnitude)
        self.magnitude = magnitude

    @classmethod
    def check_categorical(cls, magnitude: float) -> None:
        """ValueError if the factor is categorical and `magnitude` is neither 0 nor 1."""
        if cls.categorical and magnitude not in (0.0, 1.0):
            raise ValueError(f"gap factor {cls.__name__} is categorical: magnitude must be 0 or 1, got {magnitude}")

    @classmethod
    def step_count(cls, magnitude: float) -> int:
        """The delay in control steps a step-valued factor applies at `magnitude`."""
        return int(round(magnitude * cls.max_steps))

    @classmethod
    def effective_magnitude(cls, magnitude: float) -> float:
        """The magnitude that names what the factor does at `magnitude`: a step-valued factor's
        `steps / max_steps`, a categorical one's 0 or 1 (ValueError otherwise), a continuous one's
        rounded to MAGNITUDE_DECIMALS. Magnitudes with the same effective magnitude are one gap."""
        cls.check_categorical(magnitude)
        if cls.max_steps:
            return cls.step_count(magnitude) / cls.max_steps
        return round(magnitude, MAGNITUDE_DECIMALS) + 0.0  # + 0.0: -0 is 0

    @property
    def steps(self) -> int:
        return self.step_count(self.magnitude)

    def robosuite_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Edit the robosuite constructor arguments in place."""

    def on_build(self, env: "CotrainEnv") -> None:
        """Edit the compiled MuJoCo model once, after construction."""

    def on_reset(self, env: "CotrainEnv", rng: np.random.Generator) -> None:
        """Per-episode set-up after robosuite's reset."""

    def action(self, action: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The action the robot executes, given the one the policy sent."""
        return action

    def observe(self, obs: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """What the policy sees (robot and object poses), given the true state."""
        return obs


GAP_FACTORS: Registry[type[GapEffect]] = Registry("gap factor")


def build_effect(factor: GapFactor) -> GapEffect:
    """Instantiate the registered implementation of `factor`."""
    return GAP_FACTORS[factor.name](factor.magnitude)


def _object_geoms(env: "CotrainEnv") -> np.ndarray:
    model = env.sim.model._model
    body = model.body(env.task.bodies[0]).id
    return np.flatnonzero(model.geom_bodyid == body)


# ---------------------------------------------------------------- dynamics
@GAP_FACTORS.register("object_friction")
class ObjectFriction(GapEffect):
    family = "dynamics"
    factor = 0.2
    unit = (f"object sliding friction x (1 - {1 - factor:g} m): x{factor:g} at m = 1 "
            "(the object's friction wins its contacts via geom_priority)")

    def on_build(self, env):
        model = env.sim.model._model
        geoms = _object_geoms(env)
        model.geom_friction[geoms, 0] *= 1.0 - (1.0 - self.factor) * self.magnitude
        if self.magnitude > 0:
            model.geom_priority[geoms] = 1


@GAP_FACTORS.register("object_mass")
class ObjectMass(GapEffect):
    family = "dynamics"
    factor = 10.0
    unit = f"object mass and inertia x (1 + {factor - 1:g} m): {factor:g}x at m = 1"

    def on_build(self, env):
        model = env.sim.model._model
        body = model.body(env.task.bodies[0]).id
        model.body_mass[body] *= 1.0 + (self.factor - 1.0) * self.magnitude
        model.body_inertia[body] *= 1.0 + (self.factor - 1.0) * self.magnitude


@GAP_FACTORS.register("object_size")
class ObjectSize(GapEffect):
    family = "dynamics"
    unit = "object geometry scaled by (1 + 0.5 m): 1.5x at m = 1, mass unchanged"

    def on_build(self, env):
        model = env.sim.model._model
        geoms = _object_geoms(env)
        scale = 1.0 + 0.5 * self.magnitude
        self._lift = (scale - 1.0) * float(np.max(model.geom_size[geoms, 2] - model.geom_pos[geoms, 2]))
        model.geom_size[geoms] *= scale
        model.geom_pos[geoms] *= scale
        model.geom_rbound[geoms] *= scale
        model.geom_aabb[geoms] *= scale
        body = model.body(env.task.bodies[0]).id  # the body's bounding-volume tree, used by the midphase
        start = model.body_bvhadr[body]
        if start >= 0:
            model.bvh_aabb[start:start + model.body_bvhnum[body]] *= scale

    def on_reset(self, env, rng):
        if self.magnitude > 0:  # raise the object so its larger bottom rests on the table
            env.set_object_height_offset(self._lift)


@GAP_FACTORS.register("joint_damping")
class JointDamping(GapEffect):
    family = "dynamics"
    damping, armature = 8.0, 0.2
    unit = f"arm joint damping + {damping:g} m N*m*s/rad and armature + {armature:g} m kg*m^2 on every arm joint"

    def on_build(self, env):
        model = env.sim.model._model
        dofs = env.arm_dofs()
        model.dof_damping[dofs] += self.damping * self.magnitude
        model.dof_armature[dofs] += self.armature * self.magnitude


@GAP_FACTORS.register("controller_gains")
class ControllerGains(GapEffect):
    family = "dynamics"
    unit = "OSC stiffness kp x (1 - 0.8 m): 150 -> 30 at m = 1, critical damping kept"

    def on_reset(self, env, rng):
        ctrl = env.arm_controller()
        kp = ctrl.kp * (1.0 - 0.8 * self.magnitude)
        ctrl.kd = ctrl.kd * np.sqrt(kp / ctrl.kp)  # kd = 2 sqrt(kp) x damping ratio: the ratio is kept
        ctrl.kp = kp


# ---------------------------------------------------------------- action
@GAP_FACTORS.register("action_scale")
class ActionScale(GapEffect):
    family = "action"
    unit = "end-effector motion per unit of action x (1 + m): 2x at m = 1 (input then clipped to [-1, 1])"

    def action(self, action, rng):
        out = action.copy()
        out[:6] = np.clip(out[:6] * (1.0 + self.magnitude), -1.0, 1.0)
        return out


@GAP_FACTORS.register("action_noise")
class ActionNoise(GapEffect):
    family = "action"
    std = 0.15
    unit = f"Gaussian noise of std {std:g} m on the 6 arm action inputs (1 input = 5 cm or 0.5 rad per step)"

    def action(self, action, rng):
        out = action.copy()
        out[:6] = np.clip(out[:6] + rng.normal(0.0, self.std * self.magnitude, 6), -1.0, 1.0)
        return out


class _Delay:
    """A FIFO that returns the item sent `steps` calls ago (`fill`, or the first item, until then)."""

    def __init__(self, steps: int):
        self.steps = steps
        self.queue: deque = deque()

    def __call__(self, item, fill=None):
        if self.steps == 0:
            return item
        if not self.queue:
            self.queue.extend([item if fill is None else fill] * self.steps)
        self.queue.append(item)
        return self.queue.popleft()


@GAP_FACTORS.register("action_latency")
class ActionLatency(GapEffect):
    family = "action"
    max_steps = 3
    unit = (f"actions executed round({max_steps} m) control steps late ({max_steps / 20:g} s at m = 1); "
            "before that, zero motion")

    def on_reset(self, env, rng):
        self._delay = _Delay(self.steps)

    def action(self, action, rng):
        hold = np.zeros_like(action)
        hold[-1] = action[-1]
        return self._delay(action, fill=hold)


# ---------------------------------------------------------------- sensing
def _object_pos_keys(obs: dict) -> list[str]:
    return [k for k in obs if k.endswith("_pos") and k != "eef_pos"]


@GAP_FACTORS.register("obs_noise")
class ObsNoise(GapEffect):
    family = "sensing"
    std = 0.015
    unit = f"Gaussian noise of std {std:g} m x m on every object position, per step"

    def observe(self, obs, rng):
        return {k: (v + rng.normal(0.0, self.std * self.magnitude, v.shape) if k in _object_pos_keys(obs) else v)
                for k, v in obs.items()}


@GAP_FACTORS.register("obs_bias")
class ObsBias(GapEffect):
    family = "sensing"
    unit = "fixed offset (3, -2, 0) cm x m on every object position (a miscalibrated camera-to-base transform)"
    offset = np.array([0.03, -0.02, 0.0])

    def observe(self, obs, rng):
        return {k: (v + self.magnitude * self.offset if k in _object_pos_keys(obs) else v) for k, v in obs.items()}


@GAP_FACTORS.register("obs_latency")
class ObsLatency(GapEffect):
    family = "sensing"
    max_steps = 5
    unit = f"object poses observed round({max_steps} m) control steps late ({max_steps / 20:g} s at m = 1)"

    def on_reset(self, env, rng):
        self._delay = _Delay(self.steps)

    def observe(self, obs, rng):
        keys = [k for k in obs if not k.startswith(("eef_", "gripper"))]
        late = self._delay({k: obs[k] for k in keys})
        return {**obs, **late}


# ---------------------------------------------------------------- embodiment
class _Embodiment(GapEffect):
    family = "embodiment"
    categorical = True
    replaces = "robot"
    robot = "Panda"

    def robosuite_kwargs(self, kwargs):
        if self.magnitude == 1.0:
            kwargs["robots"] = self.robot


@GAP_FACTORS.register("embodiment_sawyer")
class EmbodimentSawyer(_Embodiment):
    robot = "Sawyer"
    unit = "categorical: Panda (m = 0) -> Sawyer with its Rethink gripper (m = 1); same OSC action and layout"

    def on_build(self, env):
        # robosuite's Sawyer starts with its first link touching the (world-welded) arm base, a
        # contact MuJoCo does not filter: it jams joint 0. Remove the base's collision geom.
        if self.magnitude == 1.0:
            model = env.sim.model._model
            base = model.geom("robot0_base_col").id
            model.geom_contype[base] = model.geom_conaffinity[base] = 0


@GAP_FACTORS.register("embodiment_ur5e")
class EmbodimentUR5e(_Embodiment):
    robot = "UR5e"
    unit = "categorical: Panda (m = 0) -> UR5e with a Robotiq 85 gripper (m = 1); same OSC action and layout"
