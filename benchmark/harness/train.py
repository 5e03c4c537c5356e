"""The one training loop shared by every method: seeded, logged (JSONL), checkpointed, exactly resumable.

`run_dir/train_log.jsonl`: one line per `log_every` steps (and per validation), `{"step": s, <each loss
term, the mean since the previous line>: ..., "val_target": ...}` (val_target only on validation steps).
`run_dir/train_log.csv` (`TrainConfig.log_csv`, opt-in): the same lines as CSV rows, a `step` column then one
column per scalar, written as the JSONL log is (for a spreadsheet, a plotting script or `tail -f`).
`run_dir/checkpoint/`: the method's checkpoint (`baselines.save_checkpoint`) plus `trainer.pt` (torch's
and the sampler's generator states), replaced atomically. A run whose directory holds a checkpoint
continues from its step, and ends with the same weights, bit for bit, as an uninterrupted run.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from baselines import Method, MixedSampler, Windows, restore_checkpoint, save_checkpoint
from baselines.build import derive_seed
from baselines.checkpoints import save_torch
from baselines.data import TARGET
from baselines.policy import map_obs

LOG_FILE, CSV_LOG_FILE, CKPT_DIR, TRAINER_FILE = "train_log.jsonl", "train_log.csv", "checkpoint", "trainer.pt"
VAL_MAX_WINDOWS = 2048  # validation uses at most this many target windows, evenly spaced
VAL_MAX_IMAGE_WINDOWS, VAL_IMAGE_CHUNK = 512, 64  # image windows: fewer, and the loss taken in chunks of rows


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (the method's hyperparameters live with the method)."""

    steps: int  # optimization steps in all; a resumed run continues up to this count
    batch_size: int = 256  # rows per batch (must match the sampler's)
    log_every: int = 100  # steps between log lines (each the mean of the terms since the previous line)
    ckpt_every: int = 1000  # steps between checkpoints (there is always one at the end)
    val_every: int = 500  # steps between target validation losses (and one at the end)
    seed: int = 0  # seeds torch's global generator and the sampler's generator (separate derived streams)
    device: str = "cpu"  # the method's device
    num_threads: int | None = None  # torch CPU threads for the run (None: leave torch's setting)
    log_csv: bool = False  # also write the log lines to train_log.csv

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "ckpt_every", "val_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"TrainConfig.num_threads must be >= 1 or None, got {self.num_threads}")


def validation_set(windows: Windows, seed: int = 0) -> dict[str, torch.Tensor]:
    """Target windows (at most VAL_MAX_WINDOWS, evenly spaced) with fixed noise and timesteps."""
    most = VAL_MAX_IMAGE_WINDOWS if windows.frames else VAL_MAX_WINDOWS
    idx = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), most)).round().astype(int))
    gen = torch.Generator().manual_seed(derive_seed(seed, "validation"))
    action = torch.from_numpy(windows.action[idx])
    return {"obs": map_obs(torch.from_numpy, windows.observations(idx)), "action": action,
            "domain": torch.full((len(idx),), TARGET, dtype=torch.long),
            "noise": torch.randn(action.shape, generator=gen),
            "timesteps": torch.randint(1 << 30, (len(idx),), generator=gen)}


@torch.no_grad()
def validation_loss(method: Method, val: dict[str, torch.Tensor]) -> float:
    """Mean diffusion loss of the method's EMA policy on a `validation_set` (deterministic)."""
    policy = method.ema.model
    n = len(val["action"])
    chunk = VAL_IMAGE_CHUNK if policy.config.image_keys else n  # image policies: chunks bound the memory
    losses = []
    for i in range(0, n, chunk):
        batch = {k: map_obs(lambda x: x[i:i + chunk].to(method.device), v) for k, v in val.items()}
        timesteps = batch["timesteps"] % policy.config.num_train_timesteps
        per_sample, _ = policy.loss(batch, noise=batch["noise"], timesteps=timesteps)
        losses.append(per_sample)
    return torch.cat(losses).mean().item()


