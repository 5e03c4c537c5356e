"""Collect ``record.json`` files into leaderboards with uncertainty (markdown, csv, html).

Only records of the current schema (``benchmark.harness.run.RECORD_SCHEMA``) are read; an older record is
refused with the reason its measures are not today's. A partial sweep gives a partial, honest table. Comparisons
are paired on shared start states with seeds as the outer level: success with a 95% interval (two-level
bootstrap; Wilson on the pooled episodes where that has no spread), each method's difference from ``cotrain``
with its paired interval and rliable's probability of improvement, the drop against the no-gap control with
its paired interval, per pair the minimum detectable difference of the budget (:func:`resolution`), and across
pairs the IQM with a stratified bootstrap interval (docs/PROTOCOL.md, "Evaluation and statistics" and "Results").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from benchmark.analysis.cells import drop_text, interval_text, num, seed_count, success_text
from benchmark.analysis.cost import cost, cost_note, cost_table
from benchmark.analysis.markdown import md_table
from benchmark.analysis.leaderboard_html import leaderboard_page
from benchmark.analysis.metrics import normalize_across_runs
from benchmark.analysis.stats import (
    bootstrap_mdd,
    iqm,
    mean_stderr,
    min_detectable_difference,
    paired_bootstrap_diff,
    paired_diff_se,
    probability_of_improvement,
    stratified_bootstrap_ci,
    two_level_bootstrap_ci,
    wilson_interval,
)

__all__ = [
    "runs_frame",
    "aggregate",
    "aggregate_across_pairs",
    "resolution",
    "write_leaderboard",
]

REFERENCE = "cotrain"
CELL = ["pair", "magnitude", "n_target", "n_source"]
GROUP = CELL + ["method", "w"]
COLUMNS = GROUP + [
    "seeds", "episodes", "success_mean", "success_se", "success_lo", "success_hi", "target_error_mean",
    "drop_vs_nogap", "drop_lo", "drop_hi", "diff_vs_cotrain", "diff_lo", "diff_hi", "prob_improvement",
    "align_wasserstein", "align_wasserstein_norm", "discern_mlp_cond", "structured_alignment", "rank",
]
SELF_REPORTED_NOTE = ("Self-reported rows: policies trained elsewhere (`cotrain eval-policy`), evaluated by the suite "
                      "under the protocol; their training data (pair, N, M) are declared by their authors and not "
                      "checked, and the test start states are public.")
RESOLUTION_COLUMNS = CELL + ["seeds", "seeds_max", "episodes", "comparisons", "widest", "se", "mdd", "mdd_binomial",
                              "mdd_each"]
# config keys that do not make a run another one's no-gap control: the run's own id, a no-gap evaluation's
# trained run, evaluation workers
_NOT_CONTROL = ("magnitude", "run_id", "checkpoint_of", "workers")
ACROSS_COLUMNS = ["magnitude", "method", "w", "pairs", "runs", "iqm", "iqm_lo", "iqm_hi"]
W_DIGITS = 9  # a mixing ratio to this many decimals: the default w of equal N:M, computed from other N and M,
# differs in its last bits (0.14778764659655855 on lift/dynamics, ...58 on stack/dynamics), and is one ratio


def _key(rec: dict) -> tuple:
    c = rec["config"]
    w = c.get("w")
    return (c["pair"], float(c["magnitude"]), int(c["n_target"]), int(c["n_source"]), c["method"],
            None if w is None else round(float(w), W_DIGITS))


def _rate(rec: dict) -> float:
    t = rec["eval"]["target"]
    return t["successes"] / t["n"] if t["n"] else math.nan


def _outcomes(rec: dict) -> dict[int, float]:
    return {int(e["seed"]): float(bool(e["success"])) for e in rec["eval"]["target"].get("episodes") or []}


def _control_key(rec: dict) -> str:
    return json.dumps({k: v for k, v in rec["config"].items() if k not in _NOT_CONTROL}, sort_keys=True)


def _mean(values: Iterable[Any]) -> float:
    v = [float(x) for x in values if x is not None]
    return float(np.mean(v)) if v else math.nan


def _metric(group: list[dict], name: str) -> float:
    return _mean((r.get("metrics") or {}).get(name) for r in group)


def _paired(group: list[dict], ref: list[dict]) -> tuple[float, float, float]:
    """Paired bootstrap of ``group − ref`` over the seeds and episode start states both have."""
    a, b = _paired_outcomes(group, ref)
    return paired_bootstrap_diff(a, b) if a else (math.nan, math.nan, math.nan)


def _paired_outcomes(group: list[dict], ref: list[dict]) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Outcomes of ``group`` and ``ref`` per shared seed on the start states both have, index-aligned."""
    a, b = {}, {}
    ref_by_seed = {r["config"]["seed"]: _outcomes(r) for r in ref}
    for rec in group:
        other = ref_by_seed.get(rec["config"]["seed"])
        if other is None:
            continue
        mine = _outcomes(rec)
        common = sorted(set(mine) & set(other))
        if common:
            a[rec["config"]["seed"]] = np.array([mine[e] for e in common])
            b[rec["config"]["seed"]] = np.array([other[e] for e in common])
    return a, b


