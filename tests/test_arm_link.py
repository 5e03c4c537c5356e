"""The arm link under a hostile client and a dying server, on loopback only: the message decoder and the
arm server fuzzed (every malformed message answered `bad_request`, the server serving on, no action
reaching the arm), a failed serving loop (arm held, non-zero exit), an evaluation whose server is killed
mid-session (non-zero exit, no claimed hold), and `arm-eval` inputs refused before any work."""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from benchmark.cli import main as cotrain_main
from cotrain_robot.client import RemoteRobot
from cotrain_robot.protocol import MAX_PAYLOAD_BYTES, MalformedMessage, pack, unpack
from cotrain_robot.robot import ConnectionLost, Robot
from cotrain_robot.server import ArmServer
from robots import OnAction
from cotrain_robot.session import arm_eval

REPO = Path(__file__).resolve().parents[1]
PAIR = "lift/dynamics"
FUZZ_SECONDS = 5.0
JSON_VALUES = [None, True, 0, -1, 2**70, 1.5, "x", "", [], [1, "a"], {}, {"a": None}]


class LightArm(Robot):
    """A driver-less arm that records every action it receives."""

    def __init__(self):
        self.sent: list[np.ndarray] = []

    def reset(self, seed=None):
        pass

    def robot_state(self):
        return {"eef_pos": np.zeros(3), "eef_quat": np.array([0.0, 0.0, 0.0, 1.0]), "gripper": np.ones(1)}

    def object_poses(self):
        return {"cube_pos": np.array([0.1, 0.0, 0.0]), "cube_quat": np.array([0.0, 0.0, 0.0, 1.0])}

    def send_action(self, action):
        self.sent.append(np.asarray(action).copy())


def _array_entry(name="action", dtype="<f4", shape=(7,)):
    return {"name": name, "dtype": dtype, "shape": list(shape)}


def _msg(header, *frames: bytes) -> list[bytes]:
    return [json.dumps(header).encode(), *frames]


GOOD = np.zeros(7, np.float32).tobytes()


