"""`FastEnv`: the `backend="fast"` path of `make_env`, robosuite's behaviour with a lean step.

robosuite's step runs, for each of its 25 physics substeps, the whole OSC controller in Python
(site Jacobians and mass matrix through its binding helpers, origin look-ups by name), the
gripper controller, and every observable. `FastEnv` keeps robosuite's model, reset, task
success check and gap-factor hooks (it is a `CotrainEnv`) and replaces only that loop:

- at the control step, the goal is set by robosuite's own OSC `set_goal` (delta input scaled
  by `output_max`, "achieved" update mode, base frame) and the gripper command by the gripper
  model's `format_action` and the gripper controller's scaling, as in `Robot.control`;
- the substeps run in one numba loop that calls MuJoCo's C API directly: `mj_step1`, the OSC
  torques from `mj_jacSite` and `mj_fullM` with robosuite's formulas (orientation error, kp/kd,
  operational-space inertias of the arm's own mass matrix, decoupled wrench, nullspace
  torques, `qfrc_bias` compensation, actuator clipping), then `mj_step2`: the split that
  robosuite's `lite_physics` step makes;
- no robosuite observables: the observation is `CotrainEnv._observe`, as on the reference path.

kp and kd are read from the robosuite controller at every step, so gap factors that edit them
(`controller_gains`) act on this path too. Trajectories match the robosuite backend up to
floating-point rounding (tests/test_fast.py states the tolerance). A MuJoCo fatal error inside
the loop (none occurs with these models) aborts the process instead of raising.
"""
from __future__ import annotations

import glob
import os
import llvmlite.binding as llvm
import mujoco
import numba
import numpy as np
from numba import types
from robosuite.controllers.parts.arm.osc import OperationalSpaceController
from robosuite.controllers.parts.gripper.simple_grip import SimpleGripController

from .core import TaskPair
from .env import CotrainEnv

NULLSPACE_KP = 10.0  # robosuite's `nullspace_torques` default joint gain (critically damped)

# MuJoCo's C functions, called from numba by symbol (pointers passed as integers).
llvm.load_library_permanently(sorted(glob.glob(os.path.join(os.path.dirname(mujoco.__file__), "libmujoco*")))[0])
_ptr = types.intp
_mj_step1 = types.ExternalFunction("mj_step1", types.void(_ptr, _ptr))
_mj_step2 = types.ExternalFunction("mj_step2", types.void(_ptr, _ptr))
_mj_jac_site = types.ExternalFunction("mj_jacSite", types.void(_ptr, _ptr, _ptr, _ptr, types.int32))
_mj_full_m = types.ExternalFunction("mj_fullM", types.void(_ptr, _ptr, _ptr))


