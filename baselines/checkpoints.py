"""Method checkpoints: a plain state dict (`torch.save` of tensors and numbers, read with
`weights_only=True`) plus a JSON file naming the method, policy config, hyperparameters and step."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .methods import METHODS, Method
from .policy import DiffusionPolicy, PolicyConfig

STATE_FILE, META_FILE = "state.pt", "checkpoint.json"


def _replace_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write` into a temporary file beside `path`, then rename it to `path`; on any failure the temporary
    file is removed, `path` is left as it was, and an OSError names `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a failed write names no file: name it
            err.filename = str(path)
        raise


class _KeptWriteError:
    """A binary file's `write` that keeps the OSError a write raised: torch's zip writer turns it into a bare
    RuntimeError ("unexpected pos ..."), without its errno."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def save_torch(obj: Any, path: str | Path) -> None:
    """`torch.save(obj)` to `path` atomically; a write that fails raises its OSError (a full disk: ENOSPC)."""
    def write(f: BinaryIO) -> None:
        kept = _KeptWriteError(f)
        try:
            torch.save(obj, kept)
        except RuntimeError as err:
            if kept.error is None:
                raise
            raise kept.error from err

    _replace_atomically(Path(path), write)


def save_checkpoint(path_dir: str | Path, method: Method) -> Path:
    """Write `state.pt` (the method's state dict) and `checkpoint.json` (method: the name that finds its class,
    `METHODS.key`, and its `version`; policy config, hparams, step), each atomically (`save_torch`)."""
    path = Path(path_dir)
    path.mkdir(parents=True, exist_ok=True)
    save_torch(method.state_dict(), path / STATE_FILE)
    meta = {"format": 1, "method": METHODS.key(type(method)), "method_version": method.version,
            "policy": method.policy.config.to_dict(),
            "hparams": method.hparams, "step": method.step}
    _replace_atomically(path / META_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return path


def read_checkpoint_meta(path_dir: str | Path) -> dict[str, Any]:
    """The checkpoint's `checkpoint.json` (the one place it is read); ValueError where it is missing."""
    path = Path(path_dir) / META_FILE
    if not path.is_file():
        raise ValueError(f"not a checkpoint: {path} is missing")
    return json.loads(path.read_text())


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def restore_checkpoint(path_dir: str | Path, method: Method) -> dict[str, Any]:
    """Load a checkpoint into `method` (exact resume); ValueError, `method` untouched, where the
    checkpoint's method, policy config or hparams differ from `method`'s. Returns the JSON metadata."""
    meta, key = read_checkpoint_meta(path_dir), METHODS.key(type(method))
    if meta["method"] != key:
        raise ValueError(f"{path_dir}: checkpoint of method {meta['method']!r}, expected {key!r}")
    if meta.get("method_version", method.version) != method.version:  # checkpoints before the field: not checked
        raise ValueError(f"{path_dir}: checkpoint of {key!r} version {meta['method_version']}, this suite's "
                         f"{key!r} is version {method.version} (a new version trains anew: its run ids differ)")
    diff = _differences(meta["policy"], method.policy.config.to_dict())
    if diff:
        raise ValueError(f"{path_dir}: checkpoint policy config differs (checkpoint vs expected): {diff}")
    diff = _differences(meta["hparams"], method.hparams)
    if diff:
        raise ValueError(f"{path_dir}: checkpoint hparams differ (checkpoint vs expected): {diff}")
    state = torch.load(Path(path_dir) / STATE_FILE, map_location=method.device, weights_only=True)
    try:
        method.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{path_dir}: the saved weights do not fit the architecture: {err}") from None
    return meta


def load_checkpoint(path_dir: str | Path, expected: PolicyConfig | None = None, method: str | None = None,
                    device: str = "cpu") -> Method:
    """The method saved in `path_dir`, with its weights, EMA, optimizer state and step.

    expected / method: the policy config and method name the caller expects; a mismatch raises a
    ValueError naming the differing fields.
    """
    meta = read_checkpoint_meta(path_dir)
    if method is not None and meta["method"] != method:
        raise ValueError(f"{path_dir}: checkpoint of method {meta['method']!r}, expected {method!r}")
    config = PolicyConfig.from_dict(meta["policy"])
    if expected is not None and expected != config:
        raise ValueError(f"{path_dir}: checkpoint policy config differs (checkpoint vs expected): "
                         f"{_differences(config.to_dict(), expected.to_dict())}")
    loaded = METHODS[meta["method"]](DiffusionPolicy(config), meta["hparams"], device)
    restore_checkpoint(path_dir, loaded)
    return loaded
