"""The study's analyses of finished runs, each writing its table(s), figure and markdown: the balanced /
unbalanced aggregation, the representation measures against success, the regimes experiment and the
raw-observation discernibility per pair. Each returns its tables, its files and its figures."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.analysis.figures import figure, no_data, save
from benchmark.study.design import (BALANCED, DISJOINT_PROBE, DISJOINT_RETRIEVAL, OVERLAP_PROBE, REFERENCE, REGIMES,
                                    STUDY_WEIGHTS, UNBALANCED, gap_kind, grid_value)
from benchmark.analysis.markdown import ci, md_table, num
from benchmark.study.load import StudyData, cells_of, is_study_method, method_label, missing_text
from benchmark.study.statistics import POOLED, REPS, Boot, cell_bootstrap, mean_cols, sweep_correlations


def balanced_aggregation(records: list[dict], vary: dict | None = None, boot: Boot | None = None,
                         reps: int = REPS) -> pd.DataFrame:
    """Per (pair, method) of the mixing methods: balanced = mean success over w in BALANCED,
    unbalanced = mean over w in UNBALANCED (over the w present: ``*_w`` counts them), and
    ``delta`` = balanced − unbalanced, each with a two-level bootstrap interval; plus an ``all pairs`` row
    per method (the mean over the pairs that have it)."""
    keyed = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, vary), float(r["config"]["w"]))
                     if r["config"].get("w") is not None else None)
    boot = boot if boot is not None else cell_bootstrap(keyed, reps=reps)
    by_pm: dict[tuple[str, str], dict[str, list]] = {}
    for pair, method, w in keyed:
        d = by_pm.setdefault((pair, method), {"b": [], "u": [], "seeds": set()})
        d["seeds"] |= set(keyed[(pair, method, w)])
        if grid_value(w, BALANCED) is not None:
            d["b"].append((pair, method, w))
        if grid_value(w, UNBALANCED) is not None:
            d["u"].append((pair, method, w))
    rows = []

    def row(pair, method, parts, seeds):
        b = [k for p in parts for k in p["b"]]
        u = [k for p in parts for k in p["u"]]

        def side(keys_by_part):
            return lambda col: mean_cols(mean_cols(col(k) for k in ks) for ks in keys_by_part if ks)

        bs = [p["b"] for p in parts if p["b"]]
        us = [p["u"] for p in parts if p["u"]]
        both = [p for p in parts if p["b"] and p["u"]]
        bal = boot.stat(side(bs)) if bs else (math.nan,) * 3
        unb = boot.stat(side(us)) if us else (math.nan,) * 3
        diff = boot.stat(lambda col: mean_cols(mean_cols(col(k) for k in p["b"]) - mean_cols(col(k) for k in p["u"])
                                               for p in both)) if both else (math.nan,) * 3
        rows.append(dict(pair=pair, gap=gap_kind(pair) if pair != "all pairs" else "all",
                         method=method, pairs=len(parts), seeds=len(seeds),
                         balanced=bal[0], balanced_lo=bal[1], balanced_hi=bal[2],
                         balanced_w=len({k[2] for k in b}), unbalanced=unb[0], unbalanced_lo=unb[1],
                         unbalanced_hi=unb[2], unbalanced_w=len({k[2] for k in u}),
                         delta=diff[0], delta_lo=diff[1], delta_hi=diff[2]))

    for (pair, method), d in sorted(by_pm.items()):
        row(pair, method, [d], d["seeds"])
    for method in sorted({m for _, m in by_pm}):
        parts = [d for (p, m), d in sorted(by_pm.items()) if m == method]
        row("all pairs", method, parts, set().union(*(d["seeds"] for d in parts)))
    cols = ["pair", "gap", "method", "pairs", "seeds", "balanced", "balanced_lo", "balanced_hi", "balanced_w",
            "unbalanced", "unbalanced_lo", "unbalanced_hi", "unbalanced_w", "delta", "delta_lo", "delta_hi"]
    return pd.DataFrame(rows, columns=cols)


def aggregation_analysis(data: StudyData, records: list[dict], out: Path) -> dict[str, Any]:
    """``aggregation.md/.csv``: :func:`balanced_aggregation` of the runs, per pair and method and over pairs."""
    tab = balanced_aggregation(records, data.vary)
    tab.round(4).to_csv(out / "aggregation.csv", index=False)
    lines = ["# Aggregation as the study does it", "",
             f"Balanced = mean target success over w ∈ {{{', '.join(f'{w:g}' for w in BALANCED)}}}; unbalanced = "
             f"mean over w ∈ {{{', '.join(f'{w:g}' for w in UNBALANCED)}}} (the study's), per method and pair, with "
             "95% two-level bootstrap intervals (run seeds, then shared start states). `w` columns count the ratios "
             "present (a partial sweep averages over those it has). `all pairs`: the mean over the pairs of that "
             "method, as many as its `pairs` column says (methods run on different pairs are not compared by these "
             "rows: COMPARISON.md ranks them over the pairs they share). The suite's own aggregation (per w, "
             "difference from cotrain, IQM across pairs) is in [leaderboard.md](leaderboard.md).", "",
             md_table(["pair", "gap", "method", "pairs", "seeds", "balanced [95% CI]", "w", "unbalanced [95% CI]",
                       "w", "balanced − unbalanced [95% CI]"],
                      [[r.pair, r.gap, r.method, str(r.pairs), str(r.seeds),
                        ci(r.balanced, r.balanced_lo, r.balanced_hi),
                        f"{r.balanced_w}/{len(BALANCED)}", ci(r.unbalanced, r.unbalanced_lo, r.unbalanced_hi),
                        f"{r.unbalanced_w}/{len(UNBALANCED)}", ci(r.delta, r.delta_lo, r.delta_hi, signed=True)]
                       for r in tab.itertuples()]), "",
             missing_text(data, lambda c: dict(c.hparams).get("w") is not None), ""]
    (out / "aggregation.md").write_text("\n".join(lines), encoding="utf-8")
    return {"table": tab, "files": ["aggregation.md", "aggregation.csv"]}


MEASURES = [
    ("alignment", "alignment of z: 1 − scale-free Wasserstein (normalized within pair)"),
    ("local_alignment", "local alignment: 1 − GW on shallow features (normalized within pair)"),
    ("discern_mlp", "domain probe on z, MLP"),
    ("discern_linear", "domain probe on z, linear"),
    ("discern_mlp_cond", "domain probe on z_cond, MLP"),
    ("structured_alignment", "structured-alignment score"),
]


def representation_analysis(data: StudyData, runs: pd.DataFrame, out: Path) -> dict[str, Any]:
    """``representation.md/.csv``, ``representation_correlations.csv`` and ``representation_scatter.png``:
    every run's representation measures and their correlations with success per gap kind."""
    corr_rows = []
    gaps = sorted(runs["gap"].unique()) if not runs.empty else []
    for gap in gaps:
        for key, desc in MEASURES:
            corr_rows += [dict(gap=gap, measure=key, description=desc, **c)
                          for c in sweep_correlations(runs[runs["gap"] == gap], key, is_study_method)]
    corr = pd.DataFrame(corr_rows)
    # scatter
    shown = MEASURES[:4]
    fig, axes = figure(max(1, len(gaps)), len(shown), width=4.0, height=3.4)
    for i, gap in enumerate(gaps):
        g = runs[runs["gap"] == gap]
        for j, (key, desc) in enumerate(shown):
            ax = axes[i][j]
            for method, gm in g.groupby("method"):
                ax.scatter(gm[key], gm["success"], label=method, s=22, edgecolors="k", linewidths=0.4)
            c = corr[(corr.gap == gap) & (corr.measure == key) & (corr.method == POOLED)].iloc[0]
            ax.set(title=f"{gap}: pooled r={num(c.pearson_r)}, ρ={num(c.spearman_rho)}, n={c.n}", xlabel=desc,
                   ylabel="target success", ylim=(-0.05, 1.05))
            ax.title.set_fontsize("small")
            ax.xaxis.label.set_fontsize("x-small")
            if j == 0:
                ax.legend(fontsize="xx-small")
    if not gaps:
        no_data(axes[0][0], "no runs yet")
    save(fig, out / "representation_scatter.png")
    cols = ["run_id", "pair", "gap", "method", "w", "seed", "success", "z_spread", "align_wasserstein", "w_norm",
            "gw_kind", "gw", "gw_norm", "discern_mlp", "discern_linear", "discern_mlp_cond", "discern_linear_cond",
            "align_nn", "structured_alignment", "regime"]
    per_run = runs[cols] if not runs.empty else pd.DataFrame(columns=cols)
    per_run.to_csv(out / "representation.csv", index=False)
    corr.to_csv(out / "representation_correlations.csv", index=False)
    gw_kinds = sorted(runs["gw_kind"].unique()) if not runs.empty else []
    lines = ["# Representation measures and success", "",
             "Every run: Wasserstein distance between the domains' `z` on paired replay states, scale-free (the "
             "record's `align_wasserstein`: divided by the run's within-domain RMS spread of `z`, `z_spread`), and "
             "min–max normalized across the runs of the same pair (the runs compared), Gromov–Wasserstein on shallow "
             f"features (`{'`, `'.join(gw_kinds) or 'align_gw'}`: `align_gw_shallow` where the record has it, else "
             "`align_gw` on `z`), held-out accuracy of MLP and linear domain probes on `z` and `z_cond`, "
             "chance-corrected retrieval, the structured-alignment score and the regime (regimes.md).", "",
             "## Correlation with success per gap kind", "",
             "Alignment is reported as 1 − normalized distance, so a positive coefficient means *more aligned, "
             "more success*. The study correlates along a ratio sweep: each method's coefficient is over its own "
             "mixing runs of the gap kind (all its ratios, pairs and seeds), and the *" + POOLED + "* row pools the "
             "study's methods (regime variants `[...]` shown, not pooled) on Fisher's z with weights n − 3. "
             "Pearson r and Spearman ρ with 95% Fisher-z intervals, two-sided p-values and the number of runs n "
             "(NaN below 3 runs or for a constant input; no interval below 4).", "",
             md_table(["gap", "measure", "method", "Pearson r [95% CI]", "p", "Spearman ρ [95% CI]", "p", "n"],
                      [[r.gap, r.description, r.method, ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True),
                        num(r.pearson_p, 3), ci(r.spearman_rho, r.spearman_lo, r.spearman_hi, signed=True),
                        num(r.spearman_p, 3), str(r.n)]
                       for r in corr.itertuples()] if not corr.empty else []), "",
             "Scatter plots: [representation_scatter.png](representation_scatter.png).", "",
             "## Every run", "",
             md_table(["pair", "method", "w", "seed", "success", "z spread", "W(z)", "W norm.", "GW", "MLP z",
                       "linear z", "MLP z_cond", "NN retrieval", "structured", "regime"],
                      [[r.pair, r.method, num(r.w, 3), str(r.seed), num(r.success), num(r.z_spread, 3),
                        num(r.align_wasserstein, 3), num(r.w_norm), num(r.gw, 3), num(r.discern_mlp),
                        num(r.discern_linear), num(r.discern_mlp_cond), num(r.align_nn), num(r.structured_alignment),
                        r.regime]
                       for r in runs.sort_values(["pair", "method", "w", "seed"]).itertuples()]
                      if not runs.empty else []), "",
             missing_text(data), ""]
    (out / "representation.md").write_text("\n".join(lines), encoding="utf-8")
    return {"corr": corr, "files": ["representation.md", "representation.csv", "representation_correlations.csv",
                                    "representation_scatter.png"],
            "figures": {"representation_scatter.png": fig}}


