"""Every low-dimensional robosuite pair and every gap factor: env checker, seeding, layout, the gap is real.

Image pairs and visual factors (which change only images) are tested in test_visual.py; the
simulator-free toy pairs in test_toy.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tasks import BASE_TASKS, GAP_FACTORS, PAIRS, GapFactor, custom_pair, make_env
from tasks.experts import make_expert

LOWDIM_PAIRS = sorted(name for name, p in PAIRS.items() if BASE_TASKS[p.base_task].simulated and p.obs == "lowdim")
FACTORS = sorted(name for name, f in GAP_FACTORS.items() if f.family != "visual")
CATEGORICAL = sorted(name for name in FACTORS if GAP_FACTORS[name].categorical)
SEED = 7
STEPS = 50  # long enough for the Lift expert to grasp and lift the cube (friction and mass then act)
GAP_TOL = 1e-3  # metres (or quaternion units): the smallest difference that counts as a real gap


@pytest.fixture(scope="module")
def lift_actions() -> list[np.ndarray]:
    """The Lift expert's actions in the source domain from SEED: one fixed sequence for every factor."""
    env = make_env("lift/dynamics", "source")
    expert = make_expert("lift")
    env.reset(seed=SEED)
    expert.reset(env)
    actions = []
    for _ in range(STEPS):
        actions.append(expert.act(env))
        env.step(actions[-1])
    env.close()
    return actions


def rollout(env, actions: list[np.ndarray], seed: int = SEED) -> np.ndarray:
    """Observations (T + 1, D) of `actions` from `seed`."""
    obs, _ = env.reset(seed=seed)
    trajectory = [obs]
    for action in actions:
        obs, *_ = env.step(action)
        trajectory.append(obs)
    return np.asarray(trajectory)


@pytest.fixture(scope="module")
def lift_source(lift_actions) -> np.ndarray:
    env = make_env(custom_pair("lift", []), "source")
    trajectory = rollout(env, lift_actions)
    env.close()
    return trajectory


@pytest.mark.parametrize("name", LOWDIM_PAIRS)
def test_pair_passes_env_checker_in_both_domains(name):
    layouts = {}
    for domain in ("source", "target"):
        env = make_env(name, domain)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unbounded observation boxes
            check_env(env, skip_render_check=True)
        layouts[domain] = (env.observation_space.shape, env.layout)
        obs, _ = env.reset(seed=SEED)
        for _ in range(5):
            obs, *_ = env.step(env.action_space.sample())
            assert np.isfinite(obs).all()
        env.close()
    assert layouts["source"] == layouts["target"]


def test_same_seed_same_trajectory_and_seeds_place_objects(lift_actions):
    env = make_env("stack/dynamics", "target")
    first, again = rollout(env, lift_actions[:20]), rollout(env, lift_actions[:20])
    assert np.array_equal(first, again)
    starts = [env.reset(seed=s)[0] for s in range(4)]
    cube_a = [k for k, _ in env.layout].index("cubeA_pos")
    offset = sum(n for _, n in env.layout[:cube_a])
    positions = {tuple(np.round(obs[offset:offset + 3], 6)) for obs in starts}
    assert len(positions) == 4
    env.close()


@pytest.mark.parametrize("name", FACTORS)
def test_gap_is_real_at_one_and_absent_at_zero(name, lift_actions, lift_source):
    for magnitude in (1.0, 0.0):
        env = make_env(custom_pair("lift", [GapFactor(name, magnitude)]), "target")
        trajectory = rollout(env, lift_actions)
        env.close()
        assert trajectory.shape == lift_source.shape and np.isfinite(trajectory).all()
        if magnitude == 0.0:
            assert np.array_equal(trajectory, lift_source), f"{name} at magnitude 0 changed the observations"
        else:
            assert np.abs(trajectory - lift_source).max() > GAP_TOL, f"{name} at magnitude 1 changed nothing"


@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_factor_rejects_intermediate_magnitude(name):
    with pytest.raises(ValueError, match="categorical"):
        make_env(custom_pair("lift", [GapFactor(name, 0.5)]), "target")
