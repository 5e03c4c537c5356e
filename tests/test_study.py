"""The study track end to end at its `smoke` budget (real runs, real guidance evaluation), and the
pure pieces of `benchmark.study` on constructed records and metrics."""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmark.study.analyses import MEASURES, RAW, balanced_aggregation
from benchmark.study.claims import alignment_by_kind, balanced_ranking
from benchmark.study.design import (REGIMES, classify_regime, gap_kind, in_window, nearer_bound, ratio_window,
                                    window_position)
from benchmark.analysis.markdown import slug
from benchmark.harness.run import config_of_record
from benchmark.study.guidance import guidance_sweep_run
from benchmark.study.load import StudyData, is_study_method, method_label, runs_table
from benchmark.study.report import analyze_study, study
from benchmark.study.statistics import (CONFIDENCE, NOT_REPRODUCED, NOT_RESOLVED, POOLED, POWER, REPRODUCED,
                                        STUDY_BASE, STUDY_EFFECT, cell_bootstrap, combine_verdicts, fisher_interval,
                                        fisher_pool, paired_window_test, sweep_correlations, unit_interval, verdict,
                                        window_power, window_verdict)
from benchmark.study.window import window_sweeps

VERDICTS = {REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED}
CLAIM_IDS = {"cfg_adda_best", "align_discern", "balanced", "window", "alignment_corr", "regimes", "guidance"}


def _quiet(*args, **kwargs) -> None:
    pass


# --- end to end on the smoke budget -----------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """The track's smoke grid run for real, then every analysis of `cotrain study` on it."""
    import torch

    from benchmark.harness.grid import load_grid
    from benchmark.harness.sweep import run_sweep

    root = tmp_path_factory.mktemp("study")
    runs, out = root / "runs", root / "out"
    grid = load_grid(track="study", budget="smoke")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(grid, runs, progress=False)
        summary = study(runs, out, budget="smoke", command="pytest tests/test_study.py", log=_quiet)
    finally:
        torch.set_num_threads(threads)
    return {"runs": runs, "out": out, "summary": summary, "grid": grid}


def _png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_every_analysis_writes_its_table_and_figure(smoke):
    out = smoke["out"]
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.html", "aggregation.md", "aggregation.csv",
                 "success_vs_w.md", "representation.md", "representation.csv", "representation_correlations.csv",
                 "regimes.md", "regimes.csv", "guidance.md", "guidance.csv", "raw_discernibility.md",
                 "raw_discernibility.csv", "COMPARISON.md", "study.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 100, name
    for name in ("success_vs_w_physics_only.png", "representation_scatter.png", "regimes.png", "guidance.png",
                 "raw_discernibility.png"):
        assert _png(out / name), name
    n_runs = len(smoke["grid"].runs())
    assert smoke["summary"]["runs_read"] == smoke["summary"]["runs_expected"] == n_runs
    # tables hold the real runs: every run in the representation table, every pair in the raw table
    import pandas as pd

    rep = pd.read_csv(out / "representation.csv")
    assert len(rep) == n_runs and rep["align_wasserstein"].notna().all() and rep["gw"].notna().all()
    assert set(rep["regime"]) <= set(REGIMES)
    agg = pd.read_csv(out / "aggregation.csv")
    assert {"cotrain", "cfg_adda"} <= set(agg["method"]) and agg["balanced"].notna().all()
    raw = pd.read_csv(out / "raw_discernibility.csv")
    assert list(raw["pair"]) == ["lift/dynamics"] and raw["raw_discern_obs_action_mlp"].between(0, 1).all()
    window = (out / "success_vs_w.md").read_text()
    assert "w_q = √(N/M)" in window and "lift/dynamics" in window
    lb = (out / "leaderboard.md").read_text()
    assert "Smallest success difference" in lb


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _containers(ax, kind: str) -> list:
    from matplotlib import container

    return [c for c in ax.containers if isinstance(c, getattr(container, kind))]


def test_every_figure_draws_each_series_of_its_table(smoke):
    """The figures of the smoke study through their matplotlib objects: axis labels, and one series per
    method, regime weight or probe of the table written beside each figure."""
    import pandas as pd

    out, figures = smoke["out"], smoke["summary"]["figures"]
    rep = pd.read_csv(out / "representation.csv")
    gaps = sorted(rep.gap.unique())
    # success against w: an errorbar series per mixing method, a reference line per single-domain method
    for gap in gaps:
        g = rep[rep.gap == gap]
        fig = figures[f"success_vs_w_{slug(gap)}.png"]
        pairs = sorted(g.pair.unique())
        assert len(fig.axes) == len(pairs)
        for ax, pair in zip(fig.axes, pairs):
            assert ax.get_xlabel() == "target fraction w (log)" and ax.get_ylabel() == "target success"
            single = {"target_only", "source_only"}
            mixing = sorted(set(g[g.pair == pair].method) - single)
            assert [c.get_label() for c in _containers(ax, "ErrorbarContainer")] == mixing
            references = sorted(set(g[g.pair == pair].method) & single)
            window = ("window (w_n, w_q)", "w = √N/(√N+√M)")
            assert sorted(label.rsplit(" (", 1)[0] for label in _legend(ax)
                          if label not in mixing and label not in window) == references
    # representation: a gap per row, a measure per column, a scatter per method
    fig = figures["representation_scatter.png"]
    assert len(fig.axes) == len(gaps) * 4
    for i, gap in enumerate(gaps):
        methods = sorted(rep[rep.gap == gap].method.unique())
        for j, (_, description) in enumerate(MEASURES[:4]):
            ax = fig.axes[4 * i + j]
            assert ax.get_xlabel() == description and ax.get_ylabel() == "target success"
            assert [c.get_label() for c in ax.collections] == methods
    # regimes: a scatter per (adversarial weight, regime) of regimes.csv
    reg = pd.read_csv(out / "regimes.csv")
    (ax,) = figures["regimes.png"].axes
    assert ax.get_xlabel() == "alignment of z: 1 − Wasserstein (normalized within pair)"
    assert ax.get_ylabel() == "target success"
    groups = [f"weight {w:g}, {r}" for (w, r), _ in reg.groupby(["adversarial_weight", "regime"])]
    assert groups and [c.get_label() for c in ax.collections] == groups
    # guidance: an errorbar series per method with evaluated scales, one point per scale
    gd = pd.read_csv(out / "guidance.csv").dropna(subset=["success"])
    (ax,) = figures["guidance.png"].axes
    assert ax.get_xlabel() == "guidance scale λ (0 = plain conditional)"
    assert ax.get_ylabel() == "target success (95% Wilson)"
    series = _containers(ax, "ErrorbarContainer")
    assert [c.get_label() for c in series] == sorted(gd.method.unique())
    assert [len(c.lines[0].get_xdata()) for c in series] == [len(g) for _, g in gd.groupby("method")]
    # raw discernibility: a bar series per probe, a bar per pair with runs
    raw = pd.read_csv(out / "raw_discernibility.csv")
    (ax,) = figures["raw_discernibility.png"].axes
    assert ax.get_ylabel() == "held-out domain-probe accuracy"
    bars = _containers(ax, "BarContainer")
    assert [b.get_label() for b in bars] == [name for _, name in RAW]
    assert all(len(b) == (raw.runs > 0).sum() for b in bars)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(raw[raw.runs > 0].pair)


