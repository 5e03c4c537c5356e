"""Figures from the per-pair leaderboard table (:func:`benchmark.analysis.leaderboard.aggregate`).

Each ``*_figure`` function draws one figure on its own Agg canvas (:mod:`benchmark.analysis.figures`) and
returns it; each ``plot_*`` function draws the same figure, writes it as a PNG and returns its path. A figure
with no data to show says so on its axes, so partial sweeps still plot.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmark.analysis.figures import figure, no_data, save

__all__ = [
    "success_per_pair_figure",
    "diff_vs_cotrain_figure",
    "success_vs_ratio_figure",
    "success_vs_magnitude_figure",
    "alignment_vs_discernibility_figure",
    "training_curves_figure",
    "plot_success_vs_ratio",
    "plot_success_vs_magnitude",
    "plot_alignment_vs_discernibility",
    "plot_training_curves",
    "training_logs",
    "write_plots",
]

DPI = 120


def _panel(width: float = 7) -> tuple[Figure, Axes]:
    fig, axes = figure(width=width, height=4.5)
    return fig, axes[0, 0]


def _label(keys: dict[str, object], varying: list[str]) -> str:
    """``pair · method`` plus whichever of gap, N, M and w vary in the table."""
    parts = [str(keys["pair"]), str(keys["method"])]
    names = {"magnitude": "gap", "n_target": "N", "n_source": "M", "w": "w"}
    parts += [f"{names[k]}={keys[k]:g}" for k in varying if k in keys and not pd.isna(keys[k])]
    return " · ".join(parts)


def _outside_legend(ax: Axes) -> None:
    """The legend right of the axes, where a long list of series cannot hide the data."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _varying(df: pd.DataFrame, cols: list[str]) -> list[str]:
    return [c for c in cols if df[c].nunique(dropna=False) > 1]


def success_vs_ratio_figure(df: pd.DataFrame, window: tuple[float, float] | None = None) -> Figure:
    """Success (± se) against the mixing ratio w on a log axis, one line per pair and method.

    Methods without a ratio (``target_only``, ``source_only``) are drawn as dotted horizontal
    references; ``window`` = (w_lo, w_hi) shades a ratio window.
    """
    fig, ax = _panel(width=11)  # the legend beside the axes
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
        no_data(ax, "no runs with a mixing ratio w")
    else:
        ax.set_xscale("log")
        _outside_legend(ax)
    ax.set(xlabel="target fraction of each batch w (log scale)", ylabel="target success rate",
           ylim=(-0.02, 1.02))
    return fig


def plot_success_vs_ratio(df: pd.DataFrame, out_path: str | Path,
                          window: tuple[float, float] | None = None) -> Path:
    """:func:`success_vs_ratio_figure` written to ``out_path``."""
    return save(success_vs_ratio_figure(df, window), out_path, dpi=DPI)


def success_vs_magnitude_figure(df: pd.DataFrame) -> Figure:
    """Success (± se) against the gap magnitude, one line per pair, method and w."""
    fig, ax = _panel(width=11)  # the legend beside the axes
    lines = ["pair", "method", "w", "n_target", "n_source"]
    varying = _varying(df, ["n_target", "n_source"]) + ["w"]
    for keys, g in df.groupby(lines, sort=True, dropna=False):
        g = g.sort_values("magnitude")
        ax.errorbar(g["magnitude"], g["success_mean"], yerr=g["success_se"].fillna(0), marker="o",
                    capsize=3, label=_label(dict(zip(lines, keys)), varying))
    if df.empty:
        no_data(ax, "no runs")
    else:
        _outside_legend(ax)
    ax.set(xlabel="gap magnitude", ylabel="target success rate", ylim=(-0.02, 1.02))
    return fig


def plot_success_vs_magnitude(df: pd.DataFrame, out_path: str | Path) -> Path:
    """:func:`success_vs_magnitude_figure` written to ``out_path``."""
    return save(success_vs_magnitude_figure(df), out_path, dpi=DPI)


