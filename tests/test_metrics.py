"""Representation metrics on constructed clouds with known answers."""

import math

import numpy as np
import pytest
import torch

from benchmark.analysis import metrics as M


def _cloud(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _structured(n: int = 300, d: int = 16, k: int = 3, offset: float = 0.3, seed: int = 0):
    """Source on a k-dim subspace; target shifted by ``offset``·std off that subspace, plus small noise
    (the toy model's structured regime: parallel patches a small height apart)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    src = rng.normal(size=(n, k)) @ basis[:, :k].T
    std = src.std(axis=0).mean()
    tgt = src + offset * std * basis[:, k] + 0.02 * std * rng.normal(size=(n, d))
    return src, tgt


def test_identical_domains():
    z = _cloud()
    assert M.wasserstein_distance(z, z) < 1e-6
    assert M.gromov_wasserstein(z, z) < 1e-6
    assert abs(M.mmd_rbf(z, z)) < 0.02
    assert M.nn_retrieval(z, z) == 1.0
    assert M.linear_cka(z, z) == pytest.approx(1.0)
    assert M.probe_accuracy(z, z, "linear") <= 0.65
    assert M.probe_accuracy(z, z, "mlp") <= 0.65
    assert M.representation_metrics(z, z)["structured_alignment"] < 0.2


def test_separated_domains():
    z = _cloud()
    shifted = z + 10.0 * np.eye(z.shape[1])[0]
    # W1 of a translation is its length, here in units of the clouds' own spread (about 4 in 16-D)
    assert M.wasserstein_distance(z, shifted) == pytest.approx(10.0 / M.within_domain_spread(z, shifted), rel=1e-6)
    assert M.within_domain_spread(z, shifted) == pytest.approx(4.0, rel=0.05)
    assert M.mmd_rbf(z, shifted) > 0.5
    assert M.probe_accuracy(z, shifted, "linear") >= 0.95
    assert M.probe_accuracy(z, shifted, "mlp") >= 0.95


def test_structured_alignment_scores_highest_in_structured_regime():
    src, tgt = _structured()
    unrelated = _structured(seed=1)[0] + 10.0
    m_struct = M.representation_metrics(src, tgt)
    m_ident = M.representation_metrics(src, src)
    m_unrel = M.representation_metrics(src, unrelated)
    assert m_struct["align_nn"] > 0.9
    assert m_struct["discern_linear"] > 0.9 and m_struct["discern_mlp"] > 0.9
    assert m_struct["structured_alignment"] > 0.5
    assert m_struct["structured_alignment"] > m_ident["structured_alignment"] + 0.3
    assert m_struct["structured_alignment"] > m_unrel["structured_alignment"] + 0.3
    assert m_unrel["align_wasserstein"] > 10 * m_struct["align_wasserstein"]


def test_domain_kept_in_conditioning_scores_high():
    z = _cloud(d=8)
    emb = np.ones((len(z), 2))
    m = M.representation_metrics(z, z, np.hstack([z, 0 * emb]), np.hstack([z, emb]))
    assert m["discern_mlp"] <= 0.65 and m["discern_mlp_cond"] > 0.95
    assert m["structured_alignment"] > 0.9


def test_representation_metrics_keys_and_finite():
    z = _cloud(n=64, d=8)
    m = M.representation_metrics(z, z + 0.1)
    assert set(m) == {
        "align_wasserstein", "align_gw", "align_mmd", "align_nn", "align_cka", "discern_linear",
        "discern_mlp", "discern_linear_cond", "discern_mlp_cond", "structured_alignment", "z_spread",
        "probe_folds",
    }
    assert m["probe_folds"] == M.MAX_PROBE_FOLDS
    assert all(isinstance(v, (float, int)) and math.isfinite(v) for v in m.values())


def test_wasserstein_grows_with_offset():
    z = _cloud()
    direction = np.random.default_rng(1).normal(size=z.shape[1])
    values = [M.wasserstein_distance(z, z + o * direction / np.linalg.norm(direction)) for o in (0, 0.5, 1, 2, 4)]
    assert np.all(np.diff(values) > 0)
    assert M.mmd_rbf(z, z + 4 * direction) > M.mmd_rbf(z, z + 0.5 * direction)


def test_wasserstein_subsampling_is_deterministic():
    z = _cloud(n=600)
    tgt = z + 0.5
    assert M.wasserstein_distance(z, tgt, max_points=100, seed=3) == M.wasserstein_distance(z, tgt, max_points=100, seed=3)
    translation = 0.5 * math.sqrt(z.shape[1]) / M.within_domain_spread(z, tgt)
    assert M.wasserstein_distance(z, tgt, max_points=100) == pytest.approx(translation, rel=1e-6)


def test_gromov_wasserstein_is_scale_and_rotation_free():
    z = _cloud(n=100, d=5)
    rot = np.linalg.qr(np.random.default_rng(2).normal(size=(5, 5)))[0]
    assert M.gromov_wasserstein(z, 3.0 * z @ rot) < 1e-6
    assert M.gromov_wasserstein(z, _cloud(n=100, d=5, seed=1) ** 3) > 1e-3


ALIGNMENT_METRICS = ("align_wasserstein", "align_gw", "align_mmd", "align_nn", "align_cka", "structured_alignment")


@pytest.mark.parametrize("factor", [0.03, 30.0])
def test_rescaling_z_changes_no_alignment_metric(factor):
    """Shrinking z (OT's cheapest way to lower W) or inflating it (ADDA's reversal) leaves every
    alignment measure as it was; only z_spread follows the scale."""
    src, tgt = _structured(n=200)
    base = M.representation_metrics(src, tgt)
    scaled = M.representation_metrics(factor * src, factor * tgt)
    for key in ALIGNMENT_METRICS + ("discern_linear", "discern_mlp"):
        assert scaled[key] == pytest.approx(base[key], rel=1e-5, abs=1e-6), key
    assert scaled["z_spread"] == pytest.approx(factor * base["z_spread"], rel=1e-9)


def test_within_domain_spread_ignores_the_distance_between_domains():
    z = _cloud()
    assert M.within_domain_spread(z, z + 100.0) == pytest.approx(M.within_domain_spread(z, z))
    assert M.wasserstein_distance(z, z + 1000.0) > 100 * M.wasserstein_distance(z, z + 10.0) / 2


def _episodes(n_episodes: int = 12, steps: int = 30, d: int = 8, seed: int = 0):
    """Replay-like pairs: smooth trajectories; each episode's target differs from its source by an offset of
    its own (random direction), so nothing tells the domains apart in an episode the probe has not seen."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, steps)[:, None]
    src = np.concatenate([rng.normal(size=d) + t * rng.normal(size=d) for _ in range(n_episodes)])
    offsets = np.repeat(rng.normal(size=(n_episodes, d)), steps, axis=0)
    return src, src + 1.5 * offsets, np.repeat(np.arange(n_episodes), steps)


def test_probe_split_by_episode_does_not_leak():
    """Split by row, neighbouring steps of one episode fall on both sides and the probe memorizes the
    episode's offset; held out by whole episodes it is at chance."""
    src, tgt, episode = _episodes()
    assert M.probe_accuracy(src, tgt, "mlp", groups=None) > 0.85
    assert M.probe_accuracy(src, tgt, "mlp", groups=episode) < 0.65
    assert M.representation_metrics(src, tgt, groups=episode)["discern_mlp"] < 0.65


def test_probe_folds():
    assert M.probe_folds(np.repeat(np.arange(10), 3)) == 5  # 2 episodes held out per fold
    assert M.probe_folds(np.repeat(np.arange(4), 3)) == 2
    assert M.probe_folds(np.arange(3)) == 3  # fewer than 4 episodes: one per fold
    assert M.probe_folds(np.arange(300)) == M.MAX_PROBE_FOLDS
    with pytest.raises(ValueError, match="at least 2 replay episodes"):
        M.probe_folds(np.zeros(10))


def test_nn_retrieval_and_cka_on_unrelated_clouds():
    a, b = _cloud(seed=0), _cloud(seed=1)
    assert M.nn_retrieval(a, b) < 0.05
    assert M.linear_cka(a, b) < 0.2
    rot = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))[0]
    assert M.linear_cka(a, 2.0 * a @ rot) == pytest.approx(1.0)


