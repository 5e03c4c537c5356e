"""The scripted experts solve every base task in the source and in each family's target at magnitude 1.

A few fixed episodes per cell (the full 50-episode table: `python -m tasks.expert_report`).
"""
from __future__ import annotations

import numpy as np
import pytest

from tasks import BASE_TASKS, make_env
from tasks.demos import rollout_expert
from tasks.experts import EXPERTS, make_expert
from tasks.pairs import FAMILIES, PAIRS

TASKS = sorted(name for name in BASE_TASKS if name != "toy")
EPISODES = 3
SEEDS = [9_000 + i for i in range(EPISODES)]
NOISE = 0.1  # what demo generation uses


def test_every_base_task_has_an_expert():
    assert sorted(EXPERTS) == TASKS


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds_in_source_and_every_family_target(task):
    domains = [(f"{task}/{family}", "target") for family in FAMILIES if f"{task}/{family}" in PAIRS]
    domains += [(f"{task}/dynamics", "source")]
    successes = {}
    for pair, domain in domains:
        env = make_env(pair, domain)
        expert = make_expert(task, noise=NOISE, seed=1)
        successes[pair, domain] = sum(bool(rollout_expert(env, expert, s)[2][-1] > 0) for s in SEEDS)
        env.close()
    assert all(n >= EPISODES - 1 for n in successes.values()), successes
    assert sum(successes.values()) >= len(domains) * EPISODES - 1, successes


def test_expert_ends_at_a_stable_hold():
    """After Lift succeeds the expert holds the cube still: it does not keep raising it."""
    env = make_env("lift/dynamics", "source")
    env.horizon = 10**6  # keep stepping after success
    expert = make_expert("lift")
    env.reset(seed=SEEDS[0])
    expert.reset(env)
    heights = []
    for _ in range(150):
        env.step(expert.act(env))
        heights.append(env.privileged_state()["cube_pos"][2])
    env.close()
    assert np.ptp(heights[-30:]) < 0.005
    assert heights[-1] - heights[0] > 0.04
