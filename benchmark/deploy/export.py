"""Export a trained run as a self-contained policy bundle (`benchmark.deploy.bundle` loads it).

The whole sampling loop (normalize the observation history -> encoder -> every DDIM step with the
method's guidance rule and domain token -> un-normalize) is one graph mapping
(obs (B, T_o, D) float32, initial noise (B, H, A) float32) -> actions (B, H, A), written twice
(an image policy's graph takes one more input per camera after the noise, named by its key:
(B, T_o, H, W, 3) uint8 frames, the image encoder inside the graph):

- `policy.onnx`: `torch.onnx.export(..., dynamo=True)` (needs onnxscript), opset in policy.json;
- `policy.pt2`: a `torch.export` program (`torch.export.load(path).module()`).

Before the bundle is kept, both files are loaded through `benchmark.deploy.bundle.load_bundle` (the loader
users run) and compared with the PyTorch policy (`method.sample`, EMA weights, as the evaluation
runs it) on recorded observations with fixed noise; the maximum absolute differences go into
policy.json, and the export fails (raises `ExportError`, leaves nothing behind) above `tolerance`.
The bundle is written into a temporary folder and renamed into place.

The traced computation is the policy's own batched sampler, `DiffusionPolicy.ddim` (the one
`DiffusionPolicy.sample` runs, written to keep the batch dimension symbolic under `torch.export`);
`SamplingGraph` only fixes its domain token and guidance scale and maps the graph's inputs to an
observation. The check above measures what batching, export and the runtimes change (rounding).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.policy import LOWDIM

from benchmark.deploy.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, SPEC_FILE, load_bundle

ONNX_OPSET = 18
DEFAULT_TOLERANCE = 1e-4
CHECK_SAMPLES = 64  # observation histories of the numerical check (evenly spaced over the recordings)
NOISE_SEED = 0  # seed of the check's fixed noise
MAX_BATCH = 4096  # upper bound of the exported graphs' dynamic batch dimension
FILES = {"onnx": "policy.onnx", "torch": "policy.pt2"}
STEADY_INPUT, STEADY_STEPS = 0.5, 6  # constant x input whose steady per-step motion policy.json reports
log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The exported graphs do not reproduce the PyTorch policy within the tolerance (or export failed)."""


class SamplingGraph(nn.Module):
    """The policy's batched sampler `DiffusionPolicy.ddim` with the domain token and guidance baked in.

    forward(obs (B, T_o, D), noise (B, H, A), *images) -> actions (B, H, A), raw units. images: an image
    policy's frames (B, T_o, H, W, 3) uint8, one per camera in `image_keys` order. domain_token and
    guidance: as `DiffusionPolicy.sample` takes them (None: the null token, for a policy with a domain
    embedding; guidance applies only toward a domain token, as `DiffusionPolicy.guidance_scale` says).
    """

    def __init__(self, policy: nn.Module, domain_token: int | None, guidance: float):
        super().__init__()
        self.policy = policy
        self.domain = None if domain_token is None else int(domain_token)
        self.guidance = policy.guidance_scale(self.domain, guidance)
        self.image_keys = tuple(policy.config.image_keys)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        if self.image_keys:  # the observation dict of an image policy
            obs = {LOWDIM: obs, **dict(zip(self.image_keys, images))}
        return self.policy.ddim(obs, self.domain, self.guidance, noise)


# -- what goes into policy.json
ROT6D_UNIT = ("rot6d: the first two columns of the rotation matrix, (r00, r10, r20, r01, r11, r21), "
              "from a quaternion (x, y, z, w) by benchmark.deploy.arm.rot6d")
