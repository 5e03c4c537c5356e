"""`FastEnv`: the `backend="fast"` path of `make_env`, robosuite's behaviour with a lean step.

robosuite's step runs, for each of its 25 physics substeps, the whole OSC controller in Python
(site Jacobians and mass matrix through its binding helpers, origin look-ups by name), the
gripper controller, and every observable. `FastEnv` keeps robosuite's model, reset, task
success check and gap-factor hooks (it is a `CotrainEnv`) and replaces only that loop:

- at the control step, the goal is set by robosuite's own OSC `set_goal` (delta input scaled
  by `output_max`, "achieved" update mode, base frame) and the gripper command by the gripper
  model's `format_action` and the gripper controller's scaling, as in `Robot.control`;
- at every substep, `mj_step1`, then the OSC torques from `mujoco.mj_jacSite` and
  `mujoco.mj_fullM` in one numba kernel with robosuite's formulas (orientation error, kp/kd,
  robosuite's own `opspace_matrices`, decoupled wrench, nullspace torques, `qfrc_bias`
  compensation, actuator clipping), then `mj_step2`: the same split robosuite's
  `lite_physics` step makes;
- no robosuite observables: the observation is `CotrainEnv._observe`, as on the reference path.

kp and kd are read from the robosuite controller at every step, so gap factors that edit them
(`controller_gains`) act on this path too. Trajectories match the robosuite backend up to
floating-point summation order (see tests/test_fast.py for the tolerance).
"""
from __future__ import annotations

from typing import Any

import mujoco
import numba
import numpy as np
from robosuite.controllers.parts.arm.osc import OperationalSpaceController
from robosuite.utils.control_utils import opspace_matrices

from .core import TaskPair
from .env import CotrainEnv

NULLSPACE_KP = 10.0  # robosuite's `nullspace_torques` default joint gain (critically damped)