def test_guidance_sweep_evaluates_real_checkpoints_and_resumes(smoke):
    from benchmark.harness.evaluate import EvalSpec, evaluate
    from benchmark.analysis.records import read_record

    gspec = {"pair": "lift/dynamics", "methods": ["cfg_adda"], "w": 0.1, "scales": [-0.5, 0, 0.5]}
    runs = [p.parent for p in smoke["runs"].glob("*/record.json")]
    chosen = [d for d in runs if (d / "guidance.json").exists()]
    assert len(chosen) == 1
    run_dir = chosen[0]
    rec = read_record(run_dir / "record.json")
    assert rec["config"]["method"] == "cfg_adda" and rec["config"]["w"] == gspec["w"]
    cache = json.loads((run_dir / "guidance.json").read_text())
    test_seeds = [e["seed"] for e in rec["eval"]["target"]["episodes"]]
    assert cache["episode_seeds"] == test_seeds
    assert set(cache["scales"]) == {"-0.5", "0", "0.5"}
    assert {v["source"] for v in cache["scales"].values()} == {"record", "evaluated"}
    for v in cache["scales"].values():
        assert v["n"] == len(test_seeds) and [e["seed"] for e in v["episodes"]] == test_seeds
    # the trained scale is read from the record: a fresh evaluation of it gives the same episodes
    spec = EvalSpec(str(run_dir / "checkpoint"), "lift/dynamics", "target", 1.0, backend=rec["config"]["backend"],
                    guidance=-0.5)
    again = evaluate(spec, test_seeds, progress=False)
    assert [e["success"] for e in again] == [e["success"] for e in cache["scales"]["-0.5"]["episodes"]]
    # resumable: a second pass evaluates nothing; a new scale evaluates only that one
    lines: list[str] = []
    guidance_sweep_run(rec, run_dir, gspec["scales"], log=lines.append)
    assert lines == []
    (run_dir / "guidance.json").write_text(json.dumps({**cache, "scales": {k: v for k, v in cache["scales"].items()
                                                                           if k != "0.5"}}))
    guidance_sweep_run(rec, run_dir, gspec["scales"], log=lines.append)
    assert len(lines) == 1 and "0.5" in lines[0] and "evaluated" in lines[0]
    # its small files without its checkpoint (a fresh machine): trained again, the same episodes at 0.5
    evaluated = json.loads((run_dir / "guidance.json").read_text())["scales"]["0.5"]["episodes"]
    shutil.rmtree(run_dir / "checkpoint")
    (run_dir / "guidance.json").write_text(json.dumps({**cache, "scales": {k: v for k, v in cache["scales"].items()
                                                                           if k != "0.5"}}))
    lines.clear()
    guidance_sweep_run(rec, run_dir, gspec["scales"], log=lines.append)
    assert "training it again" in lines[0] and (run_dir / "checkpoint").exists()
    assert json.loads((run_dir / "guidance.json").read_text())["scales"]["0.5"]["episodes"] == evaluated
    assert config_of_record(rec["config"]).run_id() == rec["run_id"]
    older = {**rec["config"], "run_id": "0123456789ab"}  # made under other pair or method versions: another id
    with pytest.raises(ValueError, match="cannot be trained again here"):
        config_of_record(older)
    table = (smoke["out"] / "guidance.md").read_text()
    assert "cfg_adda" in table and "Wilson" in table


def _verdict_table(text: str) -> dict[str, str]:
    section = text.split("## Verdicts", 1)[1].split("## Details", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| claim")]
    return {r.split(" | ")[0][2:]: re.search(r"\*\*(.+?)\*\*", r.split(" | ")[-1]).group(1) for r in rows}


def test_comparison_lists_every_claim_with_a_verdict(smoke):
    text = (smoke["out"] / "COMPARISON.md").read_text()
    claims = smoke["summary"]["claims"]
    assert {c["id"] for c in claims} == CLAIM_IDS
    table = _verdict_table(text)
    assert len(table) == len(CLAIM_IDS) and set(table.values()) <= VERDICTS
    for c in claims:
        assert c["verdict"] in VERDICTS and c["claim"] in table
        assert c["measured"] and c["study"]
    n = len(smoke["grid"].runs())
    assert "budget `smoke`" in text and f"{n} of {n} in the grid" in text
    assert "pytest tests/test_study.py" in text and "s wall time" in text
    assert "episodes per point" in text and "resolves" in text
    # one seed and three episodes cannot resolve anything: no claim may be called reproduced or refuted
    assert all(c["verdict"] == NOT_RESOLVED for c in claims)
    # the compute per pair, from the records' timing: the leaderboard's Cost table, and its total in the header
    cost = text.split("## Cost")[1].split("## ")[0]
    board = (smoke["out"] / "leaderboard.md").read_text().split("## Cost")[1].split("## ")[0]
    rows = [r for r in cost.splitlines() if r.startswith("| lift/dynamics") or r.startswith("| all")]
    assert len(rows) == 2 and all(r in board for r in rows)
    total, counted = rows[1].split(" | ")[6], rows[1].split(" | ")[1]
    assert counted.startswith(f"{n} (") and f"summed over runs): {total} h" in text  # every run counted


def test_partial_sweep_and_cli(smoke, tmp_path):
    from benchmark.cli import main

    part = tmp_path / "runs"
    part.mkdir()
    dirs = sorted(p.parent for p in smoke["runs"].glob("*/record.json"))
    guided = [d for d in dirs if (d / "guidance.json").exists()]
    keep = [d for d in dirs if d not in guided][1:] + guided  # one run dropped, the guidance cache kept
    for d in keep:
        shutil.copytree(d, part / d.name, ignore=shutil.ignore_patterns("checkpoint"))
    out = tmp_path / "out"
    assert main(["study", str(part), "--out", str(out), "--budget", "smoke", "--no-guidance", "--quiet"]) == 0
    text = (out / "COMPARISON.md").read_text()
    n = len(dirs)
    assert f"{n - 1} of {n} in the grid (1 missing)" in text and "Missing (1 runs" in text
    assert len(_verdict_table(text)) == len(CLAIM_IDS)
    assert "cotrain study" in text and "--no-guidance" in text
    for name in ("aggregation.md", "success_vs_w.md", "representation.md", "regimes.md", "guidance.md",
                 "raw_discernibility.md"):
        assert (out / name).is_file()
    # the guidance sweep is read from the cache copied with the run (no checkpoint needed)
    assert re.search(r"\| cfg_adda \| 0 \| 1 \| \d/3 = ", (out / "guidance.md").read_text())
    # an empty runs folder is an honest error, not an empty report
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["study", str(empty), "--out", str(tmp_path / "o2"), "--quiet"]) == 2