_ROBOT_KEYS = {
    "eef_pos": ("m", "end-effector (grip site) position"),
    "eef_rot6d": (ROT6D_UNIT, "end-effector (grip site) orientation"),
    "gripper": ("opening in [0, 1]: 0 closed, 1 fully open", "gripper opening, normalized by the finger travel"),
}
_OBJECT_KEYS = {
    "pos": ("m", "position of the object's body origin"),
    "rot6d": (ROT6D_UNIT, "orientation of the object's body"),
    "rel_pos": ("m", "object position minus end-effector position (computed from the two above)"),
}
FRAME_TEXT = ("the simulation's world frame, whose axes are aligned with the robot base frame; the robot base "
              "sits at observation.robot_base_position_world in it (rotation: robot_base_quat_world). On a real "
              "arm, express base-frame poses in this frame (benchmark.deploy.arm.to_policy_frame).")


def _layout_entries(layout: tuple[tuple[str, int], ...], objects: tuple[str, ...]) -> list[dict[str, Any]]:
    out, offset = [], 0
    for key, size in layout:
        unit, text = "unitless", "toy state"
        if key in _ROBOT_KEYS:
            unit, text = _ROBOT_KEYS[key]
        else:
            for obj in objects:
                suffix = key[len(obj) + 1:] if key.startswith(obj + "_") else None
                if suffix in _OBJECT_KEYS:
                    unit, text = _OBJECT_KEYS[suffix]
                    text = f"{obj}: {text}"
        out.append({"key": key, "size": size, "offset": offset, "unit": unit, "description": text})
        offset += size
    return out


def _controller(pair: Any, magnitude: float) -> dict[str, Any] | None:
    """robosuite's OSC_POSE controller settings of the pair's target robot (None where unavailable)."""
    try:
        from robosuite import load_composite_controller_config

        from tasks.gaps import build_effect

        kwargs: dict[str, Any] = {"robots": "Panda"}
        for gap in pair.domain("target", magnitude).gaps:
            build_effect(gap).robosuite_kwargs(kwargs)
        part = load_composite_controller_config(controller="BASIC", robot=kwargs["robots"])["body_parts"]["right"]
    except Exception as err:  # noqa: BLE001 - the description is optional; the bundle works without it
        log.warning("no controller description in policy.json: %s", err)
        return None
    keys = ("type", "input_type", "input_ref_frame", "input_min", "input_max", "output_min", "output_max")
    return {"robot": kwargs["robots"], **{k: part.get(k) for k in keys}}


def _action_spec(action_dim: int, low: np.ndarray, high: np.ndarray, controller: dict | None,
                 steady_step: float | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"dim": action_dim, "low": low.tolist(), "high": high.tolist()}
    if controller is None or action_dim != 7:
        spec["layout"] = [{"index": i, "name": f"a{i}"} for i in range(action_dim)]
        return spec
    pos, rot = float(controller["output_max"][0]), float(controller["output_max"][3])
    names = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
    layout = [{"index": i, "name": names[i], "unit": f"controller input; x {pos} m per unit",
               "description": f"end-effector position delta along the base {'xyz'[i]} axis"} for i in range(3)]
    layout += [{"index": 3 + i, "name": names[3 + i], "unit": f"controller input; x {rot} rad per unit",
                "description": f"end-effector rotation delta (axis-angle component about base {'xyz'[i]})"}
               for i in range(3)]
    layout.append({"index": 6, "name": "gripper", "unit": "-1 open, +1 close",
                   "description": "gripper command (the demonstrations use its sign)"})
    spec.update(layout=layout, controller=controller, position_scale_m=pos, rotation_scale_rad=rot,
                hold=("zero motion (a[0:6] = 0) with the gripper command kept: the end effector holds its pose"),
                semantics=("robosuite OSC_POSE: each control step sets the end-effector target at the current "
                           "pose plus the delta (input clipped to its range), in the robot base frame; the "
                           "impedance controller (controller.kp, critically damped) covers part of it per step"))
    if steady_step is not None:
        spec["sim_steady_step_m_per_unit"] = steady_step
        spec["sim_steady_step_note"] = ("end-effector motion per control step per unit of a constant a[0], measured "
                                        "in the target domain at steady state: what the policy saw a unit of action "
                                        "do; a real arm's controller should reproduce it")
    return spec