def _badly_framed(session: str | None) -> list[list[bytes]]:
    """One message per way of breaking the message format (`unpack` refuses each)."""
    act = {"op": "send_action", "session": session, "id": 1}
    out = [[], [b""], [b"\xff\xfe"], [b"{"], [b"op"]]
    out += [_msg(value) for value in JSON_VALUES if not isinstance(value, dict)]  # every JSON type but an object
    out += [_msg({"op": value, "session": session, "id": 1}) for value in JSON_VALUES if not isinstance(value, str)]
    out += [_msg({"op": "heartbeat", "session": session, "id": value}) for value in ("1", 1.5, True, [1], {})]
    out += [_msg({"op": "heartbeat", "session": value, "id": 1}) for value in (1, [], {}, True)]
    out += [_msg({**act, "arrays": value}, GOOD) for value in ("x", {}, None, 3, [None], ["a"], [[]])]
    out += [_msg({**act, "arrays": []}, GOOD),  # array counts: a frame without an entry, an entry without a frame
            _msg({**act, "arrays": [_array_entry()]}),
            _msg({**act, "arrays": [_array_entry(), _array_entry()]}, GOOD, GOOD),
            _msg({**act, "arrays": [{**_array_entry(), "name": 5}]}, GOOD),
            _msg({**act, "arrays": [{k: v for k, v in _array_entry().items() if k != "dtype"}]}, GOOD)]
    for dtype in ("<U1", "|O", "|V4", "abc", "", "[('a', '<f4')]", "(2,)<f4", "<M8[s]", "<c8", 5, None):
        out.append(_msg({**act, "arrays": [_array_entry(dtype=dtype)]}, GOOD))
    for shape in ((8,), (6,), (-7,), (), (0,), (7.0,), ("7",), [[7]], "7", None, (True,) * 7, (1,) * 40,
                  (2**62, 2**62)):
        out.append(_msg({**act, "arrays": [{**_array_entry(), "shape": shape}]}, GOOD))
    out += [_msg({**act, "arrays": [_array_entry(dtype="<f8")]}, np.zeros(7).tobytes()[:-1]),
            _msg({**act, "arrays": [_array_entry(shape=(1 + MAX_PAYLOAD_BYTES // 4,))]},
                 bytes(4 * (1 + MAX_PAYLOAD_BYTES // 4))),  # oversize arrays
            _msg({"op": "heartbeat", "session": session, "id": 1, "pad": "x" * 70_000})]  # oversize header
    return out


def _breaking_op_rules(session: str | None) -> list[list[bytes]]:
    """Well-framed requests that break their op's rules (the server refuses each)."""
    act = {"op": "send_action", "session": session, "id": 1}
    out = [_msg({"op": "launch", "session": session, "id": 1}), _msg({"session": session, "id": 1}),
           _msg({"op": "reset", "session": session, "id": 1, "seed": "abc"}),
           _msg({"op": "reset", "session": session, "id": 1, "seed": 1.5}),
           _msg({**act, "arrays": [_array_entry(), _array_entry("extra")]}, GOOD, GOOD),
           _msg({**act, "arrays": [_array_entry("other")]}, GOOD),
           _msg({"op": "status", "session": session, "id": 1, "arrays": [_array_entry()]}, GOOD),
           _msg({**act, "arrays": [_array_entry()]}, np.full(7, np.nan, np.float32).tobytes()),
           _msg({**act, "arrays": [_array_entry(shape=(0,))]}, b""),
           _msg({**act, "arrays": [_array_entry(shape=(8,))]}, np.zeros(8, np.float32).tobytes())]
    for dtype in ("<i4", "|b1", "<u2"):  # plain dtypes, but not a float action
        count = len(GOOD) // np.dtype(dtype).itemsize
        out.append(_msg({**act, "arrays": [_array_entry(dtype=dtype, shape=(count,))]}, GOOD))
    for shape in ((7, 1), (1, 7)):
        out.append(_msg({**act, "arrays": [_array_entry(shape=shape)]}, GOOD))
    return out


def test_decoder_refuses_malformed_messages_and_random_bytes():
    """`unpack` raises `MalformedMessage` on each way of breaking the format, and returns or raises it, never
    anything else, on bounded random input."""
    arrays = unpack(pack({"op": "send_action", "id": 1}, {"action": np.ones(7, np.float32)}))[1]
    assert arrays["action"].sum() == 7
    for frames in _badly_framed("s"):
        with pytest.raises(MalformedMessage):
            unpack(frames)
    for frames in _breaking_op_rules("s"):
        unpack(frames)  # well framed: the server refuses it by its op's rules
    rng = np.random.default_rng(0)
    deadline = time.monotonic() + FUZZ_SECONDS
    for _ in range(3000):
        frames = [rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(1, 4)))]
        if rng.random() < 0.5:  # a JSON header of random entries, with random frames
            entries = [{"name": str(i), "dtype": str(rng.choice(["<f4", "<i8", "|u1", "?", "<f2", ">f8", "x"])),
                        "shape": rng.integers(-2, 5, size=int(rng.integers(0, 3))).tolist()}
                       for i in range(int(rng.integers(0, 4)))]
            frames[0] = json.dumps({"op": "send_action", "id": int(rng.integers(9)), "arrays": entries}).encode()
        try:
            unpack(frames)
        except MalformedMessage:
            pass
        if time.monotonic() > deadline:
            break


def _request(sock: zmq.Socket, frames: list[bytes]) -> dict:
    sock.send_multipart(frames)
    assert sock.poll(5000), "the arm server did not answer"
    header, _ = unpack(sock.recv_multipart())
    return header


def test_server_answers_every_malformed_message_and_serves_on_mid_session():
    arm = LightArm()
    server = ArmServer(arm, "tcp://127.0.0.1:0", link_timeout_s=5.0).start()
    client = RemoteRobot(server.bound_address, timeout_s=5.0)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.bound_address)
    try:
        client.connect()
        client.reset(1)
        client.send_action(np.r_[np.zeros(6), 1.0])
        sent = len(arm.sent)
        for frames in _badly_framed(client.session)[1:] + _breaking_op_rules(client.session):  # [1:]: not []
            header = _request(sock, frames)
            assert header["ok"] is False and header["code"] == "bad_request", (frames[0][:120], header)
        rng = np.random.default_rng(1)
        deadline = time.monotonic() + FUZZ_SECONDS
        for _ in range(300):
            header = _request(sock, [rng.bytes(int(rng.integers(0, 48))) for _ in range(int(rng.integers(1, 4)))])
            assert header["ok"] is False and header["code"] == "bad_request"
            if time.monotonic() > deadline:
                break
        assert len(arm.sent) == sent and server.session_state == "active"  # nothing reached the arm
        observation = client.get_observation()  # the session goes on
        assert set(observation) >= {"eef_pos", "cube_rel_pos"}
        client.send_action(np.r_[0.1, np.zeros(5), 1.0])
        assert len(arm.sent) == sent + 1 and client.done() is False
    finally:
        client.close()
        sock.close(0)
        ctx.term()
        server.stop()
    assert server.error is None and not server.crashed and server.holds == 1  # the session's close


def test_client_reports_a_hold_only_when_the_server_confirmed_it():
    arm = LightArm()
    server = ArmServer(arm, "tcp://127.0.0.1:0", link_timeout_s=0.2).start()
    client = RemoteRobot(server.bound_address, timeout_s=2.0, heartbeat_s=30.0)  # no heartbeat in time
    try:
        client.connect()
        client.reset(0)
        time.sleep(0.5)  # silent past the link timeout: the server holds the arm
        with pytest.raises(ConnectionLost) as lost:
            client.send_action(np.zeros(7))
        assert lost.value.hold_confirmed and server.session_state == "held"
    finally:
        client.close()
        server.stop()
    silent = RemoteRobot(server.bound_address, timeout_s=0.3)  # the server is gone: nothing answers
    with pytest.raises(ConnectionLost) as lost:
        silent.connect()
    silent.close()
    assert not lost.value.hold_confirmed


DRIVER = '''
import json, os, sys
import numpy as np
from cotrain_robot.robot import Robot


class ExitingArm(Robot):
    """Logs every action; its SDK exits the calling thread on an action with a[0] == 0.5."""

    def reset(self, seed=None):
        pass

    def send_action(self, action):
        with open(os.environ["ARM_LOG"], "a") as f:
            f.write(json.dumps([float(v) for v in action]) + "\\n")
        if float(action[0]) == 0.5:
            sys.exit(0)
'''


def _start(argv: list[str], env: dict, stderr_path: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(stderr_path, "w"), text=True, env=env,
                            cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if line.startswith("arm server ready on "):
                return proc, line.split()[4]
        assert proc.poll() is None, stderr_path.read_text()[-3000:]
    proc.kill()
    raise AssertionError(f"arm server not ready: {stderr_path.read_text()[-3000:]}")


@pytest.mark.parametrize("command", ["cotrain-robot serve", "cotrain arm-server"])
def test_a_failed_serving_loop_holds_the_arm_and_exits_non_zero(command, tmp_path):
    (tmp_path / "exiting_driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]), "ARM_LOG": str(tmp_path / "log")}
    prefix = ([str(Path(sys.executable).with_name("cotrain-robot")), "serve"] if command.startswith("cotrain-robot")
              else [sys.executable, "-m", "benchmark.cli", "arm-server"])
    proc, address = _start(prefix + ["--driver", "exiting_driver:ExitingArm", "--address", "tcp://127.0.0.1:0"],
                           env, tmp_path / "server.err")
    client = RemoteRobot(address, timeout_s=1.0)
    try:
        client.connect()
        client.send_action(np.r_[0.1, np.zeros(5), 1.0])
        with pytest.raises(ConnectionLost) as lost:
            client.send_action(np.r_[0.5, np.zeros(5), 1.0])  # the driver exits the serving thread
        assert not lost.value.hold_confirmed
        code = proc.wait(30)
    finally:
        client.close()
        proc.kill()
    err = (tmp_path / "server.err").read_text()
    assert code != 0 and "serving loop failed: SystemExit" in err, (code, err[-2000:])
    sent = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert sent[-1] == [0.0] * 6 + [1.0] and len(sent) == 3  # the hold: zero motion, the gripper kept closed


SLOW_RESET_DRIVER = '''
import time
from cotrain_robot.robot import Robot
import numpy as np

class SlowResetArm(Robot):
    """A reset that takes a minute (a real arm moving home): a serial server answers nothing meanwhile."""
    def connect(self): pass
    def reset(self, seed=None): time.sleep(60)
    def get_observation(self): return {"lowdim": np.zeros(3, np.float32)}
    def send_action(self, action): pass
    def done(self): return False
    def success(self): return None
    def close(self): pass
'''


def test_a_server_killed_during_a_long_reset_is_lost_at_once(tmp_path):
    """A long reset keeps a serial server silent, so silence is no sign of a dead server; its closed connection
    is, and the client stops waiting at once instead of at the end of the reset timeout."""
    (tmp_path / "slow_driver.py").write_text(SLOW_RESET_DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    proc, address = _start([sys.executable, "-m", "benchmark.cli", "arm-server", "--driver", "slow_driver:SlowResetArm",
                            "--address", "tcp://127.0.0.1:0"], env, tmp_path / "server.err")
    client = RemoteRobot(address, timeout_s=1.0, reset_timeout_s=300.0)
    try:
        client.connect()
        threading.Timer(2.0, proc.kill).start()  # while the reset runs
        start = time.monotonic()
        with pytest.raises(ConnectionLost, match="closed the connection"):
            client.reset(0)
        assert time.monotonic() - start < 15  # not the reset's 300 s
    finally:
        client.close()
        proc.kill()


def test_killed_server_ends_the_evaluation_non_zero_without_claiming_a_hold(smoke_bundle, tmp_path):
    server, address = _start([sys.executable, "-m", "benchmark.cli", "arm-server", "--sim", PAIR,
                              "--address", "tcp://127.0.0.1:0"], dict(os.environ), tmp_path / "server.err")
    out = tmp_path / "session"
    client = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "arm-eval", str(smoke_bundle["bundle"]),
                               "--robot", address, "--episodes", "20", "--max-steps", "40", "--link-timeout", "1",
                               "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        deadline = time.time() + 120
        while not (out / "summary.json").exists() and client.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)  # after the first episode: nothing holds anything now
        stdout, stderr = client.communicate(timeout=60)
    finally:
        server.kill()
        client.kill()
    summary = json.loads((out / "summary.json").read_text())
    assert client.returncode == 1, (client.returncode, stderr[-3000:])
    assert 1 <= summary["n"] < 20 and summary["episodes_requested"] == 20 and summary["complete"] is False
    stop = summary["stopped"]
    assert stop["reason"] == "connection_lost" and stop["hold_confirmed"] is False and stop["episode"] == summary["n"]
    assert summary["episodes"][-1]["held"] is False
    assert "connection lost" in stderr and "did not confirm a hold" in stderr and "holds the arm" not in stderr
    assert f"after {summary['n']} of 20 episodes" in stderr and "successes" in stdout


def test_a_confirmed_hold_is_reported_by_the_session(smoke_bundle, tmp_path):
    from benchmark.deploy.standin import SimRobot

    server = ArmServer(SimRobot(PAIR), "tcp://127.0.0.1:0", link_timeout_s=0.2).start()
    remote = RemoteRobot(server.bound_address, timeout_s=2.0, heartbeat_s=30.0)
    try:
        stalls = OnAction(remote, 5, before=lambda: time.sleep(0.5))  # the policy computer silent for 0.5 s
        summary = arm_eval(smoke_bundle["bundle"], stalls, 3, tmp_path, max_steps=20, ask_operator=None)
    finally:
        remote.close()
        server.stop()
    assert summary["complete"] is False and summary["stopped"]["hold_confirmed"] is True
    assert "the arm server confirmed that it holds the arm" in summary["aborted"] and summary["n"] == 1


def _cli_error(argv: list[str], capsys) -> str:
    """`cotrain <argv>`: exit status 2 and one error line (after the log lines of work begun, if any), returned."""
    code = cotrain_main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if " cotrain_robot." not in line]  # log lines name their logger
    assert code == 2 and len(errors) == 1 and errors[0].startswith("cotrain arm-eval: error: "), (code, lines)
    return errors[0]


def _bundle_copy(smoke_bundle, tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(smoke_bundle["bundle"], bundle)
    return bundle


@pytest.mark.parametrize("case", ["actions_per_chunk", "episodes", "link_timeout", "temporal_ensembling", "magnitude",
                                  "unknown_pair", "onnx", "json", "json_field", "no_server"])
def test_arm_eval_refuses_bad_inputs_before_work_and_leaves_no_folder(case, smoke_bundle, tmp_path, capsys):
    bundle, out = _bundle_copy(smoke_bundle, tmp_path), tmp_path / "out" / "session"
    options = {"actions_per_chunk": ["--actions-per-chunk", "0"], "episodes": ["--episodes", "0"],
               "link_timeout": ["--link-timeout", "-1"], "temporal_ensembling": ["--temporal-ensembling", "-0.5"]}
    robot = {"magnitude": f"sim:{PAIR}@abc", "unknown_pair": "sim:lift/nothing",
             "no_server": "tcp://127.0.0.1:9"}.get(case, f"sim:{PAIR}")
    if case == "onnx":
        (bundle / "policy.onnx").write_bytes(b"\x08\x07 not a graph")
    if case == "json":
        (bundle / "policy.json").write_text("{")
    if case == "json_field":
        spec = json.loads((bundle / "policy.json").read_text())
        del spec["chunk"]["horizon"]
        (bundle / "policy.json").write_text(json.dumps(spec))
    argv = ["arm-eval", str(bundle), "--robot", robot, "--episodes", "2", "--max-steps", "3", "--link-timeout", "0.5",
            "--out", str(out), "--quiet", *options.get(case, [])]
    err = _cli_error(argv, capsys)
    expected = {"actions_per_chunk": ["--actions-per-chunk 0", "[1, "], "episodes": ["--episodes 0"],
                "link_timeout": ["--link-timeout -1"], "temporal_ensembling": ["--temporal-ensembling -0.5"],
                "magnitude": ["--robot", "magnitude 'abc' is not a number"],
                "unknown_pair": ["--robot", "lift/nothing"],
                "onnx": [str(bundle / "policy.onnx")], "json": [str(bundle / "policy.json"), "JSON"],
                "json_field": [str(bundle / "policy.json"), "chunk.horizon"], "no_server": ["tcp://127.0.0.1:9"]}
    for text in expected[case]:
        assert text in err, err
    assert not (tmp_path / "out").exists()  # nothing left behind


def _without_override() -> list[str]:
    """A command prefix that takes away root's right to write anywhere (CI runs as root, and a mode does not
    stop root): root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH obeys file modes like any user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv to drop the capability to override file modes")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_arm_eval_into_an_unwritable_folder_says_so_in_one_line(smoke_bundle, tmp_path):
    (tmp_path / "locked").mkdir(mode=0o555)
    out = tmp_path / "locked" / "session"
    proc = subprocess.run([*_without_override(), sys.executable, "-m", "benchmark.cli", "arm-eval",
                           str(smoke_bundle["bundle"]), "--robot", f"sim:{PAIR}", "--episodes", "1",
                           "--max-steps", "3", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, err[-3000:])
    assert f"cannot write {out}: permission denied" in err and not out.exists()
