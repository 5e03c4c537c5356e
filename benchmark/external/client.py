"""The evaluator's side of a policy: `RemotePolicy` (a `cotrain_robot.policy_server.PolicyServer` over TCP) and
`LocalPolicy` (an importable `policy_fn` in this process, `load_callable`), with one interface: `hello(env)`,
`reset()`, `act(obs)`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import zmq
from cotrain_robot.policy_server import POLICY_PROTOCOL, check_settings
from cotrain_robot.protocol import MalformedMessage, pack, unpack
from cotrain_robot.server import describe


class PolicyLinkError(RuntimeError):
    """The link to a policy server failed (no reply in time, a malformed reply, another protocol, a refused
    request): the evaluation stops, its finished episodes kept."""


class PolicyFailure(Exception):
    """The policy itself failed on a request (it raised, or returned no numeric array): that episode fails."""


@dataclass(frozen=True)
class PolicyInfo:
    """What a policy says of itself in `hello` (`cotrain_robot.policy_server`)."""

    name: str
    digest: str
    chunk_size: int
    n_obs_steps: int
    obs_keys: tuple[str, ...]


def _info(fields: dict[str, Any]) -> PolicyInfo:
    """The PolicyInfo of hello's fields; ValueError naming a field that is not of its kind."""
    obs_keys = fields.get("obs_keys", [])
    check_settings(fields.get("name"), fields.get("digest"), fields.get("chunk_size"), fields.get("n_obs_steps"),
                   obs_keys)
    return PolicyInfo(fields["name"], fields["digest"], fields["chunk_size"], fields["n_obs_steps"], tuple(obs_keys))


class RemotePolicy:
    """A policy server at `address` (tcp://HOST:PORT). timeout_s: the longest wait for any reply (a policy's
    first chunk may include its warm-up) before `PolicyLinkError`."""

    def __init__(self, address: str, timeout_s: float = 60.0):
        if not address.startswith(("tcp://", "ipc://")):
            raise ValueError(f"policy address {address!r}: expected tcp://HOST:PORT")
        if not timeout_s > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout_s}")
        self.address, self.timeout_s, self.source = address, timeout_s, address
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = None
        self._id = 0

    def _call(self, op: str, arrays: dict[str, np.ndarray] | None = None,
              **fields: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self._sock is None:
            self._sock = self._ctx.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self.address)
        self._id += 1
        self._sock.send_multipart(pack({"op": op, "id": self._id, **fields}, arrays))
        if not self._sock.poll(int(1000 * self.timeout_s)):
            self._sock.close(0)  # a REQ socket without its reply cannot send again
            self._sock = None
            raise PolicyLinkError(f"no reply to {op!r} from the policy server at {self.address} within "
                                  f"{self.timeout_s:g} s")
        try:
            header, out = unpack(self._sock.recv_multipart())
        except MalformedMessage as err:
            raise PolicyLinkError(f"{op}: the policy server's reply is malformed: {err}") from None
        if header.get("id") != self._id:
            raise PolicyLinkError(f"{op}: the policy server answered request {header.get('id')!r}, not {self._id}")
        if not header.get("ok"):
            if header.get("code") == "policy_error":
                raise PolicyFailure(str(header.get("error")))
            raise PolicyLinkError(f"{op}: the policy server refused the request: {header.get('code')}: "
                                  f"{header.get('error')}")
        return header, out

    def hello(self, env: dict[str, Any]) -> PolicyInfo:
        """Tell the policy the environment (pair, action_dim, observation shapes); its self-description."""
        header, _ = self._call("hello", protocol=POLICY_PROTOCOL, env=env)
        if header.get("protocol") != POLICY_PROTOCOL:
            raise PolicyLinkError(f"the policy server speaks protocol {header.get('protocol')!r}, this evaluator "
                                  f"{POLICY_PROTOCOL}")
        try:
            return _info(header)
        except ValueError as err:
            raise PolicyLinkError(f"hello: {err}") from None

    def reset(self) -> None:
        self._call("reset")

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        _, arrays = self._call("act", obs)
        if "actions" not in arrays:
            raise PolicyLinkError(f"act: the policy server's reply has no 'actions' array (got {sorted(arrays)})")
        return arrays["actions"]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        self._ctx.term()


class LocalPolicy:
    """`policy_fn` in this process, described by its attributes as a `PolicyServer` by its arguments: `digest`
    and `chunk_size` (required), `n_obs_steps` (default 1), `obs_keys` (default: all), `name` (default: the
    function's), `reset` (called at each episode's start, if present)."""

    def __init__(self, policy_fn: Callable[[dict[str, np.ndarray]], np.ndarray], source: str = ""):
        self.policy_fn = policy_fn
        self.source = source or getattr(policy_fn, "__qualname__", type(policy_fn).__name__)
        missing = [a for a in ("digest", "chunk_size") if not hasattr(policy_fn, a)]
        if missing:
            raise ValueError(f"policy {self.source}: set its {' and '.join(missing)} as attribute(s) "
                             "(e.g. policy_fn.digest = '<hash of its weights>'; policy_fn.chunk_size = 16)")
        self.info = _info({"name": getattr(policy_fn, "name", self.source), "digest": policy_fn.digest,
                           "chunk_size": policy_fn.chunk_size, "n_obs_steps": getattr(policy_fn, "n_obs_steps", 1),
                           "obs_keys": list(getattr(policy_fn, "obs_keys", ()))})

    def hello(self, env: dict[str, Any]) -> PolicyInfo:
        return self.info

    def reset(self) -> None:
        reset = getattr(self.policy_fn, "reset", None)
        try:
            if reset is not None:
                reset()
        except Exception as err:  # noqa: BLE001 - the policy's failure is the episode's
            raise PolicyFailure(f"reset raised {describe(err)}") from None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        try:
            chunk = np.asarray(self.policy_fn(obs))
        except Exception as err:  # noqa: BLE001
            raise PolicyFailure(f"the policy raised {describe(err)}") from None
        if chunk.dtype.kind not in "biuf":
            raise PolicyFailure(f"the policy returned a {chunk.dtype} array, not numbers")
        return chunk

    def close(self) -> None:
        pass


def load_callable(spec: str) -> LocalPolicy:
    """`package.module:function` -> that policy_fn as a `LocalPolicy` (the same call signature a server takes)."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"--policy {spec!r}: expected tcp://HOST:PORT or package.module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--policy {spec!r}: cannot import it ({describe(err)})") from None
    return LocalPolicy(fn, spec)


def open_policy(spec: str, timeout_s: float = 60.0) -> RemotePolicy | LocalPolicy:
    """`tcp://HOST:PORT` -> RemotePolicy; `package.module:function` -> LocalPolicy."""
    return RemotePolicy(spec, timeout_s) if "://" in spec else load_callable(spec)
