"""Image pairs, visual gap factors, image datasets and image encoders."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from baselines.vision import BACKBONES, ImageEncoder, images_to_tensor
from tasks import GAP_FACTORS, PAIRS, custom_pair, get_pair, make_env
from common.dataset import Dataset
from tasks.dataset import load_dataset, write_dataset
from tasks.demos import generate_demos
from tasks.base_tasks import ROBOT_KEYS, pair_layout
from tasks.core import IMAGE_CAMERAS
from tasks.visual import ImageEnv

IMAGE_PAIRS = [name for name in PAIRS.names() if PAIRS[name].obs == "image"]
VISUAL = [name for name in GAP_FACTORS.names() if GAP_FACTORS[name].family == "visual"]
SEED = 5
LEVEL = 24  # a pixel "changed" where some channel moved by more than this (of 255)
MIN_CHANGED = 8  # pixels changed at magnitude 1: about one face of Lift's cube, the smallest thing a factor recolours


def changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a.astype(int) - b.astype(int)).max(-1) > LEVEL).sum())


def first_frame(pair, domain: str, magnitude: float = 1.0, cheap: bool = True) -> dict[str, np.ndarray]:
    """The observation after reset(SEED), agent view rendered with cheap (the default) or default settings."""
    env = ImageEnv(pair, domain, magnitude, cheap=cheap)
    try:
        return env.reset(seed=SEED)[0]
    finally:
        env.close()


@pytest.fixture(scope="module")
def lift_source() -> dict[str, np.ndarray]:
    """The gap-free scene as an image pair observes it (a visual factor pair's source domain)."""
    return first_frame(custom_pair("lift", [VISUAL[0]]), "source")


def test_every_base_task_has_image_pairs_with_visual_factors():
    assert {"lift/visual", "stack/visual", "square/visual", "lift/visual_dynamics", "square/visual_dynamics"} <= set(
        IMAGE_PAIRS)
    assert len(VISUAL) >= 10
    for name in IMAGE_PAIRS:
        assert any(GAP_FACTORS[g.name].family == "visual" for g in PAIRS[name].target.gaps)


def test_image_pairs_see_the_objects_in_their_frames_alone():
    """A registered image pair's low-dimensional entry is the robot's proprioception, no object pose: a policy
    cannot act from the object's pose and ignore the frames, with the visual gap in them."""
    built = [get_pair("lift+object_color"), get_pair("stack+camera_pose@0.5+object_mass")]  # from factors too
    assert all(p.obs == "image" and pair_layout(p) == ROBOT_KEYS
               for p in [PAIRS[name] for name in IMAGE_PAIRS] + built)
    env = make_env("lift/visual-48px", "target", obs="image")
    try:
        obs, _ = env.reset(seed=SEED)
        state = env.unwrapped.last_obs
        np.testing.assert_array_equal(obs["lowdim"], np.concatenate([state[k] for k, _ in ROBOT_KEYS]).astype(np.float32))
    finally:
        env.close()


@pytest.mark.parametrize("name", IMAGE_PAIRS)
def test_image_pair_passes_env_checker(name):
    env = make_env(name, "target", obs="image")
    try:
        check_env(env, skip_render_check=True)
        obs, _ = env.reset(seed=SEED)
        size = PAIRS[name].image_size
        assert set(obs) == {"lowdim", "agentview", "wrist"} and set(IMAGE_CAMERAS) == {"agentview", "wrist"}
        assert all(obs[key].shape == (size, size, 3) and obs[key].dtype == np.uint8 for key in IMAGE_CAMERAS)
        assert obs["lowdim"].shape == (sum(n for _, n in env.layout),)
    finally:
        env.close()


@pytest.mark.parametrize("factor", VISUAL)
def test_visual_factor_changes_images_at_magnitude_one(factor, lift_source):
    target = first_frame(custom_pair("lift", [factor]), "target")
    np.testing.assert_array_equal(target["lowdim"], lift_source["lowdim"])
    assert changed_pixels(target["agentview"], lift_source["agentview"]) >= MIN_CHANGED


def test_visual_factors_change_nothing_at_magnitude_zero(lift_source):
    target = first_frame(custom_pair("lift", VISUAL), "target", 0.0)
    for key in ("lowdim", *IMAGE_CAMERAS):
        np.testing.assert_array_equal(target[key], lift_source[key])


def test_cheap_rendering_keeps_the_visual_gap():
    """With shadows, reflections, skybox and multisampling off, a visual pair's gap stays at least half as large."""
    pair = PAIRS["square/visual"]
    gaps = [changed_pixels(first_frame(pair, "target", cheap=cheap)["agentview"],
                           first_frame(pair, "source", cheap=cheap)["agentview"]) for cheap in (True, False)]
    assert gaps[0] >= 0.5 * gaps[1] and gaps[0] >= 0.25 * 84 * 84, gaps


def test_visual_factors_leave_dynamics_unchanged():
    """Source and all-visual-factors target take identical trajectories (the robot's observation and the true
    state, the cube's pose included), equal to obs="lowdim"."""
    pair = custom_pair("lift", VISUAL)
    envs = [make_env(pair, "source", obs="image"), make_env(pair, "target", obs="image"), make_env(pair, "source")]
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 7))
    try:
        def observed(env, obs) -> np.ndarray:
            flat = obs["lowdim"] if isinstance(obs, dict) else obs
            return np.concatenate([flat, env.unwrapped.last_obs["cube_pos"], env.unwrapped.last_obs["cube_quat"]])

        trajectories = [[observed(env, env.reset(seed=SEED)[0]) for env in envs]]
        for action in actions:
            steps = [env.step(action)[0] for env in envs]
            trajectories.append([observed(env, obs) for env, obs in zip(envs, steps)])
            assert changed_pixels(steps[0]["agentview"], steps[1]["agentview"]) > 100
    finally:
        for env in envs:
            env.close()
    source, target, lowdim = (np.array(x) for x in zip(*trajectories))
    np.testing.assert_array_equal(source, target)
    np.testing.assert_array_equal(source, lowdim)
    assert np.abs(source[-1] - source[0]).max() > 0.01  # the arm moved


