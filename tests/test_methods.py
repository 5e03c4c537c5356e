"""Every co-training method on real small Lift datasets; the conformance check; hyperparameters;
checkpoints; bad input."""
from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import torch

from baselines import (METHODS, DiffusionPolicy, Method, MethodCheckError, PolicyConfig, check_method,
                       default_hparams, describe, load_checkpoint, random_hparams,
                       restore_checkpoint, save_checkpoint, validate_hparams)
from baselines.alignment import _GradReverse, grl_schedule
from baselines.build import build_policy, build_training
from baselines.hparams import loguniform
from baselines.methods import scale_free

STEPS, BATCH = 30, 64

def tiny_config(obs_dim: int, **kw) -> PolicyConfig:
    base = dict(obs_dim=obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=32, depth=1, z_dim=8,
                encoder_hidden=32)
    return PolicyConfig(**{**base, **kw})


def build(name: str, source, target, seed: int = 0, **hparams):
    """(method, sampler) for `name` on the source/target Datasets, seeded."""
    hp = {"lr": 3e-3, "batch_size": BATCH, **({"w": 0.3} if METHODS[name].mixes else {}), **hparams}
    built = build_training(tiny_config(source.obs_dim), name, hp, source, target, seed)
    return built.method, built.sampler


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_and_samples(name, lift_datasets):
    method, sampler = build(name, *lift_datasets, **({"grl_warmup": 0} if "adda" in name else {}))
    torch.manual_seed(1)
    logs = [method.update(*sampler.next()) for _ in range(STEPS)]
    for log in logs:
        assert "loss" in log and "diffusion" in log
        assert all(math.isfinite(v) for v in log.values()), log
    # the diffusion term falls (an adversarial term may rise while the discriminator learns)
    first, last = np.mean([g["diffusion"] for g in logs[:5]]), np.mean([g["diffusion"] for g in logs[-5:]])
    assert last < first, f"{name}: diffusion loss {first:.4f} -> {last:.4f}"
    assert method.step == STEPS
    obs = sampler.next()[1 if method.uses_target else 0]["obs"][:3]
    for domain in ("source", "target"):
        actions = method.sample(obs, domain)
        assert actions.shape == (3, 8, 7) and np.isfinite(actions).all()
    assert method.encode(obs).shape == (3, 8)
    width = 8 + (16 if method.uses_domain_embedding else 0)
    assert method.conditioning(obs, "target").shape == (3, width)


def test_method_terms(lift_datasets):
    ot_method, sampler = build("ot", *lift_datasets)
    assert {"loss", "diffusion", "ot"} <= set(ot_method.update(*sampler.next()))
    adda, sampler = build("cfg_adda", *lift_datasets)
    assert {"loss", "diffusion", "adv", "disc_acc", "grl_coeff"} <= set(adda.update(*sampler.next()))
    unbalanced, sampler = build("ot", *lift_datasets, ot_unbalanced=1.0)
    assert math.isfinite(unbalanced.update(*sampler.next())["ot"])


ALIGNING = [name for name in METHODS.names() if METHODS[name].aligns]


def _alignment_loss(method, z_src: torch.Tensor, z_tgt: torch.Tensor, a_src: torch.Tensor, a_tgt: torch.Tensor):
    """The method's alignment term on raw z (scale_free applied as in training)."""
    if method.name == "ot":
        return method.transport_loss(*scale_free(z_src, z_tgt), a_src, a_tgt)
    return method.adversarial_loss(*scale_free(z_src, z_tgt), 1.0)[0]


def test_aligning_methods_are_exactly_the_ones_with_alignment_terms():
    assert sorted(ALIGNING) == ["adda", "cfg_adda", "ot"]


@pytest.mark.parametrize("name", ALIGNING)
def test_rescaling_z_cannot_lower_an_alignment_loss(name, lift_datasets):
    """The loss is the same for z and c z, and its gradient along a global scale of z is zero: shrinking z
    (OT's collapse) or inflating it (ADDA's reversal) gains the method nothing."""
    method, sampler = build(name, *lift_datasets)
    source, target = sampler.next()
    z_src, z_tgt = (method.policy.encode(b["align"]["obs"]).detach() for b in (source, target))
    actions = source["align"]["action"], target["align"]["action"]
    base = _alignment_loss(method, z_src, z_tgt, *actions)
    for factor in (0.01, 50.0):
        assert _alignment_loss(method, factor * z_src, factor * z_tgt, *actions).item() == pytest.approx(
            base.item(), rel=1e-4)
    scale = torch.tensor(1.0, requires_grad=True)
    _alignment_loss(method, scale * z_src, scale * z_tgt, *actions).backward()
    assert abs(scale.grad.item()) < 1e-4 * max(1.0, abs(base.item()))


