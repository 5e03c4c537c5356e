"""The noise networks of `DiffusionPolicy`: a residual MLP over the flattened action chunk and a 1D temporal
U-Net (diffusion_policy's ConditionalUnet1D), both FiLM-conditioned on the timestep and z_cond."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .policy import PolicyConfig


class _NoiseNet(nn.Module):
    """Shared conditioning of the noise networks: c = [MLP(sinusoidal(t)), z_cond]; every FiLM layer's
    (1 + scale, shift) comes from one linear map of mish(c), so a sampler can compute all of them for
    all its steps at once (`condition`) and run only `denoise` in its loop."""

    def __init__(self, width: int, cond_dim: int, film_channels: list[int]):
        super().__init__()
        self.film_channels = film_channels
        time_dim = width // 4  # sinusoidal embedding size; the time MLP's hidden layer is `width`
        half = time_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1)),
                             persistent=False)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, width), nn.Mish(), nn.Linear(width, time_dim))
        self.film = nn.Linear(time_dim + cond_dim, 2 * sum(film_channels))

    def condition(self, t: torch.Tensor, z_cond: torch.Tensor) -> list[torch.Tensor]:
        """FiLM parameters for timesteps t (N,) and conditioning z_cond (N, C): [1 + scale, shift] per layer."""
        angles = t.float()[:, None] * self.freqs
        c = torch.cat([self.time_mlp(torch.cat([angles.sin(), angles.cos()], -1)), z_cond], -1)
        out = []
        for part in self.film(F.mish(c)).split([2 * n for n in self.film_channels], -1):
            scale, shift = part.chunk(2, -1)
            out += [scale + 1.0, shift]
        return out

    def denoise(self, x: torch.Tensor, films: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, t: torch.Tensor, z_cond: torch.Tensor) -> torch.Tensor:
        """Predicted noise for noisy chunks x (B, H, A) at timesteps t (B,)."""
        return self.denoise(x, self.condition(t, z_cond))


class ResidualMLP(_NoiseNet):
    """Residual MLP on the flattened chunk: `depth` blocks h += W2 mish(FiLM(LayerNorm(W1 h)))."""

    def __init__(self, config: PolicyConfig, cond_dim: int):
        super().__init__(config.width, cond_dim, [config.width] * config.depth)
        size, width = config.horizon * config.action_dim, config.width
        self.inp = nn.Linear(size, width)
        self.fc1 = nn.ModuleList(nn.Linear(width, width) for _ in range(config.depth))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.depth))
        self.fc2 = nn.ModuleList(nn.Linear(width, width) for _ in range(config.depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, size)

    def denoise(self, x: torch.Tensor, films: list[torch.Tensor]) -> torch.Tensor:
        h = self.inp(x.flatten(1))
        for i, (fc1, norm, fc2) in enumerate(zip(self.fc1, self.norms, self.fc2)):
            h = h + fc2(F.mish(torch.addcmul(films[2 * i + 1], norm(fc1(h)), films[2 * i])))
        return self.out(F.mish(self.out_norm(h))).view_as(x)


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 5):
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(8, cout), nn.Mish())


class _ResBlock(nn.Module):
    """diffusion_policy's ConditionalResidualBlock1D: conv block, FiLM, conv block, residual."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block1, self.block2 = _ConvBlock(cin, cout), _ConvBlock(cout, cout)
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        out = torch.addcmul(shift[..., None], self.block1(x), scale[..., None])
        return self.block2(out) + self.residual(x)


class TemporalUNet(_NoiseNet):
    """1D temporal U-Net over the chunk (diffusion_policy's ConditionalUnet1D, channels width/4, width/2,
    width; two FiLM residual blocks per level, kernel 5, group norm)."""

    def __init__(self, config: PolicyConfig, cond_dim: int):
        chans = [config.width // 4, config.width // 2, config.width]
        pairs = list(zip([config.action_dim] + chans[:-1], chans))
        down = [(_ResBlock(cin, cout), _ResBlock(cout, cout)) for cin, cout in pairs]
        mid = [_ResBlock(chans[-1], chans[-1]) for _ in range(2)]
        up = [(_ResBlock(2 * cout, cin), _ResBlock(cin, cin)) for cin, cout in reversed(pairs[1:])]
        blocks = [b for pair in down for b in pair] + mid + [b for pair in up for b in pair]
        super().__init__(config.width, cond_dim, [b.block1[0].out_channels for b in blocks])
        self.blocks = nn.ModuleList(blocks)
        self.n_down, self.n_up = len(down), len(up)
        self.downsample = nn.ModuleList(nn.Conv1d(c, c, 3, 2, 1) for c in chans[:-1])
        self.upsample = nn.ModuleList(nn.ConvTranspose1d(cin, cin, 4, 2, 1) for cin, _ in reversed(pairs[1:]))
        self.final = nn.Sequential(_ConvBlock(chans[0], chans[0]), nn.Conv1d(chans[0], config.action_dim, 1))

    def denoise(self, x: torch.Tensor, films: list[torch.Tensor]) -> torch.Tensor:
        h, skips, k = x.transpose(1, 2), [], 0

        def res(h: torch.Tensor) -> torch.Tensor:
            nonlocal k
            out = self.blocks[k](h, films[2 * k], films[2 * k + 1])
            k += 1
            return out

        for level in range(self.n_down):
            h = res(res(h))
            skips.append(h)
            if level < self.n_down - 1:
                h = self.downsample[level](h)
        h = res(res(h))
        for level in range(self.n_up):
            h = res(res(torch.cat([h, skips.pop()], 1)))
            h = self.upsample[level](h)
        return self.final(h).transpose(1, 2)
