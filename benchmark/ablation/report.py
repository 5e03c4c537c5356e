"""An ablation's numbers from its run folders: success per cell and method, the drop from magnitude 0, the
representation against magnitude, the expert's success; written as `summary.md`, `summary.csv`,
`sensitivity.csv` and figures.

Success in a cell is the mean over seeds of each seed's success over the same test start states, with its 95%
two-level bootstrap interval (seeds, then episodes; `benchmark.analysis.stats`) and the Wilson interval of the
pooled count. A drop is success at magnitude 0 minus success at m, paired by seed and start state (two-level
paired bootstrap). Representation metrics (`metrics.json`) come from every policy item: a trained run measures its
own z, an evaluation-only item its trained checkpoint's z on the cell's paired replay; the expert has none. The
raw-observation discernibility is the cell's (its paired replay data, the same for every method), so it is the
mean over the cell's measured items. A factor set whose factors the ablation also has alone is read against them
(`compounding`, `compounding.csv`): its success against the product of its factors' own success ratios.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.ablation.items import ExpertEval
from benchmark.ablation.plan import Ablation, describe_level, evaluated_only, member_level, members
from benchmark.analysis.cost import cost, cost_note, cost_table
from benchmark.analysis.markdown import md_table
from benchmark.analysis.stats import (paired_bootstrap_diff, paired_bootstrap_stat, two_level_bootstrap_ci,
                                      wilson_interval)
from benchmark.harness.run import read_json

RAW, ALIGN = "raw_discern_mlp", "align_wasserstein"  # the cell's raw discernibility; z's scale-free alignment
BASE = "(base task)"  # the magnitude-0 cell, every factor's
DECIMALS = 6  # numbers as written and ranked: success rates over at most thousands of episodes
EXPERT = "expert"


def _record(item, runs_dir: Path) -> dict[str, Any] | None:
    if isinstance(item, ExpertEval):
        path = item.path(runs_dir)
        return read_json(path) if path.exists() else None
    folder = runs_dir / item.run_id()
    return read_json(folder / "record.json") if (folder / "done").exists() else None


def _outcomes(record: dict[str, Any]) -> np.ndarray:
    return np.array([float(e["success"]) for e in record["eval"]["target"]["episodes"]])


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


Found = dict[tuple[str, float, str], dict[int, dict[str, Any]]]
"""(factor, magnitude, method or `expert`) -> {seed: finished record}: an ablation's results, as `read_cells` reads
them."""


def read_cells(ablation: Ablation, runs_dir: str | Path) -> Found:
    """Every cell's finished records per method (and `expert`) and seed, each file read once (the base task's are
    every factor's magnitude-0 cell)."""
    runs_dir = Path(runs_dir)
    read: dict[str, dict[str, Any] | None] = {}
    found: Found = {}
    for method in (*ablation.methods, EXPERT):
        for factor, magnitude in ablation.cells():
            cell = found[factor, magnitude, method] = {}
            for seed in ablation.seeds:
                item = ablation.item(method, seed, factor, magnitude)
                if (run_id := item.run_id()) not in read:
                    read[run_id] = _record(item, runs_dir)
                if read[run_id] is not None:
                    cell[seed] = read[run_id]
    return found


def _cell_outcomes(found: Found, factor: str, magnitude: float, method: str) -> dict[int, np.ndarray]:
    return {seed: _outcomes(r) for seed, r in found[factor, magnitude, method].items()}