def test_same_seed_same_images_and_distractors_move_with_the_seed():
    env = make_env(custom_pair("lift", ["distractors"]), "target", obs="image")
    try:
        a, b, c = (env.reset(seed=s)[0]["agentview"] for s in (SEED, SEED, SEED + 1))
    finally:
        env.close()
    np.testing.assert_array_equal(a, b)
    assert changed_pixels(a, c) >= MIN_CHANGED


@pytest.mark.parametrize("factor", ["object_color", "table_texture", "light_color"])
def test_the_wrist_camera_sees_its_own_view_and_the_scene_factors(factor, lift_source):
    """The wrist frame is another view than the agent view, and the factors that change the scene (not the agent-view
    camera) change it too: the gap reaches both cameras."""
    assert changed_pixels(lift_source["wrist"], lift_source["agentview"]) > 100
    target = first_frame(custom_pair("lift", [factor]), "target")
    assert changed_pixels(target["wrist"], lift_source["wrist"]) >= MIN_CHANGED


def test_image_demos_are_stored_chunked_compressed_and_load_back(tmp_path):
    path = generate_demos("lift/visual", "target", 1.0, 1, seed=0, out=tmp_path / "demos.hdf5", progress=False)
    data = load_dataset(path)
    assert set(data.images) == set(IMAGE_CAMERAS)
    frames = data.images["agentview"][0]
    assert frames.dtype == np.uint8 and frames.shape == (len(data.obs[0]), 84, 84, 3)
    with h5py.File(path) as f:
        stored = f["data/demo_0/obs/agentview"]
        assert stored.compression == "gzip" and stored.chunks[0] > 1 and stored.chunks[1:] == (84, 84, 3)
    rewritten = load_dataset(write_dataset(tmp_path / "again.hdf5", data.select([0, 0])))
    assert rewritten.n_demos == 2
    for frames in rewritten.images["agentview"]:
        np.testing.assert_array_equal(frames, data.images["agentview"][0])


def test_lowdim_datasets_have_no_images(tmp_path):
    data = Dataset([np.zeros((3, 2), np.float32)], [np.zeros((3, 7), np.float32)], (("x", 2),))
    loaded = load_dataset(write_dataset(tmp_path / "d.hdf5", data))
    assert loaded.images == {}
    with h5py.File(tmp_path / "d.hdf5") as f:
        assert "image_keys" not in f["data"].attrs


@pytest.fixture
def one_thread():
    """Training steps on shared cores: 2 busy-waiting threads can be many times slower than 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_image_encoder_shapes_inputs_and_training(backbone, one_thread):
    torch.manual_seed(0)
    encoder = ImageEncoder(n_frames=2, frame_dim=16, backbone=backbone)
    corners = np.random.default_rng(0).integers(10, 60, (8, 2))
    frames = np.full((8, 2, 84, 84, 3), 40, np.uint8)  # a bright square on a dark image, in both frames
    for i, (row, col) in enumerate(corners):
        frames[i, :, row:row + 14, col:col + 14] = 230
    images = images_to_tensor(frames)
    assert images.shape == (8, 2, 3, 84, 84) and images.dtype == torch.uint8
    encoder.eval()
    with torch.no_grad():
        features = encoder(images)
        assert features.shape == (8, encoder.feat_dim) == (8, 32) and torch.isfinite(features).all()
        torch.testing.assert_close(encoder(images.float() / 255.0), features)  # uint8 and [0, 1] floats agree
        torch.testing.assert_close(encoder(images), features)  # evaluation: centre crop, deterministic
    with pytest.raises(ValueError):
        encoder(images[:, :1])
    encoder.train()
    head = torch.nn.Linear(encoder.feat_dim, 2)
    targets = torch.tensor((corners + 7) / 42.0 - 1.0, dtype=torch.float32)  # the square's centre
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.mse_loss(head(encoder(images)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses


def test_an_image_env_renders_offscreen_whatever_module_imports_mujoco_first():
    """In a fresh process with no display and no `MUJOCO_GL`, importing the package picks EGL before any of its
    modules imports mujoco (whose first import fixes the GL backend), so an image pair's frames render."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    script = ("import tasks.env, mujoco; from tasks import get_pair; from tasks.visual import ImageEnv; "
              "o = ImageEnv(get_pair('lift/visual'), 'target', 1.0).reset(seed=0)[0]; "
              "print(mujoco.GLContext.__module__, min(v.std() for v in o.values()) > 0)")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["mujoco.egl", "True"]
