"""The search that chooses the shared training recipe, on validation start states only.

A point is a set of recipe hyperparameters (`baselines.Method.hparam_space`'s shared ones: lr, lr_warmup,
weight_decay, ema_decay, ema_power, obs_noise, width, depth), applied alike to `target_only` and
`cotrain` on `lift/sensing`, `lift/dynamics` and `stack/dynamics` at their default N and M, `quick`
profile (its steps, N, M and checkpoint rule are not the recipe's), seeds 0-2: 18 runs, each
evaluated on the run seed's *validation* start states (`RunConfig.eval_split`), never its test ones.
A point's score is the mean validation target success over its runs (95% stratified bootstrap over
seeds within each pair and method); each point is also compared with `default` (today's recipe) by a
paired bootstrap over runs and episodes (the same start states in both).

    python -m benchmark.harness.recipe run [--points a,b] [--runs-dir results/recipe/runs]   # resumable
    python -m benchmark.harness.recipe report [--runs-dir results/recipe/runs]

`run` goes seed by seed across the points (every point's seed 0, then seed 1, ...), so an interrupted
search has compared every point on the same seeds; a finished run is never redone. `report` writes
`search.csv` (one row per finished run) and `search.md` (one row per point) next to the runs folder.
"""
from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.harness.config import RunConfig
from benchmark.harness.run import read_json
from benchmark.analysis.markdown import md_table
from benchmark.analysis.stats import paired_bootstrap_diff, stratified_bootstrap_ci
from benchmark.harness.grid import Grid
from benchmark.harness.jobs import is_done, run_item

PAIRS = ("lift/sensing", "lift/dynamics", "stack/dynamics")
METHODS = ("target_only", "cotrain")
SEEDS = (0, 1, 2)
PROFILE = "quick"
EPISODES = 20  # validation episodes per run and domain (the quick profile's)
RUNS_DIR = Path("results/recipe/runs")
BASELINE = "default"

# Today's recipe, every knob explicit: a point's runs keep their ids when a default changes.
BEFORE: dict[str, Any] = {"lr": 1e-3, "lr_warmup": 0, "weight_decay": 1e-6, "ema_decay": 0.995, "ema_power": 0.0,
                          "obs_noise": 0.0, "width": 256, "depth": 3}
# name -> (what it tests, its recipe: BEFORE updated with the changes), in the order the search runs them.
# Stage 1 changes one knob (or the learning rate with its warm-up) of BEFORE at a time.
POINTS: dict[str, tuple[str, dict[str, Any]]] = {name: (what, {**BEFORE, **changes}) for name, (what, changes) in {
    BASELINE: ("the recipe before the search", {}),
    "lr3e-4_wu200": ("lower learning rate, 200-step warm-up", {"lr": 3e-4, "lr_warmup": 200}),
    "ema999": ("EMA ramping to 0.999 (power 3/4)", {"ema_decay": 0.999, "ema_power": 0.75}),
    "noise0.05": ("observation noise 0.05 (normalized units)", {"obs_noise": 0.05}),
    # stage 2: the other direction of lr, the two best of stage 1 together, the rest one knob at a time
    "lr2e-3_wu200": ("higher learning rate, 200-step warm-up", {"lr": 2e-3, "lr_warmup": 200}),
    "ema999_noise0.05": ("EMA 0.999 (power 3/4) and observation noise 0.05",
                         {"ema_decay": 0.999, "ema_power": 0.75, "obs_noise": 0.05}),
    "wu200": ("200-step warm-up alone", {"lr_warmup": 200}),
    "depth4": ("a fourth residual block", {"depth": 4}),
    "noise0.1": ("observation noise 0.1", {"obs_noise": 0.1}),
    "lr2e-3": ("higher learning rate without warm-up", {"lr": 2e-3}),
}.items()}


def point_runs(name: str, seeds: tuple[int, ...] = SEEDS) -> list[RunConfig]:
    """The runs of point `name`: both methods on every pair, validation start states."""
    grid = Grid(pairs=PAIRS, methods=METHODS, seeds=seeds, magnitudes=(1.0,), profile=PROFILE, episodes=EPISODES,
                set=dict(POINTS[name][1]), eval_split="validation")
    return grid.runs()


def run_search(points: list[str], runs_dir: Path = RUNS_DIR) -> None:
    """Run every point's runs that are not done, seed by seed across the points, one at a time."""
    for seed in SEEDS:
        for name in points:
            for cfg in point_runs(name, (seed,)):
                if is_done(cfg, runs_dir):
                    continue
                print(f"{name} seed {seed}: {cfg.pair} {cfg.method} ({cfg.run_id()})", flush=True)
                run_id, error = run_item(cfg, str(runs_dir))
                if error:
                    print(f"  FAILED {run_id}: {error}", flush=True)


def point_of(knobs: dict[str, Any]) -> str | None:
    """The point whose recipe a run's hyperparameters carry (every knob of BEFORE), or None."""
    recipe_ = {k: knobs.get(k) for k in BEFORE}
    return next((name for name, (_, hp) in POINTS.items() if hp == recipe_), None)


