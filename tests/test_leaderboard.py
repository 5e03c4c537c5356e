"""Statistics, result collection, leaderboards and plots on a committed mini-sweep.

``tests/data/mini_sweep`` (hand-made records of the current schema): pair lift/dynamics, N=10, M=100,
methods cotrain (w=0.1) and
target_only, seeds 0 and 1, magnitudes 1 and 0 (the no-gap control), 10 episodes per run; in
each run the first k episodes succeed, with k (seed 0, seed 1):
cotrain gap 1: 7, 8; target_only gap 1: 5, 4; cotrain gap 0: 9, 8; target_only gap 0: 8, 9.
"""

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.analysis import leaderboard as L
from benchmark.analysis import records as R
from benchmark.analysis import plots as P
from benchmark.analysis import stats as S
from benchmark.cli import main

DATA = Path(__file__).parent / "data"
SWEEP, GOLDEN = DATA / "mini_sweep", DATA / "mini_sweep_golden.csv"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return R.load_records(SWEEP)


@pytest.fixture(scope="module")
def table(records) -> pd.DataFrame:
    return L.aggregate(records)


def _row(df: pd.DataFrame, magnitude: float, method: str) -> pd.Series:
    rows = df[(df.magnitude == magnitude) & (df.method == method)]
    assert len(rows) == 1
    return rows.iloc[0]


# --- stats -------------------------------------------------------------------------------

def test_wilson_known_values():
    # z² = 3.8416, n = 10: denominator 1.38416.
    # 0/10: centre = half = 0.19208 / 1.38416 = 0.138770 -> (0, 0.277540)
    assert S.wilson_interval(0, 10) == pytest.approx((0.0, 0.277540), abs=1e-5)
    assert S.wilson_interval(10, 10) == pytest.approx((0.722460, 1.0), abs=1e-5)
    # 5/10: centre 0.5, half = 1.96 / 1.38416 * sqrt(0.025 + 0.009604) = 0.263408
    assert S.wilson_interval(5, 10) == pytest.approx((0.236592, 0.763408), abs=1e-5)
    assert all(math.isnan(x) for x in S.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        S.wilson_interval(11, 10)


def test_mean_stderr_and_iqm():
    assert S.mean_stderr([0.7, 0.8]) == pytest.approx((0.75, 0.05))
    mean, se = S.mean_stderr([0.3])
    assert mean == 0.3 and math.isnan(se)
    assert S.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert S.iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)  # the outlier is trimmed


def test_stratified_bootstrap_deterministic_and_covers_point():
    rng = np.random.default_rng(1)
    scores = {"a": rng.uniform(size=5), "b": rng.uniform(0.5, 1.0, size=3), "c": rng.uniform(size=4)}
    first = S.stratified_bootstrap_ci(scores, reps=500, seed=3)
    assert first == S.stratified_bootstrap_ci(scores, reps=500, seed=3)
    point, lo, hi = first
    assert point == pytest.approx(S.iqm(np.concatenate(list(scores.values()))))
    assert lo <= point <= hi and lo < hi
    # A constant task set has a degenerate interval at the constant.
    assert S.stratified_bootstrap_ci({"a": np.full(3, 0.4), "b": np.full(2, 0.4)}) == pytest.approx((0.4,) * 3)


def test_paired_bootstrap_diff():
    # Five seeds of 20 paired episodes: a succeeds on 18, b on the first 10 of them.
    a = {s: (np.arange(20) < 18).astype(float) for s in range(5)}
    b = {s: (np.arange(20) < 10).astype(float) for s in range(5)}
    diff, lo, hi = S.paired_bootstrap_diff(a, b, reps=1000)
    assert diff == pytest.approx(0.4)
    assert 0 < lo < diff < hi
    assert S.paired_bootstrap_diff(b, a, reps=1000) == pytest.approx((-diff, -hi, -lo), abs=0.05)
    # Identical arms: every paired difference is 0, so the interval collapses (pairing is kept).
    assert S.paired_bootstrap_diff(a, a) == (0.0, 0.0, 0.0)
    # Only shared seeds count.
    assert S.paired_bootstrap_diff({**a, 9: np.zeros(20)}, b)[0] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        S.paired_bootstrap_diff({0: np.ones(3)}, {0: np.ones(4)})


