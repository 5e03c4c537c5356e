"""Image pairs at smaller frame sizes (`lift/visual-64px`, `lift/visual-48px`): their identity, their frames and
crop, and that a raw-pixel probe still tells their domains apart on real rendered episodes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines import PolicyConfig
from baselines.vision import BACKBONES, ImageEncoder, images_to_tensor
from benchmark.analysis.metrics import raw_discernibility
from benchmark.harness.config import RunConfig
from benchmark.harness.run import _raw_features, paired_replay, pair_hooks
from benchmark.study.design import gap_kind
from scripted import scripted_rollouts
from tasks import PAIRS, describe_pair, gym_ids, make_env
from tasks.base_tasks import pair_layout
from tasks.core import IMAGE_SIZE
from tasks.dataset import load_dataset, write_dataset
from tasks.visual import AGENTVIEW, SMALL_SIZES, sized_name

BASE = "lift/visual"
SIZES = SMALL_SIZES[BASE]
EPISODES, STEPS = 4, 8  # replay episodes per domain (the probe's groups) and steps each
MIN_PROBE = 0.9


def test_a_sized_pair_is_its_base_pair_at_another_frame_size():
    base = PAIRS[BASE]
    assert base.image_size == IMAGE_SIZE and f"observations image {IMAGE_SIZE}x{IMAGE_SIZE}" in describe_pair(BASE)
    base_ids = {RunConfig(BASE, method=m, profile="smoke").run_id() for m in ("cotrain", "source_only")}
    for size in SIZES:
        name = sized_name(BASE, size)
        pair = PAIRS[name]
        assert pair.image_size == size and pair.name == f"{BASE}-{size}px"
        assert (pair.base_task, pair.target, pair.version, pair.n_target, pair.n_source, pair.obs, pair.tags) == (
            base.base_task, base.target, base.version, base.n_target, base.n_source, base.obs, base.tags)
        assert f"observations image {size}x{size}" in describe_pair(name)
        assert f"({size}x{size}, agent view and wrist)" in pair.description
        assert gap_kind(name) == gap_kind(BASE) == "visual only"
        assert gym_ids.env_id(name, "target") in gym_ids.IDS
        ids = {RunConfig(name, method=m, profile="smoke").run_id() for m in ("cotrain", "source_only")}
        assert len(ids) == 2 and not ids & base_ids  # the size is in the run's identity


@pytest.mark.parametrize("size", SIZES)
def test_a_sized_pair_renders_at_its_size_and_its_policy_sees_whole_frames(size):
    name = sized_name(BASE, size)
    env = make_env(name, "target", obs="image")
    try:
        obs, _ = env.reset(seed=0)
        assert obs[AGENTVIEW].shape == env.observation_space[AGENTVIEW].shape == (size, size, 3)
    finally:
        env.close()
    policy = pair_hooks(name).policy_config(RunConfig(name, profile="smoke"), 32, 1)
    assert policy.crop is None  # the harness's image policies see whole frames, at every size
    frames = images_to_tensor(np.repeat(obs[AGENTVIEW][None, None], 2, 1).repeat(3, 0))  # (3, 2, 3, size, size)
    for backbone in BACKBONES:
        encoder = ImageEncoder(n_frames=2, frame_dim=8, backbone=backbone, crop=policy.crop)
        for training in (True, False):
            features = encoder.train(training)(frames)
            assert features.shape == (3, 16) and torch.isfinite(features).all()


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> dict[int, tuple]:
    """Per size: paired replay windows (src, tgt, episode) of scripted episodes of the sized pair, written and read
    back as the harness reads its replay demos."""
    root = tmp_path_factory.mktemp("sized_replay")
    cfg = PolicyConfig(obs_dim=1, action_dim=7)
    out = {}
    for size in SIZES:
        name = sized_name(BASE, size)
        paths = [write_dataset(root / f"{size}_{domain}.hdf5", scripted_rollouts(name, domain, EPISODES, STEPS, 0,
                                                                                obs="image"))
                 for domain in ("source", "target")]
        o_src, o_tgt, _, _, episode = paired_replay(*paths, pair_layout(PAIRS[name]), cfg.n_obs_steps, cfg.horizon,
                                                    (AGENTVIEW,))
        out[size] = o_src, o_tgt, episode
    return out


@pytest.mark.parametrize("size", SIZES)
def test_raw_pixel_probe_tells_the_domains_apart_at_a_small_size(size, replay):
    """The study's (MLP) probe on what the harness's raw probe reads; the frames alone carry the gap: the
    low-dimensional histories are the same in both domains."""
    o_src, o_tgt, episode = replay[size]
    assert o_src[AGENTVIEW].shape[-3:] == (size, size, 3) and len(np.unique(episode)) == EPISODES
    np.testing.assert_array_equal(o_src["lowdim"], o_tgt["lowdim"])
    raw = raw_discernibility(_raw_features(o_src), _raw_features(o_tgt), seed=0, groups=episode)
    assert raw["mlp"] >= MIN_PROBE, raw


@pytest.mark.slow
def test_smoke_run_renders_demos_evaluation_and_replay_at_the_pair_size(tmp_path):
    """A whole run (demos, training, evaluation, metrics) of the smallest sized pair: every stage at its size."""
    from baselines import load_checkpoint
    from benchmark.harness.run import execute_run

    size = min(SIZES)
    cfg = RunConfig(pair=sized_name(BASE, size), method="cotrain", profile="smoke", episodes=2, n_target=1,
                    n_source=2, hparams=(("batch_size", 16),))
    record = execute_run(cfg, tmp_path, progress=False)
    assert record["eval"]["target"]["n"] == 2 and math.isfinite(record["metrics"]["raw_discern_mlp"])
    for path in (tmp_path / "_demos").glob("*.hdf5"):
        assert all(f.shape[1:] == (size, size, 3) for f in load_dataset(path).images[AGENTVIEW]), path
    assert load_checkpoint(tmp_path / record["run_id"] / "checkpoint").policy.config.crop is None
