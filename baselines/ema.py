"""The exponential moving average of a policy's weights that every method samples with."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Exponential moving average of a module's weights, in a frozen copy (`model`) used for evaluation.

    decay at update n: min(decay, ramp(n)), a warm-up so that short runs are not dominated by the
    initial weights: ramp(n) = (1 + n) / (10 + n) when power is 0, else 1 - (1 + n)^-power
    (diffusion_policy's EMAModel with inv_gamma 1; power 3/4 reaches 0.999 after 10k updates).
    Buffers (normalizer statistics) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float, power: float = 0.0):
        if not 0.0 <= decay < 1.0 or not 0.0 <= power <= 1.0:
            raise ValueError(f"EMA needs decay in [0, 1) and power in [0, 1], got {decay} and {power}")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.power = power
        self.num_updates = 0

    def current_decay(self) -> float:
        """The decay the next `update` applies."""
        n = self.num_updates
        ramp = (1 + n) / (10 + n) if self.power == 0 else 1.0 - (1.0 + n) ** -self.power
        return min(self.decay, ramp)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
