"""Gymnasium ids of the pairs (tasks/gym_ids.py), rendering of low-dimensional environments, episode videos.

Building an environment costs about 0.3 s (2 s with a renderer), so the default run checks every id
through its spec (pair, domain, observation kind, version, horizon) and runs `check_env` on one target
id per base task (fast backend) and one source id; test_tasks.py and test_visual.py already run it on
every pair's environment, image pairs included, through `make_env`. The slow test builds every id.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

from tasks import BASE_TASKS, PAIRS, gym_ids
from tasks.base_tasks import pair_layout
from tasks.env import RENDER_SIZE
from tasks.video import write_episode_video

IDS = gym_ids.IDS
SIMULATED = sorted(name for name, pair in PAIRS.items() if BASE_TASKS[pair.base_task].simulated)
RENDERED_PAIR = "lift/sensing_dynamics"  # its target draws observation noise and changes the physics
SEED, STEPS = 3, 12


def first_target_ids() -> list[str]:
    """The first target id with low-dimensional observations of each base task."""
    chosen: dict[str, str] = {}
    for env_id in sorted(IDS):
        kwargs = gym.spec(env_id).kwargs
        if kwargs["domain"] == "target" and kwargs["obs"] == "lowdim":
            chosen.setdefault(PAIRS[kwargs["pair"]].base_task, env_id)
    return sorted(chosen.values())


def quiet_check_env(env: gym.Env, **skip: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observation boxes
        check_env(env, **skip)


def test_every_simulated_pair_has_an_id_per_domain_at_its_version():
    made = set()
    for env_id in IDS:
        spec = gym.spec(env_id)
        name, domain = spec.kwargs["pair"], spec.kwargs["domain"]
        pair = PAIRS[name]
        assert spec.namespace == gym_ids.NAMESPACE and spec.name == f"{name.replace('/', '-')}-{domain}"
        assert spec.version == pair.version
        assert spec.kwargs["obs"] == pair.obs and spec.max_episode_steps == BASE_TASKS[pair.base_task].horizon
        made.add((name, domain))
    assert made == {(name, domain) for name in SIMULATED for domain in ("source", "target")}
    assert len(IDS) == len(made) == len({i for i in gym.registry if i.startswith(f"{gym_ids.NAMESPACE}/")})
    assert any(PAIRS[name].obs == "image" for name, _ in made)


@pytest.mark.parametrize("env_id", first_target_ids())
def test_id_passes_env_checker(env_id):
    spec = gym.spec(env_id)
    env = gym.make(env_id, backend="fast")
    try:
        quiet_check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
        assert env.unwrapped.pair is PAIRS[spec.kwargs["pair"]] and env.unwrapped.domain_name == "target"
        assert env.unwrapped.render() is None  # render_mode=None, the default
    finally:
        env.close()


def test_env_checker_renders_and_closes_twice():
    env = gym.make(gym_ids.env_id("stack/action", "source"), backend="fast")
    try:
        quiet_check_env(env.unwrapped)  # remakes the id with render_mode="rgb_array"; closes a fresh env twice
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_every_id_passes_env_checker(env_id):
    env = gym.make(env_id, backend="fast", obs="lowdim")
    try:
        quiet_check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
        assert env.unwrapped.pair is PAIRS[gym.spec(env_id).kwargs["pair"]]
    finally:
        env.close()


def test_module_form_makes_the_id_in_a_fresh_interpreter():
    code = f"""
import json, sys
import gymnasium as gym
assert "tasks" not in sys.modules
env = gym.make("tasks.gym_ids:{gym_ids.env_id('lift/dynamics', 'target')}", magnitude=0.5)
obs, _ = env.reset(seed=0)
print(json.dumps({{"pair": env.unwrapped.pair.name, "domain": env.unwrapped.domain_name,
                  "magnitudes": [g.magnitude for g in env.unwrapped.domain.gaps], "obs": list(obs.shape)}}))
env.close()
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout.strip().splitlines()[-1])
    pair = PAIRS["lift/dynamics"]
    assert made["pair"] == pair.name and made["domain"] == "target"
    assert made["magnitudes"] == [0.5 * g.magnitude for g in pair.target.gaps]
    assert made["obs"] == [sum(n for _, n in pair_layout(pair))]


@pytest.fixture(scope="module", params=["fast", "robosuite"])
def episode(request) -> dict:
    """One seeded episode of RENDERED_PAIR's target, stepped plainly, then again rendering every state."""
    env = gym.make(gym_ids.env_id(RENDERED_PAIR, "target"), backend=request.param, render_mode="rgb_array_list")
    actions = np.random.default_rng(SEED).uniform(-1.0, 1.0, (STEPS, 7))
    try:
        plain = [env.unwrapped.reset(seed=SEED)[0]] + [env.unwrapped.step(a)[0] for a in actions]
        rendered = [env.reset(seed=SEED)[0]] + [env.step(a)[0] for a in actions]
        frames = env.render()  # RenderCollection: a frame after the reset and after each step
    finally:
        env.close()
    return {"backend": request.param, "plain": plain, "rendered": rendered, "frames": frames}


def test_render_draws_states_without_changing_them(episode):
    np.testing.assert_array_equal(np.array(episode["plain"]), np.array(episode["rendered"]))
    frames = episode["frames"]
    assert len(frames) == STEPS + 1
    assert all(f.shape == (RENDER_SIZE, RENDER_SIZE, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize("episode", ["fast"], indirect=True)
@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_episode_video_holds_every_frame(episode, suffix, tmp_path):
    path = write_episode_video(episode["frames"], tmp_path / f"episode{suffix}")
    assert path.stat().st_size > 0
    if suffix == ".gif":
        with Image.open(path) as gif:
            count, size = gif.n_frames, gif.size
    else:
        video = cv2.VideoCapture(str(path))
        count, size = int(video.get(cv2.CAP_PROP_FRAME_COUNT)), (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                                                 int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        video.release()
    assert count == len(episode["frames"]) and size == (RENDER_SIZE, RENDER_SIZE)
