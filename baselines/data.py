"""Training windows cut from demonstrations, the mixed source/target batch sampler, and mixing-ratio rules.

w is the TARGET fraction of each batch (PAPER.md "Mixing ratio"): w = 0 is source-only, w = 1 target-only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tasks.dataset import Dataset

SOURCE, TARGET = 0, 1


@dataclass
class Windows:
    """Every (demo, t) training window of one dataset.

    obs: (K, T_o, D) float32, observations t-T_o+1 .. t (before the demo start: the first obs repeated).
    action: (K, H, A) float32, actions t .. t+H-1 (past the demo end: the last action repeated).
    demo_index: (K,) int64, the demo each window comes from.
    """

    obs: np.ndarray
    action: np.ndarray
    demo_index: np.ndarray

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[2])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[2])


def make_windows(dataset: Dataset, n_obs_steps: int, horizon: int) -> Windows:
    """All windows of `dataset` (see `Windows`), demo by demo, t ascending."""
    if n_obs_steps < 1 or horizon < 1:
        raise ValueError(f"n_obs_steps and horizon must be >= 1, got {n_obs_steps}, {horizon}")
    if dataset.n_demos == 0:
        raise ValueError("the dataset has no demos")
    obs, action, index = [], [], []
    for i, (o, a) in enumerate(zip(dataset.obs, dataset.actions)):
        t = np.arange(len(a))[:, None]
        obs.append(o[np.clip(t + np.arange(1 - n_obs_steps, 1), 0, len(o) - 1)])
        action.append(a[np.clip(t + np.arange(horizon), 0, len(a) - 1)])
        index.append(np.full(len(a), i, dtype=np.int64))
    return Windows(np.concatenate(obs).astype(np.float32), np.concatenate(action).astype(np.float32),
                   np.concatenate(index))


class MixedSampler:
    """Batches with round(w * batch_size) target windows and the rest source, drawn with replacement.

    Both domains get at least one row when 0 < w < 1. `generator` (a torch.Generator) is the only
    randomness, so its state (`generator.get_state()`) is the sampler's state.
    """

    def __init__(self, source: Windows | None, target: Windows | None, batch_size: int, w: float,
                 generator: torch.Generator):
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"w (the target fraction) must be in [0, 1], got {w}")
        if batch_size < 1 or (0.0 < w < 1.0 and batch_size < 2):
            raise ValueError(f"batch_size {batch_size} is too small for w={w}")
        n_target = min(max(round(w * batch_size), 1), batch_size - 1) if 0.0 < w < 1.0 else round(w * batch_size)
        self.counts = (batch_size - n_target, n_target)
        for name, windows, count in (("source", source, self.counts[0]), ("target", target, self.counts[1])):
            if count and (windows is None or len(windows) == 0):
                raise ValueError(f"w={w} needs {name} windows, but none were given")
        if source is not None and target is not None and (
                source.obs.shape[1:] != target.obs.shape[1:] or source.action.shape[1:] != target.action.shape[1:]):
            raise ValueError(f"source windows {source.obs.shape[1:]}/{source.action.shape[1:]} and target windows "
                             f"{target.obs.shape[1:]}/{target.action.shape[1:]} differ in shape")
        self.batch_size, self.w, self.generator = batch_size, w, generator
        self._data = [None if windows is None else (torch.from_numpy(windows.obs), torch.from_numpy(windows.action))
                      for windows in (source, target)]

    def _batch(self, domain: int) -> dict[str, torch.Tensor] | None:
        count, data = self.counts[domain], self._data[domain]
        if count == 0:
            return None
        idx = torch.randint(len(data[0]), (count,), generator=self.generator)
        return {"obs": data[0][idx], "action": data[1][idx], "domain": torch.full((count,), domain, dtype=torch.long)}

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
