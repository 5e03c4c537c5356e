"""The link between the robot computer (`cotrain_robot.server.ArmServer`) and the policy computer
(`cotrain_robot.client.RemoteRobot`): the protocol and its message framing.

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
from typing import Any

import numpy as np

PROTOCOL = 1


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