@numba.njit(cache=True)
def _osc_torques(full_mass: np.ndarray, jac: np.ndarray, qpos: np.ndarray, qvel: np.ndarray,
                 qfrc_bias: np.ndarray, ref_pos: np.ndarray, ref_ori: np.ndarray, dofs: np.ndarray,
                 qpos_idx: np.ndarray, goal_pos: np.ndarray, goal_ori: np.ndarray, kp: np.ndarray,
                 kd: np.ndarray, joint_ref: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """robosuite's `OperationalSpaceController.run_controller` (fixed base, uncoupled pos/ori).

    full_mass: (nv, nv); jac: (6, nv) site Jacobian (position rows, then rotation rows);
    goal_pos (3,) and goal_ori (3, 3) in the world frame; returns clipped arm torques (n,).
    """
    ref_vel = jac @ qvel
    jac_arm = np.ascontiguousarray(jac[:, dofs])
    mass = np.ascontiguousarray(full_mass[dofs][:, dofs])
    ori_error = 0.5 * (np.cross(ref_ori[:, 0], goal_ori[:, 0]) + np.cross(ref_ori[:, 1], goal_ori[:, 1])
                       + np.cross(ref_ori[:, 2], goal_ori[:, 2]))
    force = (goal_pos - ref_pos) * kp[:3] + -ref_vel[:3] * kd[:3]
    torque = ori_error * kp[3:] + -ref_vel[3:] * kd[3:]
    _, lambda_pos, lambda_ori, nullspace = opspace_matrices(
        mass, jac_arm, np.ascontiguousarray(jac_arm[:3]), np.ascontiguousarray(jac_arm[3:]))
    wrench = np.concatenate((lambda_pos @ force, lambda_ori @ torque))
    joint_vel = qvel[dofs]
    torques = jac_arm.T @ wrench + qfrc_bias[dofs]
    pose_torques = mass @ (NULLSPACE_KP * (joint_ref - qpos[qpos_idx]) - 2.0 * np.sqrt(NULLSPACE_KP) * joint_vel)
    torques = torques + nullspace.T @ pose_torques
    return np.minimum(np.maximum(torques, low), high)


class FastEnv(CotrainEnv):
    """A `CotrainEnv` whose `step` runs the controller and physics without robosuite's step loop.

    Same spaces, observation layout, seeding, success test and gap factors as `CotrainEnv`.
    Requires robosuite's default arm controller: OSC_POSE, fixed impedance, delta input in the
    base frame, no interpolators, uncoupled position/orientation, on a fixed-base robot.
    """

    def __init__(self, pair: TaskPair, domain: str = "source", magnitude: float = 1.0, seed: int | None = None):
        super().__init__(pair, domain, magnitude, seed)
        robot = self.rs.robots[0]
        self._robot = robot
        self._model = self.sim.model._model
        self._data = self.sim.data._data
        self._substeps = int(round(self.rs.control_timestep / self.rs.model_timestep))
        arm = self.arm_controller()
        _check_supported(arm, self._model)
        self._site = self._model.site(arm.ref_name).id
        self._dofs = np.asarray(arm.qvel_index, dtype=np.int64)
        self._qpos_idx = np.asarray(arm.qpos_index, dtype=np.int64)
        actuators = robot._ref_actuators_indexes_dict
        self._arm_act = np.asarray(actuators["right"])
        self._grip_act = np.asarray(actuators["right_gripper"])
        ctrlrange = self._model.actuator_ctrlrange
        self._arm_low, self._arm_high = ctrlrange[self._arm_act, 0].copy(), ctrlrange[self._arm_act, 1].copy()
        nv = self._model.nv
        self._jac = np.zeros((6, nv))
        self._mass = np.zeros((nv, nv))

    def _advance(self, action: np.ndarray) -> None:
        """One control step: robosuite's `Robot.control` and 25 `mj_step`s, without its overhead."""
        model, data, robot = self._model, self._data, self._robot
        arm = self.arm_controller()
        gripper_ctrl = robot.part_controllers["right_gripper"]
        n_arm = arm.control_dim
        mujoco.mj_step1(model, data)
        robot.composite_controller.update_state()
        arm.new_update = True  # the state read by `set_goal` is this substep's
        arm.set_goal(action[:n_arm])
        goal_pos = arm.origin_pos + arm.origin_ori @ arm.goal_pos
        goal_ori = arm.origin_ori @ arm.goal_ori
        grip = gripper_ctrl.scale_action(robot.gripper["right"].format_action(action[n_arm:]))
        low, high = gripper_ctrl.actuator_min, gripper_ctrl.actuator_max
        grip_ctrl = 0.5 * (high + low) + 0.5 * (high - low) * grip
        data.ctrl[self._grip_act] = np.clip(grip_ctrl, model.actuator_ctrlrange[self._grip_act, 0],
                                            model.actuator_ctrlrange[self._grip_act, 1])
        kp, kd, joint_ref = arm.kp, arm.kd, np.asarray(arm.initial_joint, dtype=np.float64)
        jac, mass, site = self._jac, self._mass, self._site
        for i in range(self._substeps):
            if i:
                mujoco.mj_step1(model, data)
            mujoco.mj_jacSite(model, data, jac[:3], jac[3:], site)
            mujoco.mj_fullM(model, mass, data.qM)
            data.ctrl[self._arm_act] = _osc_torques(
                mass, jac, data.qpos, data.qvel, data.qfrc_bias, data.site_xpos[site],
                data.site_xmat[site].reshape(3, 3), self._dofs, self._qpos_idx, goal_pos, goal_ori,
                kp, kd, joint_ref, self._arm_low, self._arm_high)
            mujoco.mj_step2(model, data)
        self.rs.timestep += 1
        self.rs.cur_time += self.rs.control_timestep


def _check_supported(arm: Any, model: mujoco.MjModel) -> None:
    """Raise NotImplementedError unless `arm` is the controller `FastEnv` reproduces."""
    center = model.site(f"{arm.naming_prefix}{arm.part_name}_center").id
    supported = (isinstance(arm, OperationalSpaceController) and arm.use_ori and arm.uncoupling
                 and arm.impedance_mode == "fixed" and arm.input_type == "delta" and arm.input_ref_frame == "base"
                 and arm.interpolator_pos is None and arm.interpolator_ori is None
                 and model.body_weldid[model.site_bodyid[center]] == 0)
    if not supported:
        raise NotImplementedError("backend='fast' supports robosuite's default OSC_POSE controller on a fixed base")
