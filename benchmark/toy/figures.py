"""The figures of `cotrain toy` (PNG, matplotlib's Agg canvas): methods, ratio, reweighting, guidance, grid."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmark.toy.harness import GUIDANCE_GRID
from benchmark.toy.stats import mean_ci

def _fig(ncols: int = 1, width: float = 7.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _err(ci: tuple[float, float, float]) -> list[float]:
    m, lo, hi = ci
    return [0.0, 0.0] if math.isnan(lo) else [m - lo, hi - m]


def plot_methods(rows: dict, path: Path) -> None:
    fig, axes = _fig(3, 13)
    names = list(rows)
    x = np.arange(len(names))
    for ax, keys, title in ((axes[0], ("align_wasserstein",), "alignment: W(z)/spread (lower = aligned)"),
                            (axes[1], ("discern_mlp", "discern_mlp_cond"), "discernibility: MLP probe accuracy"),
                            (axes[2], ("error",), "target error (lower = better)")):
        width = 0.8 / len(keys)
        for k, key in enumerate(keys):
            vals = [rows[n][key] for n in names]
            ax.bar(x + (k - (len(keys) - 1) / 2) * width, [v[0] for v in vals], width,
                   yerr=np.array([_err(v) for v in vals]).T, capsize=2, label=key)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_title(title, fontsize="medium")
        if len(keys) > 1:
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def plot_ratio(ws, curves: dict, to_err, n: int, path: Path) -> None:
    fig, ax = _fig()
    colors = ["C0", "C1", "C2", "C3", "C4"]
    for c, (mm, (ys, rules)) in zip(colors, curves.items()):
        stats_ = [mean_ci(y) for y in ys]
        ax.errorbar(ws, [s[0] for s in stats_], yerr=np.array([_err(s) for s in stats_]).T, color=c, marker="o",
                    capsize=2, label=f"M = {mm} (N/M = {n / mm:.3g})")
        for style, key in ((":", "w_n"), ("--", "odds"), ("-.", "sqrt")):
            ax.axvline(rules[key], color=c, ls=style, lw=0.8)
    ax.axhline(to_err[0], color="k", lw=0.8, label="target_only")
    ax.set_xscale("log")
    ax.set(xlabel="w (target fraction of each batch); lines: w_n (:), √N/(√N+√M) (--), √(N/M) (-.)",
           ylabel="target error (mean L2)")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def plot_reweighting(rew: dict, path: Path) -> None:
    fig, ax = _fig()
    ws = list(rew)
    for idx, label in ((0, "mean position (0 = source map, 1 = target map)"), (1, "share nearer the target map")):
        vals = [rew[w][idx] for w in ws]
        ax.errorbar(ws, [v[0] for v in vals], yerr=np.array([_err(v) for v in vals]).T, marker="o", capsize=2,
                    label=label)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="pure reweighting: position = w")
    ax.set(xlabel="w", ylabel="position", title="toy/action_map: w alone moves the action between the maps")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def plot_guidance(curves: dict, path: Path) -> None:
    fig, ax = _fig()
    for m, c in curves.items():
        stats_ = [mean_ci(y) for y in c]
        ax.errorbar(GUIDANCE_GRID, [s[0] for s in stats_], yerr=np.array([_err(s) for s in stats_]).T, marker="o",
                    capsize=2, label=m)
    ax.axvline(-0.5, color="grey", ls=":", lw=0.8, label="λ = −0.5 (the study's best)")
    ax.set(xlabel="guidance scale λ", ylabel="target error (mean L2)")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def plot_grid(dzs, ws, cell: np.ndarray, an: dict, path: Path) -> None:
    fig, (ax, ax2) = _fig(2, 11)
    im = ax.imshow(cell, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(ws)), [f"{w:g}" for w in ws])
    ax.set_yticks(range(len(dzs)), [f"{d:g}" for d in dzs])
    for a in range(cell.shape[0]):
        for b in range(cell.shape[1]):
            ax.text(b, a, f"{cell[a, b]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set(xlabel="w", ylabel="Δz", title="target error (mean over seeds)")
    fig.colorbar(im, ax=ax)
    keys = ("A", "B", "AB", "error")
    ax2.bar(["Δz", "w", "Δz × w", "residual"], [an["share"][k] for k in keys], color=["C0", "C1", "C2", "grey"])
    ax2.set(ylabel="share of the total sum of squares", title="two-way ANOVA of the target error")
    fig.savefig(path, dpi=110)
