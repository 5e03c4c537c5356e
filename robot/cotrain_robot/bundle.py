"""Load an exported policy bundle and run it: numpy plus onnxruntime (or torch) only.

A bundle (written by cotrain-bench's `cotrain export`, `benchmark.deploy.export.export_bundle`) is a folder:

    policy.json   what a person and a program need: observation and action layouts (units, frames),
                  history length, chunk and execution horizons, the denoising schedule, the domain
                  token and guidance scale baked into the graph, normalizer statistics, provenance,
                  the ONNX opset and the measured export error
    policy.onnx   the whole sampling loop as one ONNX graph
    policy.pt2    the same loop as a `torch.export` program

Both graphs map (obs (B, T_o, D) float32 raw observation histories, oldest first; noise (B, H, A)
float32 standard-normal initial noise) to actions (B, H, A) float32 in the robot's action units.
An image policy's graphs take one more input per camera of policy.json's `observation.image_keys`
(after the noise, named by its key): (B, T_o, H, W, 3) uint8 frames of the same steps; `act` and
`act_chunk` then take the observation as a dict {"lowdim": ..., <camera>: ...}.
Normalization, the encoder, every DDIM step with the method's guidance rule and the domain token,
and un-normalization are inside the graph: the caller supplies raw observations and noise only.

It runs with numpy and one of onnxruntime (the `policy` extra) or torch, on a computer without the
suite's training or simulation code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SPEC_FILE = "policy.json"
BUNDLE_FORMAT = "cotrain-bench policy bundle"
BUNDLE_VERSION = 2  # 2: observation layout 2 (orientations as rot6d, not quaternions)
BACKENDS = ("onnx", "torch")


class BundleError(ValueError):
    """A bundle folder is missing, incomplete, or was written by an incompatible version."""


SPEC_FIELDS: dict[str, tuple[type, ...]] = {
    "observation.layout": (list,), "observation.dim": (int,), "observation.n_obs_steps": (int,),
    "action.dim": (int,), "action.low": (list,), "action.high": (list,), "chunk.horizon": (int,),
    "chunk.n_action_steps": (int,), "chunk.control_hz": (int, float), "files.onnx": (str,), "files.torch": (str,)}
"""The policy.json fields a bundle is run from, and their JSON types."""


def _field(spec: dict[str, Any], dotted: str) -> Any:
    value: Any = spec
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_spec(spec: Any, path: Path) -> None:
    """BundleError naming `path` and the field when `spec` lacks a field a bundle is run from or has it
    of the wrong type or size."""
    if not isinstance(spec, dict):
        raise BundleError(f"{path}: expected a JSON object, got a JSON {type(spec).__name__}")
    if spec.get("format") != BUNDLE_FORMAT or spec.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(f"{path}: format {spec.get('format')!r} version {spec.get('bundle_version')!r}, "
                          f"expected {BUNDLE_FORMAT!r} version {BUNDLE_VERSION}")
    for dotted, types in SPEC_FIELDS.items():
        value = _field(spec, dotted)
        if not isinstance(value, types) or isinstance(value, bool):
            raise BundleError(f"{path}: field {dotted!r} must be a JSON {' or '.join(t.__name__ for t in types)}, "
                              f"got {value!r}")
        if isinstance(value, (int, float)) and value <= 0:
            raise BundleError(f"{path}: field {dotted!r} must be positive, got {value!r}")
    layout = spec["observation"]["layout"]
    if not all(isinstance(e, dict) and isinstance(e.get("key"), str) and isinstance(e.get("size"), int)
               and not isinstance(e.get("size"), bool) and e["size"] > 0 for e in layout):
        raise BundleError(f"{path}: field 'observation.layout' must list {{\"key\": str, \"size\": int > 0}} entries")
    if sum(e["size"] for e in layout) != spec["observation"]["dim"]:
        raise BundleError(f"{path}: 'observation.layout' sizes add up to {sum(e['size'] for e in layout)}, "
                          f"'observation.dim' is {spec['observation']['dim']}")
    act = spec["action"]
    for side in ("low", "high"):
        if len(act[side]) != act["dim"] or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in act[side]):
            raise BundleError(f"{path}: field 'action.{side}' must list {act['dim']} numbers ('action.dim')")
    if spec["chunk"]["n_action_steps"] > spec["chunk"]["horizon"]:
        raise BundleError(f"{path}: 'chunk.n_action_steps' {spec['chunk']['n_action_steps']} exceeds "
                          f"'chunk.horizon' {spec['chunk']['horizon']}")


def read_spec(bundle_dir: str | Path) -> dict[str, Any]:
    """The bundle's `policy.json`, checked for format, version and the fields a bundle is run from
    (`check_spec`); BundleError naming the file otherwise."""
    path = Path(bundle_dir) / SPEC_FILE
    if not path.is_file():
        raise BundleError(f"not a policy bundle: {path} is missing")
    try:
        spec = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    check_spec(spec, path)
    return spec


class BundlePolicy:
    """An exported policy: observation histories and noise in, action chunks out.

    Attributes (from policy.json): `layout` ((key, size) per observation key, in order), `obs_dim` D,
    `n_obs_steps` T_o, `horizon` H, `n_action_steps` (the chunk's execution horizon at export),
    `action_dim` A, `action_low` / `action_high` (A,), `control_hz`, `spec` (the whole policy.json),
    `image_keys` (the cameras of an image policy, else ()).
    """

    def __init__(self, bundle_dir: str | Path, backend: str = "onnx", num_threads: int | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.dir = Path(bundle_dir)
        self.spec = spec = read_spec(self.dir)
        self.backend = backend
        obs, act, chunk = spec["observation"], spec["action"], spec["chunk"]
        self.layout: tuple[tuple[str, int], ...] = tuple((e["key"], int(e["size"])) for e in obs["layout"])
        self.obs_dim = int(obs["dim"])
        self.n_obs_steps = int(obs["n_obs_steps"])
        self.action_dim = int(act["dim"])
        self.action_low = np.asarray(act["low"], np.float32)
        self.action_high = np.asarray(act["high"], np.float32)
        self.horizon = int(chunk["horizon"])
        self.n_action_steps = int(chunk["n_action_steps"])
        self.control_hz = float(chunk["control_hz"])
        self.image_keys: tuple[str, ...] = tuple(obs.get("image_keys", ()))
        self.image_shapes = {k: tuple(spec["inputs"][k]["shape"][1:]) for k in self.image_keys}
        path = self.dir / spec["files"][backend]
        if not path.is_file():
            raise BundleError(f"{self.dir}: the {backend} file {path.name} is missing")
        try:
            self._load(path, num_threads)
        except Exception as err:  # noqa: BLE001 - each runtime has its own errors for a corrupt or truncated file
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise BundleError(f"{path}: cannot load the {backend} graph ({first_line})") from None

    def _load(self, path: Path, num_threads: int | None) -> None:
        if self.backend == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = num_threads or 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._names = [i.name for i in self._session.get_inputs()]
        else:
            import torch

            if num_threads:
                torch.set_num_threads(num_threads)
            self._torch = torch
            self._module = torch.export.load(str(path)).module()

    def __repr__(self) -> str:
        prov = self.spec.get("provenance", {})
        return (f"BundlePolicy({str(self.dir)!r}, backend={self.backend!r}, method={prov.get('method')!r}, "
                f"run={prov.get('run_id')!r}, obs ({self.n_obs_steps}, {self.obs_dim}), "
                f"chunk ({self.horizon}, {self.action_dim}))")

    def act(self, obs: np.ndarray | dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
        """Action chunks (B, H, A) float32 for obs (B, T_o, D) and noise (B, H, A); an image policy takes
        obs = {"lowdim": (B, T_o, D), <camera>: (B, T_o, H, W, 3) uint8} (see `image_keys`)."""
        frames = []
        if self.image_keys:
            if not isinstance(obs, dict) or any(k not in obs for k in ("lowdim", *self.image_keys)):
                raise ValueError(f"an image policy takes obs = a dict with keys {['lowdim', *self.image_keys]}")
            for key in self.image_keys:
                frames.append(np.ascontiguousarray(obs[key], dtype=np.uint8))
                if frames[-1].shape != (len(frames[-1]), *self.image_shapes[key]):
                    raise ValueError(f"images {key!r} of shape {frames[-1].shape}; the bundle expects "
                                     f"(B, {', '.join(map(str, self.image_shapes[key]))})")
            obs = obs["lowdim"]
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        noise = np.ascontiguousarray(noise, dtype=np.float32)
        if obs.ndim != 3 or obs.shape[1:] != (self.n_obs_steps, self.obs_dim):
            raise ValueError(f"obs of shape {obs.shape}; the bundle expects (B, {self.n_obs_steps}, {self.obs_dim})")
        if noise.shape != (len(obs), self.horizon, self.action_dim):
            raise ValueError(f"noise of shape {noise.shape}; expected ({len(obs)}, {self.horizon}, {self.action_dim})")
        if any(len(f) != len(obs) for f in frames):
            raise ValueError("obs and images differ in batch size")
        if self.backend == "onnx":
            return self._session.run(None, dict(zip(self._names, (obs, noise, *frames))))[0]
        torch = self._torch
        with torch.inference_mode():
            return self._module(torch.from_numpy(obs), torch.from_numpy(noise), *map(torch.from_numpy, frames)).numpy()

    def act_chunk(self, obs_history: np.ndarray | dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
        """One action chunk (H, A) for one history (T_o, D) (oldest first; an image policy: the dict of
        per-key histories) and noise (H, A)."""
        if isinstance(obs_history, dict):
            return self.act({k: np.asarray(v)[None] for k, v in obs_history.items()}, np.asarray(noise)[None])[0]
        return self.act(np.asarray(obs_history)[None], np.asarray(noise)[None])[0]

    def flatten(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One flat observation (D,) float32 from a dict of the layout's keys (extra keys ignored)."""
        parts = []
        for key, size in self.layout:
            if key not in observation:
                raise KeyError(f"observation has no key {key!r}; the bundle's layout needs "
                               f"{[k for k, _ in self.layout]}")
            value = np.asarray(observation[key], dtype=np.float32).reshape(-1)
            if value.size != size:
                raise ValueError(f"observation key {key!r} has {value.size} values, the layout says {size}")
            parts.append(value)
        return np.concatenate(parts)


def load_bundle(bundle_dir: str | Path, backend: str = "onnx", num_threads: int | None = None) -> BundlePolicy:
    """Load a bundle with the ONNX Runtime (`onnx`) or torch (`torch`, the `.pt2` program) backend.

    num_threads: intra-op threads. None: one for ONNX Runtime (small chunks gain nothing from
    more), and torch's own setting left as it is (torch's thread count is process-wide).
    """
    return BundlePolicy(bundle_dir, backend, num_threads)
