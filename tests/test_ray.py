"""Sweeps interrupted and resumed locally, then the same runs on a real two-node Ray cluster with no shared folder."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.harness.config import RunConfig
from benchmark.harness.ray_exec import SCRATCH, task_options
from benchmark.harness.grid import NoGapEval, load_grid
from benchmark.harness.sweep import run_sweep

GRID = """
pairs: [lift/dynamics]
methods: [source_only, target_only]
seeds: [0, 1]
profile: smoke
episodes: 2
nogap: {source_only: evaluate}
"""
RAY_GRID = GRID.replace("[source_only, target_only]", "[source_only]")  # 2 trained runs and their 2 evaluations
# what differs between two executions of a run: wall-clock times, and the executing process's fingerprint
CLOCK = {"timing", "wall_s", "wall_time_s", "samples_per_s", "fingerprint"}


def _wait_for_done(runs_dir: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    start = time.time()
    while not list(runs_dir.glob("*/done")):
        assert proc.poll() is None, "the sweep exited before finishing a run"
        assert time.time() - start < timeout, "no run finished in time"
        time.sleep(0.5)


def _files(run_dir: Path) -> list[str]:
    """A run folder's files (leaving out temporary files a killed process left)."""
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def _without_clock(obj):
    """A record without its wall-clock times and fingerprint."""
    if isinstance(obj, dict):
        return {k: _without_clock(v) for k, v in obj.items() if k not in CLOCK}
    return obj


def test_task_options_ask_for_the_runs_threads_workers_and_gpu():
    cfg = RunConfig(pair="lift/dynamics", method="source_only", profile="smoke")
    assert task_options(cfg) == {"num_cpus": 1, "num_gpus": 0}
    assert task_options(replace(cfg, threads=3, workers=2)) == {"num_cpus": 3, "num_gpus": 0}
    assert task_options(replace(cfg, workers=4)) == {"num_cpus": 4, "num_gpus": 0}
    assert task_options(replace(cfg, device="cuda")) == {"num_cpus": 1, "num_gpus": 1}
    assert task_options(NoGapEval(replace(cfg, device="cuda:0", threads=2))) == {"num_cpus": 2, "num_gpus": 1}
    with pytest.raises(ValueError, match="one GPU"):
        task_options(replace(cfg, device="cuda:1"))


def test_sweep_interrupted_resumed_and_same_on_a_two_node_ray_cluster(tmp_path, capsys):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(GRID)
    local = tmp_path / "local"
    sweep = [sys.executable, "-m", "benchmark.cli", "sweep", str(grid_file), "--runs-dir", str(local), "--quiet"]
    # numpy's BLAS would start on 2 threads here and on 1 in a Ray task of one CPU (OMP_NUM_THREADS): a run limits
    # it to its own --threads, so the metrics' sums match
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(sweep, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait_for_done(local, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.parent.name: (p.parent / "record.json").stat().st_mtime_ns for p in local.glob("*/done")}
    assert 1 <= len(finished) < 6
    resumed = subprocess.run(sweep, env=env, capture_output=True, text=True, check=True).stdout
    assert f"sweep: 6 runs, {len(finished)} done, {6 - len(finished)} to run" in resumed
    assert len(list(local.glob("*/done"))) == 6
    for run_id, mtime in finished.items():  # finished runs were not relaunched
        assert (local / run_id / "record.json").stat().st_mtime_ns == mtime
    controls = [json.loads(p.read_text()) for p in local.glob("*/record.json")]
    controls = [r for r in controls if "checkpoint_of" in r["config"]]
    assert controls and all(set(r["eval"]) == {"target", "wall_s"} for r in controls)  # the source is the trained run's

    import ray
    from ray.cluster_utils import Cluster

    # two nodes, one CPU each, each with its own temporary folder (its scratch, its demo cache seeded as by an
    # earlier sweep: demos are deterministic, and making them again would only add time); the second declares a GPU
    scratch = [tmp_path / f"node{i}" for i in range(2)]
    cluster = Cluster()
    for i, tmp in enumerate(scratch):
        shutil.copytree(local / "_demos", tmp / SCRATCH / "_demos")
        cluster.add_node(num_cpus=1, num_gpus=i, env_vars={"TMPDIR": str(tmp)}, include_dashboard=False)
    ray_dir = tmp_path / "ray"
    capsys.readouterr()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        ray_grid = tmp_path / "ray.yaml"
        ray_grid.write_text(RAY_GRID)
        results = run_sweep(load_grid(str(ray_grid)), ray_dir, executor="ray", progress=False)
        node_ids = {n["NodeID"] for n in ray.nodes()}

        def assigned(opts: dict) -> tuple[dict, str | None]:
            probe = ray.remote(lambda: (ray.get_runtime_context().get_assigned_resources(),
                                        os.environ.get("CUDA_VISIBLE_DEVICES")))
            return ray.get(probe.options(**opts).remote())

        cfg = RunConfig(pair="lift/dynamics", method="source_only", profile="smoke")
        gpu_task, cpu_task = assigned(task_options(replace(cfg, device="cuda"))), assigned(task_options(cfg))
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert len(results) == 4 and not any(results.values())
    # each phase (training, then the no-gap evaluations of the trained checkpoints) ran one task on each node
    placements = re.findall(r"ray: runs per node: (\w+) (\d+), (\w+) (\d+)\n", capsys.readouterr().out)
    assert [{a: int(n), b: int(m)} for a, n, b, m in placements] == [dict.fromkeys(node_ids, 1)] * 2
    # the runs worked in the nodes' scratch, reading their demo caches and leaving no task folder there; the
    # driver's runs folder holds only the run folders it wrote
    for tmp in scratch:
        assert [p.name for p in (tmp / SCRATCH).iterdir()] == ["_demos"]
        assert _files(tmp / SCRATCH / "_demos") == _files(local / "_demos")
    assert sorted(p.name for p in ray_dir.iterdir()) == sorted(results)
    for run_id in results:
        assert _files(ray_dir / run_id) == _files(local / run_id)
        for name in {"config.json", "metrics.json"} & set(_files(local / run_id)):
            assert (ray_dir / run_id / name).read_bytes() == (local / run_id / name).read_bytes()
        record, local_record = (json.loads((d / run_id / "record.json").read_text()) for d in (ray_dir, local))
        assert _without_clock(record) == _without_clock(local_record)
    assert gpu_task == ({"CPU": 1.0, "GPU": 1.0}, "0")
    assert cpu_task[0] == {"CPU": 1.0}
