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
| `send_action`    | array `action` (1-D, float)   |                                                         |
| `status`         |                               | `done` (bool), `success` (bool or null)                 |
| `heartbeat`      |                               | `state`                                                 |
| `close`          |                               | (the server holds the arm and ends the session)         |

A message that breaks this format (a header that is not a JSON object, fields of the wrong type, array
entries that do not match the frames, dtypes other than bool/int/uint/float, more than `MAX_ARRAYS`
arrays, a header over `MAX_HEADER_BYTES` or arrays over `MAX_PAYLOAD_BYTES`) or a request that breaks
its op's rules (an unknown op, missing or extra arrays, a wrong-typed field, an `action` that is not
finite or changes length within an episode) is answered `bad_request`
and changes nothing; the server keeps serving. Frames over `MAX_FRAME_BYTES` are dropped by the
transport itself (ZeroMQ closes that connection; the client sees no reply).

Replies: `{"ok": true, "id": <the request's id>, ...}` or `{"ok": false, "id", "code", "error"}` with
`code` one of `link_lost` (the session was dropped and the arm held: reconnect), `busy` (another session
is live), `no_session`, `bad_request`, `robot_error`.

Liveness: the client sends a `heartbeat` every `heartbeat_s` from a background thread (its own socket),
so the server hears from a live client even while it is computing a chunk. When the server hears
nothing from the session for `link_timeout_s`, it HOLDS the arm (sends the hold action: zero motion,
last gripper command kept), marks the session lost, and answers its later requests with `link_lost`.
The client raises `ConnectionLost` when a request gets no reply within `timeout_s`, when a heartbeat
goes unanswered that long while no request is in flight, or on `link_lost`: the runner stops the
episode and it is saved as failed. Only a `link_lost` reply tells the client that the arm is held
(`ConnectionLost.hold_confirmed`); after a silence it cannot know.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

PROTOCOL = 1
MAX_ARRAYS = 64
"""The most arrays one message may carry."""
MAX_HEADER_BYTES = 64 * 1024
"""The largest header."""
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024
"""The largest total of array bytes in one message (camera frames included): more is `bad_request`."""
MAX_FRAME_BYTES = 2 * MAX_PAYLOAD_BYTES
"""The largest frame the server's transport accepts at all (a bigger one drops the connection)."""
ARRAY_KINDS = "biuf"
"""numpy dtype kinds an array may have: bool, signed and unsigned integers, floats."""


class MalformedMessage(ValueError):
    """A message that does not follow the format above; the server answers it with `bad_request`."""


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> list[bytes]:
    """[JSON header, raw array bytes...] with the arrays described in header["arrays"]."""
    frames: list[bytes] = []
    meta = []
    for name, value in (arrays or {}).items():
        arr = np.ascontiguousarray(value)
        meta.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)})
        frames.append(arr.tobytes())
    return [json.dumps({**header, "arrays": meta}).encode()] + frames


def _header(frames: list[bytes]) -> dict[str, Any]:
    if not frames:
        raise MalformedMessage("empty message")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise MalformedMessage(f"header of {len(frames[0])} bytes, more than {MAX_HEADER_BYTES}")
    try:
        header = json.loads(frames[0].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MalformedMessage(f"header is not UTF-8 JSON: {err}") from None
    if not isinstance(header, dict):
        raise MalformedMessage(f"header is a JSON {type(header).__name__}, not an object")
    return header


def _array(entry: Any, frame: bytes, index: int) -> tuple[str, np.ndarray]:
    """One array from its header entry and its frame, every field checked."""
    if not isinstance(entry, dict):
        raise MalformedMessage(f"arrays[{index}] is not an object")
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    if not isinstance(name, str) or not name:
        raise MalformedMessage(f"arrays[{index}]: 'name' must be a non-empty string")
    if not isinstance(dtype, str):
        raise MalformedMessage(f"array {name!r}: 'dtype' must be a numpy dtype string such as '<f4'")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as err:
        raise MalformedMessage(f"array {name!r}: unknown dtype {dtype!r} ({err})") from None
    if dt.kind not in ARRAY_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise MalformedMessage(f"array {name!r}: dtype {dtype!r} is not a plain bool, integer or float type")
    if (not isinstance(shape, list) or len(shape) > 32
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise MalformedMessage(f"array {name!r}: 'shape' must be a list of at most 32 non-negative integers")
    if math.prod(shape) * dt.itemsize != len(frame):
        raise MalformedMessage(f"array {name!r}: shape {shape} of {dtype} needs {math.prod(shape) * dt.itemsize} "
                               f"bytes, {len(frame)} sent")
    return name, np.frombuffer(frame, dtype=dt).reshape(shape).copy()


def unpack(frames: list[bytes]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of `pack`; `MalformedMessage` (a ValueError) for anything that does not follow the format:
    a header that is not a JSON object, an `op` that is not a string, an `id` that is not an integer or
    null, a `session` that is not a string or null, array entries that do not match the frames sent
    (count, names, dtypes, shapes, byte counts), or a message over the size limits."""
    header = _header(frames)
    if "op" in header and not isinstance(header["op"], str):
        raise MalformedMessage(f"'op' must be a string, got {type(header['op']).__name__}")
    msg_id = header.get("id")
    if msg_id is not None and (not isinstance(msg_id, int) or isinstance(msg_id, bool)):
        raise MalformedMessage(f"'id' must be an integer or null, got {type(msg_id).__name__}")
    if header.get("session") is not None and not isinstance(header["session"], str):
        raise MalformedMessage(f"'session' must be a string or null, got {type(header['session']).__name__}")
    meta = header.get("arrays", [])
    if not isinstance(meta, list):
        raise MalformedMessage(f"'arrays' must be a list, got {type(meta).__name__}")
    if len(meta) != len(frames) - 1:
        raise MalformedMessage(f"{len(meta)} arrays described, {len(frames) - 1} sent")
    if len(meta) > MAX_ARRAYS:
        raise MalformedMessage(f"{len(meta)} arrays, more than {MAX_ARRAYS}")
    payload = sum(len(f) for f in frames[1:])
    if payload > MAX_PAYLOAD_BYTES:
        raise MalformedMessage(f"{payload} bytes of arrays, more than {MAX_PAYLOAD_BYTES}")
    arrays: dict[str, np.ndarray] = {}
    for index, (entry, frame) in enumerate(zip(meta, frames[1:])):
        name, value = _array(entry, frame, index)
        if name in arrays:
            raise MalformedMessage(f"array {name!r} sent twice")
        arrays[name] = value
    return header, arrays


def bind_reply_socket(address: str) -> tuple[Any, Any, str]:
    """A ZeroMQ REP socket bound to `address` (no linger; frames over `MAX_FRAME_BYTES` dropped by the
    transport): `(context, socket, the address it bound)`. The caller closes both."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    try:
        sock.bind(address)
    except BaseException:
        sock.close(0)
        ctx.term()
        raise
    return ctx, sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)
