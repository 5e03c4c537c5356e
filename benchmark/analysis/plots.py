"""Figures from the per-pair leaderboard table (:func:`benchmark.analysis.leaderboard.aggregate`).

Each function draws on its own Agg canvas (no pyplot global state), writes a PNG and returns
its path. A figure with no data to show says so on its axes, so partial sweeps still plot.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "plot_success_vs_ratio",
    "plot_success_vs_magnitude",
    "plot_alignment_vs_discernibility",
    "plot_training_curves",
]


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, out_path: str | Path) -> Path:
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def _label(keys: dict[str, object], varying: list[str]) -> str:
    """``pair · method`` plus whichever of gap, N, M and w vary in the table."""
    parts = [str(keys["pair"]), str(keys["method"])]
    names = {"magnitude": "gap", "n_target": "N", "n_source": "M", "w": "w"}
    parts += [f"{names[k]}={keys[k]:g}" for k in varying if k in keys and not pd.isna(keys[k])]
    return " · ".join(parts)


def _varying(df: pd.DataFrame, cols: list[str]) -> list[str]:
    return [c for c in cols if df[c].nunique(dropna=False) > 1]


def plot_success_vs_ratio(df: pd.DataFrame, out_path: str | Path,
                          window: tuple[float, float] | None = None) -> Path:
    """Success (± se) against the mixing ratio w on a log axis, one line per pair and method.

    Methods without a ratio (``target_only``, ``source_only``) are drawn as dotted horizontal
    references; ``window`` = (w_lo, w_hi) shades a ratio window.
    """
    fig, ax = _figure()
    lines = ["pair", "method", "magnitude", "n_target", "n_source"]
    varying = _varying(df, lines[2:])
    ratio = df[df["w"].notna()]
    for keys, g in ratio.groupby(lines, sort=True):
        g = g.sort_values("w")
        ax.errorbar(g["w"], g["success_mean"], yerr=g["success_se"].fillna(0), marker="o", capsize=3,
                    label=_label(dict(zip(lines, keys)), varying))
    for keys, g in df[df["w"].isna()].groupby(lines, sort=True):
        ax.axhline(g["success_mean"].iloc[0], linestyle=":",
                   label=_label(dict(zip(lines, keys)), varying))
    if window is not None:
        ax.axvspan(*window, alpha=0.15, color="tab:green", label="ratio window")
    if ratio.empty:
        _no_data(ax, "no runs with a mixing ratio w")
    else:
        ax.set_xscale("log")
        ax.legend(fontsize="small")
    ax.set(xlabel="target fraction of each batch w (log scale)", ylabel="target success rate",
           ylim=(-0.02, 1.02))
    return _save(fig, out_path)


def plot_success_vs_magnitude(df: pd.DataFrame, out_path: str | Path) -> Path:
    """Success (± se) against the gap magnitude, one line per pair, method and w."""
    fig, ax = _figure()
    lines = ["pair", "method", "w", "n_target", "n_source"]
    varying = _varying(df, ["n_target", "n_source"]) + ["w"]
    for keys, g in df.groupby(lines, sort=True, dropna=False):
        g = g.sort_values("magnitude")
        ax.errorbar(g["magnitude"], g["success_mean"], yerr=g["success_se"].fillna(0), marker="o",
                    capsize=3, label=_label(dict(zip(lines, keys)), varying))
    if df.empty:
        _no_data(ax, "no runs")
    else:
        ax.legend(fontsize="small")
    ax.set(xlabel="gap magnitude", ylabel="target success rate", ylim=(-0.02, 1.02))
    return _save(fig, out_path)


def plot_alignment_vs_discernibility(df: pd.DataFrame, out_path: str | Path) -> Path:
    """Normalized Wasserstein distance of ``z`` against MLP discernibility of ``z_cond``;
    colour is the mean target success."""
    fig, ax = _figure()
    d = df.dropna(subset=["align_wasserstein_norm", "discern_mlp_cond", "success_mean"])
    if d.empty:
        _no_data(ax, "no runs with both alignment and discernibility")
    else:
        pts = ax.scatter(d["align_wasserstein_norm"], d["discern_mlp_cond"], c=d["success_mean"],
                         cmap="viridis", vmin=0, vmax=1, edgecolors="k")
        fig.colorbar(pts, ax=ax, label="target success rate")
    ax.set(xlabel="Wasserstein distance of z (normalized across runs)",
           ylabel="domain discernibility of z_cond (MLP probe accuracy)")
    return _save(fig, out_path)


def _read_log(path: Path, key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i + 1}: not a JSON line ({e})") from e
        if entry.get(key) is not None:
            steps.append(float(entry.get("step", i)))
            values.append(float(entry[key]))
    return steps, values


def plot_training_curves(log_paths: dict[str, str | Path], out_path: str | Path, key: str = "loss") -> Path:
    """``key`` against ``step`` from JSONL training logs, one line per label (log y-axis when
    every value is positive). Lines without ``key`` are skipped."""
    fig, ax = _figure()
    curves = {label: _read_log(Path(p), key) for label, p in log_paths.items()}
    curves = {label: c for label, c in curves.items() if c[0]}
    for label, (steps, values) in curves.items():
        ax.plot(steps, values, label=label)
    if not curves:
        _no_data(ax, f"no '{key}' entries in the logs")
    else:
        if all(v > 0 and math.isfinite(v) for _, vals in curves.values() for v in vals):
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    ax.set(xlabel="step", ylabel=key)
    return _save(fig, out_path)


def write_plots(df: pd.DataFrame, log_paths: dict[str, str | Path], out_dir: str | Path) -> list[Path]:
    """The leaderboard's figures from an `aggregate` table and training logs keyed by label."""
    out = Path(out_dir)
    return [plot_success_vs_ratio(df, out / "success_vs_ratio.png"),
            plot_success_vs_magnitude(df, out / "success_vs_magnitude.png"),
            plot_alignment_vs_discernibility(df, out / "alignment_vs_discernibility.png"),
            plot_training_curves(log_paths, out / "training_curves.png")]