def _schedule(policy: nn.Module) -> dict[str, Any]:
    c = policy.config
    steps = [int(t) for t in policy.ddim_timesteps.tolist()]
    ab = (policy.sqrt_ab.double() ** 2).tolist()
    return {"sampler": "DDIM, eta = 0", "prediction": "epsilon", "beta_schedule": "squaredcos_cap_v2",
            "num_train_timesteps": c.num_train_timesteps, "num_inference_steps": c.num_inference_steps,
            "timesteps": steps, "alphas_cumprod": [ab[t] for t in steps], "final_alpha_cumprod": 1.0,
            "clip_x0": [-1.0, 1.0], "noise": "standard normal (B, H, A) float32, supplied by the caller"}


def _normalizers(policy: nn.Module) -> dict[str, Any]:
    out = {"rule": "normalized = (x - center) * scale, inside the graph (a dimension whose range was "
                   "below the normalizer's threshold is only centred: scale 1)"}
    for name, norm in (("obs", policy.obs_normalizer), ("action", policy.action_normalizer)):
        out[name] = {"center": norm.center.tolist(), "scale": norm.scale.tolist()}
    return out


def _success(record: dict | None) -> dict[str, Any] | None:
    if not record:
        return None
    out = {}
    for domain in ("target", "source"):
        ev = record.get("eval", {}).get(domain)
        if ev:
            out[domain] = {k: ev.get(k) for k in ("successes", "n", "success_rate", "ci95")}
    return out


# -- recorded observations for the numerical check
# An observation batch is a (K, T_o, D) array, or for an image policy a dict {"lowdim": that,
# <camera>: (K, T_o, H, W, 3) uint8}.
def _map(fn: Any, obs: Any) -> Any:
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def _row(obs: Any, i: int) -> Any:
    return _map(lambda x: x[i], obs)


def _stack(items: list) -> Any:
    """Observations (or histories) stacked along a new first axis; dicts key by key, "lowdim" as float32."""
    if isinstance(items[0], dict):
        return {k: np.stack([x[k] for x in items]).astype(np.float32 if k == "lowdim" else items[0][k].dtype)
                for k in items[0]}
    return np.asarray(np.stack(items), np.float32)


def _histories(dataset: Any, n_obs_steps: int, count: int, image_keys: tuple[str, ...] = ()) -> Any:
    from baselines.data import make_windows

    windows = make_windows(dataset, n_obs_steps, 1, image_keys=image_keys)
    keep = np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int))
    return windows.observations(keep)


def _recorded_observations(run_dir: Path, config: dict | None, method: Any, layout, count: int,
                           observations: Any) -> tuple[Any, str]:
    """(K, T_o, D) histories (an image policy: the observation dict) and a sentence saying where they come from."""
    from tasks.dataset import load_dataset

    pcfg = method.policy.config
    if observations is not None and not isinstance(observations, (str, Path)):
        if isinstance(observations, dict):
            obs = {k: np.asarray(v, np.float32 if k == "lowdim" else None) for k, v in observations.items()}
        else:
            obs = np.asarray(observations, np.float32)
        return _map(lambda x: x[:count], obs), "observation histories given to export_bundle"
    keys = pcfg.image_keys
    if observations is not None:
        return (_histories(load_dataset(observations, layout), pcfg.n_obs_steps, count, keys),
                f"dataset {observations}")
    if config is not None:
        found = _find_demos(run_dir.parent / "_demos", config)
        if found is not None:
            what, path = found
            return _histories(load_dataset(path, layout), pcfg.n_obs_steps, count, keys), f"{what} ({path.name})"
    if config is None:
        raise ExportError(f"{run_dir}: no config.json and no observations given: nothing to check the export on")
    return _rollout_observations(config, method, count), "a short rollout of the policy in the target domain"


