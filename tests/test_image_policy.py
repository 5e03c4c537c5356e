"""Image policies end to end: windows with frames, every method on real image data, the harness on `lift/visual`."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines import (METHODS, DiffusionPolicy, MixedSampler, PolicyConfig, load_checkpoint, make_windows,
                       save_checkpoint)
from baselines.build import build_training
from scripted import scripted_rollouts
from common.dataset import Dataset
from tasks.core import IMAGE_CAMERAS
from tasks.dataset import load_dataset, write_dataset

PAIR = "lift/visual"
EPISODES, STEPS, BATCH = 2, 10, 8



@pytest.fixture(scope="module")
def image_datasets(tmp_path_factory) -> tuple[Dataset, Dataset]:
    """(source, target) image datasets of PAIR, written and read back as HDF5."""
    root = tmp_path_factory.mktemp("image_datasets")
    return tuple(load_dataset(write_dataset(root / f"{domain}.hdf5", scripted_rollouts(PAIR, domain, EPISODES, STEPS, seed, obs="image")))
                 for seed, domain in enumerate(("source", "target")))


def image_config(obs_dim: int, **kw) -> PolicyConfig:
    base = dict(obs_dim=obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=32, depth=1, z_dim=8,
                encoder_hidden=32, image_keys=("agentview",), image_feat_dim=8)
    return PolicyConfig(**{**base, **kw})


def test_windows_carry_frames_by_index(image_datasets):
    source, _ = image_datasets
    w = make_windows(source, 2, 8)
    assert w.image_keys == IMAGE_CAMERAS and len(w) == EPISODES * STEPS
    assert w.frames["agentview"].shape == (EPISODES * STEPS, 84, 84, 3)  # one copy of the frames, not per window
    obs = w.observations(np.array([0, STEPS + 3]))
    assert set(obs) == {"lowdim", *IMAGE_CAMERAS} and obs["agentview"].dtype == np.uint8
    assert obs["lowdim"].shape == (2, 2, source.obs_dim) and obs["agentview"].shape == (2, 2, 84, 84, 3)
    frames = source.images["agentview"]
    np.testing.assert_array_equal(obs["agentview"][0], frames[0][[0, 0]])  # the first frame repeated at t = 0
    np.testing.assert_array_equal(obs["agentview"][1], frames[1][[2, 3]])
    np.testing.assert_array_equal(obs["lowdim"], w.obs[[0, STEPS + 3]])
    assert make_windows(source, 2, 8, image_keys=()).frames == {}
    with pytest.raises(ValueError, match="no images"):
        make_windows(source, 2, 8, image_keys=("overhead",))
    sampler = MixedSampler(w, make_windows(image_datasets[1], 2, 8), 6, 0.5, torch.Generator().manual_seed(0))
    src, tgt = sampler.next()
    assert src["obs"]["agentview"].shape == (3, 2, 84, 84, 3) and src["obs"]["agentview"].dtype == torch.uint8
    assert tgt["obs"]["lowdim"].shape == (3, 2, source.obs_dim) and torch.equal(tgt["domain"], torch.ones(3).long())


def test_config_round_trip_and_lowdim_dict_unchanged():
    cfg = image_config(18)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["image_keys"] == ["agentview"]
    assert cfg.z_width == 8 + 2 * 8
    lowdim = PolicyConfig(obs_dim=18, action_dim=7)
    assert "image_keys" not in lowdim.to_dict() and PolicyConfig.from_dict(lowdim.to_dict()) == lowdim
    for bad in (dict(image_keys=("lowdim",)), dict(image_backbone="vit"), dict(crop=2)):
        with pytest.raises(ValueError):
            image_config(18, **bad)


def _build(name: str, source: Dataset, target: Dataset):
    cfg = image_config(source.obs_dim)
    src, tgt = (make_windows(d, cfg.n_obs_steps, cfg.horizon, cfg.image_keys) for d in (source, target))
    hp = {"lr": 1e-3, "batch_size": BATCH, **({"w": 0.5} if METHODS[name].mixes else {}),
          **({"grl_warmup": 0} if "adda" in name else {})}
    built = build_training(cfg, name, hp, src, tgt, seed=0)
    return built.method, built.sampler, tgt


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_and_samples_on_images(name, image_datasets, tmp_path):
    method, sampler, tgt = _build(name, *image_datasets)
    torch.manual_seed(1)
    logs = [method.update(*sampler.next()) for _ in range(3)]
    assert all(math.isfinite(v) for log in logs for v in log.values()), logs
    cfg = method.policy.config
    obs = tgt.observations(np.arange(3))
    actions = method.sample(obs, "target", noise=np.zeros((3, cfg.horizon, cfg.action_dim), np.float32))
    assert actions.shape == (3, cfg.horizon, cfg.action_dim) and np.isfinite(actions).all()
    assert method.encode(obs).shape == (3, cfg.z_width)
    assert method.shallow_features(obs).shape == (3, cfg.image_dim)
    extra = cfg.domain_dim if method.uses_domain_embedding else 0
    assert method.conditioning(obs, "source").shape == (3, cfg.z_width + extra)
    with pytest.raises(ValueError, match="observation dicts"):
        method.encode(obs["lowdim"])
    if name == "cfg_adda":  # a checkpoint of an image policy loads back to the same outputs
        loaded = load_checkpoint(save_checkpoint(tmp_path / "ckpt", method), expected=cfg, method=name)
        np.testing.assert_array_equal(loaded.encode(obs), method.encode(obs))


def test_lowdim_shallow_features_are_the_first_layer(image_datasets):
    source, _ = image_datasets
    cfg = PolicyConfig(obs_dim=source.obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=32, depth=1,
                       z_dim=8, encoder_hidden=32)
    policy = DiffusionPolicy(cfg)
    w = make_windows(source, 2, 8, image_keys=())
    policy.fit_normalizer(w.obs, w.action)
    obs = torch.from_numpy(w.obs[:4])
    with torch.no_grad():
        shallow = policy.shallow_features(obs)
        assert shallow.shape == (4, 32)
        torch.testing.assert_close(policy.encoder[3:](shallow), policy.encode(obs))
        # a dict observation reads its low-dimensional entry
        torch.testing.assert_close(policy.encode({"lowdim": obs}), policy.encode(obs))


def smoke_config():
    from benchmark.harness.config import RunConfig

    return RunConfig(pair=PAIR, method="cfg_adda", profile="smoke", episodes=2, n_target=1, n_source=2,
                     hparams=(("batch_size", 16),))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple:
    """(runs_dir, record) of a smoke `cfg_adda` run on PAIR (guided and domain-conditioned: the fullest graph)."""
    from benchmark.harness.run import execute_run

    cfg = smoke_config()
    assert cfg.backend == "robosuite"  # the fast backend does not render: image pairs run on robosuite
    runs_dir = tmp_path_factory.mktemp("image_runs")
    return runs_dir, execute_run(cfg, runs_dir, progress=False)


def test_smoke_run_on_a_visual_pair(smoke_run):
    runs_dir, record = smoke_run
    assert record["config"]["backend"] == "robosuite" and record["eval"]["target"]["n"] == 2
    assert set(record["eval"]) == {"target", "wall_s"}
    for key in ("align_wasserstein", "align_gw", "align_gw_shallow", "discern_mlp_cond", "raw_discern_mlp"):
        assert math.isfinite(record["metrics"][key]), key
    method = load_checkpoint(runs_dir / record["run_id"] / "checkpoint")
    assert method.policy.config.image_keys == IMAGE_CAMERAS and method.policy.config.image_backbone == "conv"


def test_frozen_frames_give_the_policy_one_start_states_frames_throughout(smoke_run):
    """With `frozen_frames`, every frame the policy is given is the one of FROZEN_FRAME_SEED's start state in the
    evaluated domain, while its proprioception moves; without, its frames follow the scene."""
    import benchmark.harness.evaluate as E
    from tasks import make_env
    from tasks.seeds import FROZEN_FRAME_SEED, episode_seeds

    runs_dir, record = smoke_run
    env = make_env(PAIR, "target", obs="image")
    reference = env.reset(seed=FROZEN_FRAME_SEED)[0]
    env.close()
    seen = []
    for frozen in (True, False):
        spec = E.EvalSpec(str(runs_dir / record["run_id"] / "checkpoint"), PAIR, "target", 1.0, frozen_frames=frozen)
        method, _ = E._load(spec)
        sample = method.sample
        method.sample = lambda obs, *a, **kw: (seen.append((frozen, obs)), sample(obs, *a, **kw))[1]  # a spy
        try:
            episodes = E.evaluate(spec, episode_seeds("validation", 0, 2), progress=False)
        finally:
            method.sample = sample
            E._close_envs()
            E._WORKER.clear()
        assert len(episodes) == 2
    frozen_obs = [obs for frozen, obs in seen if frozen]
    assert len(frozen_obs) >= 2 and any(not frozen for frozen, _ in seen)
    for obs in frozen_obs:
        for key in IMAGE_CAMERAS:
            assert (obs[key][:2] == reference[key]).all(), key  # rows 2.. pad the batch
    assert not np.array_equal(frozen_obs[0]["lowdim"][0, -1], frozen_obs[-1]["lowdim"][0, -1])
    live = [obs for frozen, obs in seen if not frozen]
    assert not all((obs["agentview"][:2] == reference["agentview"]).all() for obs in live)
    with pytest.raises(ValueError, match="no camera frames"):
        E.EvalSpec("unused", "lift/sensing", "source", 1.0, frozen_frames=True)


def test_calibration_caches_the_source_evaluation_and_the_frozen_one_apart(smoke_run):
    from benchmark.harness.calibrate import FROZEN_EVAL, SOURCE_EVAL, _source_eval

    runs_dir, record = smoke_run
    cfg = smoke_config().resolved()
    run_dir = runs_dir / record["run_id"]
    frozen = _source_eval(cfg, run_dir, False, frozen_frames=True)
    assert (run_dir / FROZEN_EVAL).exists() and not (run_dir / SOURCE_EVAL).exists()
    assert frozen["n"] == cfg.episodes and _source_eval(cfg, run_dir, False)["n"] == cfg.episodes
    assert (run_dir / SOURCE_EVAL).exists()


def test_image_policy_exports_to_a_bundle(smoke_run):
    from benchmark.deploy.export import export_bundle
    from cotrain_robot.bundle import load_bundle

    runs_dir, record = smoke_run
    bundle = export_bundle(runs_dir / record["run_id"], runs_dir / "bundle")  # checks both formats against PyTorch
    method = load_checkpoint(runs_dir / record["run_id"] / "checkpoint")
    pcfg = method.policy.config
    demos = load_dataset(sorted((runs_dir / "_demos").glob("*.hdf5"))[0])
    obs = make_windows(demos, pcfg.n_obs_steps, 1).observations(np.arange(2))
    noise = np.random.default_rng(0).standard_normal((2, pcfg.horizon, pcfg.action_dim)).astype(np.float32)
    reference = method.sample(obs, "target", noise=noise)
    for backend in ("onnx", "torch"):
        policy = load_bundle(bundle, backend, num_threads=1)
        assert policy.image_keys == IMAGE_CAMERAS
        assert all(policy.spec["inputs"][key]["dtype"] == "uint8" for key in IMAGE_CAMERAS)
        np.testing.assert_allclose(policy.act(obs, noise), reference, atol=1e-4)
        np.testing.assert_allclose(policy.act_chunk({k: v[1] for k, v in obs.items()}, noise[1]), reference[1],
                                   atol=1e-4)
        with pytest.raises(ValueError, match="image policy"):
            policy.act(obs["lowdim"], noise)