def _success_interval(group: list[dict]) -> tuple[float, float]:
    """95% interval of a group's success: two-level bootstrap over seeds and episodes; the Wilson interval of
    the pooled episodes where the bootstrap has no spread (one seed, or every episode alike)."""
    outcomes = {r["config"]["seed"]: np.repeat([1.0, 0.0], [r["eval"]["target"]["successes"],
                                                            r["eval"]["target"]["n"] - r["eval"]["target"]["successes"]])
                for r in group}
    _, lo, hi = two_level_bootstrap_ci(outcomes)
    if len(group) == 1 or lo == hi:
        return wilson_interval(sum(int(r["eval"]["target"]["successes"]) for r in group),
                               sum(int(r["eval"]["target"]["n"]) for r in group))
    return lo, hi


def _reference(groups: dict[tuple, list[dict]], key: tuple) -> list[dict] | None:
    """The cotrain group compared against: same w if run, else the best mean (then smallest w)."""
    cands = {k[5]: g for k, g in groups.items() if k[:4] == key[:4] and k[4] == REFERENCE}
    if not cands:
        return None
    if key[5] in cands:
        return cands[key[5]]
    best = min(cands, key=lambda w: (-_mean(_rate(r) for r in cands[w]), math.inf if w is None else w))
    return cands[best]


