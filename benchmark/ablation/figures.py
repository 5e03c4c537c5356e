"""An ablation's figures (Agg canvases, `benchmark.analysis.figures`): success against magnitude per factor,
the source policy's ranked drop, and the representation against magnitude."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes

from benchmark.analysis.figures import figure, no_data, save

DPI = 120
COLUMNS = 4
MAGNITUDE_AXIS = (-0.05, 1.05)  # every panel the whole magnitude range, drawn cells or not


def _errorbar(ax: Axes, rows: list[dict[str, Any]], y: str, lo: str, hi: str, **style) -> None:
    rows = sorted((r for r in rows if not math.isnan(r[y])), key=lambda r: r["magnitude"])
    if rows:
        ax.errorbar([r["magnitude"] for r in rows], [r[y] for r in rows],
                    yerr=[[r[y] - r[lo] for r in rows], [r[hi] - r[y] for r in rows]], capsize=3, **style)


def success_figure(rows: list[dict[str, Any]], compounded: list[dict[str, Any]] = ()):
    """One panel per factor: success (95% interval) against magnitude, a line per method, the expert dashed; in a
    factor set's panel, each method's success if its factors caused failures independently, dotted."""
    factors = list(dict.fromkeys(r["factor"] for r in rows))
    ncols = min(COLUMNS, len(factors))
    fig, axes = figure(-(-len(factors) // ncols), ncols, width=4.0, height=3.2)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for ax, factor in zip(axes.flat, factors):
        predicted_any = False
        for method in methods:
            mine = [r for r in rows if r["factor"] == factor and r["method"] == method]
            style = dict(linestyle="--", color="k", marker="s") if method == "expert" else dict(marker="o")
            _errorbar(ax, mine, "success", "ci_lo", "ci_hi", label=method, **style)
            predicted = sorted((c for c in compounded if c["factor"] == factor and c["method"] == method),
                               key=lambda c: c["magnitude"])
            if predicted and (base := [r for r in mine if r["magnitude"] == 0.0 and not math.isnan(r["success"])]):
                ax.plot([0.0, *(c["magnitude"] for c in predicted)], [base[0]["success"],
                        *(c["predicted"] for c in predicted)], linestyle=":", color="grey",
                        label=f"{method}: factors independent")
                predicted_any = True
        if predicted_any:
            ax.legend(fontsize="x-small")
        ax.set(title=factor, xlabel="magnitude", ylabel="target success", xlim=MAGNITUDE_AXIS, ylim=(-0.02, 1.02))
    for ax in list(axes.flat)[len(factors):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    return fig


def sensitivity_figure(ranked: list[dict[str, Any]]):
    """The source policy's drop at each factor's largest magnitude (95% interval), factors ranked."""
    fig, axes = figure(width=6.0, height=max(2.5, 0.45 * len(ranked) + 1.0))
    ax = axes[0, 0]
    if not ranked:
        no_data(ax, "no drop measured yet (source_only at magnitude 0 and above)")
    else:
        labels = [f"{r['factor']} (m={r['at']:g})" for r in ranked][::-1]
        drops = [r["drop"] for r in ranked][::-1]
        errors = [[r["drop"] - r["drop_lo"] for r in ranked][::-1], [r["drop_hi"] - r["drop"] for r in ranked][::-1]]
        ax.barh(labels, drops, xerr=errors, capsize=3, color="tab:red", alpha=0.7)
        ax.axvline(0.0, color="k", linewidth=0.8)
    ax.set(xlabel="success drop of source_only from magnitude 0", title="sensitivity (ranked)")
    return fig


def _line_style(i: int) -> dict[str, Any]:
    """The i-th factor's line: the 10 colours of the default cycle, then again with another dash and marker, so
    no two of up to 30 factors look alike."""
    return dict(color=f"C{i % 10}", linestyle=("-", "--", ":")[i // 10 % 3], marker=("o", "s", "^")[i // 10 % 3])


def representation_figure(rows: list[dict[str, Any]]):
    """The cell's raw-observation discernibility, and each method's scale-free alignment of z, against magnitude,
    a line per factor."""
    methods = [m for m in dict.fromkeys(r["method"] for r in rows)  # measured above magnitude 0 (not the expert)
               if any(not math.isnan(r["align_wasserstein"]) for r in rows if r["method"] == m and r["magnitude"] > 0)]
    fig, axes = figure(1, 1 + len(methods), width=4.5, height=3.4)
    factors = list(dict.fromkeys(r["factor"] for r in rows))
    first = rows[0]["method"] if rows else None
    panels = [("raw_discern_mlp", first, "raw observations: MLP probe accuracy")]
    panels += [("align_wasserstein", m, f"{m}: W(z) / spread") for m in methods]
    for ax, (key, method, title) in zip(axes.flat, panels):
        shown = False
        for i, factor in enumerate(factors):
            mine = [r for r in rows if r["factor"] == factor and r["method"] == method and not math.isnan(r[key])]
            if mine:
                mine.sort(key=lambda r: r["magnitude"])
                ax.plot([r["magnitude"] for r in mine], [r[key] for r in mine], label=factor, **_line_style(i))
                shown = True
        if shown:
            ax.legend(fontsize="x-small")
        else:
            no_data(ax, "no item measured it yet")
        ax.set(title=title, xlabel="magnitude", ylabel=key, xlim=MAGNITUDE_AXIS)
    return fig


def write_figures(rows: list[dict[str, Any]], ranked: list[dict[str, Any]], out_dir: Path,
                  compounded: list[dict[str, Any]] = ()) -> list[Path]:
    return [save(success_figure(rows, compounded), out_dir / "success_vs_magnitude.png", dpi=DPI),
            save(sensitivity_figure(ranked), out_dir / "sensitivity.png", dpi=DPI),
            save(representation_figure(rows), out_dir / "representation_vs_magnitude.png", dpi=DPI)]
