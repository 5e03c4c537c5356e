"""The robot side as its own distribution (`robot/`, `cotrain_robot`): it imports nothing of the suite, torch
or a simulator, and a bare virtual environment with only it installed runs an exported bundle against the
stand-in arm served from the suite."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmark.deploy.standin import SimRobot
from cotrain_robot.server import ArmServer
from cotrain_robot.session import arm_eval
from tasks import obs_layout
from tasks.dataset import load_dataset
from tasks.seeds import episode_seeds

REPO = Path(__file__).resolve().parents[1]
SUITE_MODULES = ("torch", "mujoco", "robosuite", "tasks", "baselines", "benchmark")
PAIR, EPISODES, STEPS = "lift/dynamics", 2, 30


def test_robot_package_and_its_command_import_nothing_of_the_suite():
    script = textwrap.dedent(f"""
        import importlib, json, pkgutil, sys
        from importlib.metadata import entry_points
        import cotrain_robot
        modules = [m.name for m in pkgutil.iter_modules(cotrain_robot.__path__)]
        for name in modules:
            importlib.import_module("cotrain_robot." + name)
        main = entry_points(group="console_scripts")["cotrain-robot"].load()
        leaked = sorted({{m.split(".")[0] for m in sys.modules}} & set({SUITE_MODULES!r}))
        print(json.dumps({{"modules": modules, "entry": main.__module__, "leaked": leaked}}))
    """)
    # -I: isolated (no cwd, PYTHONPATH or user site): cotrain_robot comes from its installed distribution
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    assert {"bundle", "client", "server", "session", "cli"} <= set(found["modules"])
    assert found["entry"] == "cotrain_robot.cli" and found["leaked"] == [], found


@pytest.mark.slow
def test_bare_environment_runs_a_bundle_against_the_stand_in(smoke_bundle, tmp_path):
    """`pip install ./robot[policy]` into a bare venv, then its `cotrain-robot eval` drives the stand-in arm that
    an `ArmServer` serves from this process; the episodes are those of the same session run here."""
    venv, source = tmp_path / "venv", tmp_path / "robot"
    shutil.copytree(REPO / "robot", source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "-c", REPO / "constraints.txt", f"{source}[policy]"],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    bare = subprocess.run([venv / "bin" / "python", "-c", "import importlib.util as u; "
                           f"print([m for m in {SUITE_MODULES!r} if u.find_spec(m)])"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert bare.stdout.strip() == "[]", bare.stdout + bare.stderr

    robot = SimRobot(PAIR, "target")
    server = ArmServer(robot, "tcp://127.0.0.1:0", link_timeout_s=2.0).start()
    try:
        proc = subprocess.run([venv / "bin" / "cotrain-robot", "eval", str(smoke_bundle["bundle"]), "--robot",
                               server.bound_address, "--episodes", str(EPISODES), "--max-steps", str(STEPS),
                               "--out", str(tmp_path / "bare"), "--quiet"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "successes" in proc.stdout and server.holds == 1  # the session's close held the arm

    summary = json.loads((tmp_path / "bare" / "summary.json").read_text())
    seeds = episode_seeds("test", 0, EPISODES)  # the bundle's rule gives the suite's test start states
    assert summary["n"] == EPISODES and [e["seed"] for e in summary["episodes"]] == seeds
    assert summary["robot_info"]["kind"] == "sim" and summary["robot_info"]["remote"] == server.bound_address
    assert summary["episodes_in_hdf5"] == EPISODES
    data = load_dataset(tmp_path / "bare" / "episodes.hdf5")
    assert data.layout == obs_layout("lift") and data.episode_seeds == seeds and data.attrs["source"] == "arm-eval"

    robot.connect()
    try:  # the same session in this process, on the stand-in directly
        local = arm_eval(smoke_bundle["bundle"], robot, EPISODES, tmp_path / "local", max_steps=STEPS,
                         ask_operator=None)
    finally:
        robot.close()
    key = lambda s: [(e["seed"], e["success"], e["length"], e["stop_reason"]) for e in s["episodes"]]  # noqa: E731
    assert key(summary) == key(local)
    here = load_dataset(tmp_path / "local" / "episodes.hdf5")
    for x, y in zip(data.obs + data.actions + data.rewards, here.obs + here.actions + here.rewards):
        np.testing.assert_array_equal(x, y)
