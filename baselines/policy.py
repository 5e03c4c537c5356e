"""The diffusion policy on low-dimensional observation histories.

An observation encoder maps the normalized history to the representation `z` (what OT and ADDA act
on, and what the metrics read); an optional learned domain embedding (0 source, 1 target, 2 the
null token of classifier-free guidance) is concatenated to `z` to give `z_cond`, which conditions a
noise network over the action chunk (a residual MLP or a 1D temporal U-Net, both FiLM-conditioned).
The domain goes to the noise network only, never to the encoder, so `z` can be aligned while the
domain stays available for the action.

Image policies (`PolicyConfig.image_keys` non-empty, e.g. ("agentview",)) also hold one
`baselines.vision.ImageEncoder` per camera key; their observations are dicts {"lowdim": (B, T_o, D)
float32, <camera key>: (B, T_o, H, W, 3) uint8} and z = concat(image features of every camera in
`image_keys` order, low-dimensional encoder output) (docs/PROTOCOL.md, "Image policies"). Low-dimensional
policies take plain (B, T_o, D) arrays (a dict is accepted too: its "lowdim" entry is used).

Diffusion: DDPM training by epsilon prediction with the squared-cosine beta schedule (Nichol &
Dhariwal 2021; diffusers' "squaredcos_cap_v2", as in diffusion_policy); DDIM sampling (Song et al.
2021) with eta = 0, "leading" timestep spacing, the final alpha set to one and the predicted x0
clipped to [-1, 1] (diffusion_policy's DDIM settings).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import ResidualMLP, TemporalUNet

NULL_DOMAIN = 2  # the learned "no domain" token of classifier-free guidance
LOWDIM = "lowdim"  # the low-dimensional entry of an image policy's observation dict
RANGE_EPS = 1e-4  # normalizer: a dimension whose range is below this is only centred (scale 1)


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture and diffusion settings of a `DiffusionPolicy` (saved as JSON with each checkpoint)."""

    obs_dim: int  # size of one flat observation
    action_dim: int  # size of one action
    n_obs_steps: int = 2  # observations in the history the policy sees (T_o)
    horizon: int = 16  # actions in a predicted chunk (H)
    n_action_steps: int = 8  # actions of a chunk executed before replanning (<= horizon)
    network: str = "mlp"  # noise network: "mlp" (residual MLP) or "unet" (1D temporal U-Net)
    width: int = 256  # MLP hidden width; the U-Net's channels are (width/4, width/2, width)
    depth: int = 3  # residual blocks of the MLP
    z_dim: int = 64  # size of the encoder output z (the representation)
    encoder_hidden: int = 256  # hidden width of the observation encoder
    num_train_timesteps: int = 100  # DDPM diffusion steps
    num_inference_steps: int = 10  # DDIM sampling steps (<= num_train_timesteps)
    domain_embedding: bool = False  # condition the noise network on a learned domain embedding
    domain_dim: int = 16  # size of the domain embedding
    ema_decay: float = 0.995  # EMA decay of the evaluation weights, unless a method's hparams set one
    obs_noise: float = 0.0  # training only: std of Gaussian noise added to the normalized low-dim observations
    image_keys: tuple[str, ...] = ()  # camera keys of an image policy (e.g. ("agentview",)); () = low-dim only
    image_backbone: str = "conv"  # ImageEncoder backbone: "conv" (small, CPU-sized) or "resnet18" (GroupNorm)
    image_feat_dim: int = 64  # image features per frame and camera (z gains T_o * this per camera)
    crop: int | None = 76  # random (training) / centre (evaluation) crop side of the images; None: no crop

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_keys", tuple(self.image_keys))  # a JSON list reads back as a tuple
        for name in ("obs_dim", "action_dim", "n_obs_steps", "horizon", "n_action_steps", "width", "depth",
                     "z_dim", "encoder_hidden", "num_train_timesteps", "num_inference_steps", "domain_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PolicyConfig.{name} must be a positive integer, got {value!r}")
        if self.width < 16:
            raise ValueError(f"PolicyConfig.width must be >= 16 (the timestep embedding is width/4), got {self.width}")
        if self.network not in ("mlp", "unet"):
            raise ValueError(f"PolicyConfig.network must be 'mlp' or 'unet', got {self.network!r}")
        if self.n_action_steps > self.horizon:
            raise ValueError(f"n_action_steps {self.n_action_steps} exceeds horizon {self.horizon}")
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(f"num_inference_steps {self.num_inference_steps} exceeds "
                             f"num_train_timesteps {self.num_train_timesteps}")
        if self.network == "unet" and (self.horizon % 4 or self.width % 32):
            raise ValueError(f"the U-Net needs horizon % 4 == 0 (two downsamplings) and width % 32 == 0 "
                             f"(group norm of 8 groups), got horizon {self.horizon}, width {self.width}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"PolicyConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if isinstance(self.obs_noise, bool) or not isinstance(self.obs_noise, (int, float)) or not (
                0.0 <= self.obs_noise < math.inf):
            raise ValueError(f"PolicyConfig.obs_noise must be a finite number >= 0, got {self.obs_noise!r}")
        if self.image_keys:
            from .vision import BACKBONES

            if len(set(self.image_keys)) != len(self.image_keys) or LOWDIM in self.image_keys or not all(
                    isinstance(k, str) and k for k in self.image_keys):
                raise ValueError(f"PolicyConfig.image_keys must be distinct camera names other than {LOWDIM!r}, "
                                 f"got {self.image_keys!r}")
            if self.image_backbone not in BACKBONES:
                raise ValueError(f"PolicyConfig.image_backbone must be one of {sorted(BACKBONES)}, "
                                 f"got {self.image_backbone!r}")
            if not isinstance(self.image_feat_dim, int) or self.image_feat_dim < 1:
                raise ValueError(f"PolicyConfig.image_feat_dim must be a positive integer, got {self.image_feat_dim!r}")
            if self.crop is not None and (not isinstance(self.crop, int) or self.crop < 8):
                raise ValueError(f"PolicyConfig.crop must be None or an integer >= 8, got {self.crop!r}")

    @property
    def image_dim(self) -> int:
        """Width of the image features in z (0 for a low-dimensional policy)."""
        return len(self.image_keys) * self.n_obs_steps * self.image_feat_dim

    @property
    def z_width(self) -> int:
        """Width of z: the image features plus the low-dimensional encoder's z_dim."""
        return self.image_dim + self.z_dim

    def to_dict(self) -> dict:
        """The fields as JSON values; a low-dimensional policy's dict omits the image fields (their
        defaults), and a policy without observation noise omits `obs_noise`, so its checkpoints read
        exactly as they did before those fields existed."""
        out = asdict(self)
        out["image_keys"] = list(self.image_keys)
        if not self.obs_noise:
            del out["obs_noise"]
        if not self.image_keys:
            for name in ("image_keys", "image_backbone", "image_feat_dim", "crop"):
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "PolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PolicyConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


def map_obs(fn: Callable[[Any], Any], obs: Any) -> Any:
    """`fn` applied to an observation (an array or tensor), or to every entry of an observation dict."""
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, Mapping) else fn(obs)


