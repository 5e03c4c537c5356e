"""Each claim of the study as the suite measures it: its value with a 95% interval, a verdict, what it
measures and how (``measure``), its parts' numbers and the smallest effect its test resolves (``resolution``)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tasks.pairs import STAND_INS

from benchmark.study.design import BALANCED, REFERENCE, UNBALANCED, grid_value
from benchmark.analysis.markdown import ci, num
from benchmark.study.load import StudyData, cells_of, is_study_method, method_label
from benchmark.study.statistics import (CONFIDENCE, NOT_RESOLVED, POOLED, POWER, STUDY_BASE, Boot, Cells,
                                        cell_bootstrap, combine_verdicts, mean_cols, unit_interval, verdict,
                                        window_power)
from benchmark.study.window import window_sweeps

# "CFG keeps discernibility": non-inferiority margin on the MLP probe accuracy of z_cond
DISCERN_MARGIN = 0.05


def _z(p: float) -> float:
    from scipy import stats as sps

    return float(sps.norm.ppf(p))


def _finite(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def difference_resolution(lo: float, hi: float) -> float | None:
    """Smallest difference a test resolves (two-sided 95%, power 80%) from its 95% interval [lo, hi]:
    (z_0.975 + z_0.8) × SE ≈ 2.80 × SE, the SE read from the interval as (hi − lo) / (2 × 1.96);
    None without an interval or with one of no width (every resample alike, e.g. no episode succeeded:
    no SE to read)."""
    if _finite(lo) is None or _finite(hi) is None or hi <= lo:
        return None
    z_a = _z(0.5 + CONFIDENCE / 2)
    return (z_a + _z(POWER)) * (hi - lo) / (2 * z_a)


def correlation_resolution(n_eff: float) -> float | None:
    """Smallest |r| a Fisher-z test over ``n_eff`` points resolves (95%, power 80%):
    tanh(2.80 / sqrt(n_eff − 3)); None for n_eff <= 3."""
    if not n_eff or n_eff <= 3:
        return None
    return math.tanh((_z(0.5 + CONFIDENCE / 2) + _z(POWER)) / math.sqrt(n_eff - 3))


def window_resolution(runs: pd.DataFrame, episodes: int) -> float | None:
    """Smallest margin inside the window the window test's design (:func:`window_power`, at the study's
    base rate) detects with power 80%; None when no margin up to success 1 does."""
    from scipy.optimize import brentq

    rates, inside = window_sweeps(runs)
    present = np.isfinite(rates)
    top = 1.0 - STUDY_BASE

    def short(effect: float) -> float:
        return window_power(inside, present, episodes, effect=effect) - POWER
    if short(top) < 0:
        return None
    return float(brentq(short, 1e-9, top, xtol=1e-6))


def difference_part(label: str, stat: tuple, resolution: float | None = None) -> dict[str, Any]:
    """One part of a claim tested as a difference: its estimate, 95% interval and resolution (from the
    interval unless given)."""
    lo, hi = _finite(stat[1]), _finite(stat[2])
    return dict(part=label, kind="difference", estimate=_finite(stat[0]), lo=lo, hi=hi,
                resolution=difference_resolution(lo, hi) if resolution is None else resolution)


def correlation_part(label: str, row: Any) -> dict[str, Any]:
    """One part of a claim tested as a correlation pooled by Fisher z: its effective n is the pooled
    weight Σ(n_i − 3) plus 3, i.e. ``n − 3 × (methods − 1)``."""
    methods = int(row.methods) if _finite(row.methods) is not None else 0
    n_eff = int(row.n) - 3 * (methods - 1) if methods else 0
    return dict(part=label, kind="correlation", estimate=_finite(row.pearson_r), lo=_finite(row.pearson_lo),
                hi=_finite(row.pearson_hi), n_eff=n_eff, resolution=correlation_resolution(n_eff))


def claim_resolution(parts: list[dict[str, Any]]) -> float | None:
    """A claim's resolution: the largest of its parts' (None when a part, or every part, is missing)."""
    values = [p["resolution"] for p in parts]
    return None if not values or any(v is None for v in values) else max(values)


def _kind_rows(rows: pd.DataFrame, gap: str) -> tuple[str, pd.DataFrame]:
    """The alignment rows of a gap kind and its label: an image kind without runs is read on its
    low-dimensional stand-in, and its label says so."""
    g = rows[rows.gap == gap] if not rows.empty else rows
    if g.empty and gap in STAND_INS and not rows.empty:
        return f"{gap} (no image runs; stand-in {STAND_INS[gap]})", rows[rows.gap == STAND_INS[gap]]
    return gap, g


def _stand_in_beside(rows: pd.DataFrame, gap: str, label: str) -> str:
    """Where an image kind is measured on its image runs, its stand-in's pooled r beside it (not in the verdict)."""
    if label != gap or gap not in STAND_INS or rows.empty:
        return ""
    pooled = rows[(rows.gap == STAND_INS[gap]) & (rows.method == POOLED)]
    if pooled.empty:
        return ""
    r = pooled.iloc[0]
    return (f"; beside it, its stand-in {STAND_INS[gap]}: pooled r = "
            f"{ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True)}, n = {r.n}")


