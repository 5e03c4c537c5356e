"""Export a trained run as a self-contained policy bundle (`cotrain_robot.bundle` loads it).

The whole sampling loop (normalize the observation history -> encoder -> every DDIM step with the
method's guidance rule and domain token -> un-normalize) is one graph mapping
(obs (B, T_o, D) float32, initial noise (B, H, A) float32) -> actions (B, H, A), written twice
(an image policy's graph takes one more input per camera after the noise, named by its key:
(B, T_o, H, W, 3) uint8 frames, the image encoder inside the graph):

- `policy.onnx`: `torch.onnx.export(..., dynamo=True)` (needs onnxscript), opset in policy.json;
- `policy.pt2`: a `torch.export` program (`torch.export.load(path).module()`).

Before the bundle is kept, both files are loaded through `cotrain_robot.bundle.load_bundle` (the loader
users run) and compared with the PyTorch policy (`method.sample`, EMA weights, as the evaluation
runs it) on recorded observations with fixed noise; the maximum absolute differences go into
policy.json, and the export fails (raises `ExportError`, leaves nothing behind) above `tolerance`.
The bundle is written into a temporary folder and renamed into place.

Only a finished run is exported (its `done` marker, or a checkpoint at the last of the steps its config
names); an unfinished one only when asked (`allow_unfinished`), and then policy.json says so
(`provenance.finished`: false, with `checkpoint_step` and `total_steps`).

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
from cotrain_robot.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, SPEC_FILE, load_bundle

from benchmark.deploy.check_data import NOISE_SEED, obs_row, recorded_observations
from benchmark.deploy.policy_spec import (FRAME_TEXT, action_spec, control_hz, controller_spec, env_facts,
                                          evaluation_seeds, layout_entries, normalizer_stats, sampling_schedule,
                                          simulated_success)

ONNX_OPSET = 18
DEFAULT_TOLERANCE = 1e-4
CHECK_SAMPLES = 64  # observation histories of the numerical check (evenly spaced over the recordings)
MAX_BATCH = 4096  # upper bound of the exported graphs' dynamic batch dimension
FILES = {"onnx": "policy.onnx", "torch": "policy.pt2"}
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
    policy.act_chunk(obs_row(obs, 0), noise[0])
    t0 = time.perf_counter()
    for i in range(calls):
        policy.act_chunk(obs_row(obs, i % len(noise)), noise[i % len(noise)])
    return (time.perf_counter() - t0) / calls * 1e3


def training_progress(run_dir: Path, config: dict) -> dict[str, Any]:
    """{"finished", "checkpoint_step", "total_steps"} of the run: finished when its `done` marker is there or
    its checkpoint is at the last step its config names (`steps`, else `profile_size.steps`; None where it
    names none)."""
    from baselines import read_checkpoint_meta

    step = read_checkpoint_meta(run_dir / "checkpoint" if (run_dir / "checkpoint").is_dir() else run_dir)["step"]
    total = config.get("steps") or (config.get("profile_size") or {}).get("steps")
    finished = (run_dir / "done").exists() or (total is not None and step >= total)
    return {"finished": finished, "checkpoint_step": step, "total_steps": total}


def export_bundle(run_dir: str | Path, out_dir: str | Path, tolerance: float = DEFAULT_TOLERANCE,
                  domain: str = "target", guidance: float | None = None, observations: Any = None,
                  opset: int = ONNX_OPSET, overwrite: bool = False, check_samples: int = CHECK_SAMPLES,
                  allow_unfinished: bool = False) -> Path:
    """Export the run in `run_dir` (its `checkpoint/`, `config.json`, `record.json`) to the bundle `out_dir`.

    domain: the domain token baked in ("target": the robot the policy is for); used only by methods with
    a domain embedding. guidance: overrides a guided method's guidance hyperparameter (None: the run's).
    observations: the check's observation histories (K, T_o, D) or an HDF5 dataset path; None: the run's
    target replay demos from `<runs_dir>/_demos`, else its target demos, else a short target rollout.
    allow_unfinished: export a run that is not finished (`training_progress`) instead of raising ValueError.
    Raises ExportError (and leaves no bundle) when either format differs from the PyTorch policy by more
    than `tolerance` (max abs, action units); a write that fails raises its OSError, noted with `out_dir`
    (and leaves no bundle). Returns `out_dir`.
    """
    with _torch_threads(1):
        return _export(Path(run_dir), Path(out_dir), tolerance, domain, guidance, observations, opset, overwrite,
                       check_samples, allow_unfinished)


def _export(run_dir: Path, out_dir: Path, tolerance: float, domain: str, guidance: float | None,
            observations: Any, opset: int, overwrite: bool, check_samples: int, allow_unfinished: bool) -> Path:
    ckpt = run_dir / "checkpoint" if (run_dir / "checkpoint").is_dir() else run_dir
    if out_dir.exists() and not overwrite:
        raise ValueError(f"{out_dir} exists (pass overwrite=True / --overwrite to replace it)")
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else None
    record = json.loads((run_dir / "record.json").read_text()) if (run_dir / "record.json").is_file() else None
    if config is None:
        raise FileNotFoundError(f"{run_dir}: no config.json (the bundle needs the run's pair for its layout)")
    progress = training_progress(run_dir, config)
    if not progress["finished"] and not allow_unfinished:
        total = "an unknown number" if progress["total_steps"] is None else progress["total_steps"]
        raise ValueError(f"{run_dir} is not finished: no done marker, its checkpoint is at step "
                         f"{progress['checkpoint_step']} of {total}; finish the run, or pass "
                         "allow_unfinished=True / --allow-unfinished to export it as it is")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    try:  # before the work: a folder that cannot be written fails now
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as err:
        err.add_note(f"writing the bundle {out_dir}")
        raise
    try:
        return _export_into(tmp, run_dir, out_dir, ckpt, config, record, progress, tolerance, domain, guidance,
                            observations, opset, check_samples)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_into(tmp: Path, run_dir: Path, out_dir: Path, ckpt: Path, config: dict, record: dict | None,
                 progress: dict[str, Any], tolerance: float, domain: str, guidance: float | None,
                 observations: Any, opset: int, check_samples: int) -> Path:
    """Export into the empty folder `tmp`, check the bundle there, and rename it to `out_dir`."""
    from baselines import load_checkpoint
    from baselines.methods import domain_id
    from tasks import BASE_TASKS, get_pair
    from tasks.base_tasks import LAYOUT_VERSION, pair_layout

    from benchmark.harness.config import SUITE_VERSION
    from benchmark.harness.fingerprint import git_revision, package_versions

    method = load_checkpoint(ckpt, device="cpu")
    policy = method.ema.model.eval()
    pcfg = policy.config
    pair = get_pair(config["pair"])
    layout = pair_layout(pair)
    if sum(n for _, n in layout) != pcfg.obs_dim:
        raise ExportError(f"the pair's layout has {sum(n for _, n in layout)} values, the policy {pcfg.obs_dim}")
    if not method.guided and guidance not in (None, 0):
        raise ValueError(f"method {method.name!r} is not guided; got guidance={guidance}")
    lam = (method.hparams["guidance"] if guidance is None else float(guidance)) if method.guided else 0.0
    token = domain_id(domain) if method.uses_domain_embedding else None
    graph = SamplingGraph(policy, token, lam).eval()

    obs, obs_source = recorded_observations(run_dir, config, method, layout, check_samples, observations)
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

    robot_task = BASE_TASKS[pair.base_task].simulated
    facts = env_facts(pair.name, config["magnitude"]) if robot_task else {}
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
                        "layout": layout_entries(layout, objects), "frame": FRAME_TEXT,
                        "history": "the last n_obs_steps observations, oldest first; at an episode's start the "
                                   "first observation is repeated", **facts},
        "action": action_spec(pcfg.action_dim, low, high,
                              controller_spec(pair, config["magnitude"]) if robot_task else None, steady),
        "chunk": {"horizon": pcfg.horizon, "n_action_steps": pcfg.n_action_steps, "control_hz": control_hz(),
                  "meaning": "the graph predicts `horizon` actions; the runner executes the first "
                             "`n_action_steps` (the execution horizon) before predicting again"},
        "evaluation": evaluation_seeds(),
        "sampling": sampling_schedule(policy),
        "conditioning": {"method": method.name, "domain": domain if token is not None else None,
                         "domain_token": token, "null_token": 2 if token is not None else None,
                         "guidance": lam if method.guided else None,
                         "rule": ("eps = eps(x, o, null) + (1 + guidance) * (eps(x, o, domain) - eps(x, o, null))"
                                  if graph.guidance else "eps = eps(x, o, domain)" if token is not None else
                                  "eps = eps(x, o) (no domain input)")},
        "normalizer": normalizer_stats(policy),
        "policy_config": pcfg.to_dict(),
        "provenance": {"run_id": config.get("run_id"), "config_hash": config.get("run_id"),
                       "pair": pair.name, "pair_version": pair.version, "magnitude": config.get("magnitude"),
                       "method": method.name, "seed": config.get("seed"), "profile": config.get("profile"),
                       "hparams": method.hparams, "finished": progress["finished"],
                       "checkpoint_step": method.step, "total_steps": progress["total_steps"],
                       "success": simulated_success(record), "suite_version": SUITE_VERSION,
                       "git_revision": git_revision(),
                       "trained_at_git_revision": (record or {}).get("fingerprint", {}).get("git"),
                       "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "packages": package_versions(("torch", "onnx", "onnxruntime", "onnxscript", "numpy"))},
        "onnx": {"opset": opset, "exporter": "torch.onnx.export(dynamo=True)",
                 "input_names": ["obs", "noise", *pcfg.image_keys],
                 "output_names": ["actions"]},
        "check": {"tolerance": tolerance, "observations": obs_source, "samples": int(len(lowdim)),
                  "noise": f"numpy default_rng({NOISE_SEED}).standard_normal, float32",
                  "reference": "method.sample (EMA weights, PyTorch eager, one row at a time); the bundle "
                               "is run one row at a time too (act_chunk), as the runner calls it",
                  "max_abs_diff": None},
    }

    try:
        example = (torch.from_numpy(lowdim[:2]), torch.from_numpy(noise[:2]),
                   *(torch.from_numpy(f[:2]) for f in frames))
        try:
            _export_files(graph, example, tmp, opset)
        except OSError:
            raise  # a write that failed: named below as such
        except Exception as err:  # noqa: BLE001 - re-raised with context
            raise ExportError(f"export failed: {type(err).__name__}: {err}") from err
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=2))
        diffs, latency = {}, {}
        for backend in FILES:
            loaded = load_bundle(tmp, backend, num_threads=1)
            out = np.stack([loaded.act_chunk(obs_row(obs, i), n) for i, n in enumerate(noise)])  # as the runner does
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
        try:
            tmp.rename(out_dir)
        except BaseException:
            if old.exists():
                old.rename(out_dir)  # the bundle it was to replace stays
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        err.add_note(f"writing the bundle {out_dir}")
        raise
    log.info("exported %s: max abs diff %s", out_dir, diffs)
    return out_dir

