"""`RemoteRobot`: the `Robot` interface on the policy computer, driving an `ArmServer` over the network
(protocol and liveness rules in `cotrain_robot.protocol`)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import zmq

from .protocol import PROTOCOL, MalformedMessage, pack, unpack
from .robot import ConnectionLost, Robot, RobotError

log = logging.getLogger(__name__)
ADDRESS_SCHEMES = ("tcp://", "ipc://")


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
        self._hold_confirmed = False  # the server answered `link_lost`: it holds the arm
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
            raise ConnectionLost(self._lost, self._hold_confirmed)
        if self._sock is None:
            raise ConnectionLost(f"not connected to {self.address}")
        self._id += 1
        self._busy.set()
        try:
            self._sock.send_multipart(pack({"op": op, "session": self.session, "id": self._id, **fields}, arrays))
            deadline = time.monotonic() + (timeout_s or self.timeout_s)
            # in slices: the heartbeat thread may see the server's connection close during a long request
            while not self._sock.poll(int(1000 * max(0.0, min(self.heartbeat_s, deadline - time.monotonic())))):
                if self._lost:
                    self._drop(self._lost)
                if time.monotonic() >= deadline:
                    self._drop(f"no reply to {op!r} from {self.address} within {timeout_s or self.timeout_s} s")
            header, out = unpack(self._sock.recv_multipart())
        except MalformedMessage as err:
            raise RobotError(f"{op}: the arm server's reply is malformed: {err}") from None
        finally:
            self._busy.clear()
        if header.get("id") != self._id:
            raise RobotError(f"{op}: the arm server answered request {header.get('id')!r}, not {self._id}")
        if not header.get("ok"):
            if header.get("code") == "link_lost":
                self._drop(f"the arm server dropped the session: {header.get('error')}", hold_confirmed=True)
            raise RobotError(f"{op}: {header.get('code')}: {header.get('error')}")
        if self._lost:
            raise ConnectionLost(self._lost, self._hold_confirmed)
        return header, out

    def _drop(self, why: str, hold_confirmed: bool = False) -> None:
        self._hold_confirmed = self._hold_confirmed or hold_confirmed
        self._lost = self._lost or why
        log.error("connection lost: %s", why)
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        raise ConnectionLost(self._lost, self._hold_confirmed)

    def _heartbeat_loop(self) -> None:
        """Heartbeats on a socket of their own. The link is lost when the server stays silent for timeout_s while
        no request is in flight (a long request, e.g. a reset, keeps a serial server from answering), or at
        once, request or not, when the server's end of the connection closes (its process died)."""
        assert self._ctx is not None
        sock = self._socket()
        closed = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        silent_since: float | None = None
        try:
            while not self._stop_heartbeat.wait(self.heartbeat_s):
                sock.send_multipart(pack({"op": "heartbeat", "session": self.session, "id": 0}))
                while not sock.poll(int(self.heartbeat_s * 1000)):
                    if self._stop_heartbeat.is_set():
                        return
                    if closed.poll(0):
                        self._lost = self._lost or f"the arm server at {self.address} closed the connection"
                        log.error("connection lost: %s", self._lost)
                        return
                    silent_since = silent_since or time.monotonic()
                    if not self._busy.is_set() and time.monotonic() - silent_since > self.timeout_s:
                        self._lost = self._lost or f"no heartbeat reply from {self.address} within {self.timeout_s} s"
                        log.error("connection lost: %s", self._lost)
                        return
                try:
                    header, _ = unpack(sock.recv_multipart())
                except MalformedMessage as err:
                    log.warning("malformed heartbeat reply from %s: %s", self.address, err)
                    continue
                silent_since = None
                if not header.get("ok") and header.get("code") == "link_lost":
                    self._hold_confirmed = True  # before _lost: a reader of _lost sees the confirmation
                    self._lost = self._lost or f"the arm server dropped the session: {header.get('error')}"
                    return
        finally:
            sock.disable_monitor()
            closed.close(0)
            sock.close(0)

    # -- Robot interface
    def connect(self) -> None:
        """Say hello, open a session and start the heartbeat."""
        self.close()
        self._ctx = zmq.Context()
        self._sock = self._socket()
        self._lost, self._hold_confirmed, self.session = None, False, None
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


def remote_robot(address: str, timeout_s: float = 2.0) -> RemoteRobot:
    """A `RemoteRobot` for `tcp://host:port` (or `ipc://path`) of an `ArmServer`; ValueError for anything else."""
    if not address.startswith(ADDRESS_SCHEMES):
        raise ValueError(f"unknown robot spec {address!r}: use tcp://host:port (an arm server)")
    return RemoteRobot(address, timeout_s=timeout_s)
