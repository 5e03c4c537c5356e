"""The toy pairs (tasks/toy.py) and their harness hooks (benchmark/toy/): what holds by construction.

The study's empirical claims are measured by `cotrain toy`, never asserted here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines import default_ratio
from baselines.build import build_policy, build_training
from benchmark.analysis.metrics import nn_retrieval, representation_metrics, wasserstein_distance, within_domain_spread
from benchmark.harness.train import TrainConfig, train
from benchmark.toy.grid import STUDY_DZ
from benchmark.toy.harness import evaluate_toy, fit_toy_normalizer, toy_policy_config
from benchmark.toy.stats import inside_minus_outside, loso_choice, mean_ci, sign_verdict, two_way_anova
from tasks import PAIRS, get_pair, obs_layout
from tasks.seeds import STREAMS, episode_seeds
from tasks.toy import (SUCCESS_THRESHOLD, TOY_FAMILIES, TOY_LAYOUT, domain_action, dz_of, map_position,
                       study_magnitude, target_action, toy_dataset)

TOY_PAIRS = sorted(f"toy/{name}" for name in TOY_FAMILIES)
MAGNITUDES = (0.0, 0.3, 1.0)


def test_every_family_is_a_registered_pair():
    assert TOY_PAIRS == sorted(p for p in PAIRS if p.startswith("toy/"))
    assert "toy/study" in TOY_PAIRS
    for name in TOY_PAIRS:
        pair = get_pair(name)
        assert pair.base_task == "toy" and pair.n_target == 30 and pair.n_source > pair.n_target
        assert obs_layout(pair.base_task) == TOY_LAYOUT


@pytest.mark.parametrize("name", TOY_PAIRS)
def test_data_is_deterministic_exact_and_finite(name):
    for mag in MAGNITUDES:
        for domain in ("source", "target"):
            a = toy_dataset(name, domain, mag, 40, seed=3)
            b = toy_dataset(name, domain, mag, 40, seed=3)
            assert all(np.array_equal(x, y) for x, y in zip(a.obs + a.actions, b.obs + b.actions))
            prefix = toy_dataset(name, domain, mag, 10, seed=3)  # the first n samples do not depend on n
            assert all(np.array_equal(x, y) for x, y in zip(prefix.obs, a.obs[:10]))
            other = toy_dataset(name, domain, mag, 40, seed=4)
            assert not np.array_equal(np.concatenate(a.obs), np.concatenate(other.obs))
            obs, act = np.concatenate(a.obs), np.concatenate(a.actions)
            assert obs.shape == (40, 3) and act.shape == (40, 2) and np.isfinite(obs).all() and np.isfinite(act).all()
            # the expert is the known optimal policy of its domain
            np.testing.assert_allclose(act, domain_action(name, domain, mag, obs), atol=1e-5)
        tgt = toy_dataset(name, "target", mag, 40, seed=3)
        np.testing.assert_allclose(np.concatenate(tgt.actions), target_action(name, mag, np.stack(tgt.obs)), atol=1e-5)


def test_streams_never_share_a_sample():
    seeds = {s: set(episode_seeds(s, 7, 2000)) for s in STREAMS}
    for i, a in enumerate(STREAMS):
        for b in STREAMS[i + 1:]:
            assert not seeds[a] & seeds[b], (a, b)
    train = toy_dataset("toy/study", "target", 0.5, 2000, seed=7)
    test = toy_dataset("toy/study", "target", 0.5, 2000, seed=7, stream="test")
    assert not set(train.episode_seeds) & set(test.episode_seeds)
    rows = {tuple(r) for r in np.concatenate(train.obs).round(6)}
    assert not rows & {tuple(r) for r in np.concatenate(test.obs).round(6)}


@pytest.mark.parametrize("name", ["toy/shift", "toy/rotation", "toy/action_map", "toy/support"])
def test_magnitude_zero_is_the_source_domain(name):
    src = toy_dataset(name, "source", 0.0, 50, seed=0, stream="replay")
    tgt = toy_dataset(name, "target", 0.0, 50, seed=0, stream="replay")
    np.testing.assert_array_equal(np.concatenate(src.obs), np.concatenate(tgt.obs))
    np.testing.assert_array_equal(np.concatenate(src.actions), np.concatenate(tgt.actions))


def test_study_magnitude_maps_onto_the_papers_dz_grid():
    assert dz_of(0.0) == 0.0 and dz_of(1.0) == pytest.approx(50.0)
    for dz in (0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 50):
        m = study_magnitude(dz)
        assert 0.0 < m <= 1.0 and dz_of(m) == pytest.approx(dz)
        obs = np.concatenate(toy_dataset("toy/study", "target", m, 5, seed=0).obs)
        np.testing.assert_allclose(obs[:, 2], dz, rtol=1e-5)
    # the study's toy: the action maps differ in every regime, the inputs only by the height
    src = toy_dataset("toy/study", "source", 0.0, 50, seed=0, stream="replay")
    tgt = toy_dataset("toy/study", "target", 0.0, 50, seed=0, stream="replay")
    np.testing.assert_array_equal(np.concatenate(src.obs), np.concatenate(tgt.obs))
    assert np.linalg.norm(np.concatenate(src.actions) - np.concatenate(tgt.actions), axis=1).mean() > 0.5


def _paired_raw(name, mag, n=128):
    src = np.concatenate(toy_dataset(name, "source", mag, n, seed=0, stream="replay").obs)
    tgt = np.concatenate(toy_dataset(name, "target", mag, n, seed=0, stream="replay").obs)
    return src, tgt


def _fixed_encoder(x: np.ndarray) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(3, 32, generator=gen), torch.randn(32, 8, generator=gen)
    return (torch.tanh(torch.as_tensor(x) @ w1) @ w2).numpy()


def test_metrics_read_the_known_geometry():
    """Identical domains (toy/action_map): aligned, not discernible; disjoint (toy/study at Δz = 50): the reverse.

    All metrics through a fixed random encoder; the distances also on the raw inputs, where they are exact.
    """
    same_raw, apart_raw = _paired_raw("toy/action_map", 1.0), _paired_raw("toy/study", 1.0)
    assert wasserstein_distance(*same_raw) == pytest.approx(0.0, abs=1e-6) and nn_retrieval(*same_raw) == 1.0
    # exactly the height gap, in units of the patch's within-domain spread (W is scale-free)
    assert wasserstein_distance(*apart_raw) == pytest.approx(dz_of(1.0) / within_domain_spread(*apart_raw), rel=1e-5)
    same = representation_metrics(*(_fixed_encoder(x) for x in same_raw), seed=0)
    apart = representation_metrics(*(_fixed_encoder(x) for x in apart_raw), seed=0)
    assert same["align_wasserstein"] == pytest.approx(0.0, abs=1e-6) and same["align_nn"] == 1.0
    assert same["discern_linear"] == 0.5 and same["discern_mlp"] == 0.5
    assert apart["align_wasserstein"] > 1.0 > 1e3 * same["align_wasserstein"]
    assert apart["discern_linear"] == 1.0 and apart["discern_mlp"] == 1.0


def test_evaluation_is_exact():
    class Oracle:  # samples the optimal action of the domain it is asked about
        def sample(self, obs, domain, guidance=None, noise=None):
            return domain_action("toy/rotation", domain, 0.7, obs)[:, None]

    class Off(Oracle):
        def sample(self, obs, domain, guidance=None, noise=None):
            return super().sample(obs, domain) + np.array([2 * SUCCESS_THRESHOLD, 0.0])

    ok = evaluate_toy(Oracle(), "toy/rotation", 0.7, "target", 64, seed=0)
    assert ok["target_error"] == pytest.approx(0.0, abs=1e-6) and ok["successes"] == 64
    bad = evaluate_toy(Off(), "toy/rotation", 0.7, "source", 64, seed=0)
    assert bad["action_error"] == pytest.approx(2 * SUCCESS_THRESHOLD, rel=1e-5) and bad["successes"] == 0
    assert [e["seed"] for e in ok["episodes"]] == episode_seeds("test", 0, 64)


def _normalized_study_inputs(dz: float, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The toy policy's normalized source and target inputs (n, 3) on the same patch points, fitted on
    toy/study's training inputs at height gap dz as a co-training run fits them."""
    mag = study_magnitude(dz)
    train = [toy_dataset("toy/study", d, mag, n, seed=0) for d in ("source", "target")]
    policy = build_policy(toy_policy_config(16, 1, 4), np.stack([o for x in train for o in x.obs]),
                          np.stack([a for x in train for a in x.actions]), seed=0, fit=fit_toy_normalizer)
    src, tgt = _paired_raw("toy/study", mag, n)
    with torch.no_grad():
        return tuple(policy.obs_normalizer(torch.as_tensor(x, dtype=torch.float32)).numpy() for x in (src, tgt))


