"""`PolicyServer`: serve a policy trained anywhere (LeRobot, diffusion_policy, robomimic, your own) to
`cotrain eval-policy`, which runs the benchmark's evaluation protocol against it. numpy and pyzmq only.

Your side is one function, `policy_fn(obs: dict[str, np.ndarray]) -> np.ndarray`: the observation history of
the current episode in, an action chunk `(chunk_size, action_dim)` out. The evaluator executes the first
`actions_per_chunk` actions of each chunk (at most `chunk_size`), then asks again with the newer history.

Transport: ZeroMQ REQ/REP over TCP; the evaluator connects, the server binds. Framing as on the arm link
(`cotrain_robot.protocol`): a multipart message `[header, payload_0, ...]`, `header` UTF-8 JSON, `payload_i` the
raw bytes (C order) of the i-th array listed in `header["arrays"]` as `{"name", "dtype", "shape"}`.

Requests: `{"op": str, "id": int, "arrays": [...], ...op fields}`:

| op      | request fields / arrays                                  | reply fields / arrays                      |
| ------- | -------------------------------------------------------- | ------------------------------------------ |
| `hello` | `protocol` (int), `env`: {"pair", "action_dim",          | `protocol`, `name`, `digest`, `chunk_size`, |
|         | "observations": {key: per-step shape}}                   | `n_obs_steps`, `obs_keys` (list of str)    |
| `reset` | (a new episode starts)                                   |                                            |
| `act`   | one array per observation key, `(n_obs_steps, *shape)`,   | array `actions`, `(chunk_size, action_dim)` |
|         | oldest first (at an episode's start the first            |                                            |
|         | observation is repeated)                                 |                                            |

Observation keys: `lowdim` (float32, the pair's flat layout, `cotrain tasks show PAIR`) and, on image pairs,
`agentview` (uint8 84x84x3). `obs_keys` in the hello reply names the keys the policy reads (empty: all of them);
only those are sent. `digest` is whatever identifies your policy (a hash of its weights, say): the evaluator
names its record by your `--name` and this digest, so another policy, or another version of it, never reuses a
record. Action dimensions: 7 (end-effector position delta 3, rotation delta 3, gripper -1 open / 1 close).

Replies: `{"ok": true, "id": <the request's id>, ...}` or `{"ok": false, "id", "code", "error"}` with `code`
`bad_request` (the request breaks this format: an unknown op, a malformed message, missing observation keys) or
`policy_error` (`policy_fn` or the reset hook raised, or returned something that is not a numeric array; the
evaluator fails that episode with the message). The server never checks the chunk's shape or values: the
evaluator does, and fails the episode of a wrong shape or a non-finite action, naming it. No message ends the
serving loop.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable

import numpy as np

from .protocol import MalformedMessage, bind_reply_socket, pack, unpack
from .server import describe

log = logging.getLogger(__name__)
POLICY_PROTOCOL = 1
OPS = ("hello", "reset", "act")
PolicyFn = Callable[[dict[str, np.ndarray]], np.ndarray]


def check_settings(name: Any, digest: Any, chunk_size: Any, n_obs_steps: Any, obs_keys: Any) -> None:
    """ValueError naming the first setting of a policy that is not of its kind."""
    for label, value in (("name", name), ("digest", digest)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"the policy's {label} must be a non-empty string, got {value!r}")
    for label, value in (("chunk_size", chunk_size), ("n_obs_steps", n_obs_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"the policy's {label} must be an integer >= 1, got {value!r}")
    if not isinstance(obs_keys, (list, tuple)) or not all(isinstance(k, str) and k for k in obs_keys):
        raise ValueError(f"the policy's obs_keys must be a list of observation key names, got {obs_keys!r}")


class PolicyServer:
    """Serves `policy_fn` at `address` (e.g. "tcp://0.0.0.0:5600"; port 0: any free port) to one evaluator.

    name: what the policy calls itself; digest: what identifies it (e.g. a hash of its weights); chunk_size:
    actions per reply; n_obs_steps: observations of history per request; obs_keys: observation keys it reads
    (empty: all); reset_fn: called at each episode's start (e.g. to clear a recurrent state).
    """

    def __init__(self, policy_fn: PolicyFn, address: str = "tcp://127.0.0.1:5600", name: str = "policy",
                 digest: str = "unknown", chunk_size: int = 1, n_obs_steps: int = 1,
                 obs_keys: tuple[str, ...] | list[str] = (), reset_fn: Callable[[], None] | None = None,
                 poll_ms: int = 50):
        check_settings(name, digest, chunk_size, n_obs_steps, obs_keys)
        self.policy_fn, self.reset_fn, self.address = policy_fn, reset_fn, address
        self.name, self.digest, self.chunk_size, self.n_obs_steps = name, digest, chunk_size, n_obs_steps
        self.obs_keys, self.poll_ms = tuple(obs_keys), poll_ms
        self.bound_address: str | None = None
        self.requests = {op: 0 for op in OPS}  # requests served, by op
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> "PolicyServer":
        """Serve in a background thread; returns once the socket is bound (`bound_address`)."""
        self._thread = threading.Thread(target=self.serve_forever, name="policy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self.bound_address is None:
            raise RuntimeError(f"policy server did not start on {self.address}: {self.error}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (the socket is closed, so the address is free again)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def serve_forever(self) -> None:
        """Serve until `stop()`; an unexpected failure of the loop is recorded in `error` and re-raised."""
        ctx = sock = None
        try:
            ctx, sock, self.bound_address = bind_reply_socket(self.address)
            self._ready.set()
            log.info("policy server %r (digest %s) on %s", self.name, self.digest, self.bound_address)
            while not self._stop.is_set():
                if sock.poll(self.poll_ms):
                    sock.send_multipart(self.handle(sock.recv_multipart()))
        except BaseException as err:
            self.error = describe(err)
            raise
        finally:
            if sock is not None:
                sock.close(0)
                ctx.term()
            self._ready.set()

    # -- behaviour
    def handle(self, frames: list[bytes]) -> list[bytes]:
        """The reply to one request (module docstring)."""
        try:
            header, arrays = unpack(frames)
        except MalformedMessage as err:
            return _error({}, "bad_request", str(err))
        op = header.get("op")
        if op not in OPS:
            return _error(header, "bad_request", f"unknown op {op!r}: expected one of {list(OPS)}")
        if op != "act" and arrays:
            return _error(header, "bad_request", f"{op} takes no arrays, got {sorted(arrays)}")
        self.requests[op] += 1
        if op == "hello":
            return pack({"ok": True, "id": header.get("id"), "protocol": POLICY_PROTOCOL, "name": self.name,
                         "digest": self.digest, "chunk_size": self.chunk_size, "n_obs_steps": self.n_obs_steps,
                         "obs_keys": list(self.obs_keys)})
        if op == "reset":
            try:
                if self.reset_fn is not None:
                    self.reset_fn()
            except Exception as err:  # noqa: BLE001 - the policy's failure is the episode's, not the server's
                return _error(header, "policy_error", f"reset raised {describe(err)}")
            return pack({"ok": True, "id": header.get("id")})
        missing = [k for k in self.obs_keys if k not in arrays]
        if missing or not arrays:
            return _error(header, "bad_request", f"act: observation(s) {missing or list(self.obs_keys)} missing")
        try:
            chunk = np.asarray(self.policy_fn(arrays))
        except Exception as err:  # noqa: BLE001
            return _error(header, "policy_error", f"the policy raised {describe(err)}")
        if chunk.dtype.kind not in "biuf":
            return _error(header, "policy_error", f"the policy returned a {chunk.dtype} array, not numbers")
        return pack({"ok": True, "id": header.get("id")}, {"actions": chunk})


def _error(header: dict[str, Any], code: str, message: str) -> list[bytes]:
    return pack({"ok": False, "id": header.get("id"), "code": code, "error": message})


def serve(policy_fn: PolicyFn, address: str = "tcp://127.0.0.1:5600", name: str = "policy",
          digest: str = "unknown", chunk_size: int = 1, n_obs_steps: int = 1,
          obs_keys: tuple[str, ...] | list[str] = (), reset_fn: Callable[[], None] | None = None) -> None:
    """Serve `policy_fn` (`PolicyServer`'s arguments) until Ctrl-C or SIGTERM; prints the bound address."""
    server = PolicyServer(policy_fn, address, name, digest, chunk_size, n_obs_steps, obs_keys, reset_fn)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.start()
    print(f"policy server ready on {server.bound_address} (Ctrl-C to stop)", flush=True)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(0.5)
    except KeyboardInterrupt:
        server.stop()
    if server.error:
        raise RuntimeError(f"the policy server stopped: {server.error}")