def cell_table(ablation: Ablation, found: Found) -> list[dict[str, Any]]:
    """One row per (factor, magnitude, method or `expert`): seeds found, pooled count, success with both
    intervals, the drop from magnitude 0 with its paired interval, and the mean representation metrics."""
    raw = {cell: _mean([r["metrics"].get(RAW) for m in ablation.methods for r in found[(*cell, m)].values()
                        if r.get("metrics")]) for cell in ablation.cells()}
    rows = []
    for (factor, magnitude, method), records in found.items():
        outcomes = _cell_outcomes(found, factor, magnitude, method)
        row: dict[str, Any] = {
            "task": ablation.task, "factor": factor, "magnitude": magnitude, "level": describe_level(factor, magnitude),
            "method": method, "trained": method != EXPERT and not (evaluated_only(method) and magnitude > 0),
            "seeds": len(outcomes), "successes": int(sum(o.sum() for o in outcomes.values())),
            "episodes": int(sum(o.size for o in outcomes.values())),
            "success": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "wilson_lo": math.nan, "wilson_hi": math.nan,
            "drop": math.nan, "drop_lo": math.nan, "drop_hi": math.nan, "raw_discern_mlp": raw[factor, magnitude],
            "align_wasserstein": _mean([r["metrics"].get(ALIGN) for r in records.values() if r.get("metrics")]),
        }
        if outcomes:
            row["success"], row["ci_lo"], row["ci_hi"] = two_level_bootstrap_ci(outcomes)
            row["wilson_lo"], row["wilson_hi"] = wilson_interval(row["successes"], row["episodes"])
            base = _cell_outcomes(found, factor, 0.0, method) if (factor, 0.0, method) in found and magnitude > 0 \
                else {}
            if set(base) & set(outcomes):
                row["drop"], row["drop_lo"], row["drop_hi"] = paired_bootstrap_diff(base, outcomes)
        rows.append(row)
    return rows


def sensitivity(rows: list[dict[str, Any]], method: str = "source_only") -> list[dict[str, Any]]:
    """`method`'s drop per factor, factors ranked by their drop at their largest measured magnitude (largest
    first): [{"rank", "factor", "drop", "drop_lo", "drop_hi", "at", "by_magnitude": [row, ...]}]."""
    by_factor: dict[str, list[dict]] = {}
    for row in rows:
        if row["method"] == method and row["magnitude"] > 0 and not math.isnan(row["drop"]):
            by_factor.setdefault(row["factor"], []).append(row)
    ranked = []
    for factor, factor_rows in by_factor.items():
        top = max(factor_rows, key=lambda r: r["magnitude"])
        ranked.append({"factor": factor, "drop": top["drop"], "drop_lo": top["drop_lo"], "drop_hi": top["drop_hi"],
                       "at": top["magnitude"], "by_magnitude": sorted(factor_rows, key=lambda r: r["magnitude"])})
    ranked.sort(key=lambda r: -r["drop"])
    return [{"rank": i + 1, **r} for i, r in enumerate(ranked)]


def largest_drops(ablation: Ablation, runs_dir: str | Path, k: int) -> tuple[str, ...]:
    """The `k` factors whose source policy drops most (`sensitivity`); ValueError while a factor is unmeasured."""
    ranked = sensitivity(cell_table(ablation, read_cells(ablation, runs_dir)))
    missing = sorted(set(ablation.factors) - {r["factor"] for r in ranked})
    if missing:
        raise ValueError(f"the sensitivity of {ablation.task} has no drop yet for {', '.join(missing)}: "
                         "run that stage first")
    return tuple(r["factor"] for r in ranked[:k])


def versus(ablation: Ablation, found: Found, reference: str = "target_only") -> list[dict[str, Any]]:
    """Each other method minus `reference` per cell, paired by seed and start state; the base task (magnitude 0,
    every factor's) once, as factor `BASE`."""
    if reference not in ablation.methods:
        return []
    out, seen = [], set()
    for factor, magnitude in ablation.cells():
        if (cell := ablation.cell_pair(factor, magnitude)) in seen:
            continue  # the base task, every factor's magnitude-0 cell: once
        seen.add(cell)
        outcomes = {method: _cell_outcomes(found, factor, magnitude, method) for method in ablation.methods}
        for method in ablation.methods:
            if method != reference and set(outcomes[method]) & set(outcomes[reference]):
                diff = paired_bootstrap_diff(outcomes[method], outcomes[reference])
                out.append({"factor": BASE if magnitude == 0.0 else factor, "magnitude": magnitude, "method": method,
                            "reference": reference, **dict(zip(("diff", "lo", "hi"), diff))})
    return out


