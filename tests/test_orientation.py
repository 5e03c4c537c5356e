"""Orientations in the observation are continuous: a slow turn through the region where a quaternion
with a fixed sign (w >= 0) flips moves no observation component by more than a small step."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tasks import make_env

PAIR = "lift/dynamics"
MAX_STEP = 0.1  # per-step change of any component: a slow turn moves rot6d by ~0.01, a sign flip by ~1
TURN_INPUT, TURN_STEPS = 0.1, 30  # rotation input about the base x axis (0.05 rad of goal per step)
YAW_STEP = 0.02  # rad per step of the object's turn about the vertical


@pytest.fixture(scope="module")
def env():
    env = make_env(PAIR, "source")
    yield env
    env.close()


def _largest_step(series: list[np.ndarray]) -> float:
    return float(np.abs(np.diff(np.asarray(series), axis=0)).max())


def _signed_quat(matrix: np.ndarray) -> np.ndarray:
    """The quaternion (x, y, z, w) with w >= 0: the form that flips where w crosses 0."""
    return Rotation.from_matrix(matrix).as_quat(canonical=True)


def test_gripper_turn_through_w_zero_is_continuous(env):
    obs, _ = env.reset(seed=0)
    observations, signed = [obs], []
    for _ in range(TURN_STEPS):
        obs, *_ = env.step(np.r_[0.0, 0.0, 0.0, TURN_INPUT, 0.0, 0.0, -1.0])
        observations.append(obs)
        signed.append(_signed_quat(env.sim.data._data.site_xmat[env._eef_site].reshape(3, 3)))
    assert _largest_step(signed) > MAX_STEP, "the turn does not pass where a signed quaternion flips"
    assert _largest_step(observations) < MAX_STEP


def test_object_turn_through_w_zero_is_continuous(env):
    """The cube turned about the vertical through a half turn (w = 0 of its quaternion), one step at a time."""
    env.reset(seed=0)
    model, data = env.sim.model._model, env.sim.data._data
    adr = model.jnt_qposadr[model.body_jntadr[env._bodies[0]]] + 3  # the free joint's quaternion (w, x, y, z)
    observations, signed = [], []
    for yaw in np.arange(np.pi - 0.3, np.pi + 0.3, YAW_STEP):
        data.qpos[adr:adr + 4] = Rotation.from_euler("z", yaw).as_quat(scalar_first=True)
        env.sim.forward()
        obs, *_ = env.step(np.r_[np.zeros(6), -1.0])
        observations.append(obs)
        signed.append(_signed_quat(data.xmat[env._bodies[0]].reshape(3, 3)))
    assert _largest_step(signed) > MAX_STEP, "the turn does not pass where a signed quaternion flips"
    assert _largest_step(observations) < MAX_STEP
