"""`ArmServer`: serves a `Robot` on the robot computer to one client session at a time (protocol and
liveness rules in `cotrain_robot.protocol`); it holds the arm when its client goes silent."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import numpy as np
import zmq

from .protocol import PROTOCOL, pack, unpack
from .robot import HOLD_GRIPPER_KEEP, Robot

log = logging.getLogger(__name__)


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
