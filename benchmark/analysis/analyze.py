"""`cotrain analyze`: how the representation metrics relate to success across a sweep."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.analysis.records import load_records
from benchmark.analysis.markdown import md_table
from benchmark.analysis.metrics import correlation, normalize_across_runs
from benchmark.analysis.figures import figure, save

METRICS = ("align_wasserstein_norm", "align_gw", "align_nn", "align_cka", "discern_linear", "discern_mlp",
           "discern_mlp_cond", "structured_alignment")


def metrics_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: pair, method, w, seed, target success and every representation metric;
    the Wasserstein distance also min-max normalized across the runs given (`align_wasserstein_norm`)."""
    rows = []
    for rec in records:
        cfg = rec["config"]
        rows.append({"run_id": rec["run_id"], "pair": cfg["pair"], "magnitude": cfg["magnitude"],
                     "method": cfg["method"], "w": cfg.get("w"), "seed": cfg["seed"],
                     "success": rec["eval"]["target"]["success_rate"], **rec.get("metrics", {})})
    df = pd.DataFrame(rows)
    if "align_wasserstein" in df:
        df["align_wasserstein_norm"] = normalize_across_runs(df["align_wasserstein"].astype(float).tolist())
    return df


def correlations(df: pd.DataFrame, by: str | None = "pair") -> pd.DataFrame:
    """Pearson and Spearman correlation of each metric with success (with p-values and n), per `by` group
    and over all runs (`by` value "all")."""
    groups = [("all", df)] + (list(df.groupby(by, sort=True)) if by and not df.empty else [])
    rows = []
    for name, g in groups:
        for metric in METRICS:
            if metric in g:
                rows.append({"group": name, "metric": metric,
                             **correlation(g[metric].astype(float).tolist(), g["success"].astype(float).tolist())})
    return pd.DataFrame(rows)


def analyze(runs_dir: str | Path, out_dir: str | Path, metric: str = "structured_alignment") -> dict[str, Path]:
    """Write `analysis.md`, `analysis.csv` (correlations) and a scatter of `metric` against success."""
    records = load_records(runs_dir)
    if not records:
        raise ValueError(f"{runs_dir}: no record.json found (no finished runs)")
    df = metrics_frame(records)
    if metric not in df:
        raise ValueError(f"metric {metric!r} is in no record; known: {', '.join(m for m in METRICS if m in df)}")
    table = correlations(df)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "analysis.csv", "md": out / "analysis.md", "png": out / f"success_vs_{metric}.png"}
    table.to_csv(paths["csv"], index=False)
    fig, axes = figure(width=7, height=4.5)
    ax = axes[0, 0]
    for method, g in df.groupby("method", sort=True):
        ax.scatter(g[metric], g["success"], label=method, s=18)
    ax.set_xlabel(metric)
    ax.set_ylabel("target success")
    ax.legend(fontsize=7)
    save(fig, paths["png"], dpi=120)
    lines = [f"# Representation metrics against success ({len(df)} runs, {runs_dir})", "",
             md_table(["group", "metric", "n", "Spearman rho", "p", "Pearson r", "p"],
                      [[str(row.group), str(row.metric), str(row.n), f"{row.spearman_rho:.3f}", f"{row.spearman_p:.3g}",
                        f"{row.pearson_r:.3f}", f"{row.pearson_p:.3g}"] for row in table.itertuples()])]
    paths["md"].write_text("\n".join(lines) + "\n")
    return paths