def aggregate(records: list[dict]) -> pd.DataFrame:
    """One row per (pair, magnitude, n_target, n_source, method, w); pure, deterministic.

    ``drop_vs_nogap`` averages control − this success over seeds that have a no-gap control
    (the record whose config equals this one except ``magnitude`` = 0). ``diff_*`` is the
    paired bootstrap difference from the ``cotrain`` group of the same cell (NaN for cotrain
    itself), ``prob_improvement`` rliable's P(this > cotrain) over per-seed success rates.
    ``success_lo/hi`` is the 95% interval of the success (module docstring), ``drop_lo/hi`` the paired
    bootstrap interval of the drop. ``rank`` is 1 for the best mean success in its cell; ties share the lower rank.
    Raises ValueError when two records of one group share a seed.
    """
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        groups.setdefault(_key(rec), []).append(rec)
    for key, g in groups.items():
        seeds = [r["config"]["seed"] for r in g]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"group {key} has several records for one seed: "
                             f"{sorted(r.get('run_id', '?') for r in g)}")
    controls = {_control_key(r): r for r in records if float(r["config"]["magnitude"]) == 0.0}

    rows = []
    for key, g in groups.items():
        mean, se = mean_stderr([_rate(r) for r in g])
        drops = [_rate(controls[_control_key(r)]) - _rate(r) for r in g if _control_key(r) in controls]
        drop = _paired([controls[_control_key(r)] for r in g if _control_key(r) in controls], g)
        ref = _reference(groups, key)
        compared = key[4] != REFERENCE and ref is not None
        diff = _paired(g, ref) if compared else (math.nan,) * 3
        poi = probability_of_improvement([_rate(r) for r in g], [_rate(r) for r in ref]) if compared else math.nan
        success_lo, success_hi = _success_interval(g)
        rows.append(dict(
            zip(GROUP, key),
            seeds=len(g),
            episodes=min(int(r["eval"]["target"]["n"]) for r in g),
            success_mean=mean,
            success_se=se,
            success_lo=success_lo, success_hi=success_hi,
            target_error_mean=_mean(r.get("target_error") for r in g),
            drop_vs_nogap=_mean(drops), drop_lo=drop[1], drop_hi=drop[2],
            diff_vs_cotrain=diff[0], diff_lo=diff[1], diff_hi=diff[2], prob_improvement=poi,
            align_wasserstein=_metric(g, "align_wasserstein"),
            discern_mlp_cond=_metric(g, "discern_mlp_cond"),
            structured_alignment=_metric(g, "structured_alignment"),
        ))
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("align_wasserstein_norm", "rank")])
    df["w"] = df["w"].astype(float)
    df["align_wasserstein_norm"] = normalize_across_runs(df["align_wasserstein"].to_numpy(dtype=float))
    df = df.round(4)
    df["rank"] = df.groupby(CELL)["success_mean"].rank(method="min", ascending=False).astype("Int64")
    sort = CELL + ["rank", "method", "w"]
    return df[COLUMNS].sort_values(sort, na_position="last", kind="mergesort").reset_index(drop=True)


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: the group keys, ``seed``, ``success`` (target rate) and ``run_id``."""
    rows = [dict(zip(GROUP, _key(r)), seed=r["config"]["seed"], success=_rate(r), run_id=r.get("run_id"))
            for r in records]
    df = pd.DataFrame(rows, columns=GROUP + ["seed", "success", "run_id"])
    df["w"] = df["w"].astype(float)
    return df


def aggregate_across_pairs(df_or_records: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Per (magnitude, method, w): IQM of per-seed success across pairs, 95% stratified CI.

    Takes records or a :func:`runs_frame`. Strata are the (pair, n_target, n_source) cells, so
    seeds are resampled within each pair; ``pairs`` counts the distinct pairs, ``runs`` the
    per-seed scores pooled. Magnitudes are kept apart: a no-gap control is not a gap result.
    """
    runs = df_or_records if isinstance(df_or_records, pd.DataFrame) else runs_frame(df_or_records)
    missing = {"pair", "magnitude", "n_target", "n_source", "method", "w", "success"} - set(runs.columns)
    if missing:
        raise ValueError(f"need per-seed scores (records or runs_frame); missing columns {sorted(missing)}")
    rows = []
    for (mag, method, w), g in runs.groupby(["magnitude", "method", "w"], dropna=False, sort=True):
        tasks = {f"{p}|N={n}|M={m}": s["success"].to_numpy(float)
                 for (p, n, m), s in g.groupby(["pair", "n_target", "n_source"], sort=True)}
        point, lo, hi = stratified_bootstrap_ci(tasks, stat=iqm)
        rows.append(dict(magnitude=mag, method=method, w=w, pairs=g["pair"].nunique(), runs=len(g),
                         iqm=point, iqm_lo=lo, iqm_hi=hi))
    out = pd.DataFrame(rows, columns=ACROSS_COLUMNS).round(4)
    out = out.sort_values(["magnitude", "iqm", "method", "w"], ascending=[True, False, True, True],
                          na_position="last", kind="mergesort")
    return out.reset_index(drop=True)