def _cells(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The table's (pair, gap, N, M) cells in order, each titled `pair` plus whichever of gap, N and M vary."""
    keys = ["pair", "magnitude", "n_target", "n_source"]
    varying = _varying(df, keys[1:])
    names = {"magnitude": "gap", "n_target": "N", "n_source": "M"}
    return [(" · ".join([str(k[0])] + [f"{names[c]}={v:g}" for c, v in zip(keys[1:], k[1:]) if c in varying]), g)
            for k, g in df.groupby(keys, sort=True)]


def _intervals_figure(df: pd.DataFrame, value: str, lo: str, hi: str, xlabel: str, zero: bool) -> Figure:
    """A panel per cell, a row per method (largest value on top): the value and its 95% interval; a line at 0
    where `zero`, else the success scale [0, 1]."""
    cells = [(title, g.dropna(subset=[value]).sort_values(value)) for title, g in _cells(df)]
    cells = [(title, g) for title, g in cells if not g.empty] or [("", df.iloc[0:0])]
    fig, axes = figure(ncols=len(cells), width=4.2, height=0.35 * max(len(g) for _, g in cells) + 1.2)
    for ax, (title, g) in zip(axes[0], cells):
        if g.empty:
            no_data(ax, "no rows")
            continue
        y = list(range(len(g)))
        low, high = (g[value] - g[lo]).clip(lower=0), (g[hi] - g[value]).clip(lower=0)
        ax.errorbar(g[value], y, xerr=[low.fillna(0), high.fillna(0)], fmt="o", capsize=3, color="tab:blue")
        ax.set_yticks(y, [m if pd.isna(w) else f"{m} w={w:.3g}" for m, w in zip(g["method"], g["w"])])
        if zero:
            ax.axvline(0.0, color="0.5", linewidth=1)
        else:
            ax.set_xlim(-0.02, 1.02)
        ax.set(xlabel=xlabel, title=title)
    return fig


def success_per_pair_figure(df: pd.DataFrame) -> Figure:
    """Each method's target success with its 95% interval, a panel per pair (and gap, N, M where they vary)."""
    return _intervals_figure(df, "success_mean", "success_lo", "success_hi", "target success rate", zero=False)


def diff_vs_cotrain_figure(df: pd.DataFrame) -> Figure:
    """The forest plot: each method's paired difference in success against cotrain with its 95% interval, a
    panel per pair (and gap, N, M where they vary); cotrain itself, the reference, has no row."""
    return _intervals_figure(df[df["method"] != "cotrain"], "diff_vs_cotrain", "diff_lo", "diff_hi",
                             "success − cotrain's (paired)", zero=True)


def alignment_vs_discernibility_figure(df: pd.DataFrame) -> Figure:
    """Normalized Wasserstein distance of ``z`` against MLP discernibility of ``z_cond``;
    colour is the mean target success."""
    fig, ax = _panel()
    d = df.dropna(subset=["align_wasserstein_norm", "discern_mlp_cond", "success_mean"])
    if d.empty:
        no_data(ax, "no runs with both alignment and discernibility")
    else:
        pts = ax.scatter(d["align_wasserstein_norm"], d["discern_mlp_cond"], c=d["success_mean"],
                         cmap="viridis", vmin=0, vmax=1, edgecolors="k")
        fig.colorbar(pts, ax=ax, label="target success rate")
    ax.set(xlabel="Wasserstein distance of z (normalized across runs)",
           ylabel="domain discernibility of z_cond (MLP probe accuracy)")
    return fig


def plot_alignment_vs_discernibility(df: pd.DataFrame, out_path: str | Path) -> Path:
    """:func:`alignment_vs_discernibility_figure` written to ``out_path``."""
    return save(alignment_vs_discernibility_figure(df), out_path, dpi=DPI)


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


def _mean_curve(paths: list[Path], key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """Steps every log with `key` has it at, and its mean, min and max over those logs there ([] each where none
    has it); a log without `key` is left out."""
    curves = [c for c in (dict(zip(*_read_log(Path(p), key))) for p in paths) if c]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    per_step = [[c[s] for c in curves] for s in steps]
    return (steps, [sum(v) / len(v) for v in per_step], [min(v) for v in per_step], [max(v) for v in per_step])


def training_curves_figure(logs: dict[str, dict[str, list[str | Path]]], key: str = "diffusion") -> Figure:
    """``key`` against ``step`` from JSONL training logs grouped as {panel: {label: [logs]}} (e.g. per pair,
    per method, one log per seed): one panel each, one line per label, the mean over its logs at the steps they
    share, shaded from their minimum to their maximum (log y-axis where every value is positive). Lines
    without ``key`` are skipped. The default, the denoising loss, is logged by every method; their ``loss``
    adds each method's own terms (an adversary's BCE near 0.69, for one)."""
    panels = {panel: {label: _mean_curve([Path(p) for p in paths], key) for label, paths in group.items()}
              for panel, group in logs.items()}
    panels = {panel: {label: c for label, c in group.items() if c[0]} for panel, group in panels.items()}
    panels = {panel: group for panel, group in panels.items() if group} or {"": {}}
    fig, axes = figure(ncols=len(panels), width=6, height=4.5)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for label, (steps, mean, low, high) in curves.items():
            (line,) = ax.plot(steps, mean, label=label)
            if low != high:
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        if not curves:
            no_data(ax, f"no '{key}' entries in the logs")
        else:
            if all(v > 0 and math.isfinite(v) for c in curves.values() for v in c[2]):
                ax.set_yscale("log")
            ax.legend(fontsize="small")
        ax.set(xlabel="step", ylabel=key, title=panel)
    return fig


def training_logs(records: list[dict], runs_dir: str | Path) -> dict[str, dict[str, list[Path]]]:
    """The training logs under ``runs_dir`` of ``records`` that trained, grouped for
    :func:`training_curves_figure`: a panel per pair (and gap magnitude where not 1, and demo counts N, M and
    training steps where the pair's runs differ in them), a line per method (and w where it mixes), one log per
    seed."""
    trained = [(rec["config"], Path(runs_dir) / rec["run_id"] / "train_log.jsonl") for rec in records]
    trained = [(c, path) for c, path in trained if path.exists()]
    shape = {(c["pair"], c.get("n_target"), c.get("n_source"), c.get("steps")) for c, _ in trained}
    varied = {pair for pair, *_ in shape if sum(p == pair for p, *_ in shape) > 1}
    logs: dict[str, dict[str, list[Path]]] = {}
    for c, path in trained:
        magnitude = float(c.get("magnitude", 1.0))
        panel = c["pair"] + ("" if magnitude == 1.0 else f" (gap {magnitude:g})")
        if c["pair"] in varied:
            panel += f" N={c.get('n_target')} M={c.get('n_source')} steps={c.get('steps')}"
        label = c["method"] + ("" if c.get("w") is None else f" w={float(c['w']):.3g}")
        logs.setdefault(panel, {}).setdefault(label, []).append(path)
    return logs


def plot_training_curves(logs: dict[str, dict[str, list[str | Path]]], out_path: str | Path,
                         key: str = "diffusion") -> Path:
    """:func:`training_curves_figure` written to ``out_path``."""
    return save(training_curves_figure(logs, key), out_path, dpi=DPI)


def write_plots(df: pd.DataFrame, logs: dict[str, dict[str, list[str | Path]]], out_dir: str | Path) -> list[Path]:
    """The leaderboard's figures from an `aggregate` table and training logs grouped as
    :func:`training_curves_figure` takes them."""
    out = Path(out_dir)
    return [save(success_per_pair_figure(df), out / "success_per_pair.png", dpi=DPI),
            save(diff_vs_cotrain_figure(df), out / "diff_vs_cotrain.png", dpi=DPI),
            plot_success_vs_ratio(df, out / "success_vs_ratio.png"),
            plot_success_vs_magnitude(df, out / "success_vs_magnitude.png"),
            plot_alignment_vs_discernibility(df, out / "alignment_vs_discernibility.png"),
            plot_training_curves(logs, out / "training_curves.png")]