def _independent_excess(means: np.ndarray) -> np.ndarray:
    """Arms (base, each factor alone, the set): the set's success that independent failures would leave,
    s0 x prod(s_i / s0), minus the set's measured success (nan where s0 is 0)."""
    base, alone, together = means[..., 0], means[..., 1:-1], means[..., -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        predicted = base * np.prod(alone / base[..., None], axis=-1)
    return np.where(base > 0, predicted - together, np.nan)


def compounding(ablation: Ablation, found: Found) -> list[dict[str, Any]]:
    """Per factor set whose factors the ablation also has alone, per method and set cell above 0: the set's success
    against what its factors' own cells predict if each caused failures independently, s0 x prod(s_i / s0), paired by
    seed and start state. `excess_drop` = predicted - measured: above 0 the factors compound, below 0 they cost the
    same start states."""
    out = []
    for factor in ablation.factors:
        names = members(factor)
        if len(names) < 2 or not set(names) <= set(ablation.factors):
            continue
        for magnitude in ablation.levels(factor)[1:]:
            cells = [(factor, 0.0), *((n, member_level(n, magnitude)) for n in names), (factor, magnitude)]
            for method in ablation.methods:
                arms = [_cell_outcomes(found, f, m, method) for f, m in cells]
                seeds = sorted(set.intersection(*(set(a) for a in arms)))
                if not seeds:
                    continue
                excess, lo, hi = paired_bootstrap_stat(arms, _independent_excess)
                success = float(np.mean([arms[-1][s].mean() for s in seeds]))
                out.append({"factor": factor, "magnitude": magnitude, "method": method, "seeds": len(seeds),
                            "success": success, "predicted": success + excess, "excess_drop": excess,
                            "excess_lo": lo, "excess_hi": hi})
    return out


def drop_correlations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method with drops: Spearman's rho of each representation measure against the drop, over its cells above
    0 that have both (descriptive: the cells share factors and ladders). Values are ranked at `DECIMALS`, so equal
    drops tie whatever the float rounding of their differences."""
    from scipy.stats import spearmanr

    out = []
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != EXPERT):
        for measure in (ALIGN, RAW):
            cells = [(round(r[measure], DECIMALS), round(r["drop"], DECIMALS)) for r in rows
                     if r["method"] == method and r["magnitude"] > 0
                     and not math.isnan(r[measure]) and not math.isnan(r["drop"])]
            if len(cells) >= 4:
                rho = float(spearmanr(*zip(*cells)).statistic)
                out.append({"method": method, "measure": measure, "rho": rho, "cells": len(cells)})
    return out


CSV_FIELDS = ("task", "factor", "magnitude", "level", "method", "trained", "seeds", "episodes", "successes",
              "success", "ci_lo", "ci_hi", "wilson_lo", "wilson_hi", "drop", "drop_lo", "drop_hi",
              "raw_discern_mlp", "align_wasserstein")


def costs(found: Found) -> tuple[list[dict[str, Any]], int, float]:
    """The finished policy items' records, each once (the base task's cell is every factor's), and the expert's
    finished cells with the core-hours of their rollouts (wall time, one process each)."""
    policy: dict[str, dict[str, Any]] = {}
    expert: dict[str, float] = {}
    for (_, _, method), cell in found.items():
        for record in cell.values():
            if method == EXPERT:
                expert[record["config"]["run_id"]] = float(record["eval"].get("wall_s") or 0.0)
            else:
                policy[record["run_id"]] = record
    return list(policy.values()), len(expert), sum(expert.values()) / 3600


def write_csv(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...]) -> Path:
    """`rows` as CSV, numbers to `DECIMALS`."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: round(v, DECIMALS) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    return path


def _ci(point: float, lo: float, hi: float, signed: bool = False) -> str:
    if math.isnan(point):
        return "—"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(point)} [{f.format(lo)}, {f.format(hi)}]"