def regimes_analysis(data: StudyData, runs: pd.DataFrame, out: Path) -> dict[str, Any]:
    """``regimes.md/.csv`` and ``regimes.png``: each cotrain / ADDA run's regime and the sign of the
    alignment–success relation per regime."""
    from baselines.methods import default_hparams

    default_aw = float(default_hparams("adda")["adversarial_weight"])
    grid_weights = sorted({0.0 if c.method == REFERENCE
                           else float(dict(c.hparams).get("adversarial_weight", default_aw))
                           for c in data.expected.values() if c.method in (REFERENCE, "adda")})
    if not data.expected:  # no grid to compare with: the weights the runs have
        grid_weights = sorted(runs.loc[runs["base"].isin([REFERENCE, "adda"]), "adversarial_weight"].dropna().unique()
                              ) if not runs.empty else []
    not_gridded = [w for w in STUDY_WEIGHTS if not any(abs(w - g) < 1e-12 for g in grid_weights)]
    reg = runs[runs["base"].isin([REFERENCE, "adda"]) & runs["mix_w"].notna()].copy() if not runs.empty else runs
    if not reg.empty:
        from benchmark.analysis.metrics import normalize_across_runs

        reg["alignment_regimes"] = np.nan
        for _, idx in reg.groupby("pair").groups.items():
            raw_w = reg.loc[idx, "align_wasserstein"].to_numpy(float)
            reg.loc[idx, "alignment_regimes"] = 1 - normalize_across_runs(raw_w)
    rows = []
    for regime in REGIMES:  # along each weight's ratio sweep within the regime, pooled over weights
        g = reg[reg["regime"] == regime] if not reg.empty else reg
        for c in sweep_correlations(g, "alignment_regimes", lambda label: True):
            sign = "n/a" if math.isnan(c["pearson_r"]) else ("+" if c["pearson_r"] > 0 else "−")
            rows.append(dict(regime=regime, runs=len(g) if c["method"] == POOLED else c["n"], sign=sign, **c))
    corr = pd.DataFrame(rows)
    present = sorted(reg["adversarial_weight"].dropna().unique()) if not reg.empty else []
    absent = [w for w in grid_weights if not any(abs(w - p) < 1e-12 for p in present)]
    counts = (reg.groupby(["adversarial_weight", "regime"]).size().unstack(fill_value=0)
              if not reg.empty else pd.DataFrame())
    # plot
    fig, axes = figure(1, 1, width=6, height=4.2)
    ax = axes[0][0]
    colors = {"overlapping": "tab:red", "structured": "tab:green", "disjoint": "tab:blue", "unknown": "grey"}
    markers = ["o", "s", "^", "D", "v"]
    if reg.empty:
        no_data(ax, "no cotrain / adda runs")
    else:
        for i, (wt, g) in enumerate(reg.groupby("adversarial_weight")):
            for regime, gr in g.groupby("regime"):
                ax.scatter(gr["alignment_regimes"], gr["success"], c=colors.get(regime, "grey"), marker=markers[i % 5],
                           edgecolors="k", linewidths=0.4, label=f"weight {wt:g}, {regime}")
        ax.legend(fontsize="x-small")
    ax.set(xlabel="alignment of z: 1 − Wasserstein (normalized within pair)", ylabel="target success",
           title="regimes experiment: adversarial weight × ratio sweep", ylim=(-0.05, 1.05))
    save(fig, out / "regimes.png")
    keep = ["run_id", "pair", "method", "adversarial_weight", "w", "seed", "success", "discern_mlp_cond", "align_nn",
            "replay_pairs", "align_wasserstein", "alignment_regimes", "regime"]
    (reg[keep] if not reg.empty else pd.DataFrame(columns=keep)).to_csv(out / "regimes.csv", index=False)
    lines = ["# The regimes experiment", "",
             "The study's design: ADDA at adversarial weights 0.05 and 0.5 and cotrain (weight 0), each over the "
             "ratio sweep. This budget's grid has weights " + (", ".join(f"{w:g}" for w in grid_weights) or "none")
             + (" (not in this budget: " + ", ".join(f"{w:g}" for w in not_gridded) + ")" if not_gridded else "")
             + ". Each run's regime from its measures "
             f"(`benchmark.study.classify_regime`): **overlapping** when the MLP domain probe on z_cond is below "
             f"{OVERLAP_PROBE} (near chance 0.5); **disjoint** when that probe is at least {DISJOINT_PROBE} and "
             f"chance-corrected nearest-neighbour retrieval of the paired state on z is below {DISJOINT_RETRIEVAL}; "
             "**structured** otherwise.", "",
             ("Weights of the grid with no runs yet: " + ", ".join(f"{w:g}" for w in absent) + "." if absent else
              "Every weight of this budget's grid has runs."), "",
             "## Regime counts (rows: adversarial weight)", "",
             md_table(["weight"] + list(counts.columns), [[f"{i:g}"] + [str(v) for v in r]
                                                          for i, r in zip(counts.index, counts.to_numpy())])
             if not counts.empty else "_(no runs)_", "",
             "## Sign of the alignment–success relation per regime", "",
             "Alignment = 1 − scale-free Wasserstein distance of z normalized within pair over these runs. The study "
             "correlates along a ratio sweep: per regime, each weight's (method's) coefficient over its runs in that "
             "regime, and the *" + POOLED + "* row pooling them with weights n − 3 (a weight with 3 runs or fewer "
             "adds nothing). The study: more alignment helps when disjoint (+), hurts when overlapping (−).", "",
             md_table(["regime", "method", "runs", "sign", "Pearson r [95% CI]", "p", "Spearman ρ", "p", "n"],
                      [[r.regime, r.method, str(r.runs), r.sign,
                        ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True), num(r.pearson_p, 3),
                        num(r.spearman_rho, signed=True), num(r.spearman_p, 3), str(r.n)]
                       for r in corr.itertuples()]), "",
             "## Runs", "",
             md_table(["pair", "weight", "w", "seed", "success", "MLP z_cond", "NN retrieval", "W norm.", "regime"],
                      [[r.pair, f"{r.adversarial_weight:g}", num(r.w, 3), str(r.seed), num(r.success),
                        num(r.discern_mlp_cond), num(r.align_nn), num(1 - r.alignment_regimes), r.regime]
                       for r in reg.sort_values(["pair", "adversarial_weight", "w", "seed"]).itertuples()]
                      if not reg.empty else []), "",
             "Figure: [regimes.png](regimes.png).", "",
             missing_text(data, lambda c: c.method in (REFERENCE, "adda")), ""]
    (out / "regimes.md").write_text("\n".join(lines), encoding="utf-8")
    return {"corr": corr, "absent": absent, "not_gridded": not_gridded,
            "files": ["regimes.md", "regimes.csv", "regimes.png"], "figures": {"regimes.png": fig}}