def test_probe_deterministic_and_leaves_global_rng_alone():
    src, tgt = _structured(n=100)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    first = M.probe_accuracy(src, tgt, "mlp", seed=5)
    assert M.probe_accuracy(src, tgt, "mlp", seed=5) == first
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


def test_raw_discernibility_flattens_histories():
    x = np.random.default_rng(0).normal(size=(200, 2, 4))
    out = M.raw_discernibility(x, x + np.array([0.0, 5.0, 0.0, 0.0]))
    assert set(out) == {"linear", "mlp"}
    assert out["linear"] >= 0.95 and out["mlp"] >= 0.95
    assert max(M.raw_discernibility(x, x).values()) <= 0.65


def test_structured_alignment_definition():
    assert M.structured_alignment(1.0, 1.0) == pytest.approx(1.0)
    assert M.structured_alignment(1.0, 0.5) == 0.0
    assert M.structured_alignment(0.0, 1.0) == 0.0
    assert M.structured_alignment(0.5, 0.75) == pytest.approx(0.5)
    assert M.structured_alignment(1.0, 0.2) == 0.0  # below-chance accuracy clips to 0
    assert math.isnan(M.structured_alignment(math.nan, 0.9))


def test_normalize_across_runs():
    np.testing.assert_allclose(M.normalize_across_runs([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(M.normalize_across_runs([1.5, 1.5]), [0.0, 0.0])
    out = M.normalize_across_runs([1.0, math.nan, 3.0])
    assert out[0] == 0.0 and math.isnan(out[1]) and out[2] == 1.0


def test_correlation():
    x = np.arange(10.0)
    c = M.correlation(x, x**3)
    assert c["spearman_rho"] == pytest.approx(1.0) and c["n"] == 10 and c["spearman_p"] < 0.01
    assert 0.9 < c["pearson_r"] < 1.0
    assert M.correlation(x, -x)["pearson_r"] == pytest.approx(-1.0)
    with_nan = M.correlation([1.0, 2.0, math.nan, 4.0, 5.0], [2.0, 4.0, 1.0, math.nan, 10.0])
    assert with_nan["n"] == 3 and with_nan["spearman_rho"] == pytest.approx(1.0)
    small = M.correlation([1.0, 2.0], [3.0, 4.0])
    assert small["n"] == 2 and all(math.isnan(small[k]) for k in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"))
    assert math.isnan(M.correlation(x, np.ones(10))["spearman_rho"])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda z: M.wasserstein_distance(z[0], z), "2-D"),
        (lambda z: M.nn_retrieval(z, z[:-1]), "same number of rows"),
        (lambda z: M.probe_accuracy(z, z[:, :-1]), "same width"),
        (lambda z: M.mmd_rbf(np.where(z > 1, np.nan, z), z), "NaN"),
        (lambda z: M.linear_cka(z, np.full_like(z, np.inf)), "infinite"),
        (lambda z: M.probe_accuracy(z, z, kind="svm"), "kind"),
        (lambda z: M.probe_accuracy(z, z, groups=np.arange(3)), "one entry per pair"),
        (lambda z: M.representation_metrics(z, z, zc_src=z), "together"),
        (lambda z: M.structured_alignment(1.5, 0.9), "alignment_score"),
        (lambda z: M.correlation([1.0, 2.0], [1.0]), "same length"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call(_cloud(n=20, d=4))
