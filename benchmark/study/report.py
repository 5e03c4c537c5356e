"""`cotrain study RUNS_DIR`: every analysis of the study track and ``COMPARISON.md``.

Reads the records of a study-track sweep (`cotrain sweep --track study --budget B --runs-dir
RUNS_DIR`) and writes, into ``--out`` (``results/study`` by convention):

1. ``leaderboard.md/.csv/.html`` (:func:`benchmark.analysis.leaderboard.write_leaderboard`; the smallest
   difference the budget resolves is stated there and in ``COMPARISON.md``);
2. ``aggregation.md/.csv``: the study's aggregation beside the suite's per-w rows: *balanced* = mean
   over w in {0.016, 0.1, 0.3}, *unbalanced* = mean over w in {0.005, 0.5, 0.8}, per method and
   pair, with two-level bootstrap intervals (:func:`benchmark.study.analyses.balanced_aggregation`);
3. ``success_vs_w.md`` and ``success_vs_w_<gap>.png``: success against w per gap kind and
   method with the ratio window (w_n, w_q) drawn, where the measured best w falls, and the
   window claim's paired test with its design power (:mod:`benchmark.study.window`);
4. ``representation.md/.csv``, ``representation_scatter.png``: the representation measures of
   every run and their Pearson/Spearman correlations with success per gap kind, along each
   method's ratio sweep and pooled over methods (:func:`benchmark.study.statistics.sweep_correlations`);
5. ``regimes.md/.csv``, ``regimes.png``: the regimes experiment (:func:`benchmark.study.design.classify_regime`);
6. ``guidance.md/.csv``, ``guidance.png``: the guidance-scale sweep, evaluated on the finished
   runs' checkpoints (cached per run in ``<run>/guidance.json``, resumable; :mod:`benchmark.study.guidance`);
7. ``raw_discernibility.md/.csv``, ``raw_discernibility.png``: per pair, how well the domains can
   be told apart from raw observations and observation–action histories;
8. ``COMPARISON.md`` (and ``study.json``): each claim of the study, the suite's value with its
   interval, and a verdict (:mod:`benchmark.study.claims`).

Every analysis works on partial data: the runs of the track's grid that are not (yet) in
RUNS_DIR are listed, and a section without the data it needs says so instead of guessing.
Alignment is the records' scale-free Wasserstein distance (schema 2: divided per run by the
within-domain RMS spread of ``z``), then min–max normalized across the runs of a pair.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from matplotlib.figure import Figure

from benchmark.study.analyses import aggregation_analysis, raw_analysis, regimes_analysis, representation_analysis
from benchmark.study.claims import assess_claims
from benchmark.study.formatting import md_table
from benchmark.study.guidance import guidance_analysis
from benchmark.study.load import (StudyData, describe_config, gap_records, load_study, method_label, missing_text,
                                  runs_table)
from benchmark.study.statistics import POWER, STUDY_EFFECT
from benchmark.study.window import window_analysis


def write_comparison(data: StudyData, claims: list[dict], out: Path, command: str | None, wall_s: float,
                     guidance_wall: float, paths: dict) -> Path:
    """``COMPARISON.md``: the budget, the runs read, each claim's verdict and how verdicts are decided."""
    from benchmark.analysis.stats import min_detectable_difference

    n_arm = data.episodes * data.seeds
    mdd = min_detectable_difference(n_arm)
    compute = sum(float((r.get("timing") or {}).get("train_s") or 0) + float((r.get("timing") or {}).get("eval_s") or 0)
                  for r in data.records)
    runs_cmd = f"cotrain sweep --track {data.track} --budget {data.budget} --runs-dir {data.runs_dir}"
    lines = [f"# The study's claims measured by cotrain-bench (track `{data.track}`, budget `{data.budget}`)", "",
             f"- **Budget**: `{data.budget}` — {', '.join(data.spec.get('pairs') or [])}; methods "
             f"{', '.join(data.spec.get('methods') or [])}; "
             f"w ∈ {{{', '.join(f'{w:g}' for w in data.spec.get('w') or [])}}}; "
             f"{data.seeds} seed(s); {data.episodes} evaluation episodes per point; profile "
             f"`{data.spec.get('profile')}`. Smallest success difference it resolves: "
             + (f"{mdd:.2f}" if mdd < 1 else f"none ({mdd:.2f} > 1)")
             + f" (two-proportion z-test, 95% / 80%, base rate 0.5, {n_arm} episodes per arm).",
             (f"- **Runs read**: {len(data.records)} of {len(data.expected)} in the grid ({len(data.missing)} missing"
              + (f"; {data.ignored} records outside the grid ignored" if data.ignored else "") + ")."
              if data.expected else f"- **Runs read**: {len(data.records)} (no grid to compare with)."),
             f"- **Runs produced by**: `{runs_cmd}`; compute recorded in the records (training + evaluation, summed "
             f"over runs): {compute:.0f} s. The sweep's own wall time is not recorded in the records.",
             f"- **This file produced by**: `{command or 'benchmark.study.study(...)'}` in {wall_s:.0f} s wall time "
             f"(of which {guidance_wall:.0f} s guidance-sweep evaluation).", ""]
    lines += [f"- Note: {n}" for n in data.notes]
    if data.missing:
        lines += ["", missing_text(data, limit=20)]
    lines += ["", "## Verdicts", "",
              md_table(["claim", "the study", "cotrain-bench (95% CI)", "verdict"],
                       [[c["claim"], c["study"], c["measured"], f"**{c['verdict']}**"] for c in claims]), "",
              "## Details", ""]
    for c in claims:
        lines += [f"### {c['claim']}", "", f"- Study: {c['study']}.", f"- Measured: {c['measured']}.",
                  f"- Verdict: **{c['verdict']}**.", f"- {c['detail']}", ""]
    lines += ["## How verdicts are decided", "",
              "Each claim is tested as a difference (or a correlation) whose sign the study predicts, with a 95% "
              "interval: **reproduced** when the whole interval lies on the predicted side of the null, **not "
              "reproduced** when it lies wholly on the other side, **not resolved at this budget** when it contains "
              "the null or the data it needs is missing. A claim of several parts is reproduced only when every part "
              "is, and not reproduced when any part is not. Success intervals: two-level bootstrap (run seeds, then "
              "shared start states; with one seed they cover episode noise only). Representation contrasts: "
              "bootstrap over matched (pair, w, seed) units. Correlations: along each method's ratio sweep, pooled "
              "over methods by Fisher z (weights n − 3) with a Fisher-z interval. The window: mean success inside "
              "minus mean outside, paired within each (pair, method, seed) sweep, t interval over sweeps; a budget "
              f"whose power to detect the study's margin (+{STUDY_EFFECT:.3f}) is below {POWER:.0%} cannot test it "
              "and says so. A claim that does not reproduce is reported as such; the suite is never tuned toward "
              "the study.", "",
              "## Files", "", "- " + "\n- ".join(f"[{p}]({p})" for p in paths), ""]
    path = out / "COMPARISON.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def study(runs_dir: str | Path, out_dir: str | Path = "results/study", track: str = "study", budget: str | None = None,
          device: str = "cpu", workers: int = 1, guidance: bool = True, command: str | None = None,
          log: Callable[..., None] = print) -> dict[str, Any]:
    """Every analysis of the study track on RUNS_DIR's records, written into ``out_dir``.

    ``guidance=False`` reads cached guidance sweeps only (no evaluation). Returns a summary with
    the claims, the files written, the wall time and the figures (file name -> matplotlib Figure).
    """
    t0 = time.time()
    data = load_study(runs_dir, track, budget)
    return analyze_study(data, out_dir, device=device, workers=workers, guidance=guidance, command=command, log=log,
                         started=t0)


