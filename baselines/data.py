"""Training windows cut from demonstrations, the mixed source/target batch sampler, and mixing-ratio rules.

w is the TARGET fraction of each batch (docs/PROTOCOL.md "Mixing ratio"): w = 0 is source-only, w = 1 target-only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from common.dataset import Dataset

SOURCE, TARGET = 0, 1


@dataclass
class Windows:
    """Every (demo, t) training window of one dataset.

    obs: (K, T_o, D) float32, observations t-T_o+1 .. t (before the demo start: the first obs repeated).
    action: (K, H, A) float32, actions t .. t+H-1 (past the demo end: the last action repeated).
    demo_index: (K,) int64, the demo each window comes from.
    frames: image datasets only: camera key -> every frame of the dataset, demo after demo,
        (F, H, W, 3) uint8 (one copy of the frames, not one per window).
    frame_index: (K, T_o) int64, the rows of `frames` of each window's history (None without images).
    """

    obs: np.ndarray
    action: np.ndarray
    demo_index: np.ndarray
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    frame_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(self.frames)

    def observations(self, idx: np.ndarray | slice | None = None) -> np.ndarray | dict[str, np.ndarray]:
        """Observation histories of windows `idx` (all by default): the (k, T_o, D) array, or with images the
        dict {"lowdim": that, <camera>: (k, T_o, H, W, 3) uint8} a policy takes."""
        idx = slice(None) if idx is None else idx
        if not self.frames:
            return self.obs[idx]
        rows = self.frame_index[idx]
        return {"lowdim": self.obs[idx], **{key: frames[rows] for key, frames in self.frames.items()}}

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[2])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[2])


def make_windows(dataset: Dataset, n_obs_steps: int, horizon: int,
                 image_keys: tuple[str, ...] | None = None) -> Windows:
    """All windows of `dataset` (see `Windows`), demo by demo, t ascending.

    image_keys: the cameras whose frames the windows carry; None: every camera the dataset has
    (none for a low-dimensional dataset), () none.
    """
    if n_obs_steps < 1 or horizon < 1:
        raise ValueError(f"n_obs_steps and horizon must be >= 1, got {n_obs_steps}, {horizon}")
    if dataset.n_demos == 0:
        raise ValueError("the dataset has no demos")
    keys = tuple(dataset.images) if image_keys is None else tuple(image_keys)
    missing = [k for k in keys if k not in dataset.images]
    if missing:
        raise ValueError(f"the dataset has no images {missing} (it has {sorted(dataset.images)})")
    obs, action, index, rows = [], [], [], []
    offset = 0
    for i, (o, a) in enumerate(zip(dataset.obs, dataset.actions)):
        t = np.arange(len(a))[:, None]
        history = np.clip(t + np.arange(1 - n_obs_steps, 1), 0, len(o) - 1)
        obs.append(o[history])
        action.append(a[np.clip(t + np.arange(horizon), 0, len(a) - 1)])
        index.append(np.full(len(a), i, dtype=np.int64))
        rows.append(offset + history)
        offset += len(o)
    frames = {}
    for key in keys:
        if [len(f) for f in dataset.images[key]] != [len(o) for o in dataset.obs]:
            raise ValueError(f"images {key!r}: frame counts differ from the demos' observation counts")
        frames[key] = np.ascontiguousarray(np.concatenate(dataset.images[key]), dtype=np.uint8)
    return Windows(np.concatenate(obs).astype(np.float32), np.concatenate(action).astype(np.float32),
                   np.concatenate(index), frames, np.concatenate(rows).astype(np.int64) if keys else None)


class MixedSampler:
    """Batches with round(w * batch_size) target windows and the rest source, drawn with replacement.

    Windows with images give observation dicts {"lowdim": (b, T_o, D), <camera>: (b, T_o, H, W, 3) uint8}.

    Both domains get at least one row when 0 < w < 1. With `align_size` > 0, each domain's batch also
    carries `"align"`: {"obs", "action"} of `align_size` windows of that domain drawn on their own, the
    same count in both domains whatever w (what alignment terms compare; w sets only the diffusion
    loss's mix). `generator` (a torch.Generator) is the only randomness, so its state
    (`generator.get_state()`) is the sampler's state.
    """

    def __init__(self, source: Windows | None, target: Windows | None, batch_size: int, w: float,
                 generator: torch.Generator, align_size: int = 0):
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"w (the target fraction) must be in [0, 1], got {w}")
        if batch_size < 1 or (0.0 < w < 1.0 and batch_size < 2):
            raise ValueError(f"batch_size {batch_size} is too small for w={w}")
        if align_size < 0 or (align_size and (source is None or target is None)):
            raise ValueError(f"align_size {align_size}: alignment samples need >= 0 rows and both domains' windows")
        n_target = min(max(round(w * batch_size), 1), batch_size - 1) if 0.0 < w < 1.0 else round(w * batch_size)
        self.counts = (batch_size - n_target, n_target)
        for name, windows, count in (("source", source, self.counts[0]), ("target", target, self.counts[1])):
            if count and (windows is None or len(windows) == 0):
                raise ValueError(f"w={w} needs {name} windows, but none were given")
        image_shapes = [None if w is None else {k: v.shape[1:] for k, v in w.frames.items()} for w in (source, target)]
        if source is not None and target is not None and (
                source.obs.shape[1:] != target.obs.shape[1:] or source.action.shape[1:] != target.action.shape[1:]
                or image_shapes[0] != image_shapes[1]):
            raise ValueError(f"source windows {source.obs.shape[1:]}/{source.action.shape[1:]} and target windows "
                             f"{target.obs.shape[1:]}/{target.action.shape[1:]} differ in shape (or in their images)")
        self.batch_size, self.w, self.generator, self.align_size = batch_size, w, generator, align_size
        self._data = [None if windows is None else
                      (torch.from_numpy(windows.obs), torch.from_numpy(windows.action),
                       {k: torch.from_numpy(v) for k, v in windows.frames.items()},
                       None if windows.frame_index is None else torch.from_numpy(windows.frame_index))
                      for windows in (source, target)]

    def _rows(self, domain: int, count: int) -> dict[str, torch.Tensor]:
        obs, action, frames, frame_index = self._data[domain]
        idx = torch.randint(len(obs), (count,), generator=self.generator)
        batch_obs = {"lowdim": obs[idx], **{k: v[frame_index[idx]] for k, v in frames.items()}} if frames else obs[idx]
        return {"obs": batch_obs, "action": action[idx]}

    def _batch(self, domain: int) -> dict[str, torch.Tensor] | None:
        count = self.counts[domain]
        if count == 0:
            return None
        batch = {**self._rows(domain, count), "domain": torch.full((count,), domain, dtype=torch.long)}
        if self.align_size:
            batch["align"] = self._rows(domain, self.align_size)
        return batch

    def next(self) -> tuple[dict[str, torch.Tensor] | None, dict[str, torch.Tensor] | None]:
        """(source_batch, target_batch); a domain with no rows in the batch gives None."""
        return self._batch(SOURCE), self._batch(TARGET)


def _check_counts(n: int, m: int) -> None:
    if n < 1 or m < 1:
        raise ValueError(f"demo counts must be >= 1, got N={n} target, M={m} source")


def natural_ratio(n: int, m: int) -> float:
    """w_n = N / (N + M): uniform sampling over the N target and M source demos (the window's lower bound)."""
    _check_counts(n, m)
    return n / (n + m)


def sqrt_rule(n: int, m: int) -> float:
    """w_q = sqrt(N / M): the study's upper bound as written (for M/N > 5)."""
    _check_counts(n, m)
    return math.sqrt(n / m)


def odds_rule(n: int, m: int) -> float:
    """w = sqrt(N) / (sqrt(N) + sqrt(M)): odds w/(1-w) = sqrt(N/M), where the study's figure puts the upper bound."""
    _check_counts(n, m)
    return math.sqrt(n) / (math.sqrt(n) + math.sqrt(m))


def default_ratio(n: int, m: int) -> float:
    """The suite's default w for N target and M source demos: sqrt(natural_ratio * odds_rule).

    The geometric mean of the window's two ends (w_n, and the odds form of w_q): the study sweeps and
    reports w on a log scale ({0.005, 0.016, 0.1, 0.3, ...}) and the window spans up to an order of
    magnitude, so its log-scale midpoint is the point least committed to either end. It lies strictly
    inside the window whenever N < M.
    """
    return math.sqrt(natural_ratio(n, m) * odds_rule(n, m))
