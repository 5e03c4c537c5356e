"""`cotrain study RUNS_DIR`: every analysis of the study track and ``COMPARISON.md``.

Reads the records of a study-track sweep (`cotrain sweep --track study --budget B --runs-dir
RUNS_DIR`) and writes, into ``--out`` (``results/study`` by convention):

1. ``leaderboard.md/.csv/.html`` (:func:`benchmark.analysis.leaderboard.write_leaderboard`; the smallest
   success difference the budget resolves per pair is stated there);
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
   interval, a verdict and the smallest effect its test resolves at this budget
   (:mod:`benchmark.study.claims`); given a previous report's ``study.json`` (``--previous``), each
   claim's previous verdict beside it and why it changed (:func:`why_changed`).

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

from benchmark.analysis.cost import cost, cost_note, cost_table
from benchmark.study.analyses import aggregation_analysis, raw_analysis, regimes_analysis, representation_analysis
from benchmark.study.claims import assess_claims
from benchmark.analysis.markdown import md_table
from benchmark.study.guidance import guidance_analysis
from benchmark.study.load import (StudyData, describe_config, gap_records, load_study, method_label, missing_text,
                                  runs_table)
from benchmark.study.statistics import POWER, STUDY_EFFECT
from benchmark.study.window import window_analysis


# what makes two reports' budgets differ (study.json's summary keys)
BUDGET_KEYS = ("budget", "seeds", "episodes", "pairs")


def why_changed(claim: dict, previous_claim: dict, summary: dict, previous: dict) -> str:
    """Why a claim's verdict differs from a previous report's, from facts: its *measure* changed when the
    claims' ``measure`` strings differ (a report without one counts as changed) or the records' ``schema``
    does; the *budget* changed when any of :data:`BUDGET_KEYS` that both summaries hold differs. "unchanged"
    when the verdict is the same; "the runs" when neither changed (other runs read at the same budget)."""
    if claim["verdict"] == previous_claim.get("verdict"):
        return "unchanged"
    measure = previous_claim.get("measure") != claim["measure"] or previous.get("schema") != summary["schema"]
    budget = any(key in previous and previous[key] != summary[key] for key in BUDGET_KEYS)
    return {(True, True): "measure and budget", (True, False): "measure", (False, True): "budget",
            (False, False): "the runs"}[(measure, budget)]


def compare_previous(claims: list[dict], summary: dict, previous: dict) -> None:
    """Set ``previous_verdict`` and ``why_changed`` on each claim whose id the previous report has."""
    before = {c["id"]: c for c in previous.get("claims") or []}
    for claim in claims:
        if claim["id"] in before:
            claim["previous_verdict"] = before[claim["id"]].get("verdict")
            claim["why_changed"] = why_changed(claim, before[claim["id"]], summary, previous)


def _grid_text(spec: dict) -> str:
    """Methods, w and seeds of one grid mapping (a budget, or one of its parts)."""
    from benchmark.harness.gridspec import as_list

    vary = " and ".join(f"{m} {k} ∈ {{{', '.join(f'{v:g}' for v in as_list(vals))}}}"
                        for m, varied in (spec.get("vary") or {}).items() for k, vals in (varied or {}).items())
    return (f"methods {', '.join(spec.get('methods') or [])} "
            f"at w ∈ {{{', '.join(f'{w:g}' for w in as_list(spec.get('w') or []))}}} "
            f"with {len(as_list(spec.get('seeds') or [0]))} seed(s)" + (f", varying {vary}" if vary else ""))


def budget_text(data: StudyData) -> str:
    """The budget bullet: pairs, then methods, w and seeds (per part, for a budget made of parts), episodes
    per point and profile, and where each claim's resolution is stated."""
    pairs = data.spec.get("pairs") or []
    parts = data.spec.get("parts")
    if parts:
        grids = "; ".join(f"({i}) {_grid_text(part)}" + ("" if (part.get("pairs") or pairs) == pairs
                                                          else f" on {', '.join(part['pairs'])}")
                          for i, part in enumerate(parts, 1))
        grids = f"in {len(parts)} parts: {grids}"
    else:
        grids = _grid_text(data.spec)
    return (f"- **Budget**: `{data.budget}` — {', '.join(pairs)}; {grids}. {data.episodes} evaluation episodes "
            f"per point; profile `{data.spec.get('profile')}`. The smallest "
            "effect each claim's test resolves at this budget (95% confidence, 80% power) is the verdict table's "
            "*smallest resolved effect* column; the leaderboard states the smallest success difference per pair.")