def collect(runs_dir: Path = RUNS_DIR) -> list[dict[str, Any]]:
    """One row per finished run of a known point: point, pair and its version, method, seed, validation success,
    timing. A run is placed by its own recorded config, not by today's code, so runs of a pair version since
    replaced are still read (and their version said) rather than silently missing."""
    rows = []
    for done in sorted(runs_dir.glob("*/done")):
        record = read_json(done.parent / "record.json")
        cfg = record["config"]
        point = point_of(cfg["hparams"])
        if (point is None or cfg["pair"] not in PAIRS or cfg["method"] not in METHODS or cfg["seed"] not in SEEDS
                or cfg["profile"] != PROFILE or cfg["episodes"] != EPISODES or cfg["eval_split"] != "validation"):
            continue
        target = record["eval"]["target"]
        rows.append({"point": point, "pair": cfg["pair"], "pair_version": cfg["pair_version"],
                     "method": cfg["method"], "seed": cfg["seed"], "run_id": record["run_id"],
                     "successes": target["successes"], "episodes": target["n"],
                     "success": target["success_rate"], "val_loss": record["train"]["val_target"],
                     "train_s": round(record["timing"]["train_s"], 1),
                     "outcomes": [int(e["success"]) for e in target["episodes"]]})
    order = {name: i for i, name in enumerate(POINTS)}
    return sorted(rows, key=lambda r: (order[r["point"]], PAIRS.index(r["pair"]), r["pair_version"], r["seed"],
                                       METHODS.index(r["method"])))


def _unit(row: dict[str, Any]) -> tuple:
    """What pairs a run with the baseline's: the same pair at the same version, method and seed."""
    return row["pair"], row["pair_version"], row["method"], row["seed"]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point: runs finished, mean validation success with its interval (stratified by pair version and
    method), per-method means, and the paired difference from `default` over the runs both have finished."""
    base = {_unit(r): r["outcomes"] for r in rows if r["point"] == BASELINE}
    out = []
    for name, (what, hp) in POINTS.items():
        mine = [r for r in rows if r["point"] == name]
        if not mine:
            continue
        cells: dict[str, list[float]] = {}
        for r in mine:
            cells.setdefault(f"{r['pair']} v{r['pair_version']}|{r['method']}", []).append(r["success"])
        mean, lo, hi = stratified_bootstrap_ci(cells, stat=np.mean)
        row = {"point": name, "what": what, "hparams": hp, "runs": len(mine), "mean": mean, "lo": lo, "hi": hi}
        for method in METHODS:
            row[method] = float(np.mean([r["success"] for r in mine if r["method"] == method] or [np.nan]))
        shared = [_unit(r) for r in mine if _unit(r) in base]
        if name != BASELINE and shared:
            by_unit = {_unit(r): r["outcomes"] for r in mine}
            row["diff"], row["diff_lo"], row["diff_hi"] = paired_bootstrap_diff(
                {i: by_unit[k] for i, k in enumerate(shared)}, {i: base[k] for i, k in enumerate(shared)})
        out.append(row)
    return out


def _versions(rows: list[dict[str, Any]]) -> str:
    """The pair versions the rows come from, with their run counts, e.g. "`lift/sensing` v2 (60 runs)"."""
    counts = Counter((r["pair"], r["pair_version"]) for r in rows)
    return ", ".join(f"`{pair}` v{version} ({n} runs)" for (pair, version), n in counts.items()) or "no runs"


def write_report(runs_dir: Path = RUNS_DIR) -> Path:
    """`search.csv` and `search.md` beside `runs_dir`; returns the table's path."""
    rows = collect(runs_dir)
    out = runs_dir.parent
    with open(out / "search.csv", "w", newline="") as f:
        fields = [k for k in (rows[0] if rows else {}) if k != "outcomes"]
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Recipe search (validation start states)", "",
        "Generated by `python -m benchmark.harness.recipe report`; the runs by `python -m benchmark.harness.recipe run` "
        "(resumable: finished runs in `runs/` are skipped). Every point runs `target_only` and `cotrain` on "
        f"{', '.join(f'`{p}`' for p in PAIRS)} at their default N and M, `{PROFILE}` profile, seeds "
        f"{', '.join(map(str, SEEDS))}, {EPISODES} validation episodes per run (the run seed's validation "
        "start states, never its test ones). Score: mean target success over the runs, 95% stratified "
        "bootstrap over seeds within each pair and method; Δ: paired difference from `default` over the "
        "runs both finished (bootstrap over runs, then episodes). One row per run: `search.csv`. Each run is read "
        "by its own recorded config, so runs of a pair version since replaced count under that version: "
        f"{_versions(rows)}.", "",
        md_table(["point", "what", "hyperparameters", "runs", "mean [95%]", "target_only", "cotrain",
                  "Δ vs default [95%]"],
                 [[f"`{s['point']}`", s["what"],
                   ", ".join(f"{k}={v:g}" for k, v in s["hparams"].items() if v != BEFORE[k]) or "—",
                   str(s["runs"]), f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]", f"{s['target_only']:.3f}",
                   f"{s['cotrain']:.3f}",
                   f"{s['diff']:+.3f} [{s['diff_lo']:+.3f}, {s['diff_hi']:+.3f}]" if "diff" in s else "—"]
                  for s in summarize(rows)])]
    path = out / "search.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmark.harness.recipe", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--points", help=f"comma-separated points (default: all): {', '.join(POINTS)}")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    args = parser.parse_args(argv)
    points = args.points.split(",") if args.points else list(POINTS)
    unknown = sorted(set(points) - set(POINTS))
    if unknown:
        parser.error(f"unknown points {unknown}; known: {', '.join(POINTS)}")
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    if args.action == "run":
        run_search(points, args.runs_dir)
    print(f"report: {write_report(args.runs_dir)}")


if __name__ == "__main__":
    main()