def resolution(records: list[dict]) -> pd.DataFrame:
    """Per (pair, magnitude, n_target, n_source): the smallest success difference the budget resolves.

    For each method compared with ``cotrain`` in the cell, the standard error of the paired difference is
    estimated by the two-level bootstrap (seeds, then shared start states: :func:`stats.paired_diff_se`);
    ``se`` is the largest of them (``widest`` names its method), ``mdd`` = 2.80 · ``se`` the minimum
    detectable difference at 95% confidence and 80% power (:func:`stats.bootstrap_mdd`). ``mdd_binomial`` is
    the two-proportion formula over the pooled episodes, which ignores seed-to-seed spread; ``mdd_each`` each
    comparison's own minimum detectable difference and its paired seeds, largest first (which differences the
    budget resolves, and which comparison more seeds would serve); ``seeds`` and ``episodes`` are the cell's
    smallest per group, ``seeds_max`` its largest. With one seed the bootstrap holds the episode variance alone.
    """
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        groups.setdefault(_key(rec), []).append(rec)
    cells: dict[tuple, list[tuple]] = {}
    for key in groups:
        cells.setdefault(key[:4], []).append(key)
    rows = []
    for cell, keys in cells.items():
        ses, paired_seeds = {}, {}
        for key in keys:
            ref = _reference(groups, key)
            if key[4] != REFERENCE and ref is not None:
                a, b = _paired_outcomes(groups[key], ref)
                if a:
                    name = f"{key[4]} w={key[5]:g}" if key[5] is not None else key[4]
                    ses[name], paired_seeds[name] = paired_diff_se(a, b), len(a)
        seeds = min(len(groups[k]) for k in keys)
        episodes = min(int(r["eval"]["target"]["n"]) for k in keys for r in groups[k])
        widest = max(ses, key=ses.get) if ses else None
        se = ses[widest] if ses else math.nan
        each = "; ".join(f"{name} {bootstrap_mdd(value):.2f} ({seed_count(paired_seeds[name])})" for name, value in
                         sorted(ses.items(), key=lambda item: -item[1]))
        rows.append(dict(zip(CELL, cell), seeds=seeds, seeds_max=max(len(groups[k]) for k in keys), episodes=episodes,
                         comparisons=len(ses), widest=widest, se=se, mdd=bootstrap_mdd(se) if ses else math.nan,
                         mdd_binomial=min_detectable_difference(seeds * episodes), mdd_each=each))
    out = pd.DataFrame(rows, columns=RESOLUTION_COLUMNS).round(4)
    return out.sort_values(CELL, kind="mergesort").reset_index(drop=True)


def _w(w: float) -> str:
    return "\u2014" if pd.isna(w) else f"{w:g}"


def _pair_table(df: pd.DataFrame, self_reported: set[str]) -> tuple[list[str], list[list[str]]]:
    has_error = df["target_error_mean"].notna().any()
    header = ["pair", "gap", "N", "M", "method", "w", "success [95% CI]", "episodes/seed",
              "diff vs cotrain [95% CI]", "P(> cotrain)", "drop vs no-gap [95% CI]", "rank",
              "Wasserstein (norm.)", "discern. MLP z_cond", "structured alignment"] + (
              ["target error"] if has_error else [])
    rows = []
    for r in df.itertuples(index=False):
        reference = r.method == REFERENCE
        diff = "reference" if reference else interval_text(r.diff_vs_cotrain, r.diff_lo, r.diff_hi,
                                                       "identical outcomes on every shared start state")
        method = f"{r.method} (self-reported)" if r.method in self_reported else r.method
        rows.append([r.pair, f"{r.magnitude:g}", str(r.n_target), str(r.n_source), method, _w(r.w),
                     success_text(r), str(r.episodes), diff, "reference" if reference else num(r.prob_improvement),
                     drop_text(r), str(r.rank), num(r.align_wasserstein_norm),
                     num(r.discern_mlp_cond), num(r.structured_alignment)]
                    + ([num(r.target_error_mean)] if has_error else []))
    return header, rows