def test_probability_of_improvement_known_answers():
    same = [0.2, 0.5, 0.9]
    assert S.probability_of_improvement(same, same) == 0.5  # identical arms: ties and wins balance
    assert S.probability_of_improvement([0.8, 0.9], [0.1, 0.7]) == 1.0  # every score of X beats every one of Y
    assert S.probability_of_improvement([0.1, 0.7], [0.8, 0.9]) == 0.0
    # (0.5 vs 0.5) ties count half, (0.5 vs 0.4) wins: (0.5 + 1 + 0.5 + 1) / 4
    assert S.probability_of_improvement([0.5, 0.5], [0.5, 0.4]) == 0.75
    x, y = np.random.default_rng(0).uniform(size=(2, 7))
    assert S.probability_of_improvement(x, y) + S.probability_of_improvement(y, x) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        S.probability_of_improvement([], [0.5])


def _arms(seeds: int, episodes: int, spread: float) -> tuple[dict, dict]:
    """Arm a succeeds on the first (0.5 +- spread) share of each seed's episodes (seeds alternate the sign),
    arm b on every other episode: their paired difference has episode variance and, with spread, seed variance."""
    a = {s: (np.arange(episodes) < round(episodes * (0.5 + spread * (-1) ** s))).astype(float) for s in range(seeds)}
    b = {s: (np.arange(episodes) % 2).astype(float) for s in range(seeds)}
    return a, b


def test_bootstrap_mdd_shrinks_with_seeds_and_episodes_and_grows_with_seed_spread():
    def mdd(seeds, episodes, spread):
        return S.bootstrap_mdd(S.paired_diff_se(*_arms(seeds, episodes, spread)))

    base = mdd(4, 50, 0.1)
    assert mdd(8, 50, 0.1) < base and mdd(4, 200, 0.1) < base  # more seeds, more episodes: resolves less
    assert mdd(4, 50, 0.3) > base > mdd(4, 50, 0.0)  # seed-to-seed spread widens it
    # the z factor at 95% confidence and 80% power
    assert S.bootstrap_mdd(0.1) == pytest.approx(0.1 * (1.959964 + 0.841621), abs=1e-6)
    # identical arms: no difference to resolve, on every start state
    a, _ = _arms(4, 50, 0.1)
    assert S.paired_diff_se(a, a) == 0.0
    with pytest.raises(ValueError):
        S.bootstrap_mdd(-0.1)


def test_two_level_bootstrap_ci_counts_seed_spread():
    flat = {s: (np.arange(40) < 20).astype(float) for s in range(5)}
    spread = {s: (np.arange(40) < 20 + 8 * (-1) ** s).astype(float) for s in range(5)}
    point, lo, hi = S.two_level_bootstrap_ci(flat)
    assert point == 0.5 and lo < 0.5 < hi
    assert S.two_level_bootstrap_ci(flat) == (point, lo, hi)  # deterministic for its seed
    _, slo, shi = S.two_level_bootstrap_ci(spread)
    assert shi - slo > hi - lo
    assert S.two_level_bootstrap_ci({0: np.ones(10), 1: np.ones(10)}) == (1.0, 1.0, 1.0)


def test_min_detectable_difference():
    # (z_0.975 + z_0.8) * sqrt(2 p (1 - p) / n) = (1.959964 + 0.841621) * sqrt(0.5 / 50) = 0.280159
    assert S.min_detectable_difference(50) == pytest.approx(0.280159, abs=1e-5)
    assert S.min_detectable_difference(200) == pytest.approx(0.280159 / 2, abs=1e-5)
    assert S.min_detectable_difference(50, p=0.2) == pytest.approx(2.801585 * 0.08, abs=1e-5)
    with pytest.raises(ValueError):
        S.min_detectable_difference(0)


# --- collection and aggregation ----------------------------------------------------------

def test_aggregate_matches_golden(table):
    # Round-trip through csv so dtypes compare the way the golden file stores them.
    got = pd.read_csv(io.StringIO(table.to_csv(index=False)))
    pd.testing.assert_frame_equal(got, pd.read_csv(GOLDEN))