def _find_demos(demos_dir: Path, config: dict) -> tuple[str, Path] | None:
    """The run's cached target demos: its replay set, else its training demos, else its validation set.

    Files are recognized by their attributes (pair, domain, magnitude, backend where recorded) and by
    the seed stream their episode seeds fall in (tasks.seeds), not by the cache's hash.
    """
    import h5py

    from tasks.seeds import SPAN, STREAM_BASE

    wanted = {"replay": "the run's target replay demos", "target_demos": "the run's target demos",
              "validation": "the run's target validation demos"}
    found: dict[str, Path] = {}
    for path in sorted(demos_dir.glob("*.hdf5")) if demos_dir.is_dir() else []:
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["data"].attrs.items()}
                demos = [k for k in f["data"] if k.startswith("demo_")]
                seed = int(f["data"][demos[0]].attrs["episode_seed"]) if demos else None
        except (OSError, KeyError, ValueError):
            continue
        if (attrs.get("pair") != config.get("pair") or attrs.get("domain") != "target" or seed is None
                or not np.isclose(float(attrs.get("magnitude", -1)), float(config.get("magnitude", 1.0)))):
            continue
        if "backend" in attrs and "backend" in config and attrs["backend"] != config["backend"]:
            continue
        for stream in wanted:
            start = STREAM_BASE[stream] + int(config.get("seed", 0)) * SPAN
            if start <= seed < start + SPAN:
                found.setdefault(stream, path)
    for stream, what in wanted.items():
        if stream in found:
            return what, found[stream]
    return None


def _rollout_observations(config: dict, method: Any, count: int) -> Any:
    """Histories seen by the PyTorch policy in one target episode (at most `count` steps)."""
    from collections import deque

    from tasks import get_pair, make_env
    from tasks.seeds import episode_seeds

    pcfg = method.policy.config
    env = make_env(config["pair"], "target", config["magnitude"], obs=get_pair(config["pair"]).obs,
                   backend=config.get("backend", "robosuite"))
    try:
        obs, _ = env.reset(seed=episode_seeds("validation", config.get("seed", 0), 1)[0])
        hist = deque([obs] * pcfg.n_obs_steps, maxlen=pcfg.n_obs_steps)
        out, gen = [], torch.Generator().manual_seed(NOISE_SEED)
        while len(out) < count:
            with torch.inference_mode():
                chunk = method.sample(_map(lambda x: x[None], _stack(list(hist))), "target", generator=gen)[0]
            for action in chunk[: pcfg.n_action_steps]:
                out.append(_stack(list(hist)))
                obs, _, terminated, truncated, _ = env.step(action)
                hist.append(obs)
                if terminated or truncated or len(out) >= count:
                    return _stack(out)
        return _stack(out)
    finally:
        env.close()


def _env_facts(pair_name: str, magnitude: float) -> dict[str, Any]:
    """Action bounds, robot base pose and a reference end-effector pose from the target env."""
    from tasks import make_env

    env = make_env(pair_name, "target", magnitude)
    try:
        facts: dict[str, Any] = {"action_low": np.asarray(env.action_space.low, np.float32),
                                 "action_high": np.asarray(env.action_space.high, np.float32)}
        rs = getattr(env, "rs", None)
        if rs is not None:
            robot = rs.robots[0]
            obs, _ = env.reset(seed=0)
            from scipy.spatial.transform import Rotation

            facts.update(
                robot_base_position_world=np.asarray(robot.base_pos, float).round(6).tolist(),
                robot_base_quat_world=Rotation.from_matrix(np.asarray(robot.base_ori)).as_quat().round(6).tolist(),
                table_top_height_world=float(np.asarray(rs.table_offset)[2]) if hasattr(rs, "table_offset") else None,
                reference_eef_pose={"eef_pos": env.last_obs["eef_pos"].round(4).tolist(),
                                    "eef_quat": env.last_obs["eef_quat"].round(4).tolist(),
                                    "note": "the end effector at the start of an episode (robot home pose)"})
            if env.action_space.shape == (7,):  # OSC_POSE: how far the simulated arm actually moves per step
                xs = [env.last_obs["eef_pos"][0]]
                for _ in range(STEADY_STEPS):
                    env.step(np.r_[STEADY_INPUT, np.zeros(6)])
                    xs.append(env.last_obs["eef_pos"][0])
                facts["sim_steady_step_m_per_unit"] = round(float(np.mean(np.diff(xs)[-3:]) / STEADY_INPUT), 5)
        return facts
    finally:
        env.close()


