"""Shared fixtures."""
from __future__ import annotations

import pytest
import torch

from common.dataset import Dataset
from scripted import scripted_rollouts
from tasks.dataset import load_dataset, write_dataset

LIFT_PAIR = "lift/dynamics"


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny networks on shared cores: one torch thread is fastest and immune to spin-waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lift_datasets(tmp_path_factory) -> tuple[Dataset, Dataset]:
    """(source, target) datasets of 3 scripted 20-step Lift episodes each, written and read back as HDF5."""
    root = tmp_path_factory.mktemp("lift_datasets")
    return tuple(load_dataset(write_dataset(root / f"{domain}.hdf5", scripted_rollouts(LIFT_PAIR, domain, 3, 20, seed)))
                 for seed, domain in enumerate(("source", "target")))


SMOKE_BUNDLE_METHOD = "cfg_adda"  # guided and domain-conditioned: the export's fullest sampling graph


@pytest.fixture(scope="session")
def smoke_bundle(lift_datasets, tmp_path_factory) -> dict:
    """A tiny `cfg_adda` policy trained for 40 steps on `lift_datasets` in a run directory laid out as
    `benchmark.harness.run` lays one out (config.json, checkpoint/, the target set as the run's replay demos in
    `_demos`), and its exported bundle. Keys: runs_dir, run_dir, bundle, method, target (Dataset)."""
    import torch

    from baselines import PolicyConfig
    from baselines.build import build_training
    from benchmark.harness.config import RunConfig
    from benchmark.deploy.export import export_bundle
    from benchmark.harness.run import write_json
    from benchmark.harness.train import TrainConfig, train
    from tasks.seeds import episode_seeds

    source, target = lift_datasets
    cfg = RunConfig(pair=LIFT_PAIR, method=SMOKE_BUNDLE_METHOD, profile="smoke")
    config = cfg.to_json()
    runs_dir = tmp_path_factory.mktemp("bundle_runs")
    run_dir = runs_dir / config["run_id"]
    pcfg = PolicyConfig(obs_dim=source.obs_dim, action_dim=7, width=32, depth=1, z_dim=16, encoder_hidden=64)
    built = build_training(pcfg, SMOKE_BUNDLE_METHOD, {"w": 0.5, "batch_size": 32}, source, target, seed=0)
    threads = torch.get_num_threads()
    try:  # one thread: small batches gain nothing from two, and a busy machine makes two much slower
        train(built.method, built.sampler, TrainConfig(steps=40, batch_size=32, log_every=20, ckpt_every=40,
                                                       val_every=40, num_threads=1), run_dir, progress=False)
    finally:
        torch.set_num_threads(threads)
    write_json(run_dir / "config.json", config)
    # the target set stands in for the run's target replay demos (found by pair, domain, magnitude and seed stream)
    replay = target.select(list(range(target.n_demos)))
    replay.attrs.update(magnitude=config["magnitude"])
    replay.episode_seeds = episode_seeds("replay", config["seed"], target.n_demos)
    write_dataset(runs_dir / "_demos" / "replay_target.hdf5", replay)
    bundle = export_bundle(run_dir, runs_dir / "bundle")
    return {"runs_dir": runs_dir, "run_dir": run_dir, "bundle": bundle, "method": SMOKE_BUNDLE_METHOD,
            "target": target}