def test_aggregate_hand_computed(table):
    assert len(table) == 4 and set(table.seeds) == {2} and set(table.episodes) == {10}
    co1, to1 = _row(table, 1.0, "cotrain"), _row(table, 1.0, "target_only")
    co0, to0 = _row(table, 0.0, "cotrain"), _row(table, 0.0, "target_only")
    # success: mean of the per-seed rates; se = std(ddof=1) / sqrt(2) = 0.0707 / 1.414 = 0.05
    assert (co1.success_mean, to1.success_mean, co0.success_mean, to0.success_mean) == (0.75, 0.45, 0.85, 0.85)
    assert co1.success_se == 0.05
    # drop: cotrain ((0.9 - 0.7) + (0.8 - 0.8)) / 2 = 0.1; target_only ((0.8 - 0.5) + (0.9 - 0.4)) / 2 = 0.4
    assert co1.drop_vs_nogap == pytest.approx(0.1) and to1.drop_vs_nogap == pytest.approx(0.4)
    assert co0.drop_vs_nogap == 0.0
    # ranks: cotrain first at gap 1; the tie at gap 0 shares rank 1
    assert (co1["rank"], to1["rank"], co0["rank"], to0["rank"]) == (1, 2, 1, 1)
    # paired diff: ((0.5 - 0.7) + (0.4 - 0.8)) / 2 = -0.3; target_only's successes are a subset of
    # cotrain's on the same start states, so every paired difference is <= 0
    assert to1.diff_vs_cotrain == pytest.approx(-0.3) and to1.diff_lo < -0.3 < to1.diff_hi < 0
    assert to0.diff_vs_cotrain == 0.0 and math.isnan(co1.diff_vs_cotrain)
    # Wasserstein raw means 1.1, 2.1, 0.6, 1.0 -> min-max over rows (span 1.5)
    assert (co1.align_wasserstein_norm, to1.align_wasserstein_norm) == (0.3333, 1.0)
    assert (co0.align_wasserstein_norm, to0.align_wasserstein_norm) == (0.0, 0.2667)
    # a record without structured_alignment: the mean is over the records that have it
    assert to1.structured_alignment == 0.2
    assert table.target_error_mean.isna().all()


def test_probability_of_improvement_and_intervals_in_the_table(table):
    to1, to0 = _row(table, 1.0, "target_only"), _row(table, 0.0, "target_only")
    # per-seed rates 0.5, 0.4 against cotrain's 0.7, 0.8: every one lower; at gap 0, 0.8, 0.9 against 0.9, 0.8
    assert to1.prob_improvement == 0.0 and to0.prob_improvement == 0.5
    assert math.isnan(_row(table, 1.0, "cotrain").prob_improvement)
    for r in table.itertuples():
        assert r.success_lo < r.success_mean < r.success_hi
    # the drop's paired interval holds its point; at gap 0 the control is the run itself
    assert to1.drop_lo < to1.drop_vs_nogap < to1.drop_hi and to0.drop_lo == to0.drop_hi == 0.0


def test_no_gap_control_is_found_in_whole_configs(records):
    """A run's config names its run id and workers, a no-gap evaluation its trained run: none of them stops a
    record from being the control of the same config at magnitude 1."""
    whole = json.loads(json.dumps(records))
    for rec in whole:
        rec["config"].update(run_id=rec["run_id"], workers=1 + int(rec["config"]["magnitude"]))
        if rec["config"]["magnitude"] == 0.0:
            rec["config"]["checkpoint_of"] = "0123456789ab"
    table = L.aggregate(whole)
    assert _row(table, 1.0, "cotrain").drop_vs_nogap == pytest.approx(0.1)
    assert _row(table, 1.0, "target_only").drop_vs_nogap == pytest.approx(0.4)


def test_one_seed_shows_the_wilson_interval_and_no_flat_interval(tmp_path, records):
    one = [r for r in records if r["config"]["seed"] == 0]
    md = L.write_leaderboard(one, tmp_path / "lb")["md"].read_text()
    lo, hi = S.wilson_interval(7, 10)  # cotrain, gap 1, seed 0: 7 of 10
    assert f"0.70 [{lo:.2f}, {hi:.2f}] (1 seed, Wilson)" in md
    assert "n/a (1 seed" not in md and "± n/a" not in md
    # one seed per pair: the across-pair IQM has no spread, and says so instead of "[0.70, 0.70]"
    assert "0.70 (no interval: no spread among the seeds of any pair)" in md and "[0.70, 0.70]" not in md
    assert "| 1 (episode variance only) |" in md


