"""Image encoders for image pairs: a frame history -> one feature vector (part of the policy's `z`).

`ImageEncoder` maps (B, T, 3, H, W) images (uint8 in [0, 255], or float in [0, 1]) to
(B, feat_dim) with feat_dim = T * frame_dim: every frame goes through one shared backbone
(a feature map), spatial-softmax keypoints (robomimic's pooling) and a linear layer, and the T
frame features are concatenated in time order. Backbones, both in plain torch with GroupNorm
(no batch statistics, so source and target batches never mix through normalization):
`conv` (default, small, CPU-sized) and `resnet18` (ResNet-18 trained from scratch, as
diffusion_policy does, for GPUs). With `crop`, training takes one random crop per sample (the
same for its T frames) and evaluation the centre crop (76 of 84 pixels by default, robomimic's; the harness's
image policies see whole frames). Spatial-softmax pooling takes any feature-map size, so the encoder and its
parameters are the same at every frame size.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def images_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Channels-last uint8 frames (..., H, W, 3) (env observations, datasets) -> uint8 tensor (..., 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3)


DEFAULT_CROP = 76  # the crop side for 84x84 frames (robomimic's)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // 16), channels)


class SmallConv(nn.Sequential):
    """3x3 convolutions with GroupNorm and ReLU: 76x76 -> 64 x 10 x 10 by default (about 12 M MACs a frame);
    48x48 -> 64 x 6 x 6."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 64), strides: tuple[int, ...] = (2, 2, 2)):
        layers, c_in = [], 3
        for c_out, stride in zip(channels, strides):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), _norm(c_out), nn.ReLU()]
            c_in = c_out
        super().__init__(*layers)
        self.out_channels = c_in


class BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


class ResNet18GN(nn.Sequential):
    """ResNet-18 without its pooling and classifier, GroupNorm in place of BatchNorm: 76x76 -> 512 x 3 x 3,
    48x48 -> 512 x 2 x 2."""

    def __init__(self):
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), _norm(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        super().__init__(*layers)
        self.out_channels = c_in


BACKBONES = {"conv": SmallConv, "resnet18": ResNet18GN}


class SpatialSoftmax(nn.Module):
    """(N, C, h, w) -> (N, 2K): the expected (x, y) in [-1, 1] of K learned keypoint heat maps."""

    def __init__(self, channels: int, keypoints: int):
        super().__init__()
        self.heat = nn.Conv2d(channels, keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heat = self.heat(x)
        n, k, h, w = heat.shape
        prob = heat.flatten(2).softmax(-1).view(n, k, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=prob.dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=prob.dtype)
        return torch.cat([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=1)


class ImageEncoder(nn.Module):
    """(B, T, 3, H, W) uint8 [0, 255] or float [0, 1] -> (B, T * frame_dim) float.

    n_frames: T, the observation history length. backbone: a key of BACKBONES.
    crop: side of the (random in training, centre in evaluation) square crop; None keeps the full image.
    """

    def __init__(self, n_frames: int = 2, frame_dim: int = 64, backbone: str = "conv", crop: int | None = DEFAULT_CROP,
                 keypoints: int = 32):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        self.n_frames, self.frame_dim, self.crop = n_frames, frame_dim, crop
        self.backbone = BACKBONES[backbone]()
        self.pool = SpatialSoftmax(self.backbone.out_channels, keypoints)
        self.project = nn.Linear(2 * keypoints, frame_dim)

    @property
    def feat_dim(self) -> int:
        return self.n_frames * self.frame_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 5 or images.shape[1] != self.n_frames or images.shape[2] != 3:
            raise ValueError(f"expected images (B, {self.n_frames}, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if self.crop is not None:
            x = self._crop(x)
        b, t = x.shape[:2]
        frames = (x.flatten(0, 1) - 0.5) / 0.5
        features = self.project(self.pool(self.backbone(frames)))
        return features.view(b, t * self.frame_dim)

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, h, w = x.shape
        if self.crop > min(h, w):
            raise ValueError(f"crop {self.crop} is larger than the {h}x{w} images")
        if not self.training:
            top, left = (h - self.crop) // 2, (w - self.crop) // 2
            return x[..., top:top + self.crop, left:left + self.crop]
        top = torch.randint(0, h - self.crop + 1, (b,), device=x.device)
        left = torch.randint(0, w - self.crop + 1, (b,), device=x.device)
        span = torch.arange(self.crop, device=x.device)
        rows = (top[:, None] + span)[:, :, None]  # (B, crop, 1)
        cols = (left[:, None] + span)[:, None, :]  # (B, 1, crop)
        batch = torch.arange(b, device=x.device)[:, None, None]
        return x.permute(0, 3, 4, 1, 2)[batch, rows, cols].permute(0, 3, 4, 1, 2)  # one crop per sample