def obs_rows(obs: Any) -> int:
    """Batch size of an observation batch (an array or tensor, or a dict of them)."""
    return len(obs[LOWDIM]) if isinstance(obs, Mapping) else len(obs)


def cat_obs(parts: list[Any]) -> Any:
    """Observation batches concatenated along the batch axis (tensors, or dicts of tensors)."""
    if isinstance(parts[0], Mapping):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)


class Normalizer(nn.Module):
    """Per-dimension min-max map to [-1, 1]; a dimension of range < RANGE_EPS is only centred (scale 1).

    The statistics are buffers, so they travel in the state_dict.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, data: np.ndarray) -> None:
        """Statistics from `data` (..., dim)."""
        flat = np.asarray(data, dtype=np.float64).reshape(-1, self.center.shape[0])
        lo, hi = flat.min(axis=0), flat.max(axis=0)
        span = hi - lo
        self.center.copy_(torch.as_tensor((hi + lo) / 2))
        self.scale.copy_(torch.as_tensor(np.where(span > RANGE_EPS, 2.0 / np.maximum(span, RANGE_EPS), 1.0)))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) * self.scale

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.scale + self.center


def _squared_cosine_alphas_cumprod(steps: int) -> np.ndarray:
    """alpha_bar of the squared-cosine schedule, betas capped at 0.999 (Nichol & Dhariwal 2021)."""
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - f((i + 1) / steps) / f(i / steps), 0.999) for i in range(steps)])
    return np.cumprod(1.0 - betas)


class DiffusionPolicy(nn.Module):
    """Encoder -> z (-> z_cond with the domain embedding) -> noise network over the action chunk.

    Shapes: obs (B, n_obs_steps, obs_dim) raw (un-normalized), or for an image policy the dict
    {"lowdim": that, <camera>: (B, n_obs_steps, H, W, 3) uint8}; actions (B, horizon, action_dim) raw;
    domain (B,) long, 0 source, 1 target, 2 the null token. Call `fit_normalizer` before training
    (it reads the low-dimensional part only: images are scaled inside the image encoder).
    """

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        c = config
        self.obs_normalizer = Normalizer(c.obs_dim)
        self.action_normalizer = Normalizer(c.action_dim)
        self.encoder = nn.Sequential(
            nn.Linear(c.n_obs_steps * c.obs_dim, c.encoder_hidden), nn.LayerNorm(c.encoder_hidden), nn.Mish(),
            nn.Linear(c.encoder_hidden, c.encoder_hidden), nn.LayerNorm(c.encoder_hidden), nn.Mish(),
            nn.Linear(c.encoder_hidden, c.z_dim))
        if c.image_keys:  # only image policies hold the attribute: low-dim state_dicts keep their keys
            from .vision import ImageEncoder

            self.image_encoders = nn.ModuleDict({key: ImageEncoder(c.n_obs_steps, c.image_feat_dim, c.image_backbone,
                                                                   c.crop) for key in c.image_keys})
        self.domain_embedding = nn.Embedding(3, c.domain_dim) if c.domain_embedding else None
        cond_dim = c.z_width + (c.domain_dim if c.domain_embedding else 0)
        self.net = (ResidualMLP if c.network == "mlp" else TemporalUNet)(c, cond_dim)
        alphas_cumprod = _squared_cosine_alphas_cumprod(c.num_train_timesteps)
        self.register_buffer("sqrt_ab", torch.tensor(np.sqrt(alphas_cumprod), dtype=torch.float32), persistent=False)
        self.register_buffer("sqrt_1mab", torch.tensor(np.sqrt(1 - alphas_cumprod), dtype=torch.float32),
                             persistent=False)
        ratio = c.num_train_timesteps // c.num_inference_steps
        steps = [k * ratio for k in reversed(range(c.num_inference_steps))]
        prev = [alphas_cumprod[t - ratio] if t >= ratio else 1.0 for t in steps]
        self.register_buffer("ddim_timesteps", torch.tensor(steps), persistent=False)
        # x0 = (x - s * eps) * inv_a; x_prev = a_prev * x0 + s_prev * eps
        self._ddim_coefs = [(math.sqrt(1 - alphas_cumprod[t]), 1 / math.sqrt(alphas_cumprod[t]), math.sqrt(p),
                             math.sqrt(1 - p)) for t, p in zip(steps, prev)]

    # -- normalization and shapes
    def fit_normalizer(self, obs: np.ndarray, action: np.ndarray) -> None:
        """Min-max statistics from training windows: obs (K, T_o, D) (or an observation dict: its
        "lowdim" entry), action (K, H, A)."""
        if isinstance(obs, Mapping):
            obs = obs[LOWDIM]
        self._check("observations", tuple(np.shape(obs)[1:]), (self.config.n_obs_steps, self.config.obs_dim))
        self._check("actions", tuple(np.shape(action)[1:]), (self.config.horizon, self.config.action_dim))
        self.obs_normalizer.fit(obs)
        self.action_normalizer.fit(action)

    @staticmethod
    def _check(what: str, got: tuple, expected: tuple) -> None:
        if got != expected:
            raise ValueError(f"{what} of shape {got} per sample do not match the policy's {expected} "
                             f"(steps, dim): a dataset whose layout differs from the policy config?")

    # -- representation
    def _lowdim(self, obs: Any) -> torch.Tensor:
        """The normalized, flattened low-dimensional history (B, T_o * obs_dim), checked."""
        if isinstance(obs, Mapping):
            if LOWDIM not in obs:
                raise ValueError(f"an observation dict needs a {LOWDIM!r} entry, got keys {sorted(obs)}")
            obs = obs[LOWDIM]
        elif self.config.image_keys:
            raise ValueError(f"an image policy takes observation dicts with keys "
                             f"{[LOWDIM, *self.config.image_keys]}, got a plain {type(obs).__name__}")
        self._check("observations", tuple(obs.shape[1:]), (self.config.n_obs_steps, self.config.obs_dim))
        if not torch.compiler.is_compiling() and not self.obs_normalizer.fitted:  # reads data: not traceable
            raise RuntimeError("the policy's normalizer is not fitted: call fit_normalizer first")
        x = self.obs_normalizer(obs).flatten(1)
        if self.training and self.config.obs_noise:  # augmentation: training mode only (the EMA copy is in eval)
            x = x + self.config.obs_noise * torch.randn_like(x)
        return x

    def image_features(self, obs: Any) -> torch.Tensor:
        """Image features (B, image_dim) of an image policy's observation dict: the image encoders' outputs,
        cameras in `image_keys` order."""
        missing = [k for k in self.config.image_keys if k not in obs]
        if missing:
            raise ValueError(f"observations lack the image keys {missing} "
                             f"(the policy's: {list(self.config.image_keys)})")
        feats = []
        for key in self.config.image_keys:
            frames = obs[key]
            if frames.ndim != 5 or frames.shape[1] != self.config.n_obs_steps or frames.shape[-1] != 3:
                raise ValueError(f"images {key!r} of shape {tuple(frames.shape)}; expected "
                                 f"(B, {self.config.n_obs_steps}, H, W, 3), channels last")
            feats.append(self.image_encoders[key](frames.movedim(-1, -3)))
        return torch.cat(feats, -1)

    def encode(self, obs: Any) -> torch.Tensor:
        """z (B, z_width) from raw observation histories (B, T_o, obs_dim), or from an image policy's dict:
        concat(image features, low-dimensional encoder output)."""
        z = self.encoder(self._lowdim(obs))
        return torch.cat([self.image_features(obs), z], -1) if self.config.image_keys else z

    def shallow_features(self, obs: Any) -> torch.Tensor:
        """The "shallow features" Gromov-Wasserstein compares: the image encoders' output for an image policy
        (docs/PROTOCOL.md), the low-dimensional encoder's first layer activations (after LayerNorm and Mish)
        for a low-dimensional one."""
        if self.config.image_keys:
            return self.image_features(obs)
        return self.encoder[:3](self._lowdim(obs))

    def _condition(self, z: torch.Tensor, domain: torch.Tensor | int | None) -> torch.Tensor:
        """z_cond from z (B, z_width) and domain: (B,) ids, or one id for every row (None: the null token)."""
        if self.domain_embedding is None:
            return z
        if domain is None:
            domain = NULL_DOMAIN
        if torch.is_tensor(domain):
            emb = self.domain_embedding(domain.to(z.device))
        else:  # the embedding's row expanded over the batch: B stays symbolic under torch.export
            emb = self.domain_embedding.weight[int(domain)].expand(z.shape[0], -1)
        return torch.cat([z, emb], -1)

    def conditioning(self, obs: torch.Tensor, domain: torch.Tensor | int | None = None) -> torch.Tensor:
        """z_cond: z, concatenated with the domain embedding when the policy has one (None = null token)."""
        return self._condition(self.encode(obs), domain)

    # -- training
    def loss(self, batch: dict[str, torch.Tensor], domain_for_cond: torch.Tensor | None = None,
             noise: torch.Tensor | None = None, timesteps: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """DDPM epsilon-prediction loss per sample (B,), and z (B, z_width).

        The noise network is conditioned on `domain_for_cond` if given, else on batch["domain"] (only
        where the policy has a domain embedding). noise (B, H, A) and timesteps (B,) default to fresh
        draws from torch's global generator; pass them for a deterministic loss.
        """
        action = batch["action"]
        self._check("actions", tuple(action.shape[1:]), (self.config.horizon, self.config.action_dim))
        z = self.encode(batch["obs"])
        domain = domain_for_cond if domain_for_cond is not None else batch.get("domain")
        x0 = self.action_normalizer(action)
        noise = torch.randn_like(x0) if noise is None else noise
        t = torch.randint(self.config.num_train_timesteps, (len(x0),), device=x0.device) if timesteps is None \
            else timesteps
        xt = self.sqrt_ab[t, None, None] * x0 + self.sqrt_1mab[t, None, None] * noise
        eps = self.net(xt, t, self._condition(z, domain))
        return F.mse_loss(eps, noise, reduction="none").mean(dim=(1, 2)), z

    # -- sampling
    @torch.no_grad()
    def sample(self, obs: torch.Tensor, domain: torch.Tensor | int | None = None, guidance: float | None = None,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
               exact_rows: bool = True) -> torch.Tensor:
        """Action chunks (B, H, A), un-normalized, by DDIM (eta = 0) from initial noise (B, H, A).

        Deterministic given `noise` (else drawn from `generator`). Classifier-free guidance with scale
        lambda = `guidance` (docs/PROTOCOL.md "Guidance", Ho & Salimans 2022):
            eps = eps(x, o, null) + (1 + lambda) * (eps(x, o, domain) - eps(x, o, null)),
        both passes fused into one batched call. lambda = 0 is plain conditional sampling exactly (the
        null pass is skipped); lambda None, no `domain`, or a policy without domain embedding: plain
        sampling (conditioned on `domain` where the policy has an embedding, else on the null token).
        exact_rows: run rows one at a time, so each row's output is bitwise what it would be alone
        (CPU BLAS picks kernels by batch size); False runs one batched pass (equal to within rounding).
        """
        c = self.config
        n = obs_rows(obs)
        device = obs[LOWDIM].device if isinstance(obs, Mapping) else obs.device
        if noise is None:
            noise = torch.randn((n, c.horizon, c.action_dim), generator=generator, device=device)
        self._check("noise", tuple(noise.shape), (n, c.horizon, c.action_dim))
        if domain is not None and not torch.is_tensor(domain):
            domain = torch.full((n,), int(domain), dtype=torch.long, device=device)
        lam = self.guidance_scale(domain, guidance)
        if exact_rows and n > 1:
            return torch.cat([self.ddim(map_obs(lambda x: x[i:i + 1], obs),
                                        None if domain is None else domain[i:i + 1], lam, noise[i:i + 1])
                              for i in range(n)])
        return self.ddim(obs, domain, lam, noise)

    def guidance_scale(self, domain: torch.Tensor | int | None, guidance: float | None) -> float:
        """The lambda `sample` guides with: `guidance` where it is set and there is a domain to guide toward
        (given, and a domain embedding to take it), else 0.0 (plain sampling)."""
        return float(guidance) if guidance and domain is not None and self.domain_embedding is not None else 0.0

    def ddim(self, obs: Any, domain: torch.Tensor | int | None, lam: float, noise: torch.Tensor) -> torch.Tensor:
        """Action chunks (B, H, A), raw units, by one batched DDIM pass from noise (B, H, A): the sampler
        `sample` runs and `benchmark.deploy.export` traces (no Python-side reads of data or of B, so B stays
        symbolic under torch.export).

        domain: (B,) ids, or one id for every row (None: the null token); lam: the guidance scale
        (0: plain sampling), as `guidance_scale` gives it.
        """
        z = self.encode(obs)
        z_cond = self._condition(z, domain)
        if lam:  # the null-token rows after the conditioned ones: both passes in one batched call
            z_cond = torch.cat([z_cond, self._condition(z, NULL_DOMAIN)])
        steps, rows = len(self._ddim_coefs), z_cond.shape[0]
        t = self.ddim_timesteps[:, None].expand(steps, rows).reshape(steps * rows)  # each step's t, rows times
        films = self.net.condition(t, z_cond.repeat(steps, 1))
        per_step = zip(*[f.view(steps, rows, -1).unbind(0) for f in films])
        x = noise
        for step_films, (s, inv_a, a_prev, s_prev) in zip(per_step, self._ddim_coefs):
            if lam:
                eps_cond, eps_null = self.net.denoise(torch.cat([x, x]), step_films).unflatten(0, (2, -1))
                eps = torch.lerp(eps_null, eps_cond, 1.0 + lam)
            else:
                eps = self.net.denoise(x, step_films)
            x0 = torch.sub(x, eps, alpha=s).mul_(inv_a).clamp_(-1.0, 1.0)
            x = torch.add(x0.mul_(a_prev), eps, alpha=s_prev)
        return self.action_normalizer.unnormalize(x)