# -- export
@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's (process-wide) thread count set to n inside, restored after: one thread is the fastest
    for one chunk, and many times faster than two on a busy CPU (spinning thread pools)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet():
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_files(graph: SamplingGraph, example: tuple[torch.Tensor, ...], out: Path, opset: int) -> None:
    """Write both formats; `example`: (obs, noise, *images), the images in `graph.image_keys` order."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    shapes = ({0: batch}, {0: batch}) + ((tuple({0: batch} for _ in example[2:]),) if len(example) > 2 else ())
    with _quiet(), torch.no_grad():
        program = torch.export.export(graph, example, dynamic_shapes=shapes)
        torch.export.save(program, out / FILES["torch"])
        onnx_program = torch.onnx.export(graph, example, dynamo=True, opset_version=opset, verbose=False,
                                         input_names=["obs", "noise", *graph.image_keys], output_names=["actions"],
                                         dynamic_shapes=shapes)
        onnx_program.save(str(out / FILES["onnx"]))


def _latency_ms(policy: Any, obs: Any, noise: np.ndarray, calls: int = 20) -> float:
    policy.act_chunk(_row(obs, 0), noise[0])
    t0 = time.perf_counter()
    for i in range(calls):
        policy.act_chunk(_row(obs, i % len(noise)), noise[i % len(noise)])
    return (time.perf_counter() - t0) / calls * 1e3


def _package_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "onnxscript", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def export_bundle(run_dir: str | Path, out_dir: str | Path, tolerance: float = DEFAULT_TOLERANCE,
                  domain: str = "target", guidance: float | None = None, observations: Any = None,
                  opset: int = ONNX_OPSET, overwrite: bool = False, check_samples: int = CHECK_SAMPLES) -> Path:
    """Export the run in `run_dir` (its `checkpoint/`, `config.json`, `record.json`) to the bundle `out_dir`.

    domain: the domain token baked in ("target": the robot the policy is for); used only by methods with
    a domain embedding. guidance: overrides a guided method's guidance hyperparameter (None: the run's).
    observations: the check's observation histories (K, T_o, D) or an HDF5 dataset path; None: the run's
    target replay demos from `<runs_dir>/_demos`, else its target demos, else a short target rollout.
    Raises ExportError (and leaves no bundle) when either format differs from the PyTorch policy by more
    than `tolerance` (max abs, action units). Returns `out_dir`.
    """
    with _torch_threads(1):
        return _export(Path(run_dir), Path(out_dir), tolerance, domain, guidance, observations, opset, overwrite,
                       check_samples)


def _export(run_dir: Path, out_dir: Path, tolerance: float, domain: str, guidance: float | None,
            observations: Any, opset: int, overwrite: bool, check_samples: int) -> Path:
    from baselines import load_checkpoint
    from baselines.methods import domain_id
    from tasks import BASE_TASKS, get_pair, obs_layout
    from tasks.base_tasks import LAYOUT_VERSION

    from benchmark.harness.config import SUITE_VERSION
    from benchmark.harness.fingerprint import git_revision

    ckpt = run_dir / "checkpoint" if (run_dir / "checkpoint").is_dir() else run_dir
    if not (ckpt / "checkpoint.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint (expected {run_dir / 'checkpoint' / 'checkpoint.json'})")
    if out_dir.exists() and not overwrite:
        raise ValueError(f"{out_dir} exists (pass overwrite=True / --overwrite to replace it)")
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else None
    record = json.loads((run_dir / "record.json").read_text()) if (run_dir / "record.json").is_file() else None
    if config is None:
        raise FileNotFoundError(f"{run_dir}: no config.json (the bundle needs the run's pair for its layout)")

    method = load_checkpoint(ckpt, device="cpu")
    policy = method.ema.model.eval()
    pcfg = policy.config
    pair = get_pair(config["pair"])
    layout = obs_layout(pair.base_task)
    if sum(n for _, n in layout) != pcfg.obs_dim:
        raise ExportError(f"the pair's layout has {sum(n for _, n in layout)} values, the policy {pcfg.obs_dim}")
    if not method.guided and guidance not in (None, 0):
        raise ValueError(f"method {method.name!r} is not guided; got guidance={guidance}")
    lam = (method.hparams["guidance"] if guidance is None else float(guidance)) if method.guided else 0.0
    token = domain_id(domain) if method.uses_domain_embedding else None
    graph = SamplingGraph(policy, token, lam).eval()

    obs, obs_source = _recorded_observations(run_dir, config, method, layout, check_samples, observations)
    lowdim = obs["lowdim"] if isinstance(obs, dict) else obs
    if lowdim.ndim != 3 or lowdim.shape[1:] != (pcfg.n_obs_steps, pcfg.obs_dim):
        raise ExportError(f"check observations of shape {lowdim.shape}, "
                          f"expected (K, {pcfg.n_obs_steps}, {pcfg.obs_dim})")
    if pcfg.image_keys and not (isinstance(obs, dict) and all(k in obs for k in pcfg.image_keys)):
        raise ExportError(f"an image policy's check observations need the images {list(pcfg.image_keys)}")
    frames = [np.ascontiguousarray(obs[k]) for k in pcfg.image_keys]
    noise = np.random.default_rng(NOISE_SEED).standard_normal((len(lowdim), pcfg.horizon, pcfg.action_dim))
    noise = noise.astype(np.float32)
    with torch.inference_mode():
        reference = method.sample(obs, domain, guidance=lam if method.guided else None, noise=noise)
        composed = graph(torch.from_numpy(lowdim), torch.from_numpy(noise), *map(torch.from_numpy, frames)).numpy()
    if not np.isfinite(reference).all():
        raise ExportError("the PyTorch policy returns non-finite actions on the check observations")

    robot_task = pair.base_task != "toy"
    facts = _env_facts(pair.name, config["magnitude"]) if robot_task else {}
    low = facts.pop("action_low", np.full(pcfg.action_dim, -1.0, np.float32))
    high = facts.pop("action_high", np.full(pcfg.action_dim, 1.0, np.float32))
    steady = facts.pop("sim_steady_step_m_per_unit", None)
    objects = BASE_TASKS[pair.base_task].objects
    spec: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "bundle_version": BUNDLE_VERSION, "files": dict(FILES),
        "inputs": {"obs": {"shape": ["B", pcfg.n_obs_steps, pcfg.obs_dim], "dtype": "float32",
                           "meaning": "raw observation histories, oldest first (not normalized)"},
                   "noise": {"shape": ["B", pcfg.horizon, pcfg.action_dim], "dtype": "float32",
                             "meaning": "initial DDIM noise, standard normal"},
                   **{key: {"shape": ["B", pcfg.n_obs_steps, *f.shape[2:]], "dtype": "uint8",
                            "meaning": f"camera {key!r} frames of the same steps as obs, oldest first, rows top to "
                                       "bottom, RGB channels last (as the environment renders them)"}
                      for key, f in zip(pcfg.image_keys, frames)}},
        "outputs": {"actions": {"shape": ["B", pcfg.horizon, pcfg.action_dim], "dtype": "float32",
                                "meaning": "action chunk in the action layout's units, first action first"}},
        "observation": {"dim": pcfg.obs_dim, "n_obs_steps": pcfg.n_obs_steps,
                        **({"layout_version": LAYOUT_VERSION} if robot_task else {}),
                        "image_keys": list(pcfg.image_keys),
                        "layout": _layout_entries(layout, objects), "frame": FRAME_TEXT,
                        "history": "the last n_obs_steps observations, oldest first; at an episode's start the "
                                   "first observation is repeated", **facts},
        "action": _action_spec(pcfg.action_dim, low, high,
                               _controller(pair, config["magnitude"]) if robot_task else None, steady),
        "chunk": {"horizon": pcfg.horizon, "n_action_steps": pcfg.n_action_steps, "control_hz": _control_hz(),
                  "meaning": "the graph predicts `horizon` actions; the runner executes the first "
                             "`n_action_steps` (the execution horizon) before predicting again"},
        "sampling": _schedule(policy),
        "conditioning": {"method": method.name, "domain": domain if token is not None else None,
                         "domain_token": token, "null_token": 2 if token is not None else None,
                         "guidance": lam if method.guided else None,
                         "rule": ("eps = eps(x, o, null) + (1 + guidance) * (eps(x, o, domain) - eps(x, o, null))"
                                  if graph.guidance else "eps = eps(x, o, domain)" if token is not None else
                                  "eps = eps(x, o) (no domain input)")},
        "normalizer": _normalizers(policy),
        "policy_config": pcfg.to_dict(),
        "provenance": {"run_id": config.get("run_id"), "config_hash": config.get("run_id"),
                       "pair": pair.name, "pair_version": pair.version, "magnitude": config.get("magnitude"),
                       "method": method.name, "seed": config.get("seed"), "profile": config.get("profile"),
                       "hparams": method.hparams, "checkpoint_step": method.step,
                       "success": _success(record), "suite_version": SUITE_VERSION,
                       "git_revision": git_revision(),
                       "trained_at_git_revision": (record or {}).get("fingerprint", {}).get("git"),
                       "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "packages": _package_versions()},
        "onnx": {"opset": opset, "exporter": "torch.onnx.export(dynamo=True)",
                 "input_names": ["obs", "noise", *pcfg.image_keys],
                 "output_names": ["actions"]},
        "check": {"tolerance": tolerance, "observations": obs_source, "samples": int(len(lowdim)),
                  "noise": f"numpy default_rng({NOISE_SEED}).standard_normal, float32",
                  "reference": "method.sample (EMA weights, PyTorch eager, one row at a time); the bundle "
                               "is run one row at a time too (act_chunk), as the runner calls it",
                  "max_abs_diff": None},
    }

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        example = (torch.from_numpy(lowdim[:2]), torch.from_numpy(noise[:2]),
                   *(torch.from_numpy(f[:2]) for f in frames))
        try:
            _export_files(graph, example, tmp, opset)
        except Exception as err:  # noqa: BLE001 - re-raised with context
            raise ExportError(f"export failed: {type(err).__name__}: {err}") from err
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=2))
        diffs, latency = {}, {}
        for backend in FILES:
            loaded = load_bundle(tmp, backend, num_threads=1)
            out = np.stack([loaded.act_chunk(_row(obs, i), n) for i, n in enumerate(noise)])  # as the runner does
            diffs[backend] = float(np.max(np.abs(out - reference))) if np.isfinite(out).all() else float("inf")
            latency[backend] = round(_latency_ms(loaded, obs, noise), 3)
        spec["check"]["max_abs_diff"] = diffs
        spec["check"]["max_abs_diff_composed_graph_eager"] = float(np.max(np.abs(composed - reference)))
        spec["check"]["latency_ms_per_chunk"] = {**latency, "batch": 1, "threads": 1}
        bad = {k: v for k, v in diffs.items() if not v <= tolerance}
        if bad:
            raise ExportError(f"exported policy differs from PyTorch by more than {tolerance}: "
                              + ", ".join(f"{k} {v:.3g}" for k, v in bad.items()))
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=2))
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s: max abs diff %s", out_dir, diffs)
    return out_dir


def _control_hz() -> float:
    from tasks.env import CONTROL_FREQ

    return float(CONTROL_FREQ)