def test_scale_free_z_stays_bounded_as_each_domain_collapses():
    """Each domain's z shrinking toward its own point while the domains stay apart (the start of a collapse)
    leaves every scale-free row within a bounded distance of the joint mean, so an alignment term cannot
    grow without limit and drive the collapse on."""
    rng = torch.Generator().manual_seed(0)
    offset = torch.zeros(8)
    offset[0] = 3.0
    for tightness in (1.0, 1e-3, 1e-6):
        z_src, z_tgt = (tightness * torch.randn(64, 8, generator=rng) + c for c in (offset, -offset))
        scaled = torch.cat(scale_free(z_src, z_tgt))
        assert (scaled - scaled.mean(0)).norm(dim=-1).max() < 4.0


@pytest.mark.parametrize("name", ["adda", "cfg_adda"])
def test_the_reversed_gradient_on_z_does_not_grow_as_z_shrinks(name, lift_datasets):
    """The push the discriminator's reversed gradient gives z is the same for z and for z shrunk 100-fold:
    a reversal that grew as 1 / spread would outweigh the diffusion term as z shrinks and drive it to a point."""
    from baselines.methods import pooled_spread

    method, sampler = build(name, *lift_datasets, grl_warmup=0)
    batch = method.prepare(*sampler.next())
    raw = [z.detach() for z in batch["align_z"]]
    pushes = []
    for factor in (1.0, 0.01):
        z_src, z_tgt = ((factor * z).requires_grad_() for z in raw)
        batch["align_z"], batch["align_spread"] = scale_free(z_src, z_tgt), pooled_spread(z_src, z_tgt).detach()
        copy.deepcopy(method).objective(batch)[1]["adv"].backward()  # a copy: each call steps its power iteration
        pushes.append(torch.cat([z_src.grad, z_tgt.grad]))
    assert pushes[0].norm() > 0
    assert torch.allclose(pushes[1], pushes[0], rtol=1e-3, atol=1e-3 * float(pushes[0].abs().max()))


@pytest.mark.parametrize("name", ["adda", "cfg_adda"])
def test_the_reversed_gradient_on_z_does_not_grow_with_the_discriminators_weights(name, lift_datasets):
    """The discriminator is 1-Lipschitz (spectrally normalized): with its weights grown 100-fold, as they grow
    while it wins, it gives z the same push. Unbounded, that push grew with them, and in one of five
    lift/sensing runs it overshot and collapsed z to a point."""
    method, sampler = build(name, *lift_datasets, grl_warmup=0)
    batch = method.prepare(*sampler.next())
    raw = [z.detach() for z in batch["align_z"]]
    pushes = []
    for factor in (1.0, 100.0):
        grown = copy.deepcopy(method)
        with torch.no_grad():
            for key, param in grown.extra["discriminator"].named_parameters():
                if key.endswith(("weight", "weight.original")):
                    param.mul_(factor)
        z_src, z_tgt = (z.clone().requires_grad_() for z in raw)
        grown.objective({**batch, "align_z": scale_free(z_src, z_tgt)})[1]["adv"].backward()
        pushes.append(torch.cat([z_src.grad, z_tgt.grad]))
    assert pushes[0].norm() > 0
    assert torch.allclose(pushes[1], pushes[0], rtol=1e-3, atol=1e-3 * float(pushes[0].abs().max()))


def test_a_method_revision_gets_new_run_ids_and_leaves_the_others_alone():
    from benchmark.harness.config import RunConfig

    for name in METHODS.names():
        hashed = RunConfig(pair="lift/dynamics", method=name).hashed_dict()
        assert hashed.get("method_version", 0) == METHODS[name].version
    assert {name for name in METHODS.names() if METHODS[name].version} == set(ALIGNING)