def analyze_study(data: StudyData, out_dir: str | Path, device: str = "cpu", workers: int = 1, guidance: bool = True,
                  command: str | None = None, log: Callable[..., None] = print,
                  started: float | None = None) -> dict[str, Any]:
    """Every analysis on loaded study data (see :func:`study`); ``started`` is when the command began."""
    from benchmark.analysis.leaderboard import write_leaderboard

    t0 = time.time() if started is None else started
    track = data.track
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = gap_records(data)
    labelled = [{**r, "config": {**r["config"], "method": method_label(r, data.vary)}} for r in data.records]
    log(f"study: {len(data.records)} of {len(data.expected)} runs of track {track!r} budget {data.budget!r} "
        f"({len(data.missing)} missing)")
    files: list[str] = []
    paths = write_leaderboard(labelled, out, title=f"Study track leaderboard (budget {data.budget})")
    files += [p.name for p in paths.values()]
    runs = runs_table(records, data.vary, data.run_dirs)
    agg = aggregation_analysis(data, records, out)
    window = window_analysis(data, runs, records, out)
    rep = representation_analysis(data, runs, out)
    regimes = regimes_analysis(data, runs, out)
    gd = guidance_analysis(data, records, out, device, workers, guidance, log)
    raw = raw_analysis(data, runs, out)
    figures: dict[str, Figure] = {}
    for part in (agg, window, rep, regimes, gd, raw):
        files += part["files"]
        figures.update(part.get("figures", {}))
    claims = assess_claims(data, records, runs, agg["table"], window, rep, regimes, gd)
    wall = time.time() - t0
    summary = {"track": track, "budget": data.budget, "runs_read": len(data.records),
               "runs_expected": len(data.expected),
               "missing": [describe_config(c) for c in data.missing], "command": command, "wall_s": wall,
               "guidance_wall_s": gd["wall_s"], "claims": claims}
    (out / "study.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    files.append("study.json")
    comparison = write_comparison(data, claims, out, command, time.time() - t0, gd["wall_s"], files)
    summary["files"] = [str(out / f) for f in files] + [str(comparison)]
    summary["wall_s"] = time.time() - t0
    summary["figures"] = figures
    return summary
