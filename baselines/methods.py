"""Co-training methods: one small class each over one `DiffusionPolicy` (DomainBed's `algorithms.py` shape).

A method gets a source and a target minibatch in `update()` (see `baselines.data.MixedSampler`), takes
one optimization step on the policy's diffusion loss plus its own terms, and returns every term as a
float. It samples with its EMA weights and its own sampling rule. Checkpoints: `baselines.checkpoints`.

Alignment terms (OT, ADDA, CFG-ADDA) compare their own equal-size source and target samples (each
batch's "align" rows, `make_sampler`), never the diffusion batch's w-dependent split, and see z divided
by its within-domain spread on those samples (`scale_free`): a method cannot lower them by shrinking or
inflating z.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import ot
import torch
import torch.nn.functional as F
from torch import nn

from tasks.registry import Registry

from .data import SOURCE, TARGET, MixedSampler, Windows
from .hparams import resolve_hparams
from .ema import EMA
from .policy import LOWDIM, NULL_DOMAIN, DiffusionPolicy, cat_obs, map_obs

Batch = dict[str, torch.Tensor]
DOMAINS = {"source": SOURCE, "target": TARGET}
SINKHORN_ITERS = 100
SPREAD_EPS = 1e-8  # floor of the within-domain spread (a z collapsed to a point)


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
    alignment term on z needs the batches' equal-size "align" samples).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_source: ClassVar[bool] = True
    uses_target: ClassVar[bool] = True
    mixes: ClassVar[bool] = True
    uses_domain_embedding: ClassVar[bool] = False
    guided: ClassVar[bool] = False
    aligns: ClassVar[bool] = False

    def __init__(self, policy: DiffusionPolicy, hparams: dict[str, Any] | None = None, device: str = "cpu"):
        self.hparams = resolve_hparams(self.name, hparams)
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

    def _align_z(self, source_batch: Batch, target_batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """z of the two domains' alignment samples, divided by their within-domain spread (`scale_free`)."""
        z = [self.policy.encode(map_obs(lambda x: x.to(self.device), b["align"]["obs"]))
             for b in (source_batch, target_batch)]
        return scale_free(*z)

    def update(self, source_batch: Batch | None, target_batch: Batch | None) -> dict[str, float]:
        """One optimization step; returns {"loss": total, <term>: value, ...}."""
        if self.aligns and any(b is None or "align" not in b for b in (source_batch, target_batch)):
            raise ValueError(f"method {self.name!r} aligns the domains: its batches need equal-size 'align' "
                             "samples of both domains (build the sampler with baselines.make_sampler)")
        merged = self._merge(source_batch, target_batch)
        if self.aligns:
            merged["align_z"] = self._align_z(source_batch, target_batch)
            merged["align_action"] = tuple(b["align"]["action"].to(self.device) for b in (source_batch, target_batch))
        loss, terms = self.objective(merged)
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
        self.policy.load_state_dict(state["policy"])
        self.ema.load_state_dict(state["ema"])
        self.extra.load_state_dict(state["extra"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])


def within_domain_spread(z_src: torch.Tensor, z_tgt: torch.Tensor) -> torch.Tensor:
    """Mean over the two domains of each one's RMS distance to its own mean (a differentiable scalar)."""
    return 0.5 * sum((z - z.mean(0)).pow(2).sum(-1).mean().sqrt() for z in (z_src, z_tgt))