def test_the_normalizer_keeps_the_patch_and_the_height_gap_whatever_dz():
    """A patch point reaches the network at the same place for every Δz; only the height gap grows, with Δz."""
    dzs = STUDY_DZ
    normalized = [_normalized_study_inputs(dz) for dz in dzs]
    first_src = normalized[0][0]
    for src, tgt in normalized:
        np.testing.assert_allclose(src[:, :2], first_src[:, :2], atol=1e-6)  # the patch's resolution
        np.testing.assert_allclose(tgt[:, :2], first_src[:, :2], atol=1e-6)
    gaps = np.array([(tgt[:, 2] - src[:, 2]).mean() for src, tgt in normalized])
    assert np.all(np.diff(gaps) > 0), gaps
    np.testing.assert_allclose(gaps / np.array(dzs), gaps[0] / dzs[0], rtol=1e-4)  # in proportion to Δz


def _trained(run_dir, pair: str, method: str, magnitude: float, seed: int = 0, steps: int = 400, width: int = 64,
             depth: int = 2, z_dim: int = 16, n_source: int = 300, w: float | None = None):
    """A toy policy trained in memory (30 target samples), built and trained as a harness run builds and trains."""
    data = [toy_dataset(pair, d, magnitude, n, seed) for d, n in (("source", n_source), ("target", 30))]
    built = build_training(toy_policy_config(width, depth, z_dim), method, {"w": w or default_ratio(30, n_source)},
                           *data, seed=seed, fit=fit_toy_normalizer)
    train(built.method, built.sampler, TrainConfig(steps=steps, log_every=steps, ckpt_every=steps, seed=seed), run_dir,
          progress=False)
    return built.method


