"""The arm adapter: runner, safety stops, temporal ensembling, the socket path against the simulated
stand-in (same episodes as in process), a dropped link (arm held, episode saved as failed)."""
from __future__ import annotations

import json
import logging
import math
import select
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from benchmark.deploy.standin import SimRobot, make_robot
from cotrain_robot.bundle import BundlePolicy, load_bundle
from cotrain_robot.client import RemoteRobot
from cotrain_robot.geometry import rot6d, to_policy_frame
from cotrain_robot.protocol import pack, unpack
from cotrain_robot.robot import Robot
from robots import OnAction
from cotrain_robot.runner import PolicyRunner
from cotrain_robot.safety import SafetyLimits
from cotrain_robot.server import ArmServer
from cotrain_robot.session import arm_eval
from tasks import obs_layout
from tasks.dataset import load_dataset

PAIR = "lift/dynamics"
LAYOUT = obs_layout("lift")
OBS_DIM = sum(n for _, n in LAYOUT)
EPISODE_STEPS = 40


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sim_robot():
    robot = SimRobot(PAIR, "target")
    robot.connect()
    yield robot
    robot.close()


# -- stand-ins for the unit tests
class StubPolicy:
    """A BundlePolicy look-alike whose chunk k is `chunk_fn(k)` (H, 7)."""

    flatten = BundlePolicy.flatten

    def __init__(self, chunk_fn, horizon: int = 4, n_action_steps: int = 2, delay_s: float = 0.0):
        self.chunk_fn, self.delay_s, self.calls = chunk_fn, delay_s, 0
        self.layout, self.obs_dim, self.n_obs_steps, self.action_dim = LAYOUT, OBS_DIM, 2, 7
        self.horizon, self.n_action_steps, self.control_hz = horizon, n_action_steps, 20.0
        self.spec = {"action": {"low": [-1.0] * 7, "high": [1.0] * 7, "position_scale_m": 0.05,
                                "layout": [{"index": 6, "name": "gripper"}]}}

    def act_chunk(self, history, noise):
        assert history.shape == (2, OBS_DIM) and noise.shape == (self.horizon, 7)
        time.sleep(self.delay_s)
        chunk = np.asarray(self.chunk_fn(self.calls), np.float32)
        self.calls += 1
        return chunk


class FakeArm(Robot):
    """A driver-less arm: the end effector moves by the commanded delta; Ctrl-C at send number `interrupt_at`."""

    def __init__(self, interrupt_at: int | None = None):
        self.sent: list[np.ndarray] = []
        self.eef = np.array([0.0, 0.0, 1.0])
        self.interrupt_at = interrupt_at

    def reset(self, seed=None):
        self.eef = np.array([0.0, 0.0, 1.0])

    def robot_state(self):
        return {"eef_pos": self.eef.copy(), "eef_quat": np.array([1.0, 0.0, 0.0, 0.0]), "gripper": np.array([1.0])}

    def object_poses(self):
        return {"cube_pos": np.array([0.1, 0.0, 0.82]), "cube_quat": np.array([0.0, 0.0, 0.0, 1.0])}

    def send_action(self, action):
        self.sent.append(np.asarray(action, np.float32).copy())
        if self.interrupt_at == len(self.sent):
            raise KeyboardInterrupt
        self.eef = self.eef + 0.05 * np.asarray(action[:3], float)


def _chunks(value, gripper=1.0, horizon=4):
    chunk = np.zeros((horizon, 7), np.float32)
    chunk[:, :3] = value
    chunk[:, 6] = gripper
    return chunk


def test_robot_base_class_gives_the_layout_with_relative_positions_and_rot6d():
    arm = FakeArm()
    obs = arm.get_observation()
    assert set(obs) == set(dict(LAYOUT))
    np.testing.assert_allclose(obs["cube_rel_pos"], [0.1, 0.0, -0.18])
    np.testing.assert_allclose(obs["eef_rot6d"], rot6d(arm.robot_state()["eef_quat"]))
    np.testing.assert_allclose(obs["cube_rot6d"], rot6d(arm.object_poses()["cube_quat"]))


