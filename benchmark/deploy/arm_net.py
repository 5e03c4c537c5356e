"""A `Robot` over the network: `ArmServer` on the robot computer, `RemoteRobot` on the policy computer.

Transport: ZeroMQ (pyzmq) REQ/REP over TCP. The server owns the robot; one client session drives it
at a time.

Message format (both directions): a multipart message `[header, payload_0, payload_1, ...]`.
`header` is UTF-8 JSON; `payload_i` is the raw bytes (C order) of the i-th array listed in
`header["arrays"]` as `{"name": str, "dtype": numpy dtype string such as "<f4", "shape": [..]}`.

Requests: `{"op": str, "session": str | null, "id": int, "arrays": [...], ...op fields}`:

| op               | fields / arrays               | reply                                                   |
| ---------------- | ----------------------------- | ------------------------------------------------------- |
| `hello`          |                               | `protocol`, `robot` (robot.info()), `link_timeout_s`    |
| `connect`        |                               | `session` (a new id; refused while another is live)     |
| `reset`          | `seed` (int or null)          |                                                         |
| `get_observation`|                               | one array per observation key                           |
| `send_action`    | array `action`                |                                                         |
| `status`         |                               | `done` (bool), `success` (bool or null)                 |
| `heartbeat`      |                               | `state`                                                 |
| `close`          |                               | (the server holds the arm and ends the session)         |

Replies: `{"ok": true, "id": <the request's id>, ...}` or `{"ok": false, "id", "code", "error"}` with
`code` one of `link_lost` (the session was dropped and the arm held: reconnect), `busy` (another session
is live), `no_session`, `bad_request`, `robot_error`.

Liveness: the client sends a `heartbeat` every `heartbeat_s` from a background thread (its own socket),
so the server hears from a live client even while it is computing a chunk. When the server hears
nothing from the session for `link_timeout_s`, it HOLDS the arm (sends the hold action: zero motion,
last gripper command kept), marks the session lost, and answers its later requests with `link_lost`.
The client raises `ConnectionLost` when a request gets no reply within `timeout_s`, when a heartbeat
goes unanswered that long while no request is in flight, or on `link_lost`: the runner stops the
episode and it is saved as failed.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import numpy as np
import zmq

from benchmark.deploy.arm import HOLD_GRIPPER_KEEP, ConnectionLost, Robot, RobotError

PROTOCOL = 1
log = logging.getLogger(__name__)


# -- framing
def pack(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> list[bytes]:
    """[JSON header, raw array bytes...] with the arrays described in header["arrays"]."""
    frames: list[bytes] = []
    meta = []
    for name, value in (arrays or {}).items():
        arr = np.ascontiguousarray(value)
        meta.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)})
        frames.append(arr.tobytes())
    return [json.dumps({**header, "arrays": meta}).encode()] + frames


def unpack(frames: list[bytes]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of `pack`; ValueError on a malformed message."""
    try:
        header = json.loads(frames[0].decode())
        meta = header.get("arrays", [])
        if len(meta) != len(frames) - 1:
            raise ValueError(f"{len(meta)} arrays described, {len(frames) - 1} sent")
        arrays = {m["name"]: np.frombuffer(f, dtype=np.dtype(m["dtype"])).reshape(m["shape"]).copy()
                  for m, f in zip(meta, frames[1:])}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"malformed message: {err}") from None
    return header, arrays


