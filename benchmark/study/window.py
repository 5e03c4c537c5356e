"""Success against the mixing ratio w, the study's ratio window and the window claim's paired test."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.analysis.figures import figure, no_data, save
from benchmark.study.design import in_window, nearer_bound, ratio_window, window_position
from benchmark.analysis.markdown import ci, md_table, num, slug
from benchmark.study.load import StudyData, cells_of, is_study_method, method_label, missing_text, sweep_w
from benchmark.study.statistics import (cell_bootstrap, mean_cols, paired_window_test, wilson, window_power,
                                        window_verdict)


def window_analysis(data: StudyData, runs: pd.DataFrame, records: list[dict], out: Path) -> dict[str, Any]:
    """Success vs w per gap kind and method, the window, and where the best w falls."""
    files: list[str] = []
    figures: dict[str, Figure] = {}
    table_rows = []
    point_rows = []
    if runs.empty:
        gaps = []
    else:
        gaps = sorted(runs["gap"].unique())
    sweep = runs[runs["w"].notna()] if not runs.empty else runs
    # cells: (pair, method label, w); single-domain methods are shared points of every method's sweep
    cells = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, data.vary), sweep_w(r))
                     if sweep_w(r) is not None else None)
    boot = cell_bootstrap(cells)
    grid_w = [float(w) for w in data.spec.get("w") or []]
    include_source = any(w == 0.0 for w in grid_w)
    for gap in gaps:
        pairs = sorted(sweep[sweep["gap"] == gap]["pair"].unique())
        fig, axes = figure(1, max(1, len(pairs)), width=7.0)
        for ax, pair in zip(axes[0], pairs):
            g = sweep[sweep["pair"] == pair]
            n, m = int(g["n_target"].iloc[0]), int(g["n_source"].iloc[0])
            win = ratio_window(n, m)
            singles = {meth: gg for meth, gg in g[g["mix_w"].isna()].groupby("method")}
            for i_m, (method, gm) in enumerate(g[g["mix_w"].notna()].groupby("method")):
                pts = []
                for w, gw in gm.groupby("w"):
                    s, lo, hi = wilson(gw["successes"].sum(), gw["n"].sum())
                    pts.append((w, s, lo, hi))
                    point_rows.append(dict(gap=gap, pair=pair, method=method, w=w, seeds=len(gw),
                                           successes=int(gw["successes"].sum()), n=int(gw["n"].sum()), success=s,
                                           lo=lo, hi=hi))
                xs = [p[0] * 1.03 ** i_m for p in pts]  # methods offset slightly so equal points stay visible
                ys = [p[1] for p in pts]
                err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=method)
                # the method's sweep: its mixing ws, target_only at 1 (and source_only at 0 when gridded)
                keys = [(pair, method, w) for w in sorted(gm["w"].unique())]
                if "target_only" in singles:
                    keys.append((pair, "target_only", 1.0))
                if include_source and "source_only" in singles:
                    keys.append((pair, "source_only", 0.0))
                keys = [k for k in keys if boot.has(k)]
                pt = {k: boot.col(k)[0] for k in keys}
                best = max(pt.values()) if pt else math.nan
                best_ws = sorted(k[2] for k, v in pt.items() if v == best)
                mixing = [k for k in keys if k[1] == method]
                inside = [k for k in mixing if in_window(k[2], win, "w_q")]
                outside = [k for k in mixing if not in_window(k[2], win, "w_q")]
                contrast = (boot.stat(lambda col: mean_cols(col(k) for k in inside)
                                      - mean_cols(col(k) for k in outside))
                            if inside and outside else (math.nan,) * 3)
                reps = boot.matrix[1:, [boot._index[k] for k in keys]] if keys else np.empty((0, 0))
                ok = np.all(np.isfinite(reps), axis=1) if keys else np.array([], bool)
                if keys and ok.any():  # ties share the replicate's vote
                    good = reps[ok]
                    is_max = good == good.max(axis=1, keepdims=True)
                    ins = np.array([in_window(k[2], win, "w_q") for k in keys])
                    p_in = float(np.mean((is_max & ins).sum(axis=1) / is_max.sum(axis=1)))
                else:
                    p_in = math.nan
                if not best_ws:
                    position = nearer = "n/a"
                elif len(best_ws) == 1:
                    position, nearer = window_position(best_ws[0], win), nearer_bound(best_ws[0], win)
                elif len(best_ws) == len(keys):
                    position, nearer = "flat (every point ties)", "n/a (tie)"
                else:
                    tied = list(dict.fromkeys(window_position(w, win) for w in best_ws))  # best_w lists the w's
                    position = f"tie, {tied[0]}" if len(tied) == 1 else "tie across " + " / ".join(tied)
                    nearer = "n/a (tie)"
                table_rows.append(dict(
                    gap=gap, pair=pair, method=method, N=n, M=m, w_n=win["w_n"], w_odds=win["w_odds"], w_q=win["w_q"],
                    sweep=",".join(f"{k[2]:g}" for k in keys), best_w=",".join(f"{w:g}" for w in best_ws),
                    best_success=best, position=position, nearer=nearer, p_best_inside=p_in,
                    chance_inside=float(np.mean([in_window(k[2], win, "w_q") for k in keys])) if keys else math.nan,
                    inside_minus_outside=contrast[0], lo=contrast[1], hi=contrast[2],
                    claim=("[" not in method and set(gm["w"]) >= set(g["w"][g["mix_w"].notna()]))))  # every ratio
            for meth, gg in singles.items():
                s, _, _ = wilson(gg["successes"].sum(), gg["n"].sum())
                ax.axhline(s, linestyle=":" if meth == "target_only" else "--", color="grey" if meth == "target_only"
                           else "tab:brown", label=f"{meth} ({num(s)})")
            ax.axvspan(win["w_n"], win["w_q"], alpha=0.12, color="tab:green", label="window (w_n, w_q)")
            ax.axvline(win["w_odds"], color="tab:green", linestyle="--", linewidth=1,
                       label="w = √N/(√N+√M)")
            ax.set_xscale("log")
            ax.set(title=f"{pair} ({gap}), N={n}, M={m}", xlabel="target fraction w (log)",
                   ylabel="target success", ylim=(-0.03, 1.03))
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if not pairs:
            no_data(axes[0][0], f"no runs for {gap}")
        path = out / f"success_vs_w_{slug(gap)}.png"
        save(fig, path)
        files.append(path.name)
        figures[path.name] = fig
    if not gaps:
        fig, axes = figure()
        no_data(axes[0][0], "no runs yet")
        save(fig, out / "success_vs_w.png")
        files.append("success_vs_w.png")
        figures["success_vs_w.png"] = fig
    tab = pd.DataFrame(table_rows)
    pts = pd.DataFrame(point_rows)
    claim = _window_claim(runs, data.episodes)
    # markdown
    lines = ["# Success against the mixing ratio w", "",
             "Per gap kind, pair and method: target success against w (pooled episodes, 95% Wilson interval), "
             "with the study's ratio window drawn: w_n = N/(N+M) (lower bound), w_q = √(N/M) (upper bound as the "
             "study writes it, shaded to) and w = √N/(√N+√M) (where its figure puts it, dashed). "
             "`target_only` (w = 1) and `source_only` (w = 0) are dotted and dashed reference lines; methods are "
             "offset by 3% along w so that equal points stay visible.",
             "", "Figures: " + ", ".join(f"[{f}]({f})" for f in files), ""]
    lines += ["## Points", "", md_table(["gap", "pair", "method", "w", "seeds", "success [95% Wilson]"],
                                        [[r.gap, r.pair, r.method, f"{r.w:g}", str(r.seeds),
                                          f"{r.successes}/{r.n} = {ci(r.success, r.lo, r.hi)}"]
                                         for r in pts.itertuples()] if not pts.empty else []), ""]
    lines += ["## Where the best w falls", "",
              "The sweep of a method is its mixing ratios plus `target_only` at w = 1"
              + (" and `source_only` at w = 0" if include_source else "") + ". *best w*: highest mean success "
              "(ties listed); *position*: relative to the window; *nearer*: which upper-bound form the best w is "
              "nearer to on a log scale; *P(best inside)*: share of bootstrap replicates whose best w lies in "
              "[w_n, w_q], beside its *chance* value under no effect (the share of the sweep's points inside: the "
              "best of more points outside lands outside more often under pure noise, so neither column tests the "
              "claim); *inside − outside*: mean success at the method's mixing ratios inside [w_n, w_q] minus the "
              "mean at those outside, paired two-level bootstrap 95% interval.", "",
              md_table(["gap", "pair", "method", "N", "M", "w_n", "w = √N/(√N+√M)", "w_q = √(N/M)", "sweep", "best w",
                        "best success", "position", "nearer", "P(best inside)", "chance", "inside − outside [95% CI]"],
                       [[r.gap, r.pair, r.method, str(r.N), str(r.M), num(r.w_n, 3), num(r.w_odds, 3), num(r.w_q, 3),
                         r.sweep, r.best_w, num(r.best_success), r.position, r.nearer, num(r.p_best_inside),
                         num(r.chance_inside), ci(r.inside_minus_outside, r.lo, r.hi, signed=True)]
                        for r in tab.itertuples()] if not tab.empty else []), "",
              "## The window claim", "", _window_text(claim), "",
              missing_text(data, lambda c: dict(c.hparams).get("w") is not None
                           or c.method in ("target_only", "source_only")), ""]
    (out / "success_vs_w.md").write_text("\n".join(lines), encoding="utf-8")
    nearer = tab[tab["claim"]]["nearer"].value_counts().to_dict() if not tab.empty else {}
    positions = tab[tab["claim"]]["position"].value_counts().to_dict() if not tab.empty else {}
    return {"table": tab, "claim": claim, "files": files + ["success_vs_w.md"], "nearer": nearer,
            "positions": positions, "figures": figures}


def window_sweeps(runs: pd.DataFrame, form: str = "w_q") -> tuple[np.ndarray, np.ndarray]:
    """The window claim's sweeps, one per (pair, method, seed) of the study's mixing methods, as
    (rates, inside): success at each mixing ratio present in any sweep (S, K; NaN where the sweep
    has no run) and whether the ratio lies in [w_n, window[form]] for the sweep's N and M.

    Regime variants (``adda[...]``) are left out, as in the other claims, and so are the
    single-domain runs: ``target_only`` at w = 1 is one run shared by every method's sweep of a
    (pair, seed), so counting it in each would make the sweeps dependent (the t interval over
    sweeps takes them as independent), and it is no co-training method's ratio. So is a sweep
    without every ratio of the others: its mean outside the window would be over other ratios
    (w = 0.016 and 0.5 alone, say), another quantity than the whole sweep's.
    """
    claim = runs[runs["mix_w"].notna() & runs["method"].map(is_study_method)] if not runs.empty else runs
    if claim.empty:
        return np.empty((0, 0)), np.empty((0, 0), dtype=bool)
    ws = sorted(claim["mix_w"].unique())
    groups = [g for _, g in claim.groupby(["pair", "method", "seed"]) if set(g["mix_w"]) >= set(ws)]
    if not groups:
        return np.empty((0, len(ws))), np.empty((0, len(ws)), dtype=bool)
    rates, inside = np.full((len(groups), len(ws)), np.nan), np.zeros((len(groups), len(ws)), dtype=bool)
    for i, g in enumerate(groups):
        win = ratio_window(int(g["n_target"].iloc[0]), int(g["n_source"].iloc[0]))
        inside[i] = [in_window(w, win, form) for w in ws]
        for w, success in zip(g["mix_w"], g["success"]):
            rates[i, ws.index(w)] = success
    return rates, inside


def _window_claim(runs: pd.DataFrame, episodes: int) -> dict[str, Any]:
    """The window claim on the runs: the paired test in both window forms, its design power and verdict."""
    rates, inside = window_sweeps(runs)
    odds_rates, odds_inside = window_sweeps(runs, "w_odds")
    stat = tuple(float(x) for x in paired_window_test(rates, inside))
    odds = tuple(float(x) for x in paired_window_test(odds_rates, odds_inside))
    present = np.isfinite(rates)
    sweeps = int(((inside & present).any(axis=1) & (~inside & present).any(axis=1)).sum())
    power = window_power(inside, present, episodes)
    verdict_, why = window_verdict(stat[1], stat[2], power)
    return dict(stat=stat, odds=odds, sweeps=sweeps, power=power, verdict=verdict_, why=why)


def _window_text(claim: dict[str, Any]) -> str:
    """The window claim in a sentence, for success_vs_w.md."""
    return (f"Mean success inside [w_n, w_q] − mean outside, paired within each (pair, method, seed) sweep of the "
            f"study's methods that has every mixing ratio: {ci(*claim['stat'], signed=True)} over {claim['sweeps']} "
            f"sweeps "
            f"(t interval over sweeps); with the odds form [w_n, √N/(√N+√M)]: {ci(*claim['odds'], signed=True)}. "
            f"Verdict: {claim['verdict']} ({claim['why']}).")