ALIGNMENT_KINDS = (("visual only", 1), ("visual + physics", 1), ("physics only", -1))


def alignment_by_kind(corr: pd.DataFrame) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Verdict, text and numbers per gap kind of "alignment correlates with success for visual gaps and the
    relation reverses for physics-only gaps", from the alignment rows of the correlation table: the
    verdict and the numbers (`correlation_part`) on the :data:`POOLED` row (per-method sweeps pooled by
    Fisher z), the text with each pooled method's own r and n; an image kind without runs is measured on
    its low-dimensional stand-in, and says so."""
    verdicts, texts, parts = [], [], []
    rows = corr[corr.measure == "alignment"] if not corr.empty else corr
    for gap, direction in ALIGNMENT_KINDS:
        label, g = _kind_rows(rows, gap)
        pooled = g[g.method == POOLED] if not g.empty else g
        if pooled.empty:
            verdicts.append(NOT_RESOLVED)
            texts.append(f"{gap}: no runs")
            parts.append(dict(part=gap, kind="correlation", estimate=None, lo=None, hi=None, n_eff=0, resolution=None))
            continue
        r = pooled.iloc[0]
        each = ", ".join(f"{m.method} {num(m.pearson_r, signed=True)} (n = {m.n})"
                         for m in g[(g.method != POOLED) & g.method.map(is_study_method)].itertuples())
        verdicts.append(verdict(r.pearson_lo, r.pearson_hi, direction=direction))
        texts.append(f"{label}: pooled r = {ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True)}, "
                     f"ρ = {num(r.spearman_rho, signed=True)} over {int(r.methods)} methods, n = {r.n}"
                     + (f" ({each})" if each else "") + _stand_in_beside(rows, gap, label))
        parts.append(correlation_part(label, r))
    return verdicts, texts, parts


def _representation_contrast(runs: pd.DataFrame, method: str, metric: str, ref: str = REFERENCE) -> tuple[tuple, int]:
    """Mean over matched (pair, w, seed) units of metric(method) − metric(ref), t interval over units."""
    if runs.empty:
        return (math.nan,) * 3, 0
    a = runs[runs["method"] == method].set_index(["pair", "mix_w", "seed"])[metric]
    b = runs[runs["method"] == ref].set_index(["pair", "mix_w", "seed"])[metric]
    common = a.index.intersection(b.index)
    diffs = (a.loc[common] - b.loc[common]).to_numpy(float)
    return unit_interval(diffs), int(np.isfinite(diffs).sum())


def balanced_ranking(cells: Cells, boot: Boot, methods: list[str]) -> str:
    """Each method's balanced success (cells keyed (pair, method, w)), best first, averaged over the pairs that
    every one of `methods` has, which the text names: averages over unequal sets of pairs would rank the pairs."""
    has = [{k[0] for k in cells if k[1] == m} for m in methods]
    pairs = sorted(set.intersection(*has)) if has else []
    if not pairs:
        return "n/a (no pair has every method)"
    means = {m: float(np.mean([np.mean([boot.col(k)[0] for k in cells if k[0] == p and k[1] == m]) for p in pairs]))
             for m in methods}
    ranked = sorted(means.items(), key=lambda kv: -kv[1])
    return f"averaged over {', '.join(pairs)} (the pairs every method has): " + "; ".join(
        f"{m} {num(v)}" for m, v in ranked)


def full_ratio_sweeps(cells: Cells) -> tuple[list[tuple[list, list]], int]:
    """The (pair, method) sweeps of cells keyed (pair, method, w) that have every balanced and every unbalanced
    ratio, as (balanced keys, unbalanced keys), and how many sweeps are left out for lacking some: a sweep with
    w = 0.5 alone on the unbalanced side would compare another pair of sets (regime variants are not sweeps)."""
    usable, sweeps = [], sorted({(k[0], k[1]) for k in cells if "[" not in k[1]})
    for p, m in sweeps:
        b = [k for k in cells if k[:2] == (p, m) and grid_value(k[2], BALANCED) is not None]
        u = [k for k in cells if k[:2] == (p, m) and grid_value(k[2], UNBALANCED) is not None]
        if len(b) == len(BALANCED) and len(u) == len(UNBALANCED):
            usable.append((b, u))
    return usable, len(sweeps) - len(usable)


def assess_claims(data: StudyData, records: list[dict], runs: pd.DataFrame, window: dict,
                  rep: dict, regimes: dict, guidance: dict) -> list[dict[str, Any]]:
    """Each of the study's claims with the suite's measurement, the study's statement, a verdict, what
    it measures and how (``measure``: a changed string marks a changed measure), its parts' numbers and
    the smallest effect its test resolves at this budget (``resolution``, None: n/a)."""
    claims = []

    def add(cid, claim, study, measure, measured, verdict_, detail, parts):
        claims.append(dict(id=cid, claim=claim, study=study, measure=measure, measured=measured, verdict=verdict_,
                           detail=detail, parts=parts, resolution=claim_resolution(parts)))

    # 1. CFG-ADDA best on average (balanced ratios, mean over pairs)
    cells = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, data.vary), float(r["config"]["w"]))
                     if r["config"].get("w") is not None and grid_value(float(r["config"]["w"]), BALANCED) is not None
                     else None)
    boot = cell_bootstrap(cells)
    methods = sorted({k[1] for k in cells if "[" not in k[1]})
    others = [m for m in methods if m != "cfg_adda"]
    parts, texts, numbers = [], [], []
    for m in others:
        pairs = sorted({k[0] for k in cells if k[1] == m} & {k[0] for k in cells if k[1] == "cfg_adda"})
        if not pairs:
            continue

        def diff(col, m=m, pairs=pairs):
            return mean_cols(mean_cols(col(k) for k in cells if k[0] == p and k[1] == "cfg_adda")
                             - mean_cols(col(k) for k in cells if k[0] == p and k[1] == m) for p in pairs)
        st = boot.stat(diff)
        parts.append(verdict(st[1], st[2]))
        texts.append(f"cfg_adda − {m}: {ci(*st, signed=True)}")
        numbers.append(difference_part(f"cfg_adda − {m}", st))
    missing_m = [m for m in ("cotrain", "domain_cond", "ot", "adda", "cfg") if m in (data.spec.get("methods") or [])
                 and m not in others]
    detail = (f"Balanced success, {balanced_ranking(cells, boot, methods)}. "
              + ("" if "cfg_adda" in methods else "No cfg_adda runs at balanced ratios. ")
              + (f"Not in these runs: {', '.join(missing_m)}. " if missing_m else ""))
    add("cfg_adda_best", "CFG-ADDA is best on average (balanced ratios, averaged over pairs)",
        "≈0.55 against 0.52–0.53 for the others (sim-and-sim, three tasks)",
        "balanced success (mean over w ∈ {0.016, 0.1, 0.3}) of cfg_adda minus each other method, averaged over "
        "pairs; two-level bootstrap (run seeds, shared start states)",
        "; ".join(texts) or "n/a", combine_verdicts(parts) if parts else NOT_RESOLVED, detail, numbers)

    # 2. OT and ADDA raise alignment; CFG keeps discernibility
    parts, texts, numbers = [], [], []
    for m in ("ot", "adda"):
        st, n = _representation_contrast(runs, m, "w_norm")
        parts.append(verdict(st[1], st[2], direction=-1))
        texts.append(f"W(z) {m} − cotrain: {ci(*st, signed=True)} (n={n})")
        numbers.append(difference_part(f"W(z) {m} − cotrain", st))
    st, n = _representation_contrast(runs, "cfg", "discern_mlp_cond")
    parts.append(verdict(st[1], st[2], direction=1, null=-DISCERN_MARGIN))
    texts.append(f"MLP probe z_cond cfg − cotrain: {ci(*st, signed=True)} (n={n})")
    numbers.append(difference_part("MLP probe z_cond cfg − cotrain", st))
    add("align_discern", "OT and ADDA raise alignment (smaller Wasserstein of z than cotrain); CFG keeps "
        "discernibility (probe on z_cond not below cotrain's)",
        "OT and ADDA emphasize alignment, CFG preserves discernibility",
        "scale-free Wasserstein of z (per-run within-domain spread, normalized within pair) of ot and adda minus "
        f"cotrain; MLP probe accuracy on z_cond (grouped k-fold over replay episodes) of cfg minus cotrain, margin "
        f"{DISCERN_MARGIN}; Student-t interval over matched (pair, w, seed) units",
        "; ".join(texts), combine_verdicts(parts),
        "Matched (pair, w, seed) units, scale-free Wasserstein (divided per run by z's within-domain spread) "
        "normalized within pair; Student-t interval over units. "
        f"'Keeps' = non-inferior with a margin of {DISCERN_MARGIN} probe accuracy.", numbers)

    # 3. balanced beats unbalanced (pooled over pairs and the study's methods)
    bcells = cells_of(records, lambda r: (r["config"]["pair"], method_label(r, data.vary), float(r["config"]["w"]))
                      if r["config"].get("w") is not None else None)
    bboot = cell_bootstrap(bcells)
    usable, partial = full_ratio_sweeps(bcells)
    st = (bboot.stat(lambda col: mean_cols(mean_cols(col(k) for k in b) - mean_cols(col(k) for k in u)
                                           for b, u in usable)) if usable else (math.nan,) * 3)
    add("balanced", "Balanced ratios (w ∈ {0.016, 0.1, 0.3}) beat unbalanced ones (w ∈ {0.005, 0.5, 0.8})",
        "balanced ratios give the higher success",
        "mean success at balanced minus at unbalanced ratios per (pair, method) sweep with every one of those "
        "ratios, averaged over sweeps; two-level bootstrap (run seeds, shared start states)",
        f"balanced − unbalanced: {ci(*st, signed=True)} over {len(usable)} (pair, method) sweeps",
        verdict(st[1], st[2]),
        "Per-pair and per-method rows in aggregation.md."
        + (f" {partial} sweeps with part of the six ratios are left out (each would compare other sets of ratios)."
           if partial else "")
        + ("" if usable else " No sweep has every balanced and unbalanced ratio."),
        [difference_part("balanced − unbalanced", st)])

    # 4. best ratio inside (w_n, w_q)
    wc = window["claim"]
    pos = ", ".join(f"{k}: {v}" for k, v in sorted(window["positions"].items())) or "n/a"
    near = ", ".join(f"{k}: {v}" for k, v in sorted(window["nearer"].items())) or "n/a"
    add("window", "The best ratio lies inside the window (w_n, w_q)",
        "search w between w_n = N/(N+M) and w_q = √(N/M)",
        "mean success inside [w_n, w_q] minus mean outside, paired per (pair, method, seed) sweep with every mixing "
        "ratio, t interval over sweeps; not resolved below 80% design power for the study's margin",
        f"mean success inside [w_n, w_q] − mean outside, paired per sweep: {ci(*wc['stat'], signed=True)} over "
        f"{wc['sweeps']} sweeps (odds form [w_n, √N/(√N+√M)]: {ci(*wc['odds'], signed=True)}); {wc['why']}",
        wc["verdict"],
        "Sweeps: (pair, method, seed) of the study's methods with every mixing ratio (a sweep with part of them "
        "would average other ratios outside the window); t interval over sweeps. "
        f"Where the best w falls (descriptive; under no effect it falls outside more often, as more points lie "
        f"there): {pos}. Nearer upper-bound form: {near}. See success_vs_w.md.",
        [difference_part("inside − outside", wc["stat"], window_resolution(runs, data.episodes))])

    # 5. alignment correlates with success for visual gaps, reversed for physics-only gaps
    parts, texts, numbers = alignment_by_kind(rep["corr"])
    add("alignment_corr", "Alignment correlates with success for visual gaps (visual, visual + physics); the "
        "relation reverses for physics-only gaps",
        "|ρ| ≈ 0.6–0.85 for visual and visual + physics; reversed for physics only",
        "Pearson r of alignment (1 − scale-free Wasserstein: per-run within-domain spread, normalized within pair) "
        "with success per gap kind, along each method's ratio sweep, Fisher-z pooled over methods",
        "; ".join(texts), combine_verdicts(parts),
        "Alignment = 1 − scale-free Wasserstein of z (divided per run by z's within-domain spread), normalized "
        "within pair. Pearson r along each method's ratio sweep (its mixing runs in the gap kind), pooled over the "
        "study's methods by Fisher z (weights n − 3) with a 95% interval; each method's r in representation.md.",
        numbers)

    # 6. regimes: the sign flips (+ when disjoint, − when overlapping)
    rc = regimes["corr"]
    parts, texts, numbers = [], [], []
    for regime, direction in (("disjoint", 1), ("overlapping", -1)):
        r = rc[(rc.regime == regime) & (rc.method == POOLED)].iloc[0]
        parts.append(verdict(r.pearson_lo, r.pearson_hi, direction=direction))
        numbers.append(correlation_part(regime, r))
        texts.append(f"{regime}: pooled r = {ci(r.pearson_r, r.pearson_lo, r.pearson_hi, signed=True)} over "
                     f"{int(r.methods)} weights' sweeps, n = {r.n} of its {r.runs} runs (those in a sweep of 4 "
                     f"or more)")
    add("regimes", "The alignment–success relation flips sign between regimes (more alignment helps when disjoint, "
        "hurts when overlapping)", "adversarial weights {0, 0.05, 0.5} place runs in all three regimes; the sign flips",
        "Pearson r of alignment (scale-free Wasserstein) with success per regime (each run's by its z_cond MLP "
        "probe, grouped k-fold over replay episodes, and paired-state retrieval), along each adversarial weight's "
        "ratio sweep, Fisher-z pooled over weights",
        "; ".join(texts), combine_verdicts(parts),
        ("Weights not in this budget's grid: " + ", ".join(f"{w:g}" for w in regimes["not_gridded"]) + ". "
         if regimes["not_gridded"] else "")
        + ("Weights without runs yet: " + ", ".join(f"{w:g}" for w in regimes["absent"]) + ". "
           if regimes["absent"] else "")
        + "See regimes.md.", numbers)

    # 7. lambda = -0.5 helps
    st = guidance["pooled"]
    per = "; ".join(f"{m}: {ci(*v, signed=True)}" for m, v in guidance["contrasts"].items())
    peaks = "; ".join(f"{m} peaks at λ = {', '.join(f'{x:g}' for x in v)}" for m, v in guidance["peaks"].items())
    add("guidance", "Guidance λ = −0.5 helps (against λ = 0, plain conditional sampling)",
        "the sweep over λ ∈ [−2, 2] peaks at −0.5 for CFG and CFG-ADDA",
        "success at guidance λ = −0.5 minus at λ = 0 on the cfg and cfg_adda checkpoints, pooled over methods; "
        "two-level bootstrap (run seeds, shared start states)",
        f"success(λ = −0.5) − success(λ = 0): {ci(*st, signed=True)}" + (f" ({per})" if per else ""),
        verdict(st[1], st[2]), (peaks + ". " if peaks else "") + "See guidance.md.",
        [difference_part("λ = −0.5 − λ = 0", st)])
    return claims