@pytest.mark.slow
def test_image_runs_go_through_every_analysis_of_the_study(tmp_path, monkeypatch):
    """Real image runs (`lift/visual-48px`, smoke size) under a budget of the study track: the report reads the
    visual kind on them, not on its stand-in, and every table names the image pair."""
    import torch
    import yaml

    from benchmark.harness import grid as grid_module
    from benchmark.harness.grid import load_grid
    from benchmark.harness.sweep import run_sweep

    track = yaml.safe_load((grid_module.TRACKS_DIR / "study.yaml").read_text())
    track["budgets"] = {"images": {"pairs": ["lift/visual-48px"], "methods": ["cotrain", "cfg_adda"],
                                   "w": [0.1, 0.3], "seeds": [0], "profile": "smoke", "episodes": 2,
                                   "n_target": 1, "n_source": 2, "set": {"batch_size": 16}, "vary": {}}}
    (tmp_path / "tracks").mkdir()
    (tmp_path / "tracks" / "study.yaml").write_text(yaml.safe_dump(track))
    monkeypatch.setattr(grid_module, "TRACKS_DIR", tmp_path / "tracks")
    runs, out = tmp_path / "runs", tmp_path / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert not any(run_sweep(load_grid(track="study", budget="images"), runs, progress=False).values())
        summary = study(runs, out, budget="images", guidance=False, command="pytest", log=_quiet)
    finally:
        torch.set_num_threads(threads)
    alignment = next(c for c in summary["claims"] if c["id"] == "alignment_corr")
    assert alignment["measured"].startswith("visual only: ") and "no image runs" not in alignment["measured"]
    text = (out / "COMPARISON.md").read_text()
    assert "4 of 4 in the grid" in text and "| lift/visual-48px | 4 (4) |" in text  # the Cost table's row
    for name in ("aggregation.md", "representation.md", "raw_discernibility.md", "leaderboard.md"):
        assert "lift/visual-48px" in (out / name).read_text(), name


# --- pure pieces ------------------------------------------------------------------------------------

def _rec(pair: str, method: str, w: float | None, seed: int, k: int, n: int = 10, hparams: dict | None = None,
         metrics: dict | None = None, n_target: int = 20, n_source: int = 200) -> dict:
    """A record of the current schema whose first k of n test episodes succeed (episode seeds shared per run seed)."""
    from benchmark.harness.run import RECORD_SCHEMA

    episodes = [{"seed": 1000 * seed + i, "success": i < k, "length": 10} for i in range(n)]
    return {"schema": RECORD_SCHEMA, "run_id": f"{pair}-{method}-{w}-{seed}-{sorted((hparams or {}).items())}",
            "config": {"pair": pair, "magnitude": 1.0, "method": method, "n_target": n_target, "n_source": n_source,
                       "seed": seed, "w": w, "hparams": {**(hparams or {}), "w": w}, "profile": "quick"},
            "eval": {"target": {"n": n, "successes": k, "success_rate": k / n, "episodes": episodes}},
            "metrics": metrics or {}}


def test_balanced_and_unbalanced_aggregation_on_constructed_records():
    ks = {0.016: 6, 0.1: 8, 0.3: 10, 0.005: 2, 0.5: 4, 0.8: 0}
    recs = [_rec("square/dynamics", "cotrain", w, s, k) for w, k in ks.items() for s in (0, 1)]
    recs += [_rec("square/dynamics", "target_only", None, s, 3) for s in (0, 1)]  # not a mixing ratio: ignored
    # a second pair where cotrain is flat at 0.5, and an unknown ratio (0.2) that belongs to neither set
    recs += [_rec("lift/visual", "cotrain", w, 0, 5) for w in list(ks) + [0.2]]
    tab = balanced_aggregation(recs, reps=500)
    row = tab[(tab.pair == "square/dynamics") & (tab.method == "cotrain")].iloc[0]
    assert row.balanced == pytest.approx(0.8) and row.unbalanced == pytest.approx(0.2)
    assert row.delta == pytest.approx(0.6) and 0 < row.delta_lo <= 0.6 <= row.delta_hi
    assert row.balanced_lo <= 0.8 <= row.balanced_hi and row.balanced_w == 3 and row.unbalanced_w == 3
    assert row.seeds == 2 and row.gap == "physics only"
    assert set(tab.method) == {"cotrain"}
    flat = tab[tab.pair == "lift/visual"].iloc[0]
    assert flat.balanced == pytest.approx(0.5) and flat.delta == pytest.approx(0.0) and flat.gap == "visual only"
    both = tab[tab.pair == "all pairs"].iloc[0]
    assert both.pairs == 2 and both.balanced == pytest.approx(0.65) and both.delta == pytest.approx(0.3)
    # partial sweep: a missing ratio is left out of its side's mean and counted
    part = [r for r in recs if not (r["config"]["pair"] == "square/dynamics" and r["config"]["w"] == 0.8)]
    row = balanced_aggregation(part, reps=200).query("pair == 'square/dynamics'").iloc[0]
    assert row.unbalanced == pytest.approx(0.3) and row.unbalanced_w == 2