RAW = [("raw_discern_linear", "obs, linear"), ("raw_discern_mlp", "obs, MLP"),
       ("raw_discern_obs_action_linear", "obs–action, linear"), ("raw_discern_obs_action_mlp", "obs–action, MLP")]


def raw_analysis(data: StudyData, runs: pd.DataFrame, out: Path) -> dict[str, Any]:
    """``raw_discernibility.md/.csv`` and ``raw_discernibility.png``: per pair, the domain probes' accuracy
    on raw observation and observation–action histories."""
    rows = []
    grid_pairs = list(data.spec.get("pairs") or [])
    for pair in grid_pairs + (sorted(set(runs["pair"]) - set(grid_pairs)) if not runs.empty else []):
        g = runs[runs["pair"] == pair] if not runs.empty else runs
        # a pair property: one value per run seed (the replay set), averaged over the runs of that seed
        per_seed = g.groupby("seed")[[k for k, _ in RAW]].mean() if not g.empty else pd.DataFrame()
        row = dict(pair=pair, gap=gap_kind(pair), seeds=len(per_seed), runs=len(g))
        for k, _ in RAW:
            row[k] = float(per_seed[k].mean()) if len(per_seed) and per_seed[k].notna().any() else math.nan
        vals = [row[k] for k, _ in RAW if not math.isnan(row[k])]
        row["reading"] = ("no runs" if not vals else
                          ("domains readable" if max(vals) >= OVERLAP_PROBE else "near chance: indistinguishable"))
        rows.append(row)
    tab = pd.DataFrame(rows)
    tab.to_csv(out / "raw_discernibility.csv", index=False)
    fig, axes = figure(1, 1, width=max(5, 1.6 * max(1, len(tab))), height=4)
    ax = axes[0][0]
    have = tab[tab["runs"] > 0] if not tab.empty else tab
    if have.empty:
        no_data(ax, "no runs")
    else:
        x = np.arange(len(have))
        for i, (k, name) in enumerate(RAW):
            ax.bar(x + (i - 1.5) * 0.2, have[k], width=0.2, label=name)
        ax.axhline(0.5, color="k", linestyle=":", label="chance")
        ax.set_xticks(x, have["pair"], rotation=20, fontsize="small")
        ax.legend(fontsize="x-small")
    ax.set(ylabel="held-out domain-probe accuracy", ylim=(0, 1.05), title="raw-observation discernibility per pair")
    save(fig, out / "raw_discernibility.png")
    lines = ["# Raw-observation discernibility per pair", "",
             "Whether a policy could tell the domains apart at all from what it sees: held-out accuracy of a linear "
             "and a 2-layer MLP domain probe on the raw observation histories of the paired replay states, and on "
             "observation–action histories (records' `raw_discern_*`), averaged over run seeds. Chance is 0.5; "
             f"*readable* means some probe reaches {OVERLAP_PROBE}.", "",
             md_table(["pair", "gap", "obs linear", "obs MLP", "obs–action linear", "obs–action MLP", "seeds",
                       "reading"],
                      [[r.pair, r.gap, num(r.raw_discern_linear), num(r.raw_discern_mlp),
                        num(r.raw_discern_obs_action_linear), num(r.raw_discern_obs_action_mlp), str(r.seeds),
                        r.reading]
                       for r in tab.itertuples()] if not tab.empty else []), "",
             "Figure: [raw_discernibility.png](raw_discernibility.png).", ""]
    (out / "raw_discernibility.md").write_text("\n".join(lines), encoding="utf-8")
    return {"table": tab, "files": ["raw_discernibility.md", "raw_discernibility.csv", "raw_discernibility.png"],
            "figures": {"raw_discernibility.png": fig}}
