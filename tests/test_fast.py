"""The fast backend against robosuite: same seed and actions, same observations and success.

Tolerance: every observation of a full-horizon episode within OBS_TOL of the robosuite
backend's (metres for positions, rotation-matrix entries for orientations). The two paths
compute the same formulas in a different order, so they agree to floating-point rounding, which
contact amplifies: 0 on most episodes, at most 2e-6 with scripted actions, and 1.3e-4 over the
square expert's 144-step insertion, where the nut slides along the peg (1 mm is the tolerance).
"""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tasks import custom_pair, make_env
from tasks.core import TaskPair
from tasks.experts import EXPERTS, make_expert

OBS_TOL = 1e-3
SEED = 7

CASES = [
    ("lift/dynamics", "source"),
    ("stack/dynamics", "source"),
    ("square/dynamics", "source"),
    ("lift/dynamics", "target"),
    (custom_pair("lift", ["controller_gains"]), "target"),
    ("lift/embodiment", "target"),
]


class ReachGrasp:
    """Where a base task has no expert yet: go above the first object, descend, close, lift 15 cm."""

    def __init__(self, horizon: int):
        self.horizon = horizon
        self.t = 0
        self.lift_to: np.ndarray | None = None

    def act(self, env) -> np.ndarray:
        state = env.privileged_state()
        obj = next(v for k, v in state.items() if k.endswith("_pos") and k != "eef_pos")
        phase = self.t / self.horizon
        self.t += 1
        if phase < 0.6:
            target = obj + [0.0, 0.0, 0.1 if phase < 0.3 else 0.0]
        else:
            self.lift_to = obj + [0.0, 0.0, 0.15] if self.lift_to is None else self.lift_to
            target = self.lift_to
        action = np.zeros(7)
        action[:3] = np.clip(10.0 * (target - state["eef_pos"]), -1.0, 1.0)
        action[6] = 1.0 if phase > 0.5 else -1.0
        return action


def _name(case: tuple[str | TaskPair, str]) -> str:
    pair, domain = case
    return f"{pair if isinstance(pair, str) else pair.description}-{domain}"


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_fast_matches_robosuite(case):
    pair, domain = case
    ref, fast = (make_env(pair, domain, backend=backend) for backend in ("robosuite", "fast"))
    try:
        obs_ref, _ = ref.reset(seed=SEED)
        obs_fast, _ = fast.reset(seed=SEED)
        task = ref.task.name
        policy = make_expert(task, noise=0.1, seed=SEED) if task in EXPERTS else ReachGrasp(ref.horizon)
        if task in EXPERTS:
            policy.reset(ref)
        worst = np.abs(obs_ref - obs_fast).max()
        done = False
        while not done:
            action = policy.act(ref)  # the reference env's state decides; both get the same action
            obs_ref, _, term_ref, trunc_ref, info_ref = ref.step(action)
            obs_fast, _, term_fast, trunc_fast, info_fast = fast.step(action)
            worst = max(worst, np.abs(obs_ref - obs_fast).max())
            assert (term_fast, trunc_fast, info_fast["is_success"]) == (term_ref, trunc_ref, info_ref["is_success"])
            done = term_ref or trunc_ref
        assert worst <= OBS_TOL, f"max |obs difference| {worst:.2e} over {ref.t} steps"
    finally:
        ref.close()
        fast.close()


def test_fast_env_checker():
    env = make_env("lift/sensing", "target", backend="fast")
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()