def test_to_policy_frame_rotates_and_offsets():
    quarter_z = np.array([0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
    pos, quat = to_policy_frame([1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [-0.56, 0.0, 0.912], quarter_z)
    np.testing.assert_allclose(pos, [-0.56, 1.0, 0.912], atol=1e-12)
    np.testing.assert_allclose(quat, quarter_z, atol=1e-12)
    # rot6d: the body's x and y axes in the frame (a quarter turn about z takes x to y, y to -x), either sign
    np.testing.assert_allclose(rot6d(quat), [0.0, 1.0, 0.0, -1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rot6d(-quat), rot6d(quat), atol=0)


def test_stand_in_poses_through_the_base_class_give_the_envs_observation(sim_robot):
    sim_robot.reset(seed=3)
    for _ in range(5):
        sim_robot.send_action(np.r_[0.3, -0.2, 0.1, 0.4, -0.3, 0.5, 1.0])
    env_obs = sim_robot.get_observation()  # the env's own flat observation, split
    driver_obs = Robot.get_observation(sim_robot)  # from quaternions, as a real arm's driver gives them
    assert set(driver_obs) == set(env_obs) == set(dict(LAYOUT))
    for key in env_obs:
        np.testing.assert_allclose(driver_obs[key], env_obs[key], atol=1e-6, err_msg=key)


@pytest.mark.parametrize("case", ["nan", "eef_step", "workspace", "action_limit"])
def test_out_of_limit_action_is_refused_and_the_arm_held(case, caplog):
    bad_step, extra = {"nan": (np.nan, {}), "eef_step": (0.5, {"max_eef_step_m": 0.02}),
                       "workspace": (0.3, {"workspace_low": (-0.5, -0.5, 0.9), "workspace_high": (0.5, 0.5, 1.01)}),
                       "action_limit": (3.0, {})}[case]
    # chunk 0: small moves, gripper closing; chunk 1 (from step 2): the bad action
    policy = StubPolicy(lambda k: _chunks(0.01 if k == 0 else bad_step))
    limits = SafetyLimits.from_bundle(policy.spec, **extra)
    arm = FakeArm()
    with caplog.at_level(logging.WARNING, logger="cotrain_robot.runner"):
        ep = PolicyRunner(policy, arm, limits).run_episode(seed=1, max_steps=10)
    kind = {"nan": "nan_action"}.get(case, case)
    assert ep.stop_reason == "safety" and ep.success is False and ep.held
    assert [v["kind"] for v in ep.violations] == [kind]
    assert kind in caplog.text
    assert len(arm.sent) == 3  # two good actions, then the hold instead of the refused one
    np.testing.assert_array_equal(arm.sent[-1], [0, 0, 0, 0, 0, 0, 1.0])  # zero motion, gripper kept closed
    assert ep.length == 3 and np.array_equal(ep.actions[-1], arm.sent[-1])


def test_first_action_refused_holds_with_the_gripper_unchanged():
    policy = StubPolicy(lambda k: _chunks(0.5, gripper=-1.0))
    arm = FakeArm()
    ep = PolicyRunner(policy, arm, SafetyLimits.from_bundle(policy.spec, max_eef_step_m=0.01)).run_episode(0, 5)
    assert ep.stop_reason == "safety" and [v["kind"] for v in ep.violations] == ["eef_step"]
    np.testing.assert_array_equal(arm.sent, [[0, 0, 0, 0, 0, 0, 0.0]])  # gripper 0: keep its state


def test_small_overshoot_is_clipped_not_refused():
    policy = StubPolicy(lambda k: _chunks(1.02))
    arm = FakeArm()
    ep = PolicyRunner(policy, arm).run_episode(0, 3)
    assert ep.stop_reason == "max_steps" and not ep.violations
    np.testing.assert_array_equal(arm.sent[0][:3], [1.0, 1.0, 1.0])


def test_operator_interrupt_holds_the_arm():
    policy = StubPolicy(lambda k: _chunks(0.01))
    arm = FakeArm(interrupt_at=3)
    ep = PolicyRunner(policy, arm).run_episode(0, 10)
    assert ep.stop_reason == "interrupt" and ep.held and ep.violations[0]["kind"] == "interrupt"
    assert ep.success is None  # the operator judges an interrupted episode on a real arm
    np.testing.assert_array_equal(arm.sent[-1], [0, 0, 0, 0, 0, 0, 1.0])


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_temporal_ensembling_averages_every_chunk_covering_a_step(decay):
    policy = StubPolicy(lambda k: _chunks(k / 10))  # chunk k (predicted at step k) says k/10 everywhere
    arm = FakeArm()
    runner = PolicyRunner(policy, arm, temporal_ensembling=decay)
    assert runner.execution_horizon == 1
    runner.run_episode(0, 7)
    assert policy.calls == 7
    for t, sent in enumerate(arm.sent):
        votes = np.arange(max(0, t - 3), t + 1) / 10  # oldest first
        weights = np.exp(-decay * np.arange(len(votes)))
        assert sent[0] == pytest.approx(float(weights @ votes / weights.sum()), abs=1e-6), t


def test_runner_warns_when_inference_misses_the_control_period(caplog):
    policy = StubPolicy(lambda k: _chunks(0.0), delay_s=0.06)  # 60 ms > 50 ms at 20 Hz
    with caplog.at_level(logging.WARNING, logger="cotrain_robot.runner"):
        ep = PolicyRunner(policy, FakeArm()).run_episode(0, 4)
    assert ep.late_inferences == 2 and "control period" in caplog.text


def test_robot_specs():
    robot = make_robot("sim:lift/dynamics@0.5")
    assert isinstance(robot, SimRobot) and (robot.pair, robot.magnitude, robot.domain) == (PAIR, 0.5, "target")
    assert robot.env is None  # nothing built until connect()
    remote = make_robot("tcp://127.0.0.1:5555", timeout_s=0.5)
    assert isinstance(remote, RemoteRobot) and remote.timeout_s == 0.5
    with pytest.raises(ValueError, match="unknown robot spec"):
        make_robot("serial:/dev/ttyUSB0")


def test_message_format_round_trips_arrays():
    arrays = {"eef_pos": np.arange(3, dtype=np.float32), "count": np.array([[1, 2]], dtype=np.int64)}
    header, out = unpack(pack({"op": "x", "id": 3}, arrays))
    assert header["op"] == "x" and [a["name"] for a in header["arrays"]] == ["eef_pos", "count"]
    for key, value in arrays.items():
        assert out[key].dtype == value.dtype and np.array_equal(out[key], value)
    with pytest.raises(ValueError, match="malformed|described"):
        unpack([b'{"arrays": [{"name": "a", "dtype": "<f4", "shape": [1]}]}'])


class DriverView(Robot):
    """The stand-in arm as a real arm's driver gives it: poses as quaternions (`robot_state`, `object_poses`;
    the base class builds the observation), no success test and no horizon (a "real" robot)."""

    def __init__(self, sim: SimRobot):
        self.sim = sim

    def reset(self, seed=None):
        self.sim.reset(seed)

    def robot_state(self):
        return self.sim.robot_state()

    def object_poses(self):
        return self.sim.object_poses()

    def send_action(self, action):
        self.sim.send_action(action)


def test_real_arm_session_asks_the_operator_and_writes_data(smoke_bundle, sim_robot, tmp_path):
    answers = iter(["", "y", "", "n"])
    prompts: list[str] = []

    def ask(prompt):
        prompts.append(prompt)
        return next(answers)

    sent_before = len(sim_robot.actions_received)
    summary = arm_eval(smoke_bundle["bundle"], DriverView(sim_robot), 2, tmp_path, seeds=[5, 6], ask_operator=ask,
                       max_steps=5, realtime=False)
    assert summary["robot_info"]["kind"] == "real"
    assert [e["success"] for e in summary["episodes"]] == [True, False] and summary["successes"] == 1
    assert [e["length"] for e in summary["episodes"]] == [5, 5] and len(sim_robot.actions_received) == sent_before + 10
    assert "reset the scene" in prompts[0] and "success?" in prompts[1] and len(prompts) == 4
    assert summary["ci95"][0] < 0.5 < summary["ci95"][1]
    data = load_dataset(tmp_path / "episodes.hdf5")
    assert data.n_demos == 2 and data.episode_seeds == [5, 6] and data.attrs["source"] == "arm-eval"
    assert [float(r[-1]) for r in data.rewards] == [1.0, 0.0]
    np.testing.assert_array_equal(data.actions[1], sim_robot.actions_received[-5:])
    assert json.loads((tmp_path / "summary.json").read_text())["n"] == 2


# -- the stand-in arm, in process and over the socket
def _start_cli_server(log_path):
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "arm-server", "--sim", PAIR, "--domain", "target",
                             "--address", "tcp://127.0.0.1:0"], stdout=subprocess.PIPE, stderr=open(log_path, "w"),
                            text=True)
    return proc


def _wait_ready(proc, log_path, timeout=120.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("arm server ready on "):
                return line.split()[4]
        assert proc.poll() is None, open(log_path).read()[-3000:]
    raise AssertionError(f"arm server not ready: {open(log_path).read()[-3000:]}")


def test_socket_evaluation_matches_in_process_episode_by_episode(smoke_bundle, sim_robot, tmp_path):
    proc = _start_cli_server(tmp_path / "server.log")
    try:
        local = arm_eval(smoke_bundle["bundle"], sim_robot, 3, tmp_path / "local", max_steps=EPISODE_STEPS,
                         ask_operator=None)
        address = _wait_ready(proc, tmp_path / "server.log")
        remote = arm_eval(smoke_bundle["bundle"], address, 3, tmp_path / "remote", max_steps=EPISODE_STEPS,
                          ask_operator=None)
    finally:
        proc.terminate()  # SIGTERM: the server stops as on Ctrl-C, holding the arm if a session is live
        assert proc.wait(30) == 0
    key = lambda s: [(e["seed"], e["success"], e["length"], e["stop_reason"]) for e in s["episodes"]]  # noqa: E731
    assert key(local) == key(remote) and len(key(local)) == 3
    assert remote["robot_info"]["kind"] == "sim" and remote["robot_info"]["remote"] == address
    a, b = load_dataset(tmp_path / "local" / "episodes.hdf5"), load_dataset(tmp_path / "remote" / "episodes.hdf5")
    assert a.episode_seeds == b.episode_seeds
    for x, y in zip(a.obs + a.actions, b.obs + b.actions):
        np.testing.assert_array_equal(x, y)  # the same observations and actions, bit for bit
    assert "holding the arm: session closed" in (tmp_path / "server.log").read_text()


class Relay:
    """A TCP relay 127.0.0.1:<port> -> 127.0.0.1:<target>; `cut()` drops every connection and stops listening."""

    def __init__(self, target: int):
        self.target, self.socks, self.cut_done = target, [], threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.cut_done.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def cut(self):
        self.cut_done.set()
        self.listener.close()
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_dropped_link_stops_the_episode_holds_the_arm_and_saves_it_failed(smoke_bundle, sim_robot, tmp_path):
    relay: list[Relay] = []
    robot = OnAction(sim_robot, 10, after=lambda: relay[0].cut())  # the link cut before the server replies
    server = ArmServer(robot, "tcp://127.0.0.1:0", link_timeout_s=0.5).start()
    try:
        relay.append(Relay(int(server.bound_address.rsplit(":", 1)[1])))
        summary = arm_eval(smoke_bundle["bundle"], f"tcp://127.0.0.1:{relay[0].port}", 3, tmp_path,
                           max_steps=EPISODE_STEPS, ask_operator=None, timeout_s=1.0)
        deadline = time.time() + 10
        while server.session_state != "held" and time.time() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    assert summary["n"] == 1 and summary["successes"] == 0 and "connection lost" in summary["aborted"]
    episode = summary["episodes"][0]
    assert episode["stop_reason"] == "connection_lost" and episode["success"] is False
    assert episode["violations"][-1]["kind"] == "connection_lost"
    assert server.session_state == "held" and server.holds == 1
    last, hold = sim_robot.actions_received[-2], sim_robot.actions_received[-1]
    np.testing.assert_array_equal(hold, np.r_[np.zeros(6), last[6]].astype(np.float32))  # zero motion, grip kept
    data = load_dataset(tmp_path / "episodes.hdf5")
    assert data.n_demos == 1 and len(data.actions[0]) == 9 and data.rewards[0][-1] == 0.0


def test_safety_stop_in_a_session_is_saved_as_failed(smoke_bundle, sim_robot, tmp_path):
    spec = load_bundle(smoke_bundle["bundle"]).spec
    limits = SafetyLimits.from_bundle(spec, max_eef_step_m=1e-6)
    summary = arm_eval(smoke_bundle["bundle"], sim_robot, 1, tmp_path, max_steps=EPISODE_STEPS, ask_operator=None,
                       limits=limits)
    episode = summary["episodes"][0]
    assert episode["stop_reason"] == "safety" and episode["held"] and episode["success"] is False
    assert episode["violations"][0]["kind"] == "eef_step"
    np.testing.assert_array_equal(sim_robot.actions_received[-1], np.zeros(7, np.float32))
    data = load_dataset(tmp_path / "episodes.hdf5")
    assert data.n_demos == 1 and len(data.actions[0]) == 1  # the hold, as sent


def test_temporal_ensembling_runs_on_the_stand_in(smoke_bundle, sim_robot, tmp_path):
    summary = arm_eval(smoke_bundle["bundle"], sim_robot, 1, tmp_path, max_steps=12, ask_operator=None,
                       temporal_ensembling=0.01, backend="torch")
    assert summary["runner"]["execution_horizon"] == 1 and summary["runner"]["temporal_ensembling"] == 0.01
    episode = summary["episodes"][0]
    assert episode["length"] == 12 and episode["stop_reason"] == "max_steps" and not episode["violations"]
    data = load_dataset(tmp_path / "episodes.hdf5")
    assert np.isfinite(data.actions[0]).all() and np.abs(data.actions[0]).max() <= 1.0
