"""Co-training methods: one small class each over one `DiffusionPolicy` (DomainBed's `algorithms.py` shape).

A method gets a source and a target minibatch in `update()` (see `baselines.data.MixedSampler`), takes
one optimization step on the policy's diffusion loss plus its own terms, and returns every term as a
float. It samples with its EMA weights and its own sampling rule. Checkpoints: `baselines.checkpoints`.

The methods with an alignment term on z (OT, ADDA, CFG-ADDA) are in `baselines.alignment`; a method from
outside the suite is found by `METHODS` too (`baselines.plugins`).
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .data import SOURCE, TARGET, MixedSampler, Windows
from .ema import EMA
from . import hparams as space
from .hparams import Choice, Spec, Uniform, Value, loguniform
from .plugins import MethodRegistry
from .policy import LOWDIM, NULL_DOMAIN, DiffusionPolicy, cat_obs, map_obs

Batch = dict[str, torch.Tensor]
DOMAINS = {"source": SOURCE, "target": TARGET}
SPREAD_EPS = 1e-8  # floor of the pooled spread (both domains' z collapsed to one point)
# training precision -> the dtype `Method.update` autocasts its forward pass and loss to (None: plain fp32)
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def domain_id(domain: str | int) -> int:
    """0 for "source", 1 for "target" (ints 0, 1 and 2 = the null token pass through)."""
    if isinstance(domain, str) and domain in DOMAINS:
        return DOMAINS[domain]
    if isinstance(domain, (int, np.integer)) and not isinstance(domain, bool) and 0 <= domain <= NULL_DOMAIN:
        return int(domain)
    raise ValueError(f"unknown domain {domain!r}; use 'source', 'target' or 0, 1, 2 (null)")


class Method:
    """Base: plain diffusion-policy training on the batches the method uses (AdamW, EMA).

    Class attributes: `description` (one line), `uses_source`/`uses_target` (which batches it
    trains on), `mixes` (whether the mixing ratio w applies), `uses_domain_embedding` (the policy must
    have a domain embedding), `guided` (sampling applies the `guidance` hyperparameter), `aligns` (an
    alignment term on z needs the batches' equal-size "align" samples), `version` (raised when the method's
    training changes; part of a run's identity when above 0, so earlier runs of the method stay apart).

    `hparam_space` (name -> (default, search distribution), `baselines.hparams`) and `loss_terms` (term
    `objective` returns -> the modules its gradient must reach, paths from the method such as
    "policy.encoder" or "extra.discriminator"; `baselines.check_method` checks them): a subclass
    declares only what it adds; at class creation they are merged over its bases' (bases first), and
    `w` is kept only where the method `mixes`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_source: ClassVar[bool] = True
    uses_target: ClassVar[bool] = True
    mixes: ClassVar[bool] = True
    uses_domain_embedding: ClassVar[bool] = False
    guided: ClassVar[bool] = False
    aligns: ClassVar[bool] = False
    version: ClassVar[int] = 0
    hparam_space: ClassVar[Spec] = {
        # 2e-3: the recipe search's winner on validation start states (results/recipe/README.md)
        "lr": (2e-3, loguniform(1e-4, 3e-3, limits=(1e-7, 1.0))),
        "weight_decay": (1e-6, loguniform(1e-8, 1e-3, limits=(0.0, 1.0))),
        "batch_size": (256, Choice((64, 128, 256, 512), limits=(2, 65536))),
        # None: the policy config's ema_decay
        "ema_decay": (None, Uniform(0.99, 0.999, limits=(0.0, 0.9999))),
        # The shared training recipe (the same for every method; results/recipe/ holds the search that set it):
        # steps of linear learning-rate warm-up from lr / lr_warmup to lr; 0: none
        "lr_warmup": (0, loguniform(50, 1000, limits=(0, 10**8), integer=True)),
        # EMA warm-up ramp: 0 is (1 + n) / (10 + n), p > 0 is 1 - (1 + n)^-p (baselines.policy.EMA)
        "ema_power": (0.0, Uniform(0.5, 0.9, limits=(0.0, 1.0))),
        # std of Gaussian noise on the normalized low-dimensional observations, training only
        "obs_noise": (0.0, Choice((0.0, 0.01, 0.03, 0.1), limits=(0.0, 10.0))),
        # noise-network width and residual blocks; None: the profile's
        "width": (None, Choice((256, 512, 1024), limits=(16, 8192))),
        "depth": (None, Choice((2, 3, 4, 6), limits=(1, 64))),
        # the target fraction of each batch (mixing methods). None: baselines.data.default_ratio(N, M),
        # resolved by the caller
        "w": (None, loguniform(0.005, 0.8, limits=(1e-6, 1 - 1e-6))),
    }
    loss_terms: ClassVar[dict[str, tuple[str, ...]]] = {"diffusion": ("policy.encoder", "policy.net")}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Merge `hparam_space` and `loss_terms` over the bases' (see the class docstring)."""
        super().__init_subclass__(**kwargs)
        for attr in ("hparam_space", "loss_terms"):
            merged: dict[str, Any] = {}
            for klass in reversed(cls.__mro__):
                merged.update(vars(klass).get(attr, {}))
            setattr(cls, attr, merged)
        if not cls.mixes:
            cls.hparam_space.pop("w", None)

    def __init__(self, policy: DiffusionPolicy, hparams: dict[str, Any] | None = None, device: str = "cpu"):
        self.hparams = resolve_hparams(type(self), hparams)
        if policy.config.domain_embedding != self.uses_domain_embedding:
            raise ValueError(f"method {self.name!r} needs a policy with "
                             f"domain_embedding={self.uses_domain_embedding}, "
                             f"got {policy.config.domain_embedding}")
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        if self.hparams["obs_noise"] != policy.config.obs_noise:
            raise ValueError(f"hyperparameter obs_noise={self.hparams['obs_noise']} differs from the policy's "
                             f"obs_noise={policy.config.obs_noise} (build the policy with it)")
        self.extra = nn.ModuleDict(self.build_extra()).to(self.device)
        decay = self.hparams["ema_decay"]
        self.ema = EMA(self.policy, policy.config.ema_decay if decay is None else decay, self.hparams["ema_power"])
        self.optimizer = torch.optim.AdamW([*self.policy.parameters(), *self.extra.parameters()],
                                           lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        self.step = 0
        self.precision = "fp32"  # a key of AUTOCAST_DTYPES (`baselines.build.build_training` sets it)

    # -- hooks for subclasses
    def build_extra(self) -> dict[str, nn.Module]:
        """Extra trained modules (e.g. a discriminator), optimized with the policy."""
        return {}

    def cond_domain(self, batch: Batch) -> torch.Tensor | None:
        """The domain ids the noise network is conditioned on (None: the batch's own)."""
        return None

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, its terms) on the merged batch."""
        diffusion, _ = self.diffusion(batch)
        return diffusion, {"diffusion": diffusion}

    # -- training
    def diffusion(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean diffusion loss over the merged batch (so w sets each domain's weight), and z."""
        per_sample, z = self.policy.loss(batch, self.cond_domain(batch))
        return per_sample.mean(), z

    def _merge(self, source_batch: Batch | None, target_batch: Batch | None) -> Batch:
        parts = []
        for used, batch, which in ((self.uses_source, source_batch, "source"),
                                   (self.uses_target, target_batch, "target")):
            if used and batch is None:
                raise ValueError(f"method {self.name!r} needs a {which} batch, got None")
            if used:
                parts.append(batch)
        merged = {k: cat_obs([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]
                  for k in ("obs", "action", "domain")}
        return {k: map_obs(lambda x: x.to(self.device), v) for k, v in merged.items()}

    def _align_z(self, source_batch: Batch, target_batch: Batch) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                                         torch.Tensor]:
        """z of the two domains' alignment samples divided by their pooled spread (`scale_free`), and that
        spread (detached)."""
        z = [self.policy.encode(map_obs(lambda x: x.to(self.device), b["align"]["obs"]))
             for b in (source_batch, target_batch)]
        return scale_free(*z), pooled_spread(*z).detach()

    def prepare(self, source_batch: Batch | None, target_batch: Batch | None) -> Batch:
        """The batch `objective` takes: the used domains' rows merged on the device, plus (aligning methods)
        the alignment samples' scale-free z, z's pooled spread on them and their action chunks."""
        if self.aligns and any(b is None or "align" not in b for b in (source_batch, target_batch)):
            raise ValueError(f"method {self.name!r} aligns the domains: its batches need equal-size 'align' "
                             "samples of both domains (build the sampler with baselines.make_sampler)")
        merged = self._merge(source_batch, target_batch)
        if self.aligns:
            merged["align_z"], merged["align_spread"] = self._align_z(source_batch, target_batch)
            merged["align_action"] = tuple(b["align"]["action"].to(self.device) for b in (source_batch, target_batch))
        return merged

    def autocast(self) -> AbstractContextManager:
        """The context of the forward pass and loss in training: autocast to the `precision`'s dtype, or none
        for fp32 (gradients, optimizer and EMA stay fp32 either way)."""
        dtype = AUTOCAST_DTYPES[self.precision]
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def update(self, source_batch: Batch | None, target_batch: Batch | None) -> dict[str, float]:
        """One optimization step; returns {"loss": total, <term>: value, ...}."""
        with self.autocast():
            loss, terms = self.objective(self.prepare(source_batch, target_batch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        warmup = self.hparams["lr_warmup"]  # linear warm-up of the learning rate over the first lr_warmup steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.hparams["lr"] * (min(1.0, (self.step + 1) / warmup) if warmup else 1.0)
        self.optimizer.step()
        self.ema.update(self.policy)
        self.step += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    # -- evaluation (EMA weights)
    def _tensor(self, array: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    def _obs(self, obs: Any) -> Any:
        """Observations as tensors on the device: a float32 array, or a dict whose "lowdim" entry becomes
        float32 and whose images stay uint8."""
        if isinstance(obs, dict):
            return {k: self._tensor(v) if k == LOWDIM else torch.as_tensor(np.asarray(v), device=self.device)
                    for k, v in obs.items()}
        return self._tensor(obs)

    def sample(self, obs: Any, domain: str | int, guidance: float | None = None, noise: Any = None,
               generator: torch.Generator | None = None) -> np.ndarray:
        """Action chunks (B, H, A) for observation histories obs (B, T_o, D), deterministic given noise (B, H, A).

        Image policies take the dict {"lowdim": (B, T_o, D), <camera>: (B, T_o, H, W, 3) uint8}.

        `domain` is given to the denoiser only by domain-conditioned methods; `guidance` overrides
        the guidance hyperparameter of guided methods (others accept only None or 0).
        """
        dom = domain_id(domain)
        if not self.guided and guidance not in (None, 0):
            raise ValueError(f"method {self.name!r} is not trained for guidance; got guidance={guidance}")
        lam = (self.hparams["guidance"] if guidance is None else guidance) if self.guided else None
        actions = self.ema.model.sample(self._obs(obs), dom if self.uses_domain_embedding else None, lam,
                                        generator, None if noise is None else self._tensor(noise))
        return actions.cpu().numpy()

    @torch.no_grad()
    def encode(self, obs: Any) -> np.ndarray:
        """z (B, z_width) of observation histories (B, T_o, D) (an image policy: the observation dict)."""
        return self.ema.model.encode(self._obs(obs)).cpu().numpy()

    @torch.no_grad()
    def shallow_features(self, obs: Any) -> np.ndarray:
        """The policy's shallow features (`DiffusionPolicy.shallow_features`), EMA weights."""
        return self.ema.model.shallow_features(self._obs(obs)).cpu().numpy()

    @torch.no_grad()
    def conditioning(self, obs: Any, domain: str | int) -> np.ndarray:
        """z_cond: z plus the domain embedding for domain-conditioned methods, else z."""
        dom = domain_id(domain) if self.uses_domain_embedding else None
        return self.ema.model.conditioning(self._obs(obs), dom).cpu().numpy()

    # -- state
    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "ema": self.ema.state_dict(), "extra": self.extra.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # the method's own modules first: their architecture is what a method's version changes, so a checkpoint
        # of another version fails here, before the policy is touched
        self.extra.load_state_dict(state["extra"])
        self.policy.load_state_dict(state["policy"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])


def pooled_spread(z_src: torch.Tensor, z_tgt: torch.Tensor) -> torch.Tensor:
    """RMS distance of both clouds' rows to their joint mean (a differentiable scalar). The offset between the
    domains counts in it, so no row of the divided clouds lies far from their joint mean however tight each
    domain's own cloud becomes."""
    z = torch.cat([z_src, z_tgt])
    return (z - z.mean(0)).pow(2).sum(-1).mean().sqrt()


def scale_free(z_src: torch.Tensor, z_tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both clouds divided by their `pooled_spread` (not detached): multiplying z by any constant leaves the
    result unchanged, so no loss computed on it can be lowered by rescaling z. (Divided by the within-domain
    spread instead, as the alignment measure divides it, the domains' offset grows without bound as each
    domain's cloud tightens.)"""
    spread = pooled_spread(z_src, z_tgt).clamp_min(SPREAD_EPS)
    return z_src / spread, z_tgt / spread


def make_sampler(method: type[Method], source: Windows | None, target: Windows | None, batch_size: int, w: float,
                 generator: torch.Generator) -> MixedSampler:
    """The batch sampler `method` trains on: w sets the diffusion batch's mix; an aligning method also gets
    batch_size // 2 alignment samples per domain, whatever w."""
    return MixedSampler(source, target, batch_size, w, generator, batch_size // 2 if method.aligns else 0)


METHODS = MethodRegistry("method", Method)


def hparam_space(method: str | type[Method]) -> tuple[str, Spec]:
    """(registry key, hyperparameter space) of a method given by name or class; the key seeds its random draws."""
    cls = METHODS[method] if isinstance(method, str) else method
    return METHODS.key(cls), cls.hparam_space


def default_hparams(method: str | type[Method]) -> dict[str, Value]:
    return space.defaults(hparam_space(method)[1])


def random_hparams(method: str | type[Method], seed: int) -> dict[str, Value]:
    """One random draw: each hyperparameter from its own stream, seeded by hash(seed, method, name)."""
    return space.draw(*hparam_space(method), seed)


def validate_hparams(method: str | type[Method], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` if each names a hyperparameter of `method` within its limits; else ValueError naming it."""
    return space.validate(*hparam_space(method), overrides)


def resolve_hparams(method: str | type[Method], overrides: dict[str, Any] | None = None) -> dict[str, Value]:
    """The defaults of `method` updated with validated `overrides`."""
    return {**default_hparams(method), **validate_hparams(method, overrides or {})}


def describe(method: str | type[Method]) -> str:
    """A table of `method`'s hyperparameters: name, default, search distribution and limits."""
    return space.table(hparam_space(method)[1])


def _register(cls: type[Method]) -> type[Method]:
    METHODS.register(cls.name, cls)
    return cls


@_register
class TargetOnly(Method):
    """Target demos only (w = 1): the no-transfer reference."""

    name, description = "target_only", "diffusion policy on the target demos alone"
    uses_source, mixes = False, False


@_register
class SourceOnly(Method):
    """Source demos only (w = 0): measures the gap's cost in the target domain."""

    name, description = "source_only", "diffusion policy on the source demos alone"
    uses_target, mixes = False, False


@_register
class Cotrain(Method):
    """Naive co-training: one policy on batches with a target fraction w (docs/PROTOCOL.md "Mixing ratio";
    Maddukuri et al. 2025, arXiv 2503.24361)."""

    name, description = "cotrain", "one policy on batches mixed at target fraction w"


@_register
class DomainCond(Method):
    """Co-training with a learned domain embedding always given to the noise network (explicit
    discernibility; docs/PROTOCOL.md "Standard forms: domain conditioning")."""

    name, description = "domain_cond", "co-training, domain embedding always given to the denoiser"
    uses_domain_embedding = True
    loss_terms = {"diffusion": ("policy.encoder", "policy.net", "policy.domain_embedding")}


@_register
class CFG(Method):
    """Domain-conditioned co-training with classifier-free guidance (Ho & Salimans 2022; docs/PROTOCOL.md).

    Training: the domain embedding is replaced by the learned null token with probability p_uncond.
    Sampling: eps = eps(x, o, null) + (1 + lambda) * (eps(x, o, domain) - eps(x, o, null)) with
    lambda = the `guidance` hyperparameter (lambda = 0 is plain conditional sampling; lambda < 0 moves
    toward the unconditional, source-heavy model; the study's sweep peaks at lambda = -0.5).
    """

    name, description = "cfg", "domain label dropped with p_uncond in training; guidance lambda at sampling"
    uses_domain_embedding, guided = True, True
    hparam_space = {
        "p_uncond": (0.15, Uniform(0.1, 0.2, limits=(0.0, 1.0))),
        # guidance lambda at sampling: the study's sweep over [-2, 2] peaks at -0.5 for CFG and CFG-ADDA
        "guidance": (-0.5, Uniform(-2.0, 2.0, limits=(-10.0, 10.0))),
    }
    loss_terms = {"diffusion": ("policy.encoder", "policy.net", "policy.domain_embedding")}

    def cond_domain(self, batch: Batch) -> torch.Tensor:
        drop = torch.rand(len(batch["domain"]), device=self.device) < self.hparams["p_uncond"]
        return torch.where(drop, torch.full_like(batch["domain"], NULL_DOMAIN), batch["domain"])