def _num(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f}"


def write_report(ablation: Ablation, runs_dir: str | Path, out_dir: str | Path, command: str = "") -> list[Path]:
    """`summary.md`, `summary.csv`, `sensitivity.csv` and the figures in `out_dir`; returns their paths."""
    from benchmark.ablation.figures import write_figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found = read_cells(ablation, runs_dir)
    rows = cell_table(ablation, found)
    ranked = sensitivity(rows)
    pairs = versus(ablation, found)
    compounded = compounding(ablation, found)
    paths = [write_csv(out / "summary.csv", rows, CSV_FIELDS)]
    ranked_rows = [{**r, "rank": s["rank"]} for s in ranked for r in s["by_magnitude"]]
    paths.append(write_csv(out / "sensitivity.csv", ranked_rows,
                           ("rank", "factor", "magnitude", "level", "drop", "drop_lo", "drop_hi", "success")))
    if compounded:
        paths.append(write_csv(out / "compounding.csv", compounded, tuple(compounded[0])))
    figures = write_figures(rows, ranked, out, compounded)
    methods = [*ablation.methods, EXPERT]
    eval_only = [m for m in ablation.methods if evaluated_only(m)]
    lines = [f"# Gap ablation of `{ablation.task}`", "",
             *([f"Command: `{command}`", ""] if command else []),
             f"Factors: {', '.join(ablation.factors)}. Magnitudes: {', '.join(f'{m:g}' for m in ablation.magnitudes)} "
             f"(each factor at its distinct effective magnitudes"
             + ("; a set `a+b` moves its factors together, each at its effective magnitude of m"
                if any(len(members(f)) > 1 for f in ablation.factors) else "")
             + f"). Seeds: {', '.join(map(str, ablation.seeds))}; "
             f"{ablation.episodes} test episodes per seed and cell; `{ablation.profile}` profile, `{ablation.backend}` "
             "backend.", "",
             "Trained per cell: " + (", ".join(f"`{m}`" for m in ablation.methods if not evaluated_only(m)) or "none")
             + ". Trained once per seed on the gap-free task and evaluated in every cell: "
             + (", ".join(f"`{m}`" for m in eval_only) or "none") + ". The expert (`tasks/experts.py`, the "
             "demos' expert noise, acting on the true state) is rolled out on the same start states. Magnitude 0 "
             "is the base task, one cell shared by every factor.", "",
             "## Success against magnitude", "",
             "Mean over seeds with its 95% two-level bootstrap interval (seeds, then episodes).", ""]
    table = {(r["factor"], r["magnitude"], r["method"]): r for r in rows}
    lines.append(md_table(["factor", "magnitude", "level", *methods],
                          [[factor, f"{magnitude:g}", describe_level(factor, magnitude) or "—",
                            *(_ci(*(table[factor, magnitude, m][k] for k in ("success", "ci_lo", "ci_hi")))
                              for m in methods)]
                           for factor, magnitude in ablation.cells()]))
    lines += ["", "## Sensitivity of the source policy", "",
              "Drop = success at magnitude 0 − success at m (`source_only`), paired by seed and start state, 95% "
              "two-level paired bootstrap; factors ranked by the drop at their largest magnitude.", ""]
    if ranked:
        lines.append(md_table(["rank", "factor", "drop at largest m [95%]", "drop by magnitude"],
                              [[str(s["rank"]), s["factor"],
                                f"{_ci(s['drop'], s['drop_lo'], s['drop_hi'], True)} (m = {s['at']:g})",
                                "; ".join(f"{r['magnitude']:g}: {_ci(r['drop'], r['drop_lo'], r['drop_hi'], True)}"
                                          for r in s["by_magnitude"])] for s in ranked]))
    else:
        lines.append("No drop yet: `source_only` needs magnitude 0 and a magnitude above it.")
    if pairs:
        lines += ["", "## Against `target_only`", "", "Success of the method minus `target_only`'s in the same cell, "
                  "paired by seed and start state (95% two-level paired bootstrap).", "",
                  md_table(["factor", "magnitude", "method", "difference [95%]"],
                           [[p["factor"], f"{p['magnitude']:g}", p["method"], _ci(p["diff"], p["lo"], p["hi"], True)]
                            for p in pairs])]
    if compounded:
        lines += ["", "## Factor sets: do their drops compound?", "",
                  "A set's success against what its factors' own cells predict if each caused failures independently, "
                  "s0 x prod(s_i / s0) (s0: the base task, s_i: the factor alone at its magnitude in the set's cell). "
                  "Excess drop = predicted − measured, paired by seed and start state (95% two-level paired "
                  "bootstrap): above 0 the factors compound, below 0 they cost the same start states.", "",
                  md_table(["set", "magnitude", "method", "seeds", "success", "predicted if independent",
                            "excess drop [95%]"],
                           [[c["factor"], f"{c['magnitude']:g}", c["method"], str(c["seeds"]), _num(c["success"]),
                             _num(c["predicted"]), _ci(c["excess_drop"], c["excess_lo"], c["excess_hi"], True)]
                            for c in compounded])]
    lines += ["", "## Representation against magnitude", "",
              f"`{RAW}`: the MLP domain probe's held-out accuracy on raw observation histories of the cell's paired "
              f"replay (0.5: indiscernible); `{ALIGN}`: Wasserstein distance between the domains' z, divided by z's "
              "spread (scale-free; 0: aligned). Mean over seeds. An evaluation-only method's z is its trained "
              "checkpoint's, read on the cell's replay; the expert measures success alone.", "",
              md_table(["factor", "magnitude", RAW, *(f"{ALIGN} {m}" for m in ablation.methods)],
                       [[factor, f"{magnitude:g}", _num(table[factor, magnitude, methods[0]][RAW]),
                         *(_num(table[factor, magnitude, m][ALIGN]) for m in ablation.methods)]
                        for factor, magnitude in ablation.cells()])]
    if correlations := drop_correlations(rows):
        lines += ["", "Against the drop (Spearman's rho over the cells above 0; descriptive, the cells share factors "
                  "and ladders): " + "; ".join(f"`{c['measure']}` of `{c['method']}` {c['rho']:+.2f} "
                                              f"({c['cells']} cells)" for c in correlations) + "."]
    lines += ["", "## Expert", "", "The scripted expert's success (pooled count, 95% Wilson interval): what the "
              "gap leaves of the task for an expert on the true state; it is also the cell's demo yield.", "",
              md_table(["factor", "magnitude", "expert successes", "success [95%]"],
                       [[factor, f"{magnitude:g}", f"{r['successes']}/{r['episodes']}",
                         _ci(r["success"], r["wilson_lo"], r["wilson_hi"])]
                        for factor, magnitude in ablation.cells() for r in [table[factor, magnitude, EXPERT]]])]
    records, expert_cells, expert_h = costs(found)
    if records:
        spent = cost(records, by="method")
        lines += ["", "## Cost", "", md_table(*cost_table(spent)), "",
                  cost_note(spent) + " Each item is counted once (the base task's cell is every factor's). The "
                  f"expert's {expert_cells} cells: {expert_h:.2f} core-hours of rollouts (their wall time, one "
                  "process each)."]
    lines += ["", "Files: `summary.csv` (every row above), `sensitivity.csv`, "
              + ("`compounding.csv`, " if compounded else "")
              + ", ".join(f"`{p.name}`" for p in figures) + ".", ""]
    (out / "summary.md").write_text("\n".join(lines))
    return [out / "summary.md", *paths, *figures]