def test_aggregate_is_pure_and_order_free(records, table):
    pd.testing.assert_frame_equal(L.aggregate(list(reversed(records))), table)
    assert json.dumps(records) == json.dumps(R.load_records(SWEEP))


def test_duplicate_seed_in_group_raises(records):
    dup = json.loads(json.dumps(records[0]))
    dup["run_id"] = "duplicate"
    with pytest.raises(ValueError, match="duplicate"):
        L.aggregate(records + [dup])


def test_malformed_record_raises_naming_file(tmp_path):
    bad = tmp_path / "run_bad" / "record.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(R.RecordError, match="run_bad"):
        R.load_records(tmp_path)
    bad.write_text(json.dumps({"schema": 99}))
    with pytest.raises(R.RecordError, match=r"run_bad.*schema"):
        R.load_records(tmp_path)


def test_old_schema_records_are_refused_with_the_reason(tmp_path, capsys):
    """A record of the old measures (schema 1) never passes for a new one, in any command that reads records."""
    old = json.loads((SWEEP / "173f1d61dbb8" / "record.json").read_text())
    old["schema"] = 1
    (tmp_path / "run_old").mkdir()
    (tmp_path / "run_old" / "record.json").write_text(json.dumps(old))
    with pytest.raises(R.RecordError, match=r"run_old.*schema-1 record, refused.*scale-free"):
        R.load_records(tmp_path)
    for argv in (["leaderboard", str(tmp_path)], ["analyze", str(tmp_path)], ["study", str(tmp_path), "--out",
                 str(tmp_path / "study"), "--budget", "quick"], ["submit", str(tmp_path / "run_old"),
                 "--leaderboard", str(tmp_path / "board")]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert "schema-1 record, refused" in capsys.readouterr().err, argv
    assert not (tmp_path / "board").exists()


def test_partial_sweep_is_ignored_and_partial(tmp_path, records):
    runs = tmp_path / "runs"
    shutil.copytree(SWEEP, runs)
    (runs / "unfinished").mkdir()
    (runs / "unfinished" / "config.json").write_text("{}")
    assert len(R.load_records(runs)) == len(records)
    shutil.rmtree(runs / records[0]["run_id"])  # run folders are named by run_id
    df = L.aggregate(R.load_records(runs))
    assert sorted(df.seeds) == [1, 2, 2, 2]


def test_aggregate_across_pairs(records):
    other = json.loads(json.dumps(records))
    for r in other:
        r["config"]["pair"] = "stack/dynamics"
        if r["config"]["w"] is not None:  # one ratio computed from other N and M: other last bits, the same row
            r["config"]["w"] = float(np.nextafter(r["config"]["w"], 1.0))
    df = L.aggregate_across_pairs(records + other)
    assert len(df) == 4 and set(df.pairs) == {2} and set(df.runs) == {4}
    row = df[(df.magnitude == 1.0) & (df.method == "cotrain")].iloc[0]
    assert row.iqm == pytest.approx(0.75) and row.iqm_lo <= row.iqm <= row.iqm_hi
    pd.testing.assert_frame_equal(L.aggregate_across_pairs(L.runs_frame(records + other)), df)
    with pytest.raises(ValueError):
        L.aggregate_across_pairs(L.aggregate(records))


def test_write_leaderboard(tmp_path, records):
    paths = L.write_leaderboard(records, tmp_path / "lb")
    assert set(paths) == {"md", "csv", "html"} and all(p.stat().st_size > 0 for p in paths.values())
    md, page = paths["md"].read_text(), paths["html"].read_text()
    assert "http" not in page and "<style>" in page and "<script src" not in page
    assert "8 runs read" in md
    assert "0.45 [0.20, 0.70] (2 seeds)" in md and "\u22120.30 [\u22120.55, \u22120.10]" in md
    # the resolution: the bootstrap MDD of the one comparison per cell, beside the binomial formula's
    # 2.801585 * sqrt(0.5 / 20) = 0.44 (10 episodes x 2 seeds per arm)
    gap = L.resolution(records).query("magnitude == 1.0").iloc[0]
    assert f"lift/dynamics {gap.mdd:.2f}" in md.split("\n")[2]
    assert f"| {gap.se:.2f} (target_only) | {gap.mdd:.2f} | 0.44 | target_only {gap.mdd:.2f} (2 seeds) |" in md
    fewer = [r for r in records if not (r["config"]["method"] == "target_only" and r["config"]["seed"] == 1)]
    row = L.resolution(fewer).query("magnitude == 1.0").iloc[0]  # a comparison on 1 seed beside groups of 2
    assert (row.seeds, row.seeds_max) == (1, 2) and row.mdd_each.endswith("(1 seed)")
    assert "| lift/dynamics | 1 | 10 | 100 | 1-2 | 10 |" in L.write_leaderboard(fewer, tmp_path / "lb1")["md"].read_text()
    assert "0.45 [0.20, 0.70] (2 seeds)" in page and "0.45 [0.20, 0.70] (2 seeds)" in md
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), pd.read_csv(GOLDEN))
    assert "Rows differ in their pairs" not in md  # one pair: every row is over it
    elsewhere = [{**r, "config": {**r["config"], "pair": "stack/dynamics"}} for r in records
                 if r["config"]["method"] == "target_only"]  # one method also on a second pair
    assert "Rows differ in their pairs" in L.write_leaderboard(records + elsewhere, tmp_path / "lb2")["md"].read_text()