def test_the_ranking_averages_every_method_over_the_same_pairs():
    """cfg_adda has runs on an easy pair only, cotrain on it and on a hard one: averaged each over its own pairs,
    cfg_adda (0.6) would outrank cotrain (0.5 = mean of 0.8 and 0.2) although cotrain beats it where both ran."""
    def eps(k):
        return {s: {100 * s + i: float(i < k) for i in range(10)} for s in (0, 1)}
    cells = {("lift/dynamics", "cotrain", 0.1): eps(8), ("lift/dynamics", "cfg_adda", 0.1): eps(6),
             ("stack/dynamics", "cotrain", 0.1): eps(2)}
    text = balanced_ranking(cells, cell_bootstrap(cells, reps=50), ["cfg_adda", "cotrain"])
    assert text == "averaged over lift/dynamics (the pairs every method has): cotrain 0.80; cfg_adda 0.60"
    assert balanced_ranking({("lift/dynamics", "cotrain", 0.1): eps(8), ("stack/dynamics", "ot", 0.1): eps(2)},
                            cell_bootstrap({}, reps=0), ["cotrain", "ot"]).startswith("n/a")


def test_method_labels_keep_regime_variants_apart():
    base = _rec("square/dynamics", "adda", 0.1, 0, 5, hparams={"adversarial_weight": 0.05})
    strong = _rec("square/dynamics", "adda", 0.1, 0, 5, hparams={"adversarial_weight": 0.5})
    vary = {"adda": {"adversarial_weight": [0.05, 0.5]}}
    assert method_label(base, vary) == "adda"
    assert method_label(strong, vary) == "adda[adversarial_weight=0.5]"
    assert method_label(strong, {}) == "adda"
    tab = balanced_aggregation([base, strong], vary, reps=50)
    assert set(tab[tab.pair != "all pairs"].method) == {"adda", "adda[adversarial_weight=0.5]"}


def test_cell_bootstrap_pairs_start_states():
    # two cells with identical outcomes on shared start states: the paired difference is exactly 0
    eps = {s: {100 * s + i: float(i % 3 == 0) for i in range(12)} for s in (0, 1, 2)}
    boot = cell_bootstrap({"a": eps, "b": {s: dict(v) for s, v in eps.items()}}, reps=300)
    assert boot.stat(lambda col: col("a") - col("b")) == (0.0, 0.0, 0.0)
    point, lo, hi = boot.stat(lambda col: col("a"))
    assert point == pytest.approx(4 / 12) and lo < point < hi
    # deterministic for its seed
    again = cell_bootstrap({"a": eps, "b": eps}, reps=300)
    assert np.array_equal(boot.matrix, again.matrix, equal_nan=True)


def test_regime_classifier_on_constructed_metrics():
    assert classify_regime({"discern_mlp_cond": 0.55, "align_nn": 0.5, "replay_pairs": 100}) == "overlapping"
    assert classify_regime({"discern_mlp_cond": 0.98, "align_nn": 0.01, "replay_pairs": 100}) == "disjoint"
    assert classify_regime({"discern_mlp_cond": 0.97, "align_nn": 0.40, "replay_pairs": 100}) == "structured"
    # probe between the thresholds with chance retrieval: not disjoint (the domain is not plainly readable)
    assert classify_regime({"discern_mlp_cond": 0.75, "align_nn": 0.0, "replay_pairs": 100}) == "structured"
    # retrieval judged against chance 1/n: 0.06 of 20 pairs (chance 0.05) is chance level
    assert classify_regime({"discern_mlp_cond": 0.95, "align_nn": 0.06, "replay_pairs": 20}) == "disjoint"
    assert classify_regime({"discern_mlp_cond": 0.95, "align_nn": 0.30, "replay_pairs": 20}) == "structured"
    # z_cond missing: the probe on z stands in
    assert classify_regime({"discern_mlp": 0.5, "align_nn": 0.3}) == "overlapping"
    assert classify_regime({}) == "unknown"
    assert classify_regime({"discern_mlp_cond": 0.95}) == "unknown"


def test_ratio_window_and_positions():
    win = ratio_window(20, 200)
    assert win["w_n"] == pytest.approx(20 / 220)
    assert win["w_q"] == pytest.approx(math.sqrt(0.1))
    assert win["w_odds"] == pytest.approx(math.sqrt(20) / (math.sqrt(20) + math.sqrt(200)))
    assert win["w_n"] < win["w_odds"] < win["w_q"]
    assert window_position(0.016, win) == "below w_n"
    assert window_position(0.1, win) == "inside (both forms)"
    assert window_position(0.3, win) == "inside (sqrt form only)"
    assert window_position(0.5, win) == "above w_q"
    assert in_window(0.3, win) and not in_window(0.3, win, "w_odds")
    assert nearer_bound(0.3, win).startswith("w_q") and nearer_bound(0.2, win).startswith("w_odds")
    assert gap_kind("square/dynamics") == "physics only"
    assert gap_kind("lift/visual") == "visual only"
    assert gap_kind("lift/visual_dynamics") == "visual + physics"
    assert gap_kind("lift/sensing") == "observation only"
    assert gap_kind("lift/action") == "other (action)"


def test_ratio_claims_read_only_sweeps_with_every_ratio():
    """A sweep run at part of the ratios (balanced ones and w = 0.5, as a method run for the ranking) would put
    another quantity into the ratio claims' averages: the balanced claim and the window test leave it out."""
    import pandas as pd

    from benchmark.study.claims import full_ratio_sweeps

    full, part = (0.005, 0.016, 0.1, 0.3, 0.5, 0.8), (0.016, 0.1, 0.3, 0.5)
    cells = {("lift/dynamics", m, w): {0: {0: 1.0}} for m, ws in (("cotrain", full), ("ot", part)) for w in ws}
    cells[("lift/dynamics", "adda[adversarial_weight=0.5]", 0.1)] = {0: {0: 1.0}}
    usable, left_out = full_ratio_sweeps(cells)
    assert [b[0][1] for b, _ in usable] == ["cotrain"] and left_out == 1
    assert [len(b) for b, _ in usable] == [3] and [len(u) for _, u in usable] == [3]
    runs = pd.DataFrame([dict(pair="lift/dynamics", method=m, seed=0, mix_w=w, success=0.5, n_target=20,
                              n_source=200) for m, ws in (("cotrain", full), ("ot", part)) for w in ws])
    rates, inside = window_sweeps(runs)
    assert rates.shape == (1, len(full)) and np.isfinite(rates).all()  # the cotrain sweep alone
    assert window_sweeps(runs[runs.method == "ot"])[0].shape == (1, len(part))  # alone, a sweep has every ratio