def _position(w: float, seed: int, run_dir) -> float:
    method = _trained(run_dir, "toy/action_map", "cotrain", 1.0, seed, w=w)
    obs = np.stack(toy_dataset("toy/action_map", "target", 1.0, 128, seed, "test").obs)
    actions = method.sample(obs, "target", noise=np.random.default_rng(seed).standard_normal((len(obs), 1, 2)))
    return float(np.nanmean(map_position("toy/action_map", 1.0, obs, actions)))


def test_w_alone_moves_the_action_toward_the_heavier_domain(tmp_path):
    """Identical inputs (toy/action_map at magnitude 1): only w decides between the two action maps."""
    ws = (0.1, 0.5, 0.9)
    per_seed = np.array([[_position(w, seed, tmp_path / f"{w}-{seed}") for seed in range(3)] for w in ws])  # (w, seed)
    pos = per_seed.mean(axis=1)
    assert np.all(np.diff(pos) > 0.1), per_seed
    assert np.all(np.diff(per_seed, axis=0) > 0), per_seed  # monotone for every seed, not just on average
    assert pos[0] < 0.4 and pos[-1] > 0.6, per_seed


def test_zero_guidance_is_conditional_sampling(tmp_path):
    method = _trained(tmp_path, "toy/study", "cfg", study_magnitude(1.0), steps=30, width=32, depth=1, z_dim=8,
                      n_source=100)
    obs = np.stack(toy_dataset("toy/study", "target", study_magnitude(1.0), 16, 0, "test").obs)
    noise = np.random.default_rng(0).standard_normal((16, 1, 2)).astype(np.float32)
    t_obs, t_noise = torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(noise)
    with torch.no_grad():
        conditional = method.ema.model.sample(t_obs, 1, None, noise=t_noise).numpy()  # no guidance at all
        unconditional = method.ema.model.sample(t_obs, 2, None, noise=t_noise).numpy()  # the null token
    np.testing.assert_array_equal(method.sample(obs, "target", guidance=0.0, noise=noise), conditional)
    # the guided combination itself (both passes run) tends to conditional sampling as λ -> 0
    np.testing.assert_allclose(method.sample(obs, "target", guidance=1e-6, noise=noise), conditional, atol=1e-4)
    # λ = -1 is the unconditional model
    np.testing.assert_allclose(method.sample(obs, "target", guidance=-1.0, noise=noise), unconditional, atol=1e-4)
    assert not np.allclose(method.sample(obs, "target", guidance=1.0, noise=noise), conditional, atol=1e-4)


def test_two_way_anova_by_hand():
    rng = np.random.default_rng(0)
    a, b, r = 4, 5, 3
    y = (np.arange(a)[:, None, None] * 1.0 + 0.3 * np.arange(b)[None, :, None]
         + 0.01 * rng.standard_normal((a, b, r)))
    res = two_way_anova(y)
    assert sum(res["ss"].values()) == pytest.approx(res["total"])  # balanced design: SS add up
    assert res["share"]["A"] > res["share"]["B"] > 0.05 > res["share"]["AB"]
    assert res["p"]["A"] < 1e-6 and res["df"] == {"A": 3, "B": 4, "AB": 12, "error": 40}
    # additive effects only: the interaction is pure noise
    assert res["p"]["AB"] > 0.001
    inter = y + 0.5 * (np.arange(a)[:, None, None] * np.arange(b)[None, :, None])
    assert two_way_anova(inter)["share"]["AB"] > 0.05