@pytest.mark.parametrize("name", ALIGNING)
def test_alignment_terms_compare_equal_size_samples_at_small_w(name, lift_datasets):
    """At w = 0.005 the diffusion batch holds one target row, yet the alignment term compares
    batch_size // 2 rows of each domain, and it is the term `update` optimizes."""
    method, sampler = build(name, *lift_datasets, w=0.005)
    source, target = sampler.next()
    assert (len(source["obs"]), len(target["obs"])) == (BATCH - 1, 1)
    assert len(source["align"]["obs"]) == len(target["align"]["obs"]) == BATCH // 2
    with torch.no_grad():
        z_src, z_tgt = (method.policy.encode(b["align"]["obs"]) for b in (source, target))
        expected = _alignment_loss(method, z_src, z_tgt, source["align"]["action"], target["align"]["action"])
    terms = method.update(source, target)
    assert terms["ot" if name == "ot" else "adv"] == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="make_sampler"):
        method.update({k: v for k, v in source.items() if k != "align"}, target)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_is_bitwise_reproducible(name, lift_datasets):
    """Two trainings from the same seeds end with identical weights, EMA and extra modules."""
    states = []
    for _ in range(2):
        method, sampler = build(name, *lift_datasets, seed=4, **({"grl_warmup": 0} if "adda" in name else {}))
        torch.manual_seed(5)
        for _ in range(5):
            method.update(*sampler.next())
        states.append(method.state_dict())
    for part, first, second in (("policy", *[s["policy"] for s in states]),
                                ("ema", *[s["ema"]["model"] for s in states]), ("extra", *[s["extra"] for s in states])):
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), (part, key)


def test_single_domain_methods_ignore_the_other_batch(lift_datasets):
    method, sampler = build("target_only", *lift_datasets)
    _, target = sampler.next()
    torch.manual_seed(0)
    a = method.update(None, target)
    method2, _ = build("target_only", *lift_datasets)
    torch.manual_seed(0)
    source = {k: v.clone() for k, v in target.items()}
    assert method2.update(source, target) == a
    with pytest.raises(ValueError, match="target batch"):
        method.update(source, None)


def test_gradient_reversal_layer_reverses():
    x = torch.randn(5, 3, requires_grad=True)
    v = torch.randn(5, 3)
    (_GradReverse.apply(x, 0.3) * v).sum().backward()
    assert torch.allclose(x.grad, -0.3 * v)


def test_gradient_reversal_drives_the_discriminator_toward_chance():
    """Two separable domains (a nuisance input dimension shifted by 8 std; the action depends on the other
    three): with the reversal off the discriminator separates them (> 0.9); once on, the encoder is
    pushed to hide the domain and the discriminator's accuracy falls toward chance (< 0.7)."""
    g = torch.Generator().manual_seed(3)
    obs = torch.randn(1024, 1, 4, generator=g)
    obs[512:, 0, 3] += 8.0
    action = (obs[:, 0, :3] @ torch.randn(3, 7, generator=g))[:, None].repeat(1, 4, 1)
    policy = build_policy(tiny_config(4, n_obs_steps=1, horizon=4), obs.numpy(), action.numpy(), seed=3)
    method = METHODS["adda"](policy, {"lr": 1e-3, "adversarial_weight": 0.0, "grl_warmup": 0})

    def accuracies(steps: int) -> np.ndarray:
        out = []
        for _ in range(steps):
            idx = [torch.randint(512, (64,), generator=g) + 512 * d for d in (0, 1)]
            batches = [{"obs": obs[i], "action": action[i], "domain": torch.full((64,), d),
                        "align": {"obs": obs[i], "action": action[i]}} for d, i in enumerate(idx)]
            out.append(method.update(*batches)["disc_acc"])
        return np.array(out)

    separated = accuracies(60)[-20:].mean()
    method.hparams["adversarial_weight"] = 0.5
    reversed_acc = accuracies(40)[10:].mean()
    assert separated > 0.9 and reversed_acc < 0.7, (separated, reversed_acc)


def test_grl_schedule():
    assert grl_schedule(0, 100) == 0.0
    assert grl_schedule(50, 100) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_schedule(10**6, 100) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_schedule(0, 0) == grl_schedule(10, 0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)


def test_cfg_guidance_rule(lift_datasets):
    method, sampler = build("cfg", *lift_datasets)
    for _ in range(5):
        method.update(*sampler.next())
    obs = sampler.next()[1]["obs"][:4]
    noise = torch.randn(4, 8, 7, generator=torch.Generator().manual_seed(3))
    plain = method.ema.model.sample(obs, 1, None, noise=noise).numpy()
    assert np.array_equal(method.sample(obs, "target", guidance=0.0, noise=noise), plain)
    assert not np.allclose(method.sample(obs, "target", noise=noise), plain)  # default lambda = -0.5
    assert method.hparams["guidance"] == -0.5
    cotrain, _ = build("cotrain", *lift_datasets)
    with pytest.raises(ValueError, match="guidance"):
        cotrain.sample(obs, "target", guidance=1.0)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_passes_check_method(name):
    history = check_method(METHODS[name])
    assert set(METHODS[name].loss_terms) <= set(history)


class ZeroedOT(METHODS["ot"]):
    """OT whose own term is multiplied by zero in the total loss."""

    def objective(self, batch):
        _, terms = super().objective(batch)
        return terms["diffusion"] + 0.0 * terms["ot"], terms