def scale_free(z_src: torch.Tensor, z_tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both clouds divided by their `within_domain_spread` (not detached): multiplying z by any constant
    leaves the result unchanged, so no loss computed on it can be lowered by rescaling z."""
    spread = within_domain_spread(z_src, z_tgt).clamp_min(SPREAD_EPS)
    return z_src / spread, z_tgt / spread


def make_sampler(method: type[Method], source: Windows | None, target: Windows | None, batch_size: int, w: float,
                 generator: torch.Generator) -> MixedSampler:
    """The batch sampler `method` trains on: w sets the diffusion batch's mix; an aligning method also gets
    batch_size // 2 alignment samples per domain, whatever w."""
    return MixedSampler(source, target, batch_size, w, generator, batch_size // 2 if method.aligns else 0)


METHODS: Registry[type[Method]] = Registry("method")


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


@_register
class OT(Method):
    """Co-training plus an entropic optimal-transport loss between the source and target z.

    Standard form (docs/PROTOCOL.md "OT"): Sinkhorn (Cuturi 2013) with uniform marginals; ot_unbalanced > 0
    relaxes the marginals by a KL penalty of that weight (Chizat et al. 2018; Cheng et al., NeurIPS
    2025), so unmatched states may stay unmatched. It transports the equal-size alignment samples of the
    two domains (not the diffusion batch's w-dependent split). Cost: ||z_s - z_t||^2 on z divided by its
    within-domain spread (`scale_free`: shrinking z cannot lower it) + ot_action_cost * mean squared
    difference of the normalized action chunks, so that only task-equivalent states match. ot_reg and
    ot_unbalanced are relative to the batch's mean cost. The plan is computed by POT's torch backend on
    the detached cost (log-domain / stabilized iterations) and the loss is <plan, cost>: the
    envelope-theorem gradient of `ot.sinkhorn2`, without backpropagating through the iterations.
    """

    name, description = "ot", "co-training + entropic (optionally unbalanced) OT loss between domains' z"
    aligns = True

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        diffusion, _ = self.diffusion(batch)
        (z_src, z_tgt), (a_src, a_tgt) = batch["align_z"], batch["align_action"]
        transport = self.transport_loss(z_src, z_tgt, a_src, a_tgt)
        return diffusion + self.hparams["ot_weight"] * transport, {"diffusion": diffusion, "ot": transport}

    def transport_loss(self, z_src: torch.Tensor, z_tgt: torch.Tensor, a_src: torch.Tensor,
                       a_tgt: torch.Tensor) -> torch.Tensor:
        """<plan, cost> between scale-free z (B_s, d), (B_t, d) with action chunks (B_s, H, A), (B_t, H, A)."""
        cost = (z_src[:, None] - z_tgt[None]).pow(2).sum(-1)
        if self.hparams["ot_action_cost"]:
            act_s, act_t = (self.policy.action_normalizer(a).flatten(1) for a in (a_src, a_tgt))
            cost = cost + self.hparams["ot_action_cost"] * (act_s[:, None] - act_t[None]).pow(2).mean(-1)
        fixed = cost.detach()
        scale = max(fixed.mean().item(), 1e-12)
        a = torch.full((len(fixed),), 1.0 / len(fixed), dtype=fixed.dtype, device=fixed.device)
        b = torch.full((fixed.shape[1],), 1.0 / fixed.shape[1], dtype=fixed.dtype, device=fixed.device)
        reg, tau = self.hparams["ot_reg"] * scale, self.hparams["ot_unbalanced"] * scale
        if self.hparams["ot_unbalanced"]:
            plan = ot.unbalanced.sinkhorn_unbalanced(a, b, fixed, reg, tau, method="sinkhorn_stabilized",
                                                     numItermax=SINKHORN_ITERS)
        else:
            plan = ot.sinkhorn(a, b, fixed, reg, method="sinkhorn_log", numItermax=SINKHORN_ITERS, warn=False)
        return (plan * cost).sum()


class _GradReverse(torch.autograd.Function):
    """Identity forward; gradient multiplied by -coeff backward (Ganin et al. 2016)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def grl_schedule(step: int, warmup: int) -> float:
    """Ganin et al.'s reversal ramp 2 / (1 + exp(-10 p)) - 1, p = step / warmup (1 when warmup is 0)."""
    p = 1.0 if warmup == 0 else min(step / warmup, 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


class _Adversarial(Method):
    """Adds a domain discriminator on z trained through a gradient-reversal layer (DANN form of ADDA).

    The discriminator (MLP, disc_hidden units) reads the equal-size alignment samples of both domains,
    z divided by its within-domain spread (`scale_free`: inflating or shrinking z cannot fool it), and
    minimizes their BCE (chance 1/2); the encoder receives that gradient reversed and scaled by
    adversarial_weight * grl_schedule(step, grl_warmup). `disc_acc` is the discriminator's accuracy on
    those samples, before the step. A known weakness of the reversed (minimax) form:
    a strong reversal can overshoot, making the discriminator confidently wrong, after which it relearns
    with a margin whose gradient vanishes; hence a small weight and the ramp.
    """

    def build_extra(self) -> dict[str, nn.Module]:
        hidden = self.hparams["disc_hidden"]
        return {"discriminator": nn.Sequential(
            nn.Linear(self.policy.config.z_width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1))}

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        diffusion, _ = self.diffusion(batch)
        coeff = self.hparams["adversarial_weight"] * grl_schedule(self.step, self.hparams["grl_warmup"])
        adv, acc = self.adversarial_loss(*batch["align_z"], coeff)
        return diffusion + adv, {"diffusion": diffusion, "adv": adv, "disc_acc": acc,
                                 "grl_coeff": torch.tensor(coeff)}

    def adversarial_loss(self, z_src: torch.Tensor, z_tgt: torch.Tensor, coeff: float
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """(BCE of the discriminator on scale-free z (B, d) of both domains, its accuracy), the encoder's
        gradient reversed and scaled by coeff."""
        z = _GradReverse.apply(torch.cat([z_src, z_tgt]), coeff)
        logits = self.extra["discriminator"](z).squeeze(-1)
        label = torch.cat([torch.zeros(len(z_src)), torch.ones(len(z_tgt))]).to(logits)
        acc = ((logits > 0).float() == label).float().mean()
        return F.binary_cross_entropy_with_logits(logits, label), acc


@_register
class ADDA(_Adversarial):
    """Co-training plus adversarial alignment of scale-free z (docs/PROTOCOL.md "ADDA / DANN"): a discriminator predicts
    the domain from z, the encoder learns to fool it through a gradient-reversal layer with Ganin et
    al.'s ramp (Ganin et al., JMLR 2016; in the study's terms, ADDA after Tzeng et al. 2017)."""

    name, description = "adda", "co-training + domain discriminator on z through gradient reversal"
    aligns = True


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

    def cond_domain(self, batch: Batch) -> torch.Tensor:
        drop = torch.rand(len(batch["domain"]), device=self.device) < self.hparams["p_uncond"]
        return torch.where(drop, torch.full_like(batch["domain"], NULL_DOMAIN), batch["domain"])


@_register
class CfgAdda(CFG, _Adversarial):
    """The study's proposal (docs/PROTOCOL.md "CFG-ADDA"): `adda`'s adversarial alignment of z plus `cfg`'s
    domain conditioning with null-token dropout and guidance, so the shared representation is
    aligned while the domain stays available to the denoiser."""

    name, description = "cfg_adda", "adversarial alignment of z + domain conditioning with guidance (the study's)"
    aligns = True