def _verdict_rows(claims: list[dict], previous: dict | None) -> tuple[list[str], list[list[str]]]:
    """The verdict table: each claim's value, resolution and verdict (and previous verdict, why it changed)."""
    header = ["claim", "the study", "cotrain-bench (95% CI)", "smallest resolved effect"]
    rows = [[c["claim"], c["study"], c["measured"], _resolution(c)] for c in claims]
    if previous is not None:
        header += [f"previous verdict (budget {previous.get('budget', '?')})", "why it changed"]
        for row, c in zip(rows, claims):
            row += [c.get("previous_verdict") or "—", c.get("why_changed") or "—"]
    return header + ["verdict"], [row + [f"**{c['verdict']}**"] for row, c in zip(rows, claims)]


def _resolution(claim: dict) -> str:
    return "n/a" if claim["resolution"] is None else f"{claim['resolution']:.3f}"


def write_comparison(data: StudyData, claims: list[dict], out: Path, command: str | None, wall_s: float,
                     guidance_wall: float, paths: dict, previous: dict | None = None) -> Path:
    """``COMPARISON.md``: the budget, the runs read, each claim's verdict (beside ``previous``'s, the
    summary of an earlier report's ``study.json``) and how verdicts are decided."""
    costs = cost(data.records)
    compute = float(costs["total_h"].iloc[-1]) if len(costs) else 0.0
    per_pair = ", per pair in the table *Cost* below" if len(costs) else ""
    runs_cmd = f"cotrain sweep --track {data.track} --budget {data.budget} --runs-dir {data.runs_dir}"
    lines = [f"# The study's claims measured by cotrain-bench (track `{data.track}`, budget `{data.budget}`)", "",
             budget_text(data),
             (f"- **Runs read**: {len(data.records)} of {len(data.expected)} in the grid ({len(data.missing)} missing"
              + (f"; {data.ignored} records outside the grid ignored" if data.ignored else "") + ")."
              if data.expected else f"- **Runs read**: {len(data.records)} (no grid to compare with)."),
             f"- **Runs produced by**: `{runs_cmd}`; compute recorded in the records (training + evaluation, in "
             f"core-hours, summed over runs): {compute:.2f} h{per_pair}. "
             "The sweep's own wall time is not recorded in the records.",
             f"- **This file produced by**: `{command or 'benchmark.study.study(...)'}` in {wall_s:.0f} s wall time "
             f"(of which {guidance_wall:.0f} s guidance-sweep evaluation).", ""]
    if previous is not None:
        lines.insert(-1, f"- **Previous report**: budget `{previous.get('budget', '?')}`, record schema "
                         f"{previous.get('schema', 'not stated')}; its verdicts stand beside these, with why each "
                         "changed.")
    lines += [f"- Note: {n}" for n in data.notes]
    if data.missing:
        lines += ["", missing_text(data, limit=20)]
    lines += ["", "## Verdicts", "", md_table(*_verdict_rows(claims, previous)), "", "## Details", ""]
    for c in claims:
        lines += [f"### {c['claim']}", "", f"- Study: {c['study']}.", f"- Measure: {c['measure']}.",
                  f"- Measured: {c['measured']}.", f"- Smallest resolved effect: {_resolution(c)}.",
                  f"- Verdict: **{c['verdict']}**."]
        if c.get("previous_verdict"):
            lines.append(f"- Previous verdict (budget {previous.get('budget', '?')}): {c['previous_verdict']} "
                         f"(why it changed: {c['why_changed']}).")
        lines += [f"- {c['detail']}", ""]
    if len(costs):
        lines += ["## Cost", "", md_table(*cost_table(costs)), "", cost_note(costs), ""]
    lines += ["## How verdicts are decided", "",
              "Each claim is tested as a difference (or a correlation) whose sign the study predicts, with a 95% "
              "interval: **reproduced** when the whole interval lies on the predicted side of the null, **not "
              "reproduced** when it lies wholly on the other side, **not resolved at this budget** when it contains "
              "the null or the data it needs is missing. A claim of several parts is reproduced only when every part "
              "is, and not reproduced when any part is not. Success intervals: two-level bootstrap (run seeds, then "
              "shared start states; with one seed they cover episode noise only). Representation contrasts: "
              "Student-t interval over matched (pair, w, seed) units. Correlations: along each method's ratio sweep, pooled "
              "over methods by Fisher z (weights n − 3) with a Fisher-z interval. The window: mean success inside "
              "minus mean outside, paired within each (pair, method, seed) sweep with every mixing ratio (as the "
              "balanced claim reads only sweeps with all six of its ratios), t interval over sweeps; a budget "
              f"whose power to detect the study's margin (+{STUDY_EFFECT:.3f}) is below {POWER:.0%} cannot test it "
              "and says so. A claim that does not reproduce is reported as such; the suite is never tuned toward "
              "the study.", "",
              "*Smallest resolved effect*: the smallest effect the claim's test detects at this budget with 95% "
              "confidence and 80% power, in the claim's own unit: for a difference, 2.80 × SE with SE = (hi − lo) "
              "/ (2 × 1.96) read from its interval; for a correlation over n points (pooled sweeps: n − 3 = "
              "Σ(n_i − 3)), |r| = tanh(2.80 / √(n − 3)); for the window, the margin inside the window at which its "
              "design power reaches 80%; for a claim of several parts, the largest of its parts'; n/a where the "
              "data it needs is missing, its interval has no width (every resample alike: no SE to read) or, for "
              "the window, no margin reaches 80%.",
              *(["", "*Why it changed*: **measure** when the claim's measure (its `measure` in study.json, or the "
                 "records' schema) differs from the previous report's, **budget** when the budget's name, seeds or "
                 "episodes per point or pairs differ (those both reports state), **measure and budget** when both "
                 "do, **the runs** when neither does; **unchanged** when the verdict is the same, — without a "
                 "previous verdict."] if previous is not None else []), "",
              "## Files", "", "- " + "\n- ".join(f"[{p}]({p})" for p in paths), ""]
    path = out / "COMPARISON.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def read_previous(path: str | Path) -> dict[str, Any]:
    """A previous report's ``study.json`` (its summary, claims included)."""
    previous = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(previous, dict) or not isinstance(previous.get("claims"), list):
        raise ValueError(f"{path}: not a study.json (no list of claims)")
    return previous