@numba.njit(cache=True)
def _osc_torques(full_mass: np.ndarray, jac: np.ndarray, qpos: np.ndarray, qvel: np.ndarray,
                 qfrc_bias: np.ndarray, ref_pos: np.ndarray, ref_ori: np.ndarray, ctrl: np.ndarray,
                 dofs: np.ndarray, qpos_idx: np.ndarray, goal_pos: np.ndarray, goal_ori: np.ndarray,
                 kp: np.ndarray, kd: np.ndarray, joint_ref: np.ndarray, low: np.ndarray, high: np.ndarray,
                 actuators: np.ndarray) -> None:
    """robosuite's `OperationalSpaceController.run_controller` (fixed base, uncoupled pos/ori).

    Writes the arm torques, clipped to the actuators' range, into `ctrl[actuators]`.
    full_mass: (nv, nv); jac: (6, nv) site Jacobian (position rows, then rotation rows) at the
    end-effector site `ref_pos` (3,), `ref_ori` (3, 3); goal_pos (3,) and goal_ori (3, 3) in the
    world frame. `opspace_matrices`' pseudo-inverses are inverses here: the same matrices for
    the non-singular operational-space inertias these arms reach, a third of the cost.
    """
    ref_vel = jac @ qvel
    jac_arm = np.ascontiguousarray(jac[:, dofs])
    mass = np.ascontiguousarray(full_mass[dofs][:, dofs])
    ori_error = 0.5 * (np.cross(ref_ori[:, 0], goal_ori[:, 0]) + np.cross(ref_ori[:, 1], goal_ori[:, 1])
                       + np.cross(ref_ori[:, 2], goal_ori[:, 2]))
    force = (goal_pos - ref_pos) * kp[:3] - ref_vel[:3] * kd[:3]
    torque = ori_error * kp[3:] - ref_vel[3:] * kd[3:]
    mass_inv_jt = np.linalg.inv(mass) @ jac_arm.T
    lambda_pos = np.linalg.inv(jac_arm[:3] @ np.ascontiguousarray(mass_inv_jt[:, :3]))
    lambda_ori = np.linalg.inv(jac_arm[3:] @ np.ascontiguousarray(mass_inv_jt[:, 3:]))
    lambda_full = np.linalg.inv(jac_arm @ mass_inv_jt)
    nullspace = np.eye(len(dofs)) - (mass_inv_jt @ lambda_full) @ jac_arm
    wrench = np.concatenate((lambda_pos @ force, lambda_ori @ torque))
    pose_torques = mass @ (NULLSPACE_KP * (joint_ref - qpos[qpos_idx]) - 2.0 * np.sqrt(NULLSPACE_KP) * qvel[dofs])
    torques = jac_arm.T @ wrench + qfrc_bias[dofs] + nullspace.T @ pose_torques
    ctrl[actuators] = np.minimum(np.maximum(torques, low), high)


@numba.njit(cache=True)
def _arm_torques(model: int, data: int, site: int, jac: np.ndarray, mass: np.ndarray, views: tuple,
                 osc: tuple) -> None:
    """The OSC torques on the current state (after `mj_step1`), written into `ctrl`.

    views: (qM, qpos, qvel, qfrc_bias, site position, site orientation, ctrl) of the MjData at
    address `data`; osc: the goal, gains and indices `_osc_torques` takes after them.
    """
    qm, qpos, qvel, qfrc_bias, ref_pos, ref_ori, ctrl = views
    _mj_jac_site(model, data, jac.ctypes.data, jac[3:].ctypes.data, site)
    _mj_full_m(model, mass.ctypes.data, qm.ctypes.data)
    _osc_torques(mass, jac, qpos, qvel, qfrc_bias, ref_pos, ref_ori, ctrl, *osc)


@numba.njit(cache=True)
def _substeps(n: int, model: int, data: int, site: int, jac: np.ndarray, mass: np.ndarray, views: tuple,
              osc: tuple) -> None:
    """`n` physics substeps, each `mj_step1`, the OSC torques, `mj_step2`."""
    for _ in range(n):
        _mj_step1(model, data)
        _arm_torques(model, data, site, jac, mass, views, osc)
        _mj_step2(model, data)