def test_cost_sums_each_pairs_timed_stages_and_scales_a_resumed_training(records, tmp_path):
    """Per pair and in all: core-hours of training and of evaluation from the records' own timing (evaluation
    times its workers); a training that resumed at half its steps counts twice its last process; an untimed
    record is counted, not summed."""
    from benchmark.analysis.cost import OTHER_NOTE, cost, cost_note, cost_table

    def record(pair: str, train_s: float | None, eval_s: float, start_step: int = 0, workers: int = 1) -> dict:
        timing = None if train_s is None else {"train_s": train_s, "eval_s": eval_s}
        train = {"start_step": start_step, "steps": 2000} if train_s else None
        return {"config": {"pair": pair, "threads": 1, "workers": workers}, "timing": timing, "train": train}

    runs = [record("lift/a", 3600, 1800), record("lift/a", 1800, 1800, start_step=1000),
            record("lift/a", 0.0, 360), record("stack/b", None, 0.0), record("stack/b", 7200, 1800, workers=2)]
    table = cost(runs).set_index("pair")
    a, b, total = table.loc["lift/a"], table.loc["stack/b"], table.loc["all"]
    assert (a.runs, a.trained, a.resumed, a.untimed) == (3, 2, 1, 0)
    assert a.train_h == pytest.approx(2.0) and a.eval_h == pytest.approx(1.1) and a.total_h == pytest.approx(3.1)
    assert a.minutes_per_trained_run == pytest.approx((3600 + 1800 + 3600 + 1800) / 2 / 60)
    assert (b.runs, b.trained, b.untimed) == (2, 1, 1) and b.total_h == pytest.approx(3.0)
    assert (total.runs, total.trained) == (5, 3) and total.total_h == pytest.approx(6.1)
    assert "## Cost" in L.write_leaderboard(records, tmp_path)["md"].read_text()
    assert "demos + metrics h (runs)" not in cost_table(table.reset_index())[0]  # no record times them
    runs[0]["timing"] |= {"demos_s": 300.0, "metrics_s": 60.0}  # newer records time demos and metrics apart
    runs[1]["timing"] |= {"demos_s": 0.5, "metrics_s": None}  # measured by an earlier process: not summed
    timed = cost(runs)
    header, rows = cost_table(timed)
    assert header[-1] == "demos + metrics h (runs)" and rows[0][-1] == "0.10 (1)" and rows[-1][-1] == "0.10 (1)"
    assert timed.set_index("pair").loc["all"].total_h == pytest.approx(6.1)  # training and evaluation only
    assert cost_note(timed).endswith(OTHER_NOTE) and not cost_note(table.reset_index()).endswith(OTHER_NOTE)


