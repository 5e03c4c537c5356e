"""The `Dataset` type: demonstrations of one domain in the flat observation layout (files: `tasks.dataset`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Layout = tuple[tuple[str, int], ...]


class DatasetError(ValueError):
    """A dataset file is missing, unreadable, or does not match the expected layout."""


@dataclass
class Dataset:
    """Demonstrations of one domain: per-demo arrays in the flat observation layout.

    obs[i]: (T_i, obs_dim) float32; actions[i]: (T_i, action_dim) float32;
    images[key][i]: (T_i, H, W, 3) uint8 per camera key (image pairs only, else empty).
    """

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    layout: Layout
    attrs: dict[str, Any] = field(default_factory=dict)
    rewards: list[np.ndarray] = field(default_factory=list)
    episode_seeds: list[int] = field(default_factory=list)
    images: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def n_demos(self) -> int:
        return len(self.obs)

    @property
    def obs_dim(self) -> int:
        return sum(n for _, n in self.layout)

    @property
    def action_dim(self) -> int:
        return int(self.actions[0].shape[1]) if self.actions else 0

    @property
    def domain(self) -> str:
        return str(self.attrs.get("domain", ""))

    def select(self, indices: list[int]) -> "Dataset":
        """The demos at `indices`, in that order."""
        if any(not 0 <= i < self.n_demos for i in indices):
            raise DatasetError(f"demo indices {indices} out of range for {self.n_demos} demos")

        def pick(items: list) -> list:
            return [items[i] for i in indices] if items else []

        return Dataset(pick(self.obs), pick(self.actions), self.layout, dict(self.attrs),
                       pick(self.rewards), pick(self.episode_seeds), {k: pick(v) for k, v in self.images.items()})