class ArmServer:
    """Serves a `Robot` at `address` (e.g. "tcp://0.0.0.0:5555"); holds the arm when its client goes silent.

    hold_action: the action sent to hold (default: zeros with the last gripper command kept, the
    bundle layout's gripper being `gripper_index`).
    """

    def __init__(self, robot: Robot, address: str = "tcp://127.0.0.1:5555", link_timeout_s: float = 1.0,
                 gripper_index: int | None = 6, poll_ms: int = 20):
        self.robot, self.address = robot, address
        self.link_timeout_s, self.poll_ms, self.gripper_index = link_timeout_s, poll_ms, gripper_index
        self.session: str | None = None
        self.session_state = "idle"  # idle | active | held
        self.last_seen = 0.0
        self.last_action: np.ndarray | None = None
        self.holds = 0  # hold actions sent (link lost, session closed, shutdown)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.bound_address: str | None = None
        self.robot_info: dict[str, Any] = {}
        self.error: str | None = None

    # -- running
    def start(self) -> "ArmServer":
        """Serve in a background thread; returns once the socket is bound."""
        self._thread = threading.Thread(target=self.serve_forever, name="arm-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(120) or self.bound_address is None:
            raise RuntimeError(f"arm server did not start on {self.address}: {self.error}")
        return self

    def wait(self) -> None:
        """Block until the server thread ends; Ctrl-C or SIGTERM stops it (the arm is held on the way out)."""
        import signal

        def _terminate(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            log.warning("interrupted: stopping the arm server")
            self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def serve_forever(self) -> None:
        """Connect the robot, then serve until `stop()` (or Ctrl-C); the arm is held on the way out."""
        try:
            self.robot.connect()
            self.robot_info = self.robot.info()
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"
            self._ready.set()
            raise
        ctx = zmq.Context()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(self.address)
            self.bound_address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            self._ready.set()
            log.info("arm server on %s (link timeout %.2f s)", self.bound_address, self.link_timeout_s)
            while not self._stop.is_set():
                if sock.poll(self.poll_ms):
                    frames = sock.recv_multipart()
                    sock.send_multipart(self._handle(frames))
                self._watchdog()
        except KeyboardInterrupt:
            log.warning("arm server interrupted")
        finally:
            if self.session_state == "active":
                self._hold("server shutting down")
            sock.close(0)
            ctx.term()
            self._ready.set()

    # -- behaviour
    def hold_action(self) -> np.ndarray:
        dim = len(self.last_action) if self.last_action is not None else 7
        hold = np.zeros(dim, np.float32)
        if self.gripper_index is not None and self.gripper_index < dim:
            hold[self.gripper_index] = (HOLD_GRIPPER_KEEP if self.last_action is None
                                        else float(self.last_action[self.gripper_index]))
        return hold

    def _hold(self, why: str, level: int = logging.WARNING) -> None:
        log.log(level, "holding the arm: %s", why)
        try:
            self.robot.send_action(self.hold_action())
            self.holds += 1
        except Exception as err:  # noqa: BLE001 - nothing else to do than report it
            log.error("hold action failed: %s", err)

    def _watchdog(self) -> None:
        if self.session_state == "active" and time.monotonic() - self.last_seen > self.link_timeout_s:
            self.session_state = "held"
            self._hold(f"no message from session {self.session} for {self.link_timeout_s} s (link lost)")

    def _reply(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None, **fields: Any) -> list[bytes]:
        return pack({"ok": True, "id": header.get("id"), **fields}, arrays)

    @staticmethod
    def _error(header: dict[str, Any], code: str, message: str) -> list[bytes]:
        return pack({"ok": False, "id": header.get("id"), "code": code, "error": message})

    def _handle(self, frames: list[bytes]) -> list[bytes]:
        try:
            header, arrays = unpack(frames)
        except ValueError as err:
            return self._error({}, "bad_request", str(err))
        op = header.get("op")
        try:
            if op == "hello":
                return self._reply(header, protocol=PROTOCOL, robot=self.robot_info,
                                   link_timeout_s=self.link_timeout_s)
            if op == "connect":
                live = self.session_state == "active" and time.monotonic() - self.last_seen <= self.link_timeout_s
                if live:
                    return self._error(header, "busy", f"session {self.session} is driving the arm")
                self.session, self.session_state = uuid.uuid4().hex[:12], "active"
                self.last_seen, self.last_action = time.monotonic(), None
                return self._reply(header, session=self.session)
            if header.get("session") != self.session or self.session is None:
                return self._error(header, "no_session", "unknown session: connect first")
            if self.session_state == "held":
                return self._error(header, "link_lost", "the link was lost and the arm is held: reconnect")
            if self.session_state != "active":
                return self._error(header, "no_session", "the session is closed")
            self.last_seen = time.monotonic()
            result = self._session_op(op, header, arrays)
            self.last_seen = time.monotonic()  # a long robot operation is not the client's silence
            return result
        except Exception as err:  # noqa: BLE001 - reported to the client, the server keeps serving
            log.exception("robot error in %r", op)
            return self._error(header, "robot_error", f"{type(err).__name__}: {err}")

    def _session_op(self, op: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[bytes]:
        if op == "heartbeat":
            return self._reply(header, state=self.session_state)
        if op == "reset":
            seed = header.get("seed")
            self.robot.reset(None if seed is None else int(seed))
            self.last_action = None
            return self._reply(header)
        if op == "get_observation":
            return self._reply(header, {k: np.asarray(v) for k, v in self.robot.get_observation().items()})
        if op == "send_action":
            if "action" not in arrays:
                return self._error(header, "bad_request", "send_action needs an array named 'action'")
            action = arrays["action"]
            self.robot.send_action(action)
            self.last_action = action
            return self._reply(header)
        if op == "status":
            return self._reply(header, done=bool(self.robot.done()), success=self.robot.success())
        if op == "close":
            self._hold("session closed", logging.INFO)
            self.session_state = "idle"
            return self._reply(header)
        return self._error(header, "bad_request", f"unknown op {op!r}")


class RemoteRobot(Robot):
    """The `Robot` interface over the network, talking to an `ArmServer` at `address`.

    timeout_s: the longest wait for a reply (and for a heartbeat while no request is in flight) before
    `ConnectionLost`; reset_timeout_s: the longest wait for `reset` (a real arm moving home, an operator
    resetting the scene); heartbeat_s: the heartbeat period.
    """

    def __init__(self, address: str, timeout_s: float = 2.0, heartbeat_s: float = 0.2, reset_timeout_s: float = 300.0):
        self.address, self.timeout_s, self.heartbeat_s, self.reset_timeout_s = address, timeout_s, heartbeat_s, reset_timeout_s
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()
        self._busy = threading.Event()  # a request is in flight on the main socket
        self._lost: str | None = None
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.session: str | None = None
        self._id = 0
        self._info: dict[str, Any] = {}
        self._status: dict[str, Any] = {}
        self.kind = "remote"

    # -- plumbing
    def _socket(self) -> zmq.Socket:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        return sock

    def _call(self, op: str, arrays: dict[str, np.ndarray] | None = None, timeout_s: float | None = None,
              **fields: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._lost:
            raise ConnectionLost(self._lost)
        if self._sock is None:
            raise ConnectionLost(f"not connected to {self.address}")
        self._id += 1
        self._busy.set()
        try:
            self._sock.send_multipart(pack({"op": op, "session": self.session, "id": self._id, **fields}, arrays))
            if not self._sock.poll(int(1000 * (timeout_s or self.timeout_s))):
                self._drop(f"no reply to {op!r} from {self.address} within {timeout_s or self.timeout_s} s")
            header, out = unpack(self._sock.recv_multipart())
        finally:
            self._busy.clear()
        if not header.get("ok"):
            if header.get("code") == "link_lost":
                self._drop(f"the arm server dropped the session: {header.get('error')}")
            raise RobotError(f"{op}: {header.get('code')}: {header.get('error')}")
        if self._lost:
            raise ConnectionLost(self._lost)
        return header, out

    def _drop(self, why: str) -> None:
        self._lost = self._lost or why
        log.error("connection lost: %s", why)
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        raise ConnectionLost(self._lost)

    def _heartbeat_loop(self) -> None:
        assert self._ctx is not None
        sock = self._socket()
        silent_since: float | None = None
        try:
            while not self._stop_heartbeat.wait(self.heartbeat_s):
                sock.send_multipart(pack({"op": "heartbeat", "session": self.session, "id": 0}))
                while not sock.poll(int(self.heartbeat_s * 1000)):
                    if self._stop_heartbeat.is_set():
                        return
                    silent_since = silent_since or time.monotonic()
                    if not self._busy.is_set() and time.monotonic() - silent_since > self.timeout_s:
                        self._lost = self._lost or f"no heartbeat reply from {self.address} within {self.timeout_s} s"
                        log.error("connection lost: %s", self._lost)
                        return
                header, _ = unpack(sock.recv_multipart())
                silent_since = None
                if not header.get("ok") and header.get("code") == "link_lost":
                    self._lost = self._lost or f"the arm server dropped the session: {header.get('error')}"
                    return
        finally:
            sock.close(0)

    # -- Robot interface
    def connect(self) -> None:
        """Say hello, open a session and start the heartbeat."""
        self.close()
        self._ctx = zmq.Context()
        self._sock = self._socket()
        self._lost, self.session = None, None
        header, _ = self._call("hello")
        if header.get("protocol") != PROTOCOL:
            raise RobotError(f"arm server protocol {header.get('protocol')}, this client speaks {PROTOCOL}")
        self._info = header.get("robot", {})
        header, _ = self._call("connect")
        self.session = header["session"]
        self._stop_heartbeat.clear()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="arm-heartbeat", daemon=True)
        self._heartbeat.start()

    def reset(self, seed: int | None = None) -> None:
        self._status = {}
        self._call("reset", timeout_s=self.reset_timeout_s, seed=seed)

    def get_observation(self) -> dict[str, np.ndarray]:
        return self._call("get_observation")[1]

    def send_action(self, action: np.ndarray) -> None:
        self._status = {}
        self._call("send_action", {"action": np.asarray(action, dtype=np.float32).reshape(-1)})

    def _get_status(self) -> dict[str, Any]:
        if not self._status:
            self._status = self._call("status")[0]
        return self._status

    def done(self) -> bool:
        return bool(self._get_status()["done"])

    def success(self) -> bool | None:
        return self._get_status().get("success")

    def info(self) -> dict[str, Any]:
        return {**self._info, "remote": self.address}

    @property
    def lost(self) -> str | None:
        """Why the link was lost (None while it is up)."""
        return self._lost

    def close(self) -> None:
        """End the session (the server holds the arm) and close the sockets."""
        self._stop_heartbeat.set()
        if self._heartbeat is not None:
            self._heartbeat.join(2 * self.heartbeat_s + 1)
            self._heartbeat = None
        if self._sock is not None and self.session is not None and not self._lost:
            try:
                self._call("close", timeout_s=min(self.timeout_s, 1.0))
            except (ConnectionLost, RobotError):
                pass
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        self.session = None
