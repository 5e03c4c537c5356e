"""Methods from outside the suite: `package.module:Class` names and the `cotrain_bench.methods` entry
points, found by every process of a sweep and named in the run hash by their source."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import METHODS, DiffusionPolicy, check_method, load_checkpoint, save_checkpoint
from baselines.check import tiny_policy_config
from benchmark.harness.config import RunConfig
from benchmark.harness.grid import grid_from_dict
from benchmark.harness.gridspec import GridError

PLUGIN = "cotrain_plugin_demo.methods:ZNormPenalty"
PLUGIN_SOURCE = '''
from baselines import Method
from baselines.hparams import loguniform


class ZNormPenalty(Method):
    """Co-training plus a penalty on the mean squared z."""

    name, description = "znorm", "co-training + a penalty on the mean squared z"
    hparam_space = {"znorm_weight": (0.01, loguniform(1e-3, 1.0, limits=(0.0, 10.0)))}
    loss_terms = {"znorm": ("policy.encoder",)}

    def objective(self, batch):
        diffusion, z = self.diffusion(batch)
        znorm = z.pow(2).mean()
        return diffusion + self.hparams["znorm_weight"] * znorm, {"diffusion": diffusion, "znorm": znorm}


def helper():
    return None
'''
ENTRY_POINTS = "[cotrain_bench.methods]\nznorm = cotrain_plugin_demo.methods:ZNormPenalty\n"
GRID = f"""
pairs: [lift/dynamics]
methods: ["{PLUGIN}"]
w: [0.3, 0.6]
seeds: [0]
profile: smoke
episodes: 1
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch) -> Path:
    """A package `cotrain_plugin_demo` outside the repository, importable here and in subprocesses."""
    root = tmp_path / "plugins"
    package = root / "cotrain_plugin_demo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "methods.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [k for k in sys.modules if k.startswith("cotrain_plugin_demo")]:
        del sys.modules[name]
    for name in [k for k in METHODS if k.startswith("cotrain_plugin_demo")]:
        del METHODS[name]


def _env(*paths: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])}


def _in_spawned_process(cfg: RunConfig, checkpoint: str, obs: np.ndarray, noise: np.ndarray) -> tuple[str, np.ndarray]:
    """What a sweep's run process and an evaluation worker do first: name the run, load the checkpoint."""
    return cfg.run_id(), load_checkpoint(checkpoint).sample(obs, "target", noise=noise)


def test_outside_method_is_found_in_a_spawned_process(plugin_dir, tmp_path):
    """A spawned process (as the sweep's runs and the evaluation workers are) finds the method by its
    `package.module:Class` name, gives the run the same id and reloads its checkpoint to the same actions."""
    cls = METHODS[PLUGIN]
    rng = np.random.default_rng(0)
    obs, noise = rng.normal(size=(2, 2, 5)).astype(np.float32), rng.normal(size=(2, 4, 3)).astype(np.float32)
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_policy_config(cls))
    policy.fit_normalizer(rng.normal(size=(16, 2, 5)), rng.normal(size=(16, 4, 3)))
    method = cls(policy, {"znorm_weight": 0.1})
    save_checkpoint(tmp_path / "ckpt", method)
    cfg = RunConfig(pair="lift/dynamics", method=PLUGIN, profile="smoke")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        run_id, actions = pool.submit(_in_spawned_process, cfg, str(tmp_path / "ckpt"), obs, noise).result()
    assert run_id == cfg.run_id()
    assert np.array_equal(actions, method.sample(obs, "target", noise=noise))


@pytest.mark.slow
def test_outside_method_runs_in_a_parallel_sweep(plugin_dir, tmp_path):
    """`cotrain sweep --parallel 2` with a method only a `package.module:Class` name reaches (on
    PYTHONPATH): the spawned run processes import it by that name, and it trains its own term (about
    a minute and a half on two shared cores, hence slow)."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    runs = tmp_path / "runs"
    subprocess.run([sys.executable, "-m", "benchmark.cli", "sweep", str(grid), "--runs-dir", str(runs),
                    "--parallel", "2", "--quiet"], check=True, env=_env(plugin_dir),
                   cwd=tmp_path, timeout=600, stdout=subprocess.DEVNULL)
    expected = {RunConfig(pair="lift/dynamics", method=PLUGIN, profile="smoke", episodes=1,
                          hparams=(("w", w),)).run_id() for w in (0.3, 0.6)}
    assert {p.parent.name for p in runs.glob("*/done")} == expected
    for run_id in expected:
        record = json.loads((runs / run_id / "record.json").read_text())
        assert record["config"]["method"] == PLUGIN
        assert record["config"]["method_identity"]["import"] == PLUGIN
        assert record["config"]["hparams"]["znorm_weight"] == 0.01
        log = [json.loads(line) for line in (runs / run_id / "train_log.jsonl").read_text().splitlines()]
        assert any("znorm" in row for row in log)


def test_editing_the_plugin_changes_the_run_id(plugin_dir):
    cfg = RunConfig(pair="lift/dynamics", method=PLUGIN, profile="smoke")
    before = cfg.run_id()
    assert cfg.run_id() == before
    source = plugin_dir / "cotrain_plugin_demo" / "methods.py"
    source.write_text(source.read_text().replace("z.pow(2).mean()", "z.pow(2).mean() * 2"))
    assert cfg.run_id() != before
    in_tree = RunConfig(pair="lift/dynamics", method="cotrain", profile="smoke")
    assert "method_identity" not in in_tree.hashed_dict()  # in-tree run ids are as they were


def test_outside_method_passes_check_method_and_a_bad_name_is_explained(plugin_dir):
    check_method(METHODS[PLUGIN])
    bad = {
        "no_such_package.methods:Thing": "module 'no_such_package' not found",
        "cotrain_plugin_demo.methods:Missing": "has no attribute 'Missing'",
        "cotrain_plugin_demo.methods:helper": "not a subclass of baselines.methods.Method",
        "cotrain_plugin_demo.methods:": "expected package.module:Class",
    }
    for name, message in bad.items():
        with pytest.raises(KeyError, match=message):
            RunConfig(pair="lift/dynamics", method=name)
    with pytest.raises(GridError, match="grid: method 'no_such_package.methods:Thing': module 'no_such_package'"):
        grid_from_dict({"pairs": ["lift/dynamics"], "methods": ["no_such_package.methods:Thing"]})


def test_entry_point_method_is_found_by_name(plugin_dir):
    """An installed package's `cotrain_bench.methods` entry point: listed, found by its name, and its
    checkpoints name it so (here a dist-info directory next to the package, as an install writes)."""
    dist = plugin_dir / "cotrain_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cotrain-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    script = ("from baselines import METHODS, default_hparams\n"
              "cls = METHODS['znorm']\n"
              "print(cls.__name__, 'znorm' in METHODS.names(), METHODS.key(cls), default_hparams('znorm')['znorm_weight'])\n")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                         env=_env(plugin_dir), cwd=plugin_dir, timeout=120).stdout.split()
    assert out == ["ZNormPenalty", "True", "znorm", "0.01"]