def study(runs_dir: str | Path, out_dir: str | Path = "results/study", track: str = "study", budget: str | None = None,
          device: str = "cpu", workers: int = 1, guidance: bool = True, command: str | None = None,
          log: Callable[..., None] = print, previous: str | Path | None = None) -> dict[str, Any]:
    """Every analysis of the study track on RUNS_DIR's records, written into ``out_dir``.

    ``guidance=False`` reads cached guidance sweeps only (no evaluation); ``previous``: an earlier
    report's ``study.json``, whose verdicts ``COMPARISON.md`` shows beside these. Returns a summary with
    the claims, the files written, the wall time and the figures (file name -> matplotlib Figure).
    """
    t0 = time.time()
    before = read_previous(previous) if previous is not None else None
    data = load_study(runs_dir, track, budget)
    return analyze_study(data, out_dir, device=device, workers=workers, guidance=guidance, command=command, log=log,
                         started=t0, previous=before)


def _schema(records: list[dict]) -> int | list | None:
    """The records' schema: one value, the sorted values when they differ, None without records."""
    schemas = sorted({r.get("schema") for r in records}, key=str)
    return schemas[0] if len(schemas) == 1 else (schemas or None)


def analyze_study(data: StudyData, out_dir: str | Path, device: str = "cpu", workers: int = 1, guidance: bool = True,
                  command: str | None = None, log: Callable[..., None] = print,
                  started: float | None = None, previous: dict | None = None) -> dict[str, Any]:
    """Every analysis on loaded study data (see :func:`study`); ``started`` is when the command began;
    ``previous``: an earlier report's summary (:func:`read_previous`)."""
    from benchmark.analysis.leaderboard import write_leaderboard

    t0 = time.time() if started is None else started
    track = data.track
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = gap_records(data)
    labelled = [{**r, "config": {**r["config"], "method": method_label(r, data.vary)}} for r in data.records]
    log(f"study: {len(data.records)} of {len(data.expected)} runs of track {track!r} budget {data.budget!r} "
        f"({len(data.missing)} missing)")
    runs = runs_table(records, data.vary, data.run_dirs)
    agg = aggregation_analysis(data, records, out)
    window = window_analysis(data, runs, records, out)
    rep = representation_analysis(data, runs, out)
    regimes = regimes_analysis(data, runs, out)
    gd = guidance_analysis(data, records, out, device, workers, guidance, log)
    raw = raw_analysis(data, runs, out)
    # after the analyses: the page embeds the figures beside it, this report's own
    paths = write_leaderboard(labelled, out, title=f"Study track leaderboard (budget {data.budget})")
    files = [p.name for p in paths.values()]
    figures: dict[str, Figure] = {}
    for part in (agg, window, rep, regimes, gd, raw):
        files += part["files"]
        figures.update(part.get("figures", {}))
    claims = assess_claims(data, records, runs, window, rep, regimes, gd)
    wall = time.time() - t0
    summary = {"track": track, "budget": data.budget, "seeds": data.seeds, "episodes": data.episodes,
               "pairs": list(data.spec.get("pairs") or []), "schema": _schema(data.records),
               "runs_read": len(data.records), "runs_expected": len(data.expected),
               "missing": [describe_config(c) for c in data.missing], "command": command, "wall_s": wall,
               "guidance_wall_s": gd["wall_s"], "claims": claims}
    if previous is not None:
        compare_previous(claims, summary, previous)
    (out / "study.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    files.append("study.json")
    comparison = write_comparison(data, claims, out, command, time.time() - t0, gd["wall_s"], files, previous)
    summary["files"] = [str(out / f) for f in files] + [str(comparison)]
    summary["wall_s"] = time.time() - t0
    summary["figures"] = figures
    return summary