class DetachedOT(METHODS["ot"]):
    """OT whose term sees a detached z (no gradient reaches the encoder)."""

    def prepare(self, source_batch, target_batch):
        batch = super().prepare(source_batch, target_batch)
        batch["align_z"] = tuple(z.detach() for z in batch["align_z"])
        return batch


class DetachedADDA(METHODS["adda"]):
    """ADDA whose discriminator reads a detached z: it still trains, but the encoder is never aligned."""

    def adversarial_loss(self, z_src, z_tgt, coeff):
        return super().adversarial_loss(z_src.detach(), z_tgt.detach(), coeff)


class ConstantTerm(METHODS["cotrain"]):
    """Declares a term that never changes."""

    loss_terms = {"flat": ("policy.encoder",)}

    def objective(self, batch):
        diffusion, z = self.diffusion(batch)
        flat = 0.0 * z.sum() + 1.0
        return diffusion + flat, {"diffusion": diffusion, "flat": flat}


class NoisySampling(METHODS["cotrain"]):
    """Samples with fresh randomness on top of the given noise."""

    def sample(self, obs, domain, guidance=None, noise=None, generator=None):
        actions = super().sample(obs, domain, guidance, noise, generator)
        return actions + np.random.default_rng().normal(size=actions.shape).astype(actions.dtype)


class ForgetfulCheckpoint(METHODS["cotrain"]):
    """Reloads everything but the EMA weights it samples with."""

    def load_state_dict(self, state):
        super().load_state_dict({**state, "ema": self.ema.state_dict()})


@pytest.mark.parametrize("broken, message", [
    (NoisySampling, "NoisySampling ('cotrain') fails the sampling check: two source samples from the same noise"),
    (ForgetfulCheckpoint, "ForgetfulCheckpoint ('cotrain') fails the save/load check: the reloaded method"),
    (ZeroedOT, "ZeroedOT ('ot') fails the gradient check: term 'ot' does not enter the total loss"),
    (DetachedOT, "DetachedOT ('ot') fails the gradient check: term 'ot' is detached"),
    (DetachedADDA, "DetachedADDA ('adda') fails the gradient check: term 'adv' sends no gradient to policy.encoder"),
    (ConstantTerm, "ConstantTerm ('cotrain') fails the varying check: term 'flat' is constant"),
])
def test_check_method_catches_a_method_that_does_not_do_what_it_claims(broken, message):
    with pytest.raises(MethodCheckError, match=re.escape(message)):
        check_method(broken)


def test_check_method_names_a_bad_declaration():
    class Nameless(Method):
        pass

    class WrongModule(METHODS["cotrain"]):
        name, description = "wrong_module", "claims a module it lacks"
        loss_terms = {"diffusion": ("policy.encoder", "extra.critic")}

    with pytest.raises(MethodCheckError, match="declaration check: it needs a non-empty `name`"):
        check_method(Nameless)
    with pytest.raises(MethodCheckError, match="names module 'extra.critic', which the method lacks"):
        check_method(WrongModule)
    with pytest.raises(MethodCheckError, match="not a subclass of baselines.Method"):
        check_method(dict)


def test_hparams_and_terms_are_declared_on_the_class_and_merged():
    """A subclass declares only what it adds; its bases' entries come first, and `w` only where it mixes."""
    class Extra(METHODS["cfg"]):
        name, description = "extra", "cfg plus one knob"
        hparam_space = {"knob": (0.5, loguniform(0.1, 1.0))}
        loss_terms = {"knob_term": ("policy.encoder",)}

    assert list(Extra.hparam_space) == [*METHODS["cfg"].hparam_space, "knob"]
    assert Extra.loss_terms == {**METHODS["cfg"].loss_terms, "knob_term": ("policy.encoder",)}
    assert default_hparams(Extra)["knob"] == 0.5 and validate_hparams(Extra, {"knob": 0.2}) == {"knob": 0.2}
    assert "w" in METHODS["cotrain"].hparam_space and "w" not in METHODS["target_only"].hparam_space
    assert METHODS["cfg_adda"].hparam_space.keys() == METHODS["adda"].hparam_space.keys() | METHODS["cfg"].hparam_space.keys()