def test_the_committed_board_is_written_again_from_its_committed_records(tmp_path):
    """`results/leaderboard/board/leaderboard.md` comes back byte for byte from the records committed beside it:
    anyone can reproduce the reference leaderboard (and a change of the tables' code shows here first)."""
    from benchmark.analysis.rules import track_label

    board = Path(__file__).parents[1] / "results" / "leaderboard" / "board"
    track = json.loads((board / "track.json").read_text())
    md = L.write_leaderboard(R.load_records(board / "records"), tmp_path,
                             title=f"cotrain-bench leaderboard: {track_label(track)}")["md"]
    assert md.read_text() == (board / "leaderboard.md").read_text()


# --- plots -------------------------------------------------------------------------------

def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _errorbars(ax) -> list:
    from matplotlib.container import ErrorbarContainer

    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_success_figures_draw_one_series_per_group(table):
    """One errorbar series per (method, gap) with a ratio, one reference line per method without,
    one series per method and w against the gap; labels from the table."""
    ratio = table[table.w.notna()].sort_values(["method", "magnitude"])
    fixed = table[table.w.isna()].sort_values(["method", "magnitude"])
    ax = P.success_vs_ratio_figure(table, window=(0.05, 0.2)).axes[0]
    assert ax.get_xlabel() == "target fraction of each batch w (log scale)" and ax.get_ylabel() == "target success rate"
    assert ax.get_xscale() == "log"
    series = [f"lift/dynamics · {r.method} · gap={r.magnitude:g}" for r in ratio.itertuples()]
    references = [f"lift/dynamics · {r.method} · gap={r.magnitude:g}" for r in fixed.itertuples()]
    assert [c.get_label() for c in _errorbars(ax)] == series
    assert [line.get_label() for line in ax.lines if line.get_linestyle() == ":"] == references
    assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"] == list(fixed.success_mean)
    assert sorted(_legend(ax)) == sorted(series + references + ["ratio window"])

    ax = P.success_vs_magnitude_figure(table).axes[0]
    assert ax.get_xlabel() == "gap magnitude" and ax.get_ylabel() == "target success rate"
    bars = _errorbars(ax)
    methods = sorted(table.method.unique())
    assert [c.get_label().split(" · ")[1] for c in bars] == methods
    for c, method in zip(bars, methods):  # each series runs over every gap of its method
        rows = table[table.method == method].sort_values("magnitude")
        assert list(c.lines[0].get_xdata()) == list(rows.magnitude)
        assert list(c.lines[0].get_ydata()) == list(rows.success_mean)


def test_alignment_figure_scatters_every_run_with_a_colour_scale(table):
    fig = P.alignment_vs_discernibility_figure(table)
    ax, bar = fig.axes
    assert ax.get_xlabel() == "Wasserstein distance of z (normalized across runs)"
    assert ax.get_ylabel() == "domain discernibility of z_cond (MLP probe accuracy)"
    assert bar.get_ylabel() == "target success rate"
    (points,) = ax.collections
    assert points.get_offsets().tolist() == table[["align_wasserstein_norm", "discern_mlp_cond"]].to_numpy().tolist()
    assert list(points.get_array()) == list(table.success_mean)


def test_forest_and_success_figures_draw_each_rows_interval(table):
    """The forest plot: a panel per (pair, gap) cell, a point per method but cotrain at its paired difference,
    whiskers to its interval; the success figure the same with every method's success on [0, 1]."""
    forest = P.diff_vs_cotrain_figure(table)
    gap = table[(table.magnitude == 1.0) & (table.method != "cotrain")].sort_values("diff_vs_cotrain")
    ax = next(a for a in forest.axes if "gap=1" in a.get_title())
    (points,) = [line for line in ax.lines if line.get_marker() == "o"]
    assert list(points.get_xdata()) == pytest.approx(gap.diff_vs_cotrain.tolist())
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        m if pd.isna(w) else f"{m} w={w:.3g}" for m, w in zip(gap.method, gap.w)]
    (whiskers,) = ax.collections
    ends = np.array([segment[:, 0] for segment in whiskers.get_segments()])
    np.testing.assert_allclose(ends, gap[["diff_lo", "diff_hi"]].to_numpy())
    success = next(a for a in P.success_per_pair_figure(table).axes if "gap=1" in a.get_title())
    assert success.get_xlim() == (-0.02, 1.02) and len(success.get_yticks()) == (table.magnitude == 1.0).sum()