def _across_table(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["gap", "method", "w", "pairs", "runs", "IQM success [95% CI]"]
    rows = [[f"{r.magnitude:g}", r.method, _w(r.w), str(r.pairs), str(r.runs),
             interval_text(r.iqm, r.iqm_lo, r.iqm_hi, "no interval: no spread among the seeds of any pair", signed=False)]
            for r in df.itertuples(index=False)]
    return header, rows


def _resolution_table(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["pair", "gap", "N", "M", "seeds", "episodes/seed", "SE of a paired difference (widest)",
              "smallest resolved difference (MDD)", "binomial formula alone", "MDD of each comparison"]
    rows = [[r.pair, f"{r.magnitude:g}", str(r.n_target), str(r.n_source),
             (str(r.seeds) if r.seeds == r.seeds_max else f"{r.seeds}-{r.seeds_max}")
             + (" (episode variance only)" if r.seeds_max == 1 else ""), str(r.episodes),
             f"{num(r.se)} ({r.widest})" if r.comparisons else "n/a (no comparison with cotrain)",
             num(r.mdd), num(r.mdd_binomial), r.mdd_each or "n/a"] for r in df.itertuples(index=False)]
    return header, rows


def self_reported_names(records: list[dict]) -> set[str]:
    """Names of the policies trained elsewhere (`cotrain eval-policy`'s records, flagged self-reported)."""
    return {r["config"]["method"] for r in records if r.get("self_reported")}


def write_leaderboard(records: list[dict], out_dir: str | Path, title: str = "cotrain-bench leaderboard",
                      logs: dict[str, dict[str, list[Path]]] | None = None) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv`` (per-pair table) and a self-contained
    ``leaderboard.html`` to ``out_dir``; returns their paths keyed ``md``, ``csv``, ``html``. With ``logs``
    (training logs as :func:`benchmark.analysis.plots.training_logs` groups them), the figures too, drawn from the
    same table before the page that embeds them, each keyed by its file's stem."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df, across, resolved = aggregate(records), aggregate_across_pairs(records), resolution(records)
    figures: dict[str, Path] = {}
    if logs is not None:
        from benchmark.analysis.plots import write_plots  # matplotlib: only where figures are drawn

        figures = {path.stem: path for path in write_plots(df, logs, out)}
    self_reported = self_reported_names(records)
    if df.empty:
        summary = f"{len(records)} runs read; nothing to report."
    else:
        episodes, seeds = int(df["episodes"].min()), int(df["seeds"].min())
        gaps = resolved[resolved.magnitude > 0].dropna(subset=["mdd"])
        per_pair = "; ".join(f"{r.pair} {r.mdd:.2f}" for r in gaps.itertuples(index=False)) or "n/a"
        summary = (f"{len(records)} runs read; {episodes} evaluation episodes per seed and {seeds} "
                   f"seed(s) per row (minimum over rows). Smallest success difference this budget resolves "
                   f"per pair (minimum detectable difference at 95% confidence and 80% power, from the "
                   f"two-level bootstrap): {per_pair}.")
    notes = ("Success: mean over seeds with its 95% interval (two-level bootstrap over seeds, then start "
             "states; Wilson on the pooled episodes with one seed or where every episode is alike). Diff: "
             "paired bootstrap over seeds (outer) and shared start states (inner), against cotrain at the "
             "same w, else the best cotrain w of the cell. P(> cotrain): rliable's probability of improvement "
             "over the per-seed success rates, ties counted half. Drop: no-gap control (magnitude 0) minus "
             "this success, paired on seeds and start states. Rank: by mean success within "
             "pair, gap and N/M; ties share the lower rank; read it with the intervals. Wasserstein is "
             "min-max normalized across the rows of this table.")
    resolution_note = ("Per pair, the standard error of a paired difference against cotrain from the two-level "
                       "bootstrap (the widest over the methods compared), and the minimum detectable difference "
                       "2.80 × SE (95% confidence, 80% power); each comparison's own beside it, largest first. "
                       "The binomial formula (two independent arms at a "
                       "base rate of 0.5 over the pooled episodes) knows neither the pairing on start states nor "
                       "the seed-to-seed spread.")
    across_note = ("IQM (interquartile mean) of per-seed success across pairs, 95% stratified bootstrap "
                   "interval (seeds resampled within each pair; Agarwal et al. 2021).")
    if across["pairs"].nunique() > 1:
        across_note += (" Rows differ in their pairs (the `pairs` column): a row is comparable with those over the "
                        "same pairs only, as an easier pair raises the IQM of the rows that have it.")
    if self_reported:
        notes += " " + SELF_REPORTED_NOTE
    resolution_section = ("Resolution per pair", _resolution_table(resolved), resolution_note)
    costs = cost(records)
    cost_section = ("Cost", cost_table(costs), cost_note(costs))
    tables = [("Per pair", _pair_table(df, self_reported), notes), resolution_section,
              ("Across pairs", _across_table(across), across_note), cost_section]
    md = [f"# {title}", "", summary, ""]
    for name, (header, rows), note in tables:
        md += [f"## {name}", "", md_table(header, rows), "", note, ""]
    page = leaderboard_page(df, across, records, title=title, summary=summary, pair_note=notes,
                            across_note=across_note, folder=out, reference=REFERENCE, self_reported=self_reported,
                            plain=(resolution_section, cost_section))

    paths = {"md": out / "leaderboard.md", "csv": out / "leaderboard.csv", "html": out / "leaderboard.html"}
    paths["md"].write_text("\n".join(md), encoding="utf-8")
    df.to_csv(paths["csv"], index=False)
    paths["html"].write_text(page, encoding="utf-8")
    return {**paths, **figures}
