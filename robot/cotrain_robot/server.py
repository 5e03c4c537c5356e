"""`ArmServer`: serves a `Robot` on the robot computer to one client session at a time (protocol and
liveness rules in `cotrain_robot.protocol`); it holds the arm when its client goes silent.

No message ends the serving loop: a malformed one is answered `bad_request`, a robot's exception
`robot_error`. Should the loop itself fail, the server holds the arm, records why in `error` and stops;
`wait()` then raises, so a command serving the arm exits non-zero."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import numpy as np

from .protocol import ARRAY_KINDS, PROTOCOL, MalformedMessage, bind_reply_socket, pack, unpack
from .robot import HOLD_GRIPPER_KEEP, Robot

log = logging.getLogger(__name__)
NO_ARRAY_OPS = ("hello", "connect", "reset", "get_observation", "status", "heartbeat", "close")
OPS = (*NO_ARRAY_OPS, "send_action")


def describe(err: BaseException) -> str:
    """`Type: message` of an exception, even one whose message cannot be formatted."""
    try:
        return f"{type(err).__name__}: {err}"
    except Exception:  # noqa: BLE001 - a broken __str__ must not take the server down
        return type(err).__name__


def request_problem(header: dict[str, Any], arrays: dict[str, np.ndarray], action_dim: int | None) -> str | None:
    """Why a well-framed request breaks its op's rules (None when it does not): an unknown op, arrays an
    op does not take, a `seed` that is not an integer or null, an `action` that is not one finite 1-D float
    array (of `action_dim` values once the session has sent one)."""
    op = header.get("op")
    if op not in OPS:
        return f"unknown op {op!r}: expected one of {list(OPS)}"
    if op in NO_ARRAY_OPS and arrays:
        return f"{op} takes no arrays, got {sorted(arrays)}"
    if op == "reset" and header.get("seed") is not None and (
            not isinstance(header["seed"], int) or isinstance(header["seed"], bool)):
        return f"reset: 'seed' must be an integer or null, got {header['seed']!r}"
    if op == "send_action":
        if set(arrays) != {"action"}:
            return f"send_action takes one array named 'action', got {sorted(arrays)}"
        action = arrays["action"]
        if action.dtype.kind != "f" or action.ndim != 1 or action.size == 0:
            return (f"send_action: 'action' must be a non-empty 1-D float array, "
                    f"got {action.dtype.str} {list(action.shape)}")
        if action_dim is not None and action.size != action_dim:
            return f"send_action: 'action' has {action.size} values, this session's actions have {action_dim}"
        if not np.isfinite(action).all():
            return "send_action: 'action' has non-finite values"
    return None


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
        self.crashed = False  # the serving loop failed (the arm was held on the way out)

    # -- running
    def start(self) -> "ArmServer":
        """Serve in a background thread; returns once the socket is bound."""
        self._thread = threading.Thread(target=self.serve_forever, name="arm-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(120) or self.bound_address is None:
            raise RuntimeError(f"arm server did not start on {self.address}: {self.error}")
        return self

    def wait(self) -> None:
        """Block until the server thread ends; Ctrl-C or SIGTERM stops it (the arm is held on the way out).
        RuntimeError when the serving loop failed."""
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
        if self.crashed:
            raise RuntimeError(f"the arm server stopped: {self.error}")

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
        ctx = sock = None
        try:
            ctx, sock, self.bound_address = bind_reply_socket(self.address)
            self._ready.set()
            log.info("arm server on %s (link timeout %.2f s)", self.bound_address, self.link_timeout_s)
            while not self._stop.is_set():
                if sock.poll(self.poll_ms):
                    frames = sock.recv_multipart()
                    sock.send_multipart(self._handle(frames))
                self._watchdog()
        except KeyboardInterrupt:
            log.warning("arm server interrupted")
        except BaseException as err:  # noqa: BLE001 - whatever ends the loop, the arm is held below
            self.crashed, self.error = True, f"serving loop failed: {describe(err)}"
            log.critical("arm server %s", self.error, exc_info=True)
        finally:
            if self.crashed:
                self._hold("the serving loop failed", logging.CRITICAL)
            elif self.session_state == "active":
                self._hold("server shutting down")
            if sock is not None:
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
        except BaseException as err:  # noqa: BLE001 - nothing else to do than report it
            log.error("hold action failed: %s", describe(err))

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
        except MalformedMessage as err:
            return self._error({}, "bad_request", str(err))
        problem = request_problem(header, arrays, None if self.last_action is None else len(self.last_action))
        if problem:
            return self._error(header, "bad_request", problem)
        op = header["op"]
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
            return self._error(header, "robot_error", describe(err))

    def _session_op(self, op: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[bytes]:
        if op == "heartbeat":
            return self._reply(header, state=self.session_state)
        if op == "reset":
            seed = header.get("seed")
            self.robot.reset(seed)
            self.last_action = None
            return self._reply(header)
        if op == "get_observation":
            observation = {k: np.asarray(v) for k, v in self.robot.get_observation().items()}
            odd = {k: v.dtype.str for k, v in observation.items() if v.dtype.kind not in ARRAY_KINDS}
            if odd:
                raise TypeError(f"observation values must be bool, integer or float arrays, got {odd}")
            return self._reply(header, observation)
        if op == "send_action":
            action = arrays["action"]
            self.robot.send_action(action)
            self.last_action = action
            return self._reply(header)
        if op == "status":
            return self._reply(header, done=bool(self.robot.done()), success=self.robot.success())
        # close (request_problem admits the ops above and this one only)
        self._hold("session closed", logging.INFO)
        self.session_state = "idle"
        return self._reply(header)
