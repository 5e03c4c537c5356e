"""`CotrainEnv`: one domain of a pair as a gymnasium environment over robosuite, with the suite's flat observation
layout (`tasks.make.make_env` builds it, or its fast and image variants)."""
from __future__ import annotations

import atexit
import logging
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from cotrain_robot.geometry import rot6d

from .base_tasks import BASE_TASKS, pair_layout
from .core import TaskPair
from .gaps import build_effect
from .render import GEOM_GROUPS, make_renderer

# robosuite warns, at import and at every construction, about macros, optional packages and the
# controller parts a single-arm robot lacks; the suite shows its errors only.
logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)

CONTROL_FREQ = 20
BUILD_SEED = 0  # seeds what robosuite draws once at construction (e.g. Lift's cube size)
RENDER_CAMERA, RENDER_SIZE = "frontview", 256  # `render()`: robosuite's view of the whole scene, frame side in pixels

# Normalized gripper opening: finger joint position at (closed, open), per robosuite gripper class.
GRIPPER_RANGE = {
    "PandaGripper": (0.0, 0.04),
    "RethinkGripper": (-0.0115, 0.020833),
    "Robotiq85Gripper": (0.8, 0.0),
}


def _quat_xyzw(wxyz: np.ndarray) -> np.ndarray:
    q = np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])
    return -q if q[3] < 0 else q


def _seed_sampler(sampler: Any, rng: np.random.Generator) -> None:
    sampler.rng = rng
    for sub in getattr(sampler, "samplers", {}).values():
        _seed_sampler(sub, rng)