class FastEnv(CotrainEnv):
    """A `CotrainEnv` whose `step` runs the controller and physics without robosuite's step loop.

    Same spaces, observation layout, seeding, success test and gap factors as `CotrainEnv`.
    Requires robosuite's default arm controller: OSC_POSE, fixed impedance, delta input in the
    base frame, no interpolators, uncoupled position/orientation, on a fixed-base robot.
    """

    backend = "fast"

    def __init__(self, pair: TaskPair, domain: str = "source", magnitude: float = 1.0, seed: int | None = None,
                 render_mode: str | None = None):
        super().__init__(pair, domain, magnitude, seed, render_mode)
        robot = self.rs.robots[0]
        self._robot = robot
        self._model = self.sim.model._model
        self._data = self.sim.data._data
        self._substeps = int(round(self.rs.control_timestep / self.rs.model_timestep))
        _check_supported(self)
        arm = self.arm_controller()
        self._site = self._model.site(arm.ref_name).id
        self._dofs = np.asarray(arm.qvel_index, dtype=np.int64)
        self._qpos_idx = np.asarray(arm.qpos_index, dtype=np.int64)
        actuators = robot._ref_actuators_indexes_dict
        self._arm_act = np.asarray(actuators["right"], dtype=np.int64)
        self._grip_act = np.asarray(actuators["right_gripper"], dtype=np.int64)
        ctrlrange = self._model.actuator_ctrlrange
        self._arm_low, self._arm_high = ctrlrange[self._arm_act].T.copy()
        self._grip_low, self._grip_high = ctrlrange[self._grip_act].T.copy()
        nv = self._model.nv
        self._jac = np.zeros((6, nv))
        self._mass = np.zeros((nv, nv))

    def _advance(self, action: np.ndarray) -> None:
        """One control step: robosuite's `Robot.control` semantics and its physics substeps."""
        model, data, robot = self._model, self._data, self._robot
        arm = self.arm_controller()
        n_arm = arm.control_dim
        mujoco.mj_step1(model, data)
        # robosuite's controller refreshes its state only after it has run: on the first step
        # after a reset, its goal and first torques use the state it read at reset.
        stale = not arm.new_update
        robot.composite_controller.update_state()
        arm.set_goal(action[:n_arm])
        grip = robot.part_controllers["right_gripper"]  # robosuite's SimpleGripController, constant over the step
        command = grip.scale_action(robot.gripper["right"].format_action(action[n_arm:]))
        low, high = grip.actuator_min, grip.actuator_max
        data.ctrl[self._grip_act] = np.clip(0.5 * (high + low) + 0.5 * (high - low) * command,
                                            self._grip_low, self._grip_high)
        site = self._site
        views = (data.qM, data.qpos, data.qvel, data.qfrc_bias, data.site_xpos[site],
                 data.site_xmat[site].reshape(3, 3), data.ctrl)
        osc = (self._dofs, self._qpos_idx, arm.origin_pos + arm.origin_ori @ arm.goal_pos,
               arm.origin_ori @ arm.goal_ori, np.asarray(arm.kp, dtype=np.float64),
               np.asarray(arm.kd, dtype=np.float64), np.asarray(arm.initial_joint, dtype=np.float64),
               self._arm_low, self._arm_high, self._arm_act)
        if stale:
            data.ctrl[self._arm_act] = np.clip(arm.run_controller(), self._arm_low, self._arm_high)
        else:
            _arm_torques(model._address, data._address, site, self._jac, self._mass, views, osc)
        mujoco.mj_step2(model, data)
        _substeps(self._substeps - 1, model._address, data._address, site, self._jac, self._mass, views, osc)
        arm.new_update = True  # as after robosuite's `run_controller`: the next goal reads fresh state
        self.rs.timestep += 1
        self.rs.cur_time += self.rs.control_timestep


def _check_supported(env: CotrainEnv) -> None:
    """Raise NotImplementedError unless `env` runs the controllers and step `FastEnv` reproduces."""
    model, robot, arm = env.sim.model._model, env.rs.robots[0], env.arm_controller()
    grip = robot.part_controllers["right_gripper"]
    center = model.site(f"{arm.naming_prefix}{arm.part_name}_center").id
    supported = (isinstance(arm, OperationalSpaceController) and arm.use_ori and arm.uncoupling
                 and arm.impedance_mode == "fixed" and arm.input_type == "delta" and arm.input_ref_frame == "base"
                 and arm.interpolator_pos is None and arm.interpolator_ori is None
                 and model.body_weldid[model.site_bodyid[center]] == 0
                 and isinstance(grip, SimpleGripController) and grip.interpolator is None and grip.use_action_scaling
                 and env.rs.lite_physics and set(robot.part_controllers) == {"right", "right_gripper"})
    if not supported:
        raise NotImplementedError("backend='fast' supports robosuite's default single-arm OSC_POSE and gripper "
                                  "controllers on a fixed base, with lite_physics")