def test_best_of_several_is_chosen_on_the_other_seeds():
    """With no effect, the in-sample best of several settings beats a single rival on average; the setting
    chosen on the other seeds (`loso_choice`) does not."""
    rng = np.random.default_rng(0)
    sims, k, seeds = 4000, 5, 3
    ys, rival = rng.standard_normal((sims, k, seeds)), rng.standard_normal((sims, seeds))  # nothing differs
    cols = np.arange(seeds)
    loso = np.array([y[loso_choice(y), cols] for y in ys]).mean(axis=1) - rival.mean(axis=1)
    in_sample = ys[np.arange(sims), ys.mean(axis=2).argmin(axis=1)].mean(axis=1) - rival.mean(axis=1)
    assert abs(loso.mean()) < 4 * loso.std() / math.sqrt(sims)
    assert in_sample.mean() < -4 * in_sample.std() / math.sqrt(sims)
    # by hand: seed 0's own column favours row 0, the other seeds row 1; seeds 1 and 2 see a three-way tie
    scores = np.array([[1.0, 9.0, 9.0], [9.0, 1.0, 1.0], [5.0, 5.0, 5.0]])
    assert loso_choice(scores).tolist() == [1, 0, 0]


def test_window_contrast_is_unbiased_and_finds_a_planted_effect():
    """Inside-minus-outside, paired within each seed: with no effect, resolved about 5% of the time whatever
    the sets' sizes; with a planted effect of twice the critical t, resolved in most sweeps."""
    from scipy import stats

    rng = np.random.default_rng(1)
    sims, k, seeds = 2000, 5, 3
    inside = np.arange(k) < 2  # two grid ratios inside the window, three outside
    null = rng.standard_normal((sims, k, seeds))
    verdicts = [sign_verdict(mean_ci(inside_minus_outside(y, inside))) for y in null]
    level = 0.05
    se = math.sqrt(level * (1 - level) / sims)
    assert abs(1 - verdicts.count("not resolved") / sims - level) < 4 * se
    assert abs(verdicts.count("reproduces") - verdicts.count("opposite")) < 4 * math.sqrt(sims * level)
    effect = 2 * stats.t.ppf(1 - level / 2, seeds - 1) * math.sqrt(
        (1 / inside.sum() + 1 / (~inside).sum()) / seeds)
    planted = null - effect * inside[None, :, None]
    found = [sign_verdict(mean_ci(inside_minus_outside(y, inside))) for y in planted]
    assert found.count("reproduces") / sims > 0.8
    assert np.isnan(inside_minus_outside(null[0], np.ones(k, bool))).all()  # nothing outside: not testable


def test_a_toy_run_through_the_harness(tmp_path):
    from benchmark.harness.config import RunConfig
    from benchmark.harness.run import execute_run

    cfg = RunConfig(pair="toy/study", method="cotrain", magnitude=study_magnitude(1.0), profile="smoke", episodes=16)
    record = execute_run(cfg, tmp_path, progress=False)
    target = record["eval"]["target"]
    errors = np.array([e["error"] for e in target["episodes"]])
    assert target["n"] == len(errors) == 16 and math.isfinite(record["target_error"])
    # the count is of the test inputs whose action lies within the threshold, the error their mean
    ok = errors < SUCCESS_THRESHOLD
    assert target["successes"] == int(ok.sum()) and [e["success"] for e in target["episodes"]] == ok.tolist()
    assert record["target_error"] == target["target_error"] == pytest.approx(errors.mean())
    # the same config in a fresh folder: the same demos, weights and evaluation, bit for bit
    again = execute_run(cfg, tmp_path / "again", progress=False)
    assert {k: v for k, v in again["eval"].items() if k != "wall_s"} == {
        k: v for k, v in record["eval"].items() if k != "wall_s"}
    assert target["error_threshold"] == SUCCESS_THRESHOLD
    assert record["eval"]["source"]["n"] == 16
    assert "align_wasserstein" in record["metrics"] and record["metrics"]["raw_discern_mlp"] >= 0.5
    assert execute_run(cfg, tmp_path, progress=False)["run_id"] == record["run_id"]  # done: read back
