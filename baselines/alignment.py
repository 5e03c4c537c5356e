"""The alignment methods: co-training plus a term that pulls the two domains' z together (OT, ADDA,
CFG-ADDA), each registered in `baselines.methods.METHODS`.

Each term compares its own equal-size source and target samples (each batch's "align" rows,
`baselines.methods.make_sampler`), never the diffusion batch's w-dependent split, and sees z divided by
the pooled spread of those samples (`scale_free`): a method cannot lower it by shrinking or inflating z.
Version 1 of the three methods: the pooled spread (version 0 divided by the within-domain spread); and for
the adversarial two, a reversal that does not grow as z shrinks (under version 0, `cfg_adda` collapsed z to a
point on 2 of 3 seeds of lift/sensing: `_Adversarial`). Version 2 of the adversarial two: a discriminator with
spectral normalization, so its gradient, hence the reversed push on z, is bounded (under version 1, `cfg_adda`
still collapsed z on 1 of 5 seeds of lift/sensing, its discriminator's weights grown large and its logits
confidently wrong).
"""
from __future__ import annotations

import math
from typing import Any

import ot
import torch
import torch.nn.functional as F
from torch import nn

from .hparams import Choice, Uniform, loguniform
from .methods import CFG, Batch, Method, _register

SINKHORN_ITERS = 100


@_register
class OT(Method):
    """Co-training plus an entropic optimal-transport loss between the source and target z.

    Standard form (docs/PROTOCOL.md "OT"): Sinkhorn (Cuturi 2013) with uniform marginals; ot_unbalanced > 0
    relaxes the marginals by a KL penalty of that weight (Chizat et al. 2018; Cheng et al., NeurIPS
    2025), so unmatched states may stay unmatched. It transports the equal-size alignment samples of the
    two domains (not the diffusion batch's w-dependent split). Cost: ||z_s - z_t||^2 on z divided by its
    pooled spread (`scale_free`: shrinking z cannot lower it) + ot_action_cost * mean squared
    difference of the normalized action chunks, so that only task-equivalent states match. ot_reg and
    ot_unbalanced are relative to the batch's mean cost. The plan is computed by POT's torch backend on
    the detached cost (log-domain / stabilized iterations) and the loss is <plan, cost>: the
    envelope-theorem gradient of `ot.sinkhorn2`, without backpropagating through the iterations.
    """

    name, description = "ot", "co-training + entropic (optionally unbalanced) OT loss between domains' z"
    aligns, version = True, 1
    hparam_space = {
        "ot_weight": (0.1, loguniform(0.01, 1.0, limits=(0.0, 1e3))),
        # entropic epsilon, relative to the batch's mean transport cost
        "ot_reg": (0.05, loguniform(0.01, 0.5, limits=(1e-4, 1e2))),
        # 0: balanced OT; > 0: unbalanced, the KL marginal relaxation tau (relative to the mean cost)
        "ot_unbalanced": (0.0, Choice((0.0, 0.1, 1.0, 10.0), limits=(0.0, 1e4))),
        # weight of the normalized action chunks' mean squared difference in the cost
        "ot_action_cost": (1.0, Uniform(0.0, 5.0, limits=(0.0, 1e3))),
    }
    loss_terms = {"ot": ("policy.encoder",)}

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        diffusion, _ = self.diffusion(batch)
        (z_src, z_tgt), (a_src, a_tgt) = batch["align_z"], batch["align_action"]
        transport = self.transport_loss(z_src, z_tgt, a_src, a_tgt)
        return diffusion + self.hparams["ot_weight"] * transport, {"diffusion": diffusion, "ot": transport,
                                                                   "z_spread": batch["align_spread"]}

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

    The discriminator (MLP, disc_hidden units, each layer spectrally normalized: 1-Lipschitz) reads the
    equal-size alignment samples of both domains, z divided by its pooled spread (`scale_free`: inflating or
    shrinking z cannot fool it), and minimizes their BCE (chance 1/2); the encoder receives that gradient
    reversed and scaled by adversarial_weight * grl_schedule(step, grl_warmup) * the samples' pooled spread of
    z (so the push on z does not grow as z shrinks). `disc_acc` is the discriminator's accuracy on those
    samples, before the step. A known weakness of the reversed (minimax) form: a strong reversal can
    overshoot, making the discriminator confidently wrong; an unconstrained discriminator then answers with
    large weights, whose gradient, reversed onto z, grows with them (in version 1 it collapsed z to a point:
    BCE 5-48 within a few steps, z's spread from 1.3 to 0.001). The Lipschitz bound caps that push.
    """

    hparam_space = {
        # reversal coefficient at the end of the warm-up (the study's regimes use 0, 0.05 and 0.5)
        "adversarial_weight": (0.05, loguniform(0.005, 1.0, limits=(0.0, 1e3))),
        "disc_hidden": (128, Choice((64, 128, 256), limits=(1, 4096))),
        # steps over which the coefficient ramps by Ganin's 2 / (1 + exp(-10 p)) - 1; 0: no ramp
        "grl_warmup": (1000, loguniform(100, 10000, limits=(0, 10**8), integer=True)),
    }
    loss_terms = {"adv": ("policy.encoder", "extra.discriminator")}

    def build_extra(self) -> dict[str, nn.Module]:
        hidden = self.hparams["disc_hidden"]
        layers = [nn.Linear(self.policy.config.z_width, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)]
        bounded = [nn.utils.parametrizations.spectral_norm(layer) for layer in layers]
        return {"discriminator": nn.Sequential(bounded[0], nn.ReLU(), bounded[1], nn.ReLU(), bounded[2])}

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        diffusion, _ = self.diffusion(batch)
        coeff = self.hparams["adversarial_weight"] * grl_schedule(self.step, self.hparams["grl_warmup"])
        # times z's spread: the reversed gradient reaching z is then the discriminator's on its scale-free input,
        # not that divided by the spread (which grows as z shrinks, outweighs the diffusion term, and shrinks
        # z on: a collapse to a point)
        adv, acc = self.adversarial_loss(*batch["align_z"], coeff * float(batch["align_spread"]))
        return diffusion + adv, {"diffusion": diffusion, "adv": adv, "disc_acc": acc,
                                 "grl_coeff": torch.tensor(coeff), "z_spread": batch["align_spread"]}

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
    aligns, version = True, 2


@_register
class CfgAdda(CFG, _Adversarial):
    """The study's proposal (docs/PROTOCOL.md "CFG-ADDA"): `adda`'s adversarial alignment of z plus `cfg`'s
    domain conditioning with null-token dropout and guidance, so the shared representation is
    aligned while the domain stays available to the denoiser."""

    name, description = "cfg_adda", "adversarial alignment of z + domain conditioning with guidance (the study's)"
    aligns, version = True, 2