def test_verdicts_need_the_interval():
    assert verdict(0.01, 0.2) == REPRODUCED
    assert verdict(-0.2, -0.01) == NOT_REPRODUCED
    assert verdict(-0.1, 0.2) == NOT_RESOLVED
    assert verdict(0.0, 0.0) == NOT_RESOLVED
    assert verdict(math.nan, math.nan) == NOT_RESOLVED
    assert verdict(-0.5, -0.2, direction=-1) == REPRODUCED
    assert verdict(-0.04, 0.02, null=-0.05) == REPRODUCED  # non-inferiority margin
    assert combine_verdicts([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine_verdicts([REPRODUCED, NOT_RESOLVED]) == NOT_RESOLVED
    assert combine_verdicts([NOT_REPRODUCED, REPRODUCED]) == NOT_REPRODUCED
    assert combine_verdicts([]) == NOT_RESOLVED
    lo, hi = fisher_interval(0.8, 30)
    assert lo < 0.8 < hi and lo > 0.5
    assert all(math.isnan(x) for x in fisher_interval(0.9, 3))


def test_alignment_claim_uses_image_runs_else_their_stand_ins():
    import pandas as pd

    def rows(gap, r, lo, hi):
        own = dict(gap=gap, measure="alignment", method="cotrain", pearson_r=r, pearson_lo=lo, pearson_hi=hi,
                   spearman_rho=r, n=30)
        return [own, {**own, "method": POOLED, "methods": 1}]

    stand_ins = pd.DataFrame(rows("observation only", 0.5, 0.2, 0.7) + rows("observation + physics", 0.4, 0.1, 0.6)
                             + rows("physics only", -0.4, -0.6, -0.1))
    parts, texts, numbers = alignment_by_kind(stand_ins)
    assert parts == [REPRODUCED] * 3
    assert numbers[0]["part"].startswith("visual only (no image runs") and numbers[0]["estimate"] == 0.5
    assert texts[0].startswith("visual only (no image runs; stand-in observation only): pooled r = +0.50")
    assert "cotrain +0.50 (n = 30)" in texts[0]  # each method's own value is shown
    images = pd.concat([stand_ins, pd.DataFrame(rows("visual only", -0.5, -0.7, -0.2))])
    parts, texts, _ = alignment_by_kind(images)  # image runs, where present, are the measurement
    assert parts[0] == NOT_REPRODUCED and texts[0].startswith("visual only: pooled r = -0.50")
    assert texts[0].endswith("beside it, its stand-in observation only: pooled r = +0.50 [0.20, 0.70], n = 30")
    assert "stand-in" not in texts[2]  # physics only has none
    parts, texts, numbers = alignment_by_kind(stand_ins[stand_ins.gap == "physics only"])
    assert parts[:2] == [NOT_RESOLVED] * 2 and texts[:2] == ["visual only: no runs", "visual + physics: no runs"]
    assert [n["estimate"] for n in numbers] == [None, None, -0.4]


def _sweep_runs(offsets: dict[str, float], slope: float, ws: list[float], seed: int = 0):
    """Runs of one pair where each method's success rises with its alignment along its w sweep
    (``slope``) around its own level (``offsets``), alignment and level being opposed across methods."""
    rng = np.random.default_rng(seed)
    records = []
    for method, offset in offsets.items():
        for w in ws:
            a = rng.random()
            k = int(round(40 * np.clip(0.5 + offset + slope * (a - 0.5), 0, 1)))
            metrics = {"align_wasserstein": 1 - a + 2 * offset}
            records.append(_rec("lift/sensing", method, w, 0, k, n=40, metrics=metrics))
    return runs_table(records)


def test_alignment_correlation_is_taken_along_each_methods_sweep():
    from benchmark.analysis.metrics import correlation

    ws = [0.005, 0.016, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8]
    runs = _sweep_runs({"cotrain": 0.3, "cfg": 0.0, "ot": -0.3}, slope=0.4, ws=ws)
    # across methods, higher alignment goes with lower success: the runs pooled give the wrong sign
    assert correlation(runs["alignment"], runs["success"])["pearson_r"] < 0
    rows = sweep_correlations(runs, "alignment", is_study_method)
    own, pooled = rows[:-1], rows[-1]
    assert {r["method"] for r in own} == {"cotrain", "cfg", "ot"} and pooled["method"] == POOLED
    assert all(r["pearson_r"] > 0 and r["n"] == len(ws) for r in own)
    assert pooled["methods"] == len(own) and pooled["n"] == len(runs)
    assert verdict(pooled["pearson_lo"], pooled["pearson_hi"]) == REPRODUCED
    # a regime variant is shown but not pooled
    variant = sweep_correlations(runs.replace({"method": {"ot": "adda[adversarial_weight=0.5]"}}), "alignment",
                                 is_study_method)
    assert variant[-1]["methods"] == len(own) - 1


def test_fisher_pool():
    r, n = 0.6, 12
    lo, hi = fisher_interval(r, n)
    assert fisher_pool([r], [n])[:3] == pytest.approx((r, lo, hi))  # one coefficient: its own interval
    pr, plo, phi, p = fisher_pool([r] * 4, [n] * 4)
    assert pr == pytest.approx(r) and lo < plo < r < phi < hi and p < fisher_pool([r], [n])[3]
    # weights n − 3: a coefficient of 3 runs adds nothing, a larger sweep pulls harder
    assert fisher_pool([r, -0.9], [n, 3])[0] == pytest.approx(r)
    assert fisher_pool([0.2, 0.8], [50, 6])[0] < fisher_pool([0.2, 0.8], [6, 50])[0]
    assert all(math.isnan(x) for x in fisher_pool([math.nan, 0.5], [10, 3]))


# --- the window claim's test: null and power by simulation ------------------------------------------

REPS = 2000


def _budget_layout(budget: str) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """The window claim's sweeps at a study-track budget (from benchmark/harness/tracks/study.yaml): which ratios
    each sweep has (present), which lie in its window (inside), and the budget's episodes per run."""
    from benchmark.harness.grid import load_grid, load_spec

    spec, _ = load_spec(track="study", budget=budget)
    grid = load_grid(track="study", budget=budget)
    records = []
    for cfg in grid.runs():
        res, hp = cfg.resolved(), dict(cfg.hparams)
        records.append(_rec(cfg.pair, cfg.method, hp.get("w"), cfg.seed, 0, n=res.episodes, hparams=hp,
                            n_target=res.n_target, n_source=res.n_source))
    rates, inside = window_sweeps(runs_table(records, spec.get("vary")))
    return inside, np.isfinite(rates), int(spec["episodes"]), spec


def _simulate(inside: np.ndarray, present: np.ndarray, episodes: int, p: np.ndarray, seed: int) -> np.ndarray:
    """REPS simulated studies: binomial success of every run at its probability p (S, K or REPS, S, K)."""
    rng = np.random.default_rng(seed)
    p = np.broadcast_to(p, (REPS,) + inside.shape)
    return np.where(present, rng.binomial(episodes, p) / episodes, np.nan)


def _verdict_rates(lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    verdicts = [verdict(a, b) for a, b in zip(lo, hi)]
    return {v: verdicts.count(v) / len(verdicts) for v in VERDICTS}


def _mc_tolerance(p: float) -> float:
    """Four Monte Carlo standard errors of a rate p over REPS simulated studies."""
    return 4 * math.sqrt(max(p * (1 - p), 1 / REPS) / REPS)


@pytest.mark.parametrize("budget", ["quick", "full"])
def test_window_test_is_not_resolved_under_no_effect(budget):
    inside, present, episodes, spec = _budget_layout(budget)
    methods = [m for m in spec["methods"] if m not in ("target_only", "source_only")]
    assert inside.shape[0] == len(spec["pairs"]) * len(methods) * len(spec["seeds"])  # one sweep per method, pair, seed
    assert (inside & present).any() and (~inside & present).any(axis=1).all()
    # no effect: every ratio of a sweep has the sweep's own success rate, which varies between sweeps
    base = np.random.default_rng(1).uniform(0.1, 0.9, size=(REPS, inside.shape[0], 1))
    _, lo, hi = paired_window_test(_simulate(inside, present, episodes, base, seed=2), inside)
    rates = _verdict_rates(lo, hi)
    assert abs(rates[NOT_RESOLVED] - CONFIDENCE) < _mc_tolerance(CONFIDENCE)
    tail = (1 - CONFIDENCE) / 2  # and no side is favoured (the best of 4 outside against 2 inside would be)
    assert abs(rates[REPRODUCED] - tail) < _mc_tolerance(tail)
    assert abs(rates[NOT_REPRODUCED] - tail) < _mc_tolerance(tail)


@pytest.mark.parametrize("budget", ["smoke", "quick", "full"])
def test_window_power_check_at_the_study_budgets(budget):
    """The study's margin planted inside the window at the budget's episodes, seeds and sweeps: the
    share of simulated studies whose interval reproduces it matches the design power, and a budget
    below the required power has its verdict say that it cannot test the claim."""
    inside, present, episodes, _ = _budget_layout(budget)
    power = window_power(inside, present, episodes)
    p = np.where(inside, STUDY_BASE + STUDY_EFFECT, STUDY_BASE)
    mean, lo, hi = paired_window_test(_simulate(inside, present, episodes, p, seed=3), inside)
    reproduced = _verdict_rates(lo, hi)[REPRODUCED]
    assert abs(reproduced - power) < _mc_tolerance(power)
    verdicts = {window_verdict(a, b, power) for a, b in zip(lo, hi)}
    if power >= POWER:
        assert reproduced >= POWER - _mc_tolerance(POWER)
        assert abs(np.nanmean(mean) - STUDY_EFFECT) < 4 * np.nanstd(mean) / math.sqrt(REPS)  # unbiased
    else:
        assert {v for v, _ in verdicts} == {NOT_RESOLVED} and all("cannot test" in why for _, why in verdicts)


def test_a_representation_contrast_interval_holds_its_coverage_with_few_units():
    """The t interval over matched units covers a zero mean difference in about 95% of normal samples of 4 units
    as of 40; a percentile bootstrap of the same 4 covers it in about 80% (why the contrasts no longer use it)."""
    rng = np.random.default_rng(0)

    def percentile_bootstrap(v):
        means = v[rng.integers(0, v.size, size=(300, v.size))].mean(axis=1)
        return np.percentile(means, [2.5, 97.5])

    for n in (4, 40):
        samples = rng.normal(0.0, 1.0, size=(600, n))
        covered = np.mean([lo <= 0.0 <= hi for _, lo, hi in map(unit_interval, samples)])
        assert 0.93 <= covered <= 0.97, (n, covered)
    boot = np.mean([lo <= 0.0 <= hi for lo, hi in map(percentile_bootstrap, rng.normal(0.0, 1.0, size=(600, 4)))])
    assert boot < 0.85
    assert np.isnan(unit_interval([0.3])[1]) and np.isnan(unit_interval([0.2, 0.2, 0.2])[1])  # no spread: none
    assert unit_interval([]) == pytest.approx((math.nan,) * 3, nan_ok=True)


def test_window_verdict():
    assert window_verdict(0.01, 0.05, POWER)[0] == REPRODUCED
    verdict_, why = window_verdict(0.01, 0.05, POWER / 2)
    assert verdict_ == NOT_RESOLVED and "cannot test" in why
    assert "power 0.79 < 0.80" in window_verdict(0.01, 0.05, POWER - 0.003)[1]  # shown rounded down, never equal
    assert window_verdict(-0.05, -0.01, 1.0)[0] == NOT_REPRODUCED
    assert window_power(np.ones((5, 3), bool), np.ones((5, 3), bool), 50) == 0.0  # nothing outside the window


def test_verdicts_on_constructed_study(tmp_path, monkeypatch):
    """A constructed sweep whose effects are known: balanced ratios and the window clearly win (with
    enough episodes for the window test's power check), CFG-ADDA clearly loses to the others (a claim
    that does not reproduce is reported as such), OT and ADDA align z, and no guidance sweep exists
    (not resolved)."""
    from benchmark.analysis import leaderboard
    from benchmark.harness.grid import load_spec

    # the leaderboard is tested on the real runs above; its across-pairs bootstrap is slow on 180 records
    monkeypatch.setattr(leaderboard, "write_leaderboard", lambda *a, **k: {})

    spec, _ = load_spec(track="study", budget="quick")
    spec.update(pairs=["square/dynamics", "lift/visual"], methods=["target_only", "cotrain", "ot", "adda", "cfg",
                                                                   "cfg_adda"], seeds=[0, 1, 2], episodes=100)
    n = spec["episodes"]
    base = {0.005: 0.2, 0.016: 0.5, 0.1: 0.7, 0.3: 0.6, 0.5: 0.3, 0.8: 0.2}
    rng = np.random.default_rng(0)
    records = []
    for pair in spec["pairs"]:
        for seed in spec["seeds"]:
            records.append(_rec(pair, "target_only", None, seed, n // 4, n=n))
            for method in spec["methods"][1:]:
                for w, p in base.items():
                    mean = p - (0.3 if method == "cfg_adda" else 0.0)
                    k = int(np.clip(round(mean * n) + rng.integers(-2, 3), 0, n))
                    metrics = {"align_wasserstein": (0.5 if method in ("ot", "adda", "cfg_adda") else 1.0)
                               + 0.05 * rng.random(), "z_spread": 1.0, "align_gw": rng.random(), "align_nn": 0.3,
                               "discern_mlp": 0.9, "discern_linear": 0.8, "replay_pairs": 100,
                               "discern_mlp_cond": (1.0 if method.startswith("cfg") else 0.95) - 0.01 * rng.random(),
                               "structured_alignment": 0.4, "raw_discern_mlp": 0.7, "raw_discern_linear": 0.6,
                               "raw_discern_obs_action_mlp": 0.8, "raw_discern_obs_action_linear": 0.7}
                    hp = {"adversarial_weight": 0.05} if "adda" in method else {}
                    records.append(_rec(pair, method, w, seed, k, n=n, hparams=hp, metrics=metrics))
    data = StudyData(tmp_path / "runs", "study", "quick", spec, records, {}, {})
    summary = analyze_study(data, tmp_path / "out", guidance=False, command="constructed", log=_quiet)
    verdicts = {c["id"]: c["verdict"] for c in summary["claims"]}
    assert verdicts["balanced"] == REPRODUCED
    assert verdicts["window"] == REPRODUCED
    assert "power" in next(c["measured"] for c in summary["claims"] if c["id"] == "window")
    assert verdicts["cfg_adda_best"] == NOT_REPRODUCED
    assert verdicts["align_discern"] == REPRODUCED
    assert verdicts["guidance"] == NOT_RESOLVED
    assert set(verdicts.values()) <= VERDICTS and set(verdicts) == CLAIM_IDS
    text = (tmp_path / "out" / "COMPARISON.md").read_text()
    balanced = next(c["claim"] for c in summary["claims"] if c["id"] == "balanced")
    assert _verdict_table(text)[balanced] == REPRODUCED
    assert "not reproduced" in text
    window = (tmp_path / "out" / "success_vs_w.md").read_text()
    assert "inside (both forms)" in window  # best w = 0.1 for N=20, M=200
    # each claim's resolution: a difference's 2.80 × the SE read from its interval, the window's from its design
    resolved = {c["id"]: c for c in json.loads((tmp_path / "out" / "study.json").read_text())["claims"]}
    part = resolved["balanced"]["parts"][0]
    assert part["hi"] > part["lo"]
    assert resolved["balanced"]["resolution"] == pytest.approx(2.80 * (part["hi"] - part["lo"]) / (2 * 1.96),
                                                               rel=2e-3)
    cfg_adda = resolved["cfg_adda_best"]
    assert cfg_adda["resolution"] == max(p["resolution"] for p in cfg_adda["parts"]) and len(cfg_adda["parts"]) == 4
    rates, inside = window_sweeps(runs_table(records, data.vary))  # the margin at which the design has 80% power
    margin = resolved["window"]["resolution"]
    assert window_power(inside, np.isfinite(rates), n, effect=margin) == pytest.approx(POWER, abs=1e-3)
    assert _table(text)[1][balanced]["smallest resolved effect"] == f"{part['resolution']:.3f}"


# --- the previous report's verdicts and each claim's resolution ---------------------------------------

def _table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """COMPARISON.md's verdict table: its header and, per claim, the cells by column name."""
    section = text.split("## Verdicts", 1)[1].split("## Details", 1)[0]
    lines = [r for r in section.splitlines() if r.startswith("| ")]
    header = lines[0][2:-2].split(" | ")
    rows = [dict(zip(header, r[2:-2].split(" | "))) for r in lines[1:]]
    return header, {r["claim"]: r for r in rows}


def test_comparison_beside_a_previous_report(smoke, tmp_path):
    """A previous study.json of an older budget, written by hand: its verdicts stand beside this budget's
    with why each changed, read from the measure strings and budgets; every claim states its resolution."""
    from benchmark.cli import main

    now = json.loads((smoke["out"] / "study.json").read_text())
    by_id = {c["id"]: c for c in now["claims"]}
    assert (now["seeds"], now["pairs"]) == (len(smoke["grid"].seeds), list(smoke["grid"].pairs))
    previous = {"budget": "quick", "schema": now["schema"], "pairs": now["pairs"],
                "claims": [{"id": "guidance", "verdict": REPRODUCED, "measure": by_id["guidance"]["measure"]},
                           {"id": "balanced", "verdict": REPRODUCED, "measure": "an older measure"}]}
    path = tmp_path / "quick.json"
    path.write_text(json.dumps(previous))
    out = tmp_path / "out"
    assert main(["study", str(smoke["runs"]), "--out", str(out), "--budget", "smoke", "--no-guidance", "--quiet",
                 "--previous", str(path)]) == 0
    text = (out / "COMPARISON.md").read_text()
    header, rows = _table(text)
    assert header[-3:] == ["previous verdict (budget quick)", "why it changed", "verdict"]
    assert f"--previous {path}" in text
    for c in by_id.values():
        row = rows[c["claim"]]
        if c["id"] == "guidance":  # same measure, older budget
            assert (row["previous verdict (budget quick)"], row["why it changed"]) == (REPRODUCED, "budget")
        elif c["id"] == "balanced":  # measure string and budget both differ
            assert (row["previous verdict (budget quick)"], row["why it changed"]) == (REPRODUCED,
                                                                                      "measure and budget")
        else:
            assert row["previous verdict (budget quick)"] == row["why it changed"] == "—"
    # each claim's resolution: a number or n/a, in study.json and in the table
    saved = json.loads((out / "study.json").read_text())
    assert saved["budget"] == "smoke" and saved["schema"] == now["schema"]
    for c in saved["claims"]:
        assert c["measure"] and c["parts"]
        cell = rows[c["claim"]]["smallest resolved effect"]
        if c["resolution"] is None:
            assert cell == "n/a"
        else:
            assert float(cell) == pytest.approx(c["resolution"], abs=5e-4)
        for part in c["parts"]:  # a difference's resolution is 2.80 × the SE read from its interval
            if part["kind"] == "difference" and c["id"] != "window" and part["resolution"] is not None:
                assert part["resolution"] == pytest.approx(2.80 * (part["hi"] - part["lo"]) / (2 * 1.96), rel=2e-3)
    # smoke runs barely succeed: an interval of no width (every resample alike) has no SE to read
    flat = [c for c in saved["claims"] if any(p["lo"] is not None and p["lo"] == p["hi"] for p in c["parts"])]
    assert all(c["resolution"] is None for c in flat)
    assert "Smallest success difference it resolves" not in text and "smallest resolved effect" in text


def test_why_a_verdict_changed():
    from benchmark.study.report import compare_previous

    summary = {"budget": "resolve", "seeds": 3, "episodes": 100, "pairs": ["lift/dynamics"], "schema": 2}
    claims = [{"id": i, "verdict": NOT_RESOLVED, "measure": f"measure {i}"} for i in "abcdef"]
    before = [{"id": "a", "verdict": REPRODUCED, "measure": "measure a"},  # same measure, same budget
              {"id": "b", "verdict": REPRODUCED, "measure": "an older measure b"},
              {"id": "c", "verdict": NOT_RESOLVED, "measure": "an older measure c"},  # same verdict
              {"id": "d", "verdict": REPRODUCED}]  # a report without measure strings
    same = {**summary, "claims": before}
    compare_previous(claims, summary, same)
    assert [c.get("why_changed") for c in claims] == ["the runs", "measure", "unchanged", "measure", None, None]
    assert claims[0]["previous_verdict"] == REPRODUCED and "previous_verdict" not in claims[4]
    for key, value in (("budget", "quick"), ("seeds", 1), ("episodes", 20), ("pairs", ["square/dynamics"])):
        compare_previous(claims, summary, {**same, key: value})
        assert [c["why_changed"] for c in claims[:4]] == ["budget", "measure and budget", "unchanged",
                                                          "measure and budget"], key
    compare_previous(claims, summary, {**same, "schema": 1})  # older records: every measure changed
    assert [c["why_changed"] for c in claims[:4]] == ["measure", "measure", "unchanged", "measure"]
    older = {"schema": 2, "claims": before}  # an older file states only the budget's name
    compare_previous(claims, summary, {**older, "budget": "resolve"})
    assert claims[0]["why_changed"] == "the runs"
    compare_previous(claims, summary, {**older, "budget": "quick"})
    assert claims[0]["why_changed"] == "budget"


def test_resolution_of_a_difference_and_a_correlation():
    from benchmark.study.claims import claim_resolution, correlation_resolution, difference_resolution

    assert difference_resolution(-0.1, 0.3) == pytest.approx(2.80 * 0.4 / (2 * 1.96), rel=1e-3)
    assert difference_resolution(math.nan, 0.3) is None
    assert correlation_resolution(28) == pytest.approx(math.tanh(2.80 / 5), rel=1e-3)
    assert correlation_resolution(3) is None
    assert claim_resolution([{"resolution": 0.2}, {"resolution": 0.1}]) == 0.2
    assert claim_resolution([{"resolution": 0.2}, {"resolution": None}]) is None and claim_resolution([]) is None


def test_pooled_correlation_resolution_counts_each_sweeps_points():
    from benchmark.study.claims import correlation_part

    ws = [0.005, 0.016, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8]
    rows = sweep_correlations(_sweep_runs({"cotrain": 0.3, "cfg": 0.0, "ot": -0.3}, slope=0.4, ws=ws), "alignment",
                              is_study_method)
    pooled = next(r for r in rows if r["method"] == POOLED)
    part = correlation_part("pooled", SimpleNamespace(**pooled))
    # Fisher-z pooling weighs each sweep by n_i − 3: the effective n is 3 + Σ(n_i − 3), not the runs' count
    assert part["n_eff"] - 3 == sum(r["n"] - 3 for r in rows if r["method"] != POOLED) < pooled["n"] - 3
    assert part["resolution"] == pytest.approx(math.tanh(2.80 / math.sqrt(part["n_eff"] - 3)), rel=1e-3)


def test_budget_of_parts_lists_each_part():
    from benchmark.harness.gridspec import union_view
    from benchmark.harness.grid import load_spec
    from benchmark.study.report import budget_text

    spec = union_view(load_spec(track="study", budget="resolve")[0])
    text = budget_text(StudyData(Path("runs"), "study", "resolve", spec, [], {}, {}))
    assert f"in {len(spec['parts'])} parts" in text and "Smallest success difference" not in text
    for i, part in enumerate(spec["parts"], 1):
        w = ", ".join(f"{x:g}" for x in part["w"])
        assert f"({i}) methods {', '.join(part['methods'])} at w ∈ {{{w}}} with {len(part['seeds'])} seed(s)" in text
    assert f"methods {', '.join(spec['methods'])}" not in text  # no cross product of the parts' union


STUDY_RESULTS = Path(__file__).parents[1] / "results" / "study"
WRITTEN_BY = ("**This file produced by**", '"command"', '"wall_s"', '"guidance_wall_s"')


def _without_provenance(text: str) -> list[str]:
    """Every line but those naming how the file was written; embedded figures by name, not by their bytes."""
    return [re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png", line) for line in text.splitlines()
            if not line.lstrip("- ").startswith(WRITTEN_BY)]


def test_the_committed_report_is_written_again_from_its_committed_records(tmp_path, monkeypatch):
    """`results/study/`'s verdicts, tables and leaderboard come back from the run records committed beside them
    (guidance from the sweeps cached in their run folders), every line but the command line and wall time that
    wrote them: anyone can reproduce the study's verdicts, and a change of its analyses shows here first."""
    monkeypatch.chdir(STUDY_RESULTS.parents[1])  # the paths the report names, as the committed one was written
    study("results/study/runs", tmp_path, budget="resolve", guidance=False,
          previous="results/study/previous/quick.json", log=_quiet)
    committed = sorted(p for p in STUDY_RESULTS.iterdir() if p.suffix in {".md", ".csv", ".json", ".html"})
    assert {"COMPARISON.md", "study.json", "leaderboard.md", "representation.csv"} <= {p.name for p in committed}
    for path in committed:
        assert _without_provenance((tmp_path / path.name).read_text()) == _without_provenance(path.read_text()), path.name