class CotrainEnv(gym.Env):
    """One domain of a `TaskPair` as a gymnasium environment (robosuite backend).

    Observation: float32 vector in the layout `self.layout` (`tasks.base_tasks.pair_layout`),
    identical for source and target and across embodiments. Action: 7 floats in [-1, 1],
    robosuite's OSC_POSE delta (x, y, z in 5 cm units, rotation in 0.5 rad units, base frame)
    and the gripper (-1 open, 1 close). `info["is_success"]` is the task's success test;
    an episode terminates on success and is truncated at the base task's horizon.
    render_mode: None (default; `render()` returns None) or "rgb_array" (`render()` returns the
    RENDER_CAMERA view, (RENDER_SIZE, RENDER_SIZE, 3) uint8, from a renderer made at the first call).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}
    backend = "robosuite"  # the `make_env` backend this class is (demos record it)

    def __init__(self, pair: TaskPair, domain: str = "source", magnitude: float = 1.0, seed: int | None = None,
                 render_mode: str | None = None):
        import robosuite
        from robosuite import load_composite_controller_config

        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self._frame_renderer: Any = None  # a mujoco.Renderer, made by the first render()

        self.pair = pair
        self.task = BASE_TASKS[pair.base_task]
        self.domain_name = domain
        self.domain = pair.domain(domain, magnitude)
        self.effects = [build_effect(g) for g in self.domain.gaps]
        kwargs: dict[str, Any] = dict(
            robots="Panda", has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False,
            use_object_obs=True, reward_shaping=False, control_freq=CONTROL_FREQ, horizon=10**6,
            ignore_done=True, hard_reset=False, **dict(self.task.env_kwargs))
        for effect in self.effects:
            effect.robosuite_kwargs(kwargs)
        kwargs["controller_configs"] = load_composite_controller_config(controller="BASIC", robot=kwargs["robots"])
        self.rs = robosuite.make(self.task.env_name, seed=BUILD_SEED, **kwargs)
        self.sim = self.rs.sim
        for name in list(self.rs._observables):  # the suite computes its own, smaller observation
            self.rs.modify_observable(name, "enabled", False)
            self.rs.modify_observable(name, "active", False)
        robot = self.rs.robots[0]
        model = self.sim.model._model
        self._eef_site = robot.eef_site_id["right"]
        gripper = robot.gripper["right"]
        self._finger_qpos = model.jnt_qposadr[model.joint(gripper.joints[0]).id]
        self._grip_closed, self._grip_open = GRIPPER_RANGE[type(gripper).__name__]
        self._bodies = [model.body(b).id for b in self.task.bodies]
        for effect in self.effects:
            effect.on_build(self)
        self.layout = pair_layout(pair)
        dim = sum(n for _, n in self.layout)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self.horizon = self.task.horizon
        self._first_seed = seed
        self._gap_rng = np.random.default_rng(0)
        self.t = 0

    # -- accessors used by gap factors and experts
    def arm_dofs(self) -> np.ndarray:
        return np.asarray(self.rs.robots[0]._ref_joint_vel_indexes)

    def arm_controller(self) -> Any:
        return self.rs.robots[0].part_controllers["right"]

    def set_object_height_offset(self, dz: float) -> None:
        """Raise the first object's free joint by `dz` metres (after placement)."""
        model = self.sim.model._model
        adr = model.jnt_qposadr[model.body_jntadr[self._bodies[0]]]
        self.sim.data.qpos[adr + 2] += dz
        self.sim.forward()

    def privileged_state(self) -> dict[str, np.ndarray]:
        """The true poses (no sensing gap applied): positions, quaternions `eef_quat`, `<obj>_quat`
        (x, y, z, w; w >= 0) and `gripper`; the observation turns each quaternion into its `rot6d`."""
        data = self.sim.data._data
        state = {
            "eef_pos": data.site_xpos[self._eef_site].copy(),
            "eef_quat": _quat_xyzw(_mat2quat_wxyz(data.site_xmat[self._eef_site])),
            "gripper": np.array([(data.qpos[self._finger_qpos] - self._grip_closed)
                                 / (self._grip_open - self._grip_closed)]),
        }
        for obj, body in zip(self.task.objects, self._bodies):
            state[f"{obj}_pos"] = data.xpos[body].copy()
            state[f"{obj}_quat"] = _quat_xyzw(data.xquat[body])
        return state

    def _observe(self) -> np.ndarray:
        obs = self.privileged_state()
        for effect in self.effects:
            obs = effect.observe(obs, self._gap_rng)
        obs["eef_rot6d"] = rot6d(obs["eef_quat"])
        for obj in self.task.objects:
            obs[f"{obj}_rot6d"] = rot6d(obs[f"{obj}_quat"])
            obs[f"{obj}_rel_pos"] = obs[f"{obj}_pos"] - obs["eef_pos"]
        self.last_obs = obs
        return np.concatenate([obs[k] for k, _ in self.layout]).astype(np.float32)

    # -- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._first_seed is not None:
            seed, self._first_seed = self._first_seed, None
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1)) if seed is None else int(seed)
        self.episode_seed = episode_seed
        self.rs.rng = np.random.default_rng(episode_seed)
        _seed_sampler(self.rs.placement_initializer, self.rs.rng)
        self.rs.reset()
        self._gap_rng = np.random.default_rng([episode_seed, 1])
        for effect in self.effects:
            effect.on_reset(self, self._gap_rng)
        self.t = 0
        return self._observe(), {"is_success": False, "episode_seed": episode_seed}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.last_action = a
        for effect in self.effects:
            a = effect.action(a, self._gap_rng)
        self._advance(a)
        self.t += 1
        success = bool(self.rs._check_success())
        obs = self._observe()
        return obs, float(success), success, self.t >= self.horizon, {"is_success": success}

    def _advance(self, action: np.ndarray) -> None:
        """Run one control step of the simulation on the action the robot executes."""
        self.rs.step(action)

    def render(self) -> np.ndarray | None:
        """The current state as an RGB frame (render_mode "rgb_array"), else None; the simulation is only read."""
        if self.render_mode is None:
            return None
        if self._frame_renderer is None:
            self._frame_renderer = make_renderer(self.sim.model._model, RENDER_SIZE)
        return self.render_camera(RENDER_CAMERA, self._frame_renderer)

    def render_camera(self, camera: str, renderer: Any) -> np.ndarray:
        """(H, W, 3) uint8 image of `camera` in the current state, drawn by the `mujoco.Renderer` `renderer`."""
        option = mujoco.MjvOption()
        option.geomgroup[:] = GEOM_GROUPS
        renderer.update_scene(self.sim.data._data, camera=camera, scene_option=option)
        return renderer.render()

    def close(self):
        if self._frame_renderer is not None:
            self._frame_renderer.close()
            atexit.unregister(self._frame_renderer.close)
            self._frame_renderer = None
        self.rs.close()


def _mat2quat_wxyz(xmat: np.ndarray) -> np.ndarray:
    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.asarray(xmat, dtype=np.float64).reshape(9))
    return q