def _rng_state(sampler: MixedSampler, device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "sampler": sampler.generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], sampler: MixedSampler, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    sampler.generator.set_state(state["sampler"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _save(run_dir: Path, method: Method, sampler: MixedSampler) -> None:
    """Write the checkpoint to a temporary folder, then swap it in (old kept until the new one is in place)."""
    tmp, final, old = run_dir / f"{CKPT_DIR}.tmp", run_dir / CKPT_DIR, run_dir / f"{CKPT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_checkpoint(tmp, method)
        save_torch(_rng_state(sampler, method.device), tmp / TRAINER_FILE)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # e.g. a full disk: no partial checkpoint left behind
        raise
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _existing_checkpoint(run_dir: Path) -> Path | None:
    final, old = run_dir / CKPT_DIR, run_dir / f"{CKPT_DIR}.old"
    if not final.exists() and old.exists():  # interrupted between the two renames of `_save`
        old.rename(final)
    return final if final.exists() else None


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint a resumed run restarts from), and a last line
    cut short (a write that failed, e.g. on a full disk)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line]
        if lines:
            try:
                json.loads(lines[-1])
            except ValueError:
                lines.pop()
        path.write_text("".join(line + "\n" for line in lines if json.loads(line)["step"] <= step))


def rewrite_csv_log(log_path: Path, csv_path: Path) -> list[str]:
    """Write `csv_path` from the JSONL log's lines: `step`, then each scalar in order of first appearance
    (empty where a line lacks it); returns the columns."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line] if log_path.exists() else []
    columns = list(dict.fromkeys(key for record in records for key in record))
    with open(csv_path, "w", newline="") as f:
        if columns:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(records)
    return columns


def _append_csv_log(log_path: Path, csv_path: Path, record: dict[str, Any], columns: list[str]) -> list[str]:
    """Add `record` (already in the JSONL log) to the CSV log; rewritten whole when it brings a new column."""
    if not columns or not set(record) <= set(columns):
        return rewrite_csv_log(log_path, csv_path)
    with open(csv_path, "a", newline="") as f:
        csv.DictWriter(f, columns).writerow(record)
    return columns


def train(method: Method, sampler: MixedSampler, cfg: TrainConfig, run_dir: str | Path,
          val_target: Windows | None = None, progress: bool = True) -> dict[str, Any]:
    """Train `method` on `sampler`'s batches up to `cfg.steps`, resuming from `run_dir/checkpoint` if present.

    Returns {"steps", "start_step", "wall_time_s", "samples_per_s", "final" (the last logged terms),
    "val_target" (the last validation loss, or None)}.
    """
    if sampler.batch_size != cfg.batch_size:
        raise ValueError(f"the sampler's batch size {sampler.batch_size} differs from TrainConfig's {cfg.batch_size}")
    if method.device != torch.device(cfg.device):
        raise ValueError(f"the method is on {method.device}, TrainConfig.device is {cfg.device!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(derive_seed(cfg.seed, "torch"))
    sampler.generator.manual_seed(derive_seed(cfg.seed, "sampler"))
    log_path = run_dir / LOG_FILE
    start = 0
    ckpt = _existing_checkpoint(run_dir)
    if ckpt is not None:
        restore_checkpoint(ckpt, method)
        _set_rng_state(torch.load(ckpt / TRAINER_FILE, weights_only=True), sampler, method.device)
        start = method.step
        if start > cfg.steps:
            raise ValueError(f"{ckpt} is at step {start}, past the requested {cfg.steps} steps")
    _truncate_log(log_path, start)
    csv_path = run_dir / CSV_LOG_FILE
    csv_columns = rewrite_csv_log(log_path, csv_path) if cfg.log_csv else []
    val = validation_set(val_target, cfg.seed) if val_target is not None and len(val_target) else None
    sums: dict[str, float] = {}
    count, last, last_val = 0, {}, None
    t0 = time.perf_counter()
    with open(log_path, "a") as log, tqdm(total=cfg.steps, initial=start, desc=method.name, disable=not progress,
                                          dynamic_ncols=True) as bar:
        for step in range(start + 1, cfg.steps + 1):
            terms = method.update(*sampler.next())
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            bar.update(1)
            do_val = val is not None and (step % cfg.val_every == 0 or step == cfg.steps)
            if do_val or step % cfg.log_every == 0 or step == cfg.steps:
                last = {key: total / count for key, total in sums.items()}
                record = {"step": step, **last}
                if do_val:
                    last_val = record["val_target"] = validation_loss(method, val)
                log.write(json.dumps(record) + "\n")
                log.flush()
                if cfg.log_csv:
                    csv_columns = _append_csv_log(log_path, csv_path, record, csv_columns)
                bar.set_postfix(loss=f"{last['loss']:.4f}")
                sums, count = {}, 0
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                _save(run_dir, method, sampler)
    wall = time.perf_counter() - t0
    done = cfg.steps - start
    return {"steps": cfg.steps, "start_step": start, "wall_time_s": wall,
            "samples_per_s": done * cfg.batch_size / wall if done and wall > 0 else math.nan,
            "final": last, "val_target": last_val}