def test_training_logs_group_by_pair_and_method_and_keep_every_seed(tmp_path):
    """Two pairs' runs of one method and seed land in two panels (not one label overwriting the other); a
    no-gap control gets a panel of its own; a run without a log is left out."""
    records = []
    for i, (pair, method, w, seed, magnitude) in enumerate([
            ("lift/a", "cotrain", 0.15, 0, 1.0), ("lift/a", "cotrain", 0.15, 1, 1.0), ("stack/b", "cotrain", 0.15, 0, 1.0),
            ("lift/a", "target_only", None, 0, 1.0), ("lift/a", "cotrain", 0.15, 0, 0.0), ("stack/b", "ot", 0.15, 0, 1.0)]):
        run_id = f"run{i}"
        if method != "ot":
            (tmp_path / run_id).mkdir()
            (tmp_path / run_id / "train_log.jsonl").write_text("")
        records.append({"run_id": run_id, "config": {"pair": pair, "method": method, "w": w, "seed": seed,
                                                     "magnitude": magnitude}})
    logs = P.training_logs(records, tmp_path)
    assert {panel: {label: [p.parent.name for p in paths] for label, paths in group.items()}
            for panel, group in logs.items()} == {
        "lift/a": {"cotrain w=0.15": ["run0", "run1"], "target_only": ["run3"]},
        "stack/b": {"cotrain w=0.15": ["run2"]}, "lift/a (gap 0)": {"cotrain w=0.15": ["run4"]}}
    records[1]["config"]["steps"] = 4000  # a longer run of the same pair: apart, not averaged with the others
    panels = P.training_logs(records, tmp_path)
    assert panels["lift/a N=None M=None steps=4000"] == {"cotrain w=0.15": [tmp_path / "run1" / "train_log.jsonl"]}
    assert [p.parent.name for p in panels["lift/a N=None M=None steps=None"]["cotrain w=0.15"]] == ["run0"]


def test_training_curves_figure_and_written_plots(tmp_path, table):
    """A panel per group, a line per label: the mean over its seeds' logs at their shared steps."""
    logs: dict[str, dict[str, list[Path]]] = {}
    for pair in ("lift/a", "stack/b"):
        for label, scale in (("cotrain", 1.0), ("target_only", 2.0)):
            for seed in (0, 1):
                path = tmp_path / f"{pair.replace('/', '_')}_{label}_{seed}.jsonl"
                path.write_text("".join(json.dumps({"step": s, "diffusion": scale * (1 + seed) / (1 + s), "lr": 1e-4})
                                        + "\n" for s in range(0, 500, 50)))
                logs.setdefault(pair, {}).setdefault(label, []).append(path)
    axes = P.training_curves_figure(logs).axes
    assert [ax.get_title() for ax in axes] == ["lift/a", "stack/b"]
    ax = axes[1]
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "diffusion" and ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["cotrain", "target_only"] == _legend(ax)
    assert list(ax.lines[1].get_xdata()) == list(range(0, 500, 50))
    assert ax.lines[1].get_ydata()[1] == pytest.approx(2.0 * 1.5 / 51)  # the mean of seeds 0 and 1
    assert P.training_curves_figure(logs, key="lr").axes[0].get_ylabel() == "lr"
    logs["lift/a"]["cotrain"].append(tmp_path / "empty.jsonl")
    (tmp_path / "empty.jsonl").write_text("")  # a log without the key leaves the line to the others
    assert list(P.training_curves_figure(logs).axes[0].lines[0].get_ydata()) == list(ax.lines[0].get_ydata())
    paths = P.write_plots(table, logs, tmp_path / "figs")
    assert [p.name for p in paths] == ["success_per_pair.png", "diff_vs_cotrain.png", "success_vs_ratio.png",
                                       "success_vs_magnitude.png",
                                       "alignment_vs_discernibility.png", "training_curves.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