def test_hparams_defaults_ranges_and_streams(monkeypatch):
    for name in METHODS.names():
        assert set(default_hparams(name)) == set(METHODS[name].hparam_space)
        assert name in METHODS and METHODS[name].description
        assert "lr" in describe(name)
        for seed in range(5):
            draw = random_hparams(name, seed)
            validate_hparams(name, draw)
            assert draw == random_hparams(name, seed)
    assert random_hparams("cfg", 0) != random_hparams("cfg", 1)
    before = random_hparams("ot", 7)
    space = METHODS["ot"].hparam_space
    monkeypatch.setattr(METHODS["ot"], "hparam_space", {"aaa_new": space["lr"], **space})
    after = random_hparams("ot", 7)
    assert {k: v for k, v in after.items() if k != "aaa_new"} == before


def test_bad_method_and_hparams(lift_datasets):
    with pytest.raises(KeyError, match="'nope'.*known: adda"):
        METHODS["nope"]
    with pytest.raises(ValueError, match="'learning_rate'.*known: lr"):
        validate_hparams("cotrain", {"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="'ot_weight'"):
        validate_hparams("cotrain", {"ot_weight": 0.1})
    assert validate_hparams("target_only", {"w": None}) == {"w": None}  # unset: single-domain methods have no w
    with pytest.raises(ValueError, match="'w' for method 'target_only'"):
        validate_hparams("target_only", {"w": 0.5})
    for name, value in (("w", 1.5), ("p_uncond", 1.5), ("lr", -1.0), ("batch_size", 3.5), ("guidance", "x")):
        with pytest.raises(ValueError, match=f"{name}="):
            validate_hparams("cfg", {name: value})
    source, target = lift_datasets
    with pytest.raises(ValueError, match="domain_embedding"):
        METHODS["cfg"](DiffusionPolicy(tiny_config(source.obs_dim)), {})


def test_checkpoint_round_trip_and_mismatches(lift_datasets, tmp_path):
    method, sampler = build("cfg_adda", *lift_datasets)
    for _ in range(3):
        method.update(*sampler.next())
    save_checkpoint(tmp_path / "ckpt", method)
    loaded = load_checkpoint(tmp_path / "ckpt", expected=method.policy.config, method="cfg_adda")
    obs = sampler.next()[1]["obs"][:3]
    noise = torch.randn(3, 8, 7, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(loaded.sample(obs, "target", noise=noise), method.sample(obs, "target", noise=noise))
    assert loaded.step == 3 and loaded.hparams == method.hparams
    for a, b in zip(loaded.policy.state_dict().values(), method.policy.state_dict().values()):
        assert torch.equal(a, b)
    other = tiny_config(method.policy.config.obs_dim, width=64, domain_embedding=True)
    with pytest.raises(ValueError, match="width: 32 vs 64"):
        load_checkpoint(tmp_path / "ckpt", expected=other)
    with pytest.raises(ValueError, match="'cfg_adda', expected 'cfg'"):
        load_checkpoint(tmp_path / "ckpt", method="cfg")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "missing")
    method.update(*sampler.next())  # a step further than `loaded`
    v1 = save_checkpoint(tmp_path / "v1", method)  # a version-1 checkpoint: no field, an unnormalized discriminator
    state = torch.load(v1 / "state.pt", weights_only=True)
    state["extra"] = {key.replace(".parametrizations.weight.original", ".weight"): value
                      for key, value in state["extra"].items() if not key.endswith(("_u", "_v"))}
    torch.save(state, v1 / "state.pt")
    meta = json.loads((v1 / "checkpoint.json").read_text())
    del meta["method_version"]
    (v1 / "checkpoint.json").write_text(json.dumps(meta))
    untouched = copy.deepcopy(loaded)
    with pytest.raises(ValueError, match="do not fit the architecture"):
        restore_checkpoint(v1, loaded)
    for a, b in zip(loaded.policy.state_dict().values(), untouched.policy.state_dict().values()):
        assert torch.equal(a, b)  # refused before anything was loaded
    meta_path = tmp_path / "ckpt" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "method_version": method.version - 1}))
    with pytest.raises(ValueError, match=f"'cfg_adda' version {method.version - 1}, this suite's 'cfg_adda' is version"):
        load_checkpoint(tmp_path / "ckpt")


def test_cotrain_methods_check_passes_a_method_and_names_a_broken_one(tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    (tmp_path / "broken_methods.py").write_text(
        "from baselines import METHODS\n\n"
        "class ZeroedOT(METHODS['ot']):\n"
        "    def objective(self, batch):\n"
        "        loss, terms = super().objective(batch)\n"
        "        return loss - terms['ot'] * self.hparams['ot_weight'] + 0 * terms['ot'], terms\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["methods", "check", "target_only"]) == 0
    assert "target_only: passes check_method" in capsys.readouterr().out
    assert main(["methods", "check", "broken_methods:ZeroedOT"]) == 2
    err = capsys.readouterr().err
    assert "ZeroedOT" in err and "check" in err
