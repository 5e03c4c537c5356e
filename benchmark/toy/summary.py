"""`cotrain toy` (`toy_study`): the study's qualitative findings, each measured and reported with 95%
intervals over seeds (t intervals of the seed means; the seeds are the only replication), never asserted.

Every run is a harness run of a toy pair (`benchmark.toy.grid`), evaluated exactly on the target test
inputs. Findings:
1. alignment and discernibility of each method's representation beside its target error;
2. target error against the mixing ratio w for several N/M, the optimum against the ratio rules;
3. the importance-reweighting effect alone (`toy/action_map`, identical inputs): the learned
   action's position between the source map (0) and the target map (1) against w;
4. the CFG guidance-scale sweep λ ∈ {−2, …, 2} for `cfg` and `cfg_adda`;
5. the Δz × w grid on `toy/study` and the two-way analysis of variance of the target error;
and, for every toy pair, whether `target_only` is clearly worse than the best co-trained policy.
A claim about the best of several settings measures each seed at the setting best on the other seeds
(`loso_choice`); a claim that the best lies in a region compares the mean error inside it with the mean
outside, within each seed (`inside_minus_outside`): neither favours a side when nothing differs.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmark.harness.config import PROFILES, SUITE_VERSION, RunConfig
from benchmark.toy.figures import plot_grid, plot_guidance, plot_methods, plot_ratio, plot_reweighting
from benchmark.toy.grid import (ALL_METHODS, MIXING_METHODS, MODERATE_DZ, SMALL_W, ToySize, findings, run_all)
from benchmark.toy.harness import GUIDANCE_GRID
from benchmark.toy.stats import (anova_share_intervals, fmt_ci, inside_minus_outside, loso_choice, mean_ci,
                                 mixed_share_verdict, optimum, sign_verdict, two_way_anova)


def _stat(results: dict, runs: list[RunConfig], key: str = "error", section: str = "eval") -> tuple[float, ...]:
    return mean_ci([results[r][section][key] for r in runs])


def toy_study(out_dir: str | Path = "results/toy", runs_dir: str | Path = "runs/toy", size: ToySize = ToySize(),
              parallel: int = 2, command: str = "cotrain toy", log=print) -> Path:
    """Run the five findings and the per-pair checks; write PNGs and `summary.md` into `out_dir`."""
    from baselines import natural_ratio, odds_rule, sqrt_rule
    from tasks.toy import N_SOURCE, N_TARGET, SUCCESS_THRESHOLD

    t_start = time.time()
    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = PROFILES[size.profile]
    runs = findings(size)
    f1, f2, f2_source, f3, f5, checks = (runs.methods, runs.ratio, runs.ratio_source, runs.reweighting, runs.grid,
                                         runs.checks)
    f2_target = f1["target_only"]
    N, M = N_TARGET, N_SOURCE
    everything = runs.runs()
    log(f"cotrain toy: {len(everything)} runs of {profile.steps} steps on {parallel} worker(s)")
    n_cached = sum((runs_dir / cfg.run_id() / "done").exists() for cfg in everything)
    res = run_all(everything, runs_dir, parallel=parallel, log=log)
    t_runs = time.time() - t_start
    verdicts: list[tuple[str, str, str]] = []  # (the study's claim, measured here, verdict)

    lines: list[str] = []
    add = lines.append
    add("# Toy models of sim-and-real co-training: the study's findings, measured\n")
    add(f"Command: `{command}`  ")
    run_s = sum(res[cfg]["wall_s"] for cfg in everything)
    add(f"Runs: {len(everything)} harness runs in `{runs_dir}` ({n_cached} already done and read back, the rest run "
        f"by this call in {t_runs:.0f} s on {parallel} worker(s)); their training and evaluation wall times sum to "
        f"{run_s:.0f} s. Suite {SUITE_VERSION}. Timings on shared machines vary with the load.\n")
    verdict_at = len(lines)
    add(f"Setup (tasks/toy.py): N = {N} target and M = {M} source samples unless stated; policy: the suite's "
        f"diffusion policy (residual MLP, width {profile.width}, depth {profile.depth}, z of {profile.z_dim}, DDPM 100 "
        f"/ DDIM 10), {profile.steps} steps of batch 256; every run is a harness run (`cotrain run --profile "
        f"{size.profile}`, its record in its run folder); target error = mean L2 distance of one sampled action to "
        f"the exact target action over {profile.episodes} test inputs; success = error < {SUCCESS_THRESHOLD}. "
        f"Intervals: 95% t intervals over seeds ({size.seeds} seeds for findings 1-4, {size.grid_seeds} for the "
        f"grid and the pair checks); a bracket is [low, high]. Structured regime of findings 1, 2, 4: "
        f"toy/study at Δz = {size.structured_dz:g}. Methods use their default hyperparameters "
        f"(`baselines.hparams`): mixing methods at w = default_ratio(N, M) = "
        f"{res[f1['cotrain'][0]]['config']['w']:.3f}; `cfg` and `cfg_adda` sample at their default λ = -0.5 "
        f"in finding 1. With batch 256, a w under 1/256 still puts one target row in each diffusion batch "
        f"(baselines.data.MixedSampler); the alignment terms of ot, adda and cfg_adda compare their own "
        f"equal-size samples of both domains, whatever w (baselines.make_sampler). Observations are scaled by "
        f"2 / the patch side on every axis, whatever Δz (benchmark/toy/harness.py, `fit_toy_normalizer`). Where a claim "
        f"is about the best of several settings, each seed is measured at the setting best on the other seeds "
        f"(`loso_choice`), so the selection favours neither side; where it says the best lies in a region, the "
        f"mean error inside the region is compared with the mean outside, within each seed.\n")

    # ---- finding 1
    add("## 1. Alignment, discernibility and target error per method\n")
    add("Alignment of z: W(z)/spread, the Wasserstein distance between the domains' z on 256 paired inputs "
        "(same patch coordinates in both domains; smaller = more aligned) divided by z's within-domain spread "
        "(each domain's RMS distance to its own mean, averaged over the two; `benchmark.analysis.metrics`), so a method "
        "cannot lower it by shrinking z; and chance-corrected nearest-neighbour retrieval of the paired input "
        "(1 = aligned). Discernibility: held-out accuracy of a 2-layer MLP domain probe on z and on z_cond (z "
        "plus the domain embedding; 0.5 = chance).\n")
    add("| method | W(z)/spread | z spread | NN retrieval | probe MLP z | probe MLP z_cond | structured | "
        "target error | success |")
    add("|---|---|---|---|---|---|---|---|---|")
    f1_rows = {}
    for m in ALL_METHODS:
        sp = f1[m]
        row = {k: _stat(res, sp, k, "metrics") for k in ("align_wasserstein", "z_spread", "align_nn", "discern_mlp",
                                                         "discern_mlp_cond", "structured_alignment")}
        row["error"], row["success"] = _stat(res, sp), _stat(res, sp, "success")
        f1_rows[m] = row
        add(f"| {m} | {fmt_ci(row['align_wasserstein'])} | {fmt_ci(row['z_spread'])} | {fmt_ci(row['align_nn'], 2)} | "
            f"{fmt_ci(row['discern_mlp'], 2)} | {fmt_ci(row['discern_mlp_cond'], 2)} | "
            f"{fmt_ci(row['structured_alignment'], 2)} | {fmt_ci(row['error'])} | {fmt_ci(row['success'], 2)} |")
    plot_methods(f1_rows, out_dir / "methods.png")
    best_mix = min(MIXING_METHODS, key=lambda m: f1_rows[m]["error"][0])
    add("")
    add(_claims_methods(f1_rows, res, f1, best_mix))

    def paired(a_runs, b_runs, key="error", section="eval"):
        return mean_ci([res[a][section][key] - res[b][section][key] for a, b in zip(a_runs, b_runs)])

    for m in ("ot", "adda"):
        d = paired(f1[m], f1["cotrain"], "align_wasserstein", "metrics")
        verdicts.append((f"{m} aligns z (smaller W(z)/spread than cotrain)",
                         f"W/spread({m}) − W/spread(cotrain) = {fmt_ci(d)}",
                         sign_verdict(d)))
        d = paired(f1[m], f1["cotrain"], "discern_mlp", "metrics")
        verdicts.append((f"{m} (alignment only) loses discernibility of z", f"probe({m}) − probe(cotrain) = "
                         f"{fmt_ci(d, 2)}", sign_verdict(d)))
    others = [m for m in MIXING_METHODS if m != "cfg_adda"]
    rivals = [others[k] for k in loso_choice([[res[s]["eval"]["error"] for s in f1[m]] for m in others])]
    d = mean_ci([res[a]["eval"]["error"] - res[f1[r][i]]["eval"]["error"]
                 for i, (a, r) in enumerate(zip(f1["cfg_adda"], rivals))])
    verdicts.append(("cfg_adda has the lowest target error",
                     f"cfg_adda − the best other co-training method (chosen on the other seeds; per seed "
                     f"{', '.join(rivals)}) = {fmt_ci(d)}", sign_verdict(d)))
    add("\n![methods](methods.png)\n")

    # ---- finding 2
    add("## 2. Target error against the mixing ratio, several N/M\n")
    add("| M | w_n = N/(N+M) | √(N/M) | √N/(√N+√M) | grid w in [w_n, √(N/M)] | error inside − outside "
        "[95%] | lowest mean (grid) | bootstrap range of it | error there | target_only | source_only | "
        "nearer rule (log w) |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    curves = {}
    to_err = _stat(res, f2_target)
    ratio_w = np.array(size.ratio_w)
    contrasts = []
    for mm in size.n_sources:
        ys = np.array([[res[s]["eval"]["error"] for s in f2[(mm, w)]] for w in size.ratio_w])  # (W, seeds)
        opt, rng_lo, rng_hi = optimum(ratio_w, ys)
        rules = {"w_n": natural_ratio(N, mm), "odds": odds_rule(N, mm), "sqrt": sqrt_rule(N, mm)}
        near = min(rules, key=lambda k: abs(math.log(opt) - math.log(rules[k])))
        dist = ", ".join(f"{k} {abs(math.log10(opt / v)):.2f}" for k, v in rules.items())
        curves[mm] = (ys, rules)
        inside = (ratio_w >= rules["w_n"]) & (ratio_w <= rules["sqrt"])
        diff = inside_minus_outside(ys, inside)
        d = mean_ci(diff)
        in_w = ", ".join(f"{w:g}" for w in ratio_w[inside]) or "none"
        if np.isfinite(diff).all():
            contrasts.append(diff)
        verdicts.append((f"M = {mm}: the best w lies in the window [w_n, √(N/M)] = [{rules['w_n']:.3f}, "
                         f"{rules['sqrt']:.3f}] (odds form √N/(√N+√M) = {rules['odds']:.3f})",
                         f"mean error at the grid w inside ({in_w}) − mean outside, paired within each seed's "
                         f"sweep: {fmt_ci(d)}",
                         sign_verdict(d) if np.isfinite(diff).all() else "not testable (no grid w on one side)"))
        add(f"| {mm} | {rules['w_n']:.3f} | {rules['sqrt']:.3f} | {rules['odds']:.3f} | {in_w} | {fmt_ci(d)} | "
            f"{opt:g} | [{rng_lo:g}, {rng_hi:g}] | {fmt_ci(mean_ci(ys[list(size.ratio_w).index(opt)]))} | "
            f"{fmt_ci(to_err)} | {fmt_ci(_stat(res, f2_source[mm]))} | {near} (distances in log10 w: {dist}) |")
    if len(contrasts) > 1:
        d = mean_ci(np.mean(contrasts, axis=0))
        verdicts.append((f"the best w lies in the window [w_n, √(N/M)] (M = {', '.join(map(str, size.n_sources))} "
                         f"pooled)", f"the per-M differences above averaged within each seed: {fmt_ci(d)}",
                         sign_verdict(d)))
    plot_ratio(size.ratio_w, curves, to_err, N, out_dir / "ratio.png")
    add("\nThe window is [w_n, √(N/M)], as the study writes its rule; the odds form √N/(√N+√M) is beside it. "
        "\"Error inside − outside\": within each seed's sweep, the mean target error at the grid ratios inside "
        "the window minus the mean at those outside (negative: the window is better), with a 95% t interval "
        "over seeds; unlike asking whether the grid's best ratio falls inside, it is unbiased when w has no "
        "effect, whatever the number of grid ratios on each side. The lowest mean, its bootstrap range (the "
        "2.5-97.5 percentile of the argmin over 2000 resamples of the seeds) and the nearer rule (|log w| "
        "distances; the study reports w on a log scale) describe the curve and decide no verdict.\n")
    add("![ratio](ratio.png)\n")

    # ---- finding 3
    add("## 3. Importance reweighting alone (toy/action_map: identical inputs, the target map turned by 90°)\n")
    add("Position of the sampled action between the source map (0) and the target map (1) at the same input "
        "(projection on the segment between them), and the share of samples nearer the target map. Where the "
        "inputs coincide, the denoiser's optimum is the mixture of both domains' actions weighted w : 1 − w "
        "(docs/PROTOCOL.md, \"importance reweighting\"), so both should follow w.\n")
    add("| w | mean position | share nearer target map | target error |")
    add("|---|---|---|---|")
    rew = {}
    for w in size.reweight_w:
        rew[w] = (_stat(res, f3[w], "position"), _stat(res, f3[w], "target_mode"), _stat(res, f3[w]))
        add(f"| {w:g} | {fmt_ci(rew[w][0], 2)} | {fmt_ci(rew[w][1], 2)} | {fmt_ci(rew[w][2])} |")
    plot_reweighting(rew, out_dir / "reweighting.png")
    ws = np.array(size.reweight_w)
    pos_means = np.array([rew[w][0][0] for w in size.reweight_w])
    from scipy import stats as _st

    rho = _st.spearmanr(ws, pos_means)
    mono = bool(np.all(np.diff(pos_means) > 0))
    add(f"\nSpearman ρ(w, mean position) = {rho.statistic:.2f} over {len(ws)} ratios; the seed-mean position "
        f"is {'strictly increasing' if mono else 'not strictly increasing'} in w. Mean |position − w| over the "
        f"mixed ratios: {np.mean(np.abs(pos_means[1:-1] - ws[1:-1])):.2f}.\n")
    add("![reweighting](reweighting.png)\n")
    verdicts.append(("where representations overlap, w alone moves the action toward the heavier domain",
                     f"position {pos_means[0]:.2f} at w = {ws[0]:g} to {pos_means[-1]:.2f} at w = {ws[-1]:g}; "
                     f"Spearman ρ = {rho.statistic:.2f}", "reproduces" if mono else "does not"))

    # ---- finding 4
    add("## 4. Classifier-free guidance scale (toy/study, structured Δz)\n")
    add("Guidance ε̂ = ε(∅) + (1 + λ)(ε(target) − ε(∅)); λ = 0 is conditional sampling. The models of finding 1, "
        "evaluated at every λ on the same inputs and noise.\n")
    add("| λ | " + " | ".join(f"{m} target error" for m in ("cfg", "cfg_adda")) + " |")
    add("|---|---|---|")
    lam_curves = {}
    for m in ("cfg", "cfg_adda"):
        lam_curves[m] = np.array([[res[s]["guidance"][str(lam)]["error"] for s in f1[m]] for lam in GUIDANCE_GRID])
    for i, lam in enumerate(GUIDANCE_GRID):
        add(f"| {lam:g} | {fmt_ci(mean_ci(lam_curves['cfg'][i]))} | {fmt_ci(mean_ci(lam_curves['cfg_adda'][i]))} |")
    plot_guidance(lam_curves, out_dir / "guidance.png")
    add("")
    for m in ("cfg", "cfg_adda"):
        c = lam_curves[m]
        best = GUIDANCE_GRID[int(np.argmin(c.mean(axis=1)))]
        diff = mean_ci(c[GUIDANCE_GRID.index(-0.5)] - c[GUIDANCE_GRID.index(0.0)])
        add(f"- {m}: lowest mean error at λ = {best:g}; error(λ = −0.5) − error(λ = 0), paired over seeds: "
            f"{fmt_ci(diff)} ({'−0.5 helps' if diff[2] < 0 else '−0.5 hurts' if diff[1] > 0 else 'not resolved'}).")
        v = sign_verdict(diff)
        verdicts.append((f"{m}: guidance λ = −0.5 beats conditional sampling (λ = 0)",
                         f"lowest mean error at λ = {best:g}; error(−0.5) − error(0) = {fmt_ci(diff)}",
                         v if not (v == "not resolved" and best == -0.5) else "not resolved (lowest mean at −0.5)"))
    add("\n![guidance](guidance.png)\n")

    # ---- finding 5
    add("## 5. The Δz × w grid on toy/study and the two-way analysis of variance\n")
    y = np.array([[[res[s]["eval"]["error"] for s in f5[(dz, w)]] for w in size.w] for dz in size.dz])
    an = two_way_anova(y)
    iv = anova_share_intervals(y)
    cell = y.mean(axis=2)
    i, j = np.unravel_index(np.argmin(cell), cell.shape)
    add(f"Target error, mean over {size.grid_seeds} seeds (rows Δz, columns w; w = 0 is source_only, w = 1 "
        f"target_only):\n")
    add("| Δz \\ w | " + " | ".join(f"{w:g}" for w in size.w) + " |")
    add("|---|" + "---|" * len(size.w))
    for a, dz in enumerate(size.dz):
        add(f"| {dz:g} | " + " | ".join(f"{cell[a, b]:.3f}" for b in range(len(size.w))) + " |")
    add(f"\nLowest mean error {cell[i, j]:.3f} at Δz = {size.dz[i]:g}, w = {size.w[j]:g}.\n")
    add("| source | share of the total sum of squares | 95% bootstrap interval (seeds) | F | p |")
    add("|---|---|---|---|---|")
    for k, label in (("A", "Δz"), ("B", "w"), ("AB", "Δz × w"), ("error", "residual (seeds)")):
        f, p = an["F"].get(k, math.nan), an["p"].get(k, math.nan)
        add(f"| {label} | {an['share'][k]:.3f} | [{iv[k][0]:.3f}, {iv[k][1]:.3f}] | "
            f"{'' if math.isnan(f) else f'{f:.1f}'} | {'' if math.isnan(p) else f'{p:.2g}'} |")
    plot_grid(size.dz, size.w, cell, an, out_dir / "grid.png")
    mixed_idx = [b for b, w in enumerate(size.w) if 0 < w < 1]
    an_mix = two_way_anova(y[:, mixed_idx]) if len(mixed_idx) > 1 else None
    if an_mix is not None:
        iv_mix = anova_share_intervals(y[:, mixed_idx])
        add(f"\nThe same analysis over the co-training ratios only (0 < w < 1, without source_only and "
            f"target_only): Δz {an_mix['share']['A']:.3f} [{iv_mix['A'][0]:.3f}, {iv_mix['A'][1]:.3f}], "
            f"w {an_mix['share']['B']:.3f} [{iv_mix['B'][0]:.3f}, {iv_mix['B'][1]:.3f}], interaction "
            f"{an_mix['share']['AB']:.3f} [{iv_mix['AB'][0]:.3f}, {iv_mix['AB'][1]:.3f}], residual "
            f"{an_mix['share']['error']:.3f}.")
    sh = an["share"]
    verdicts.append(("ANOVA: Δz has the largest share of the loss variance (about half), w a smaller one "
                     "(about a fifth), the interaction the rest",
                     f"Δz {sh['A']:.2f} [{iv['A'][0]:.2f}, {iv['A'][1]:.2f}], w {sh['B']:.2f} [{iv['B'][0]:.2f}, "
                     f"{iv['B'][1]:.2f}], Δz × w {sh['AB']:.2f}" + (
                         f"; co-training ratios only: Δz {an_mix['share']['A']:.2f}, w {an_mix['share']['B']:.2f}, "
                         f"Δz × w {an_mix['share']['AB']:.2f}" if an_mix else ""),
                     "reproduces" if sh["A"] > sh["B"] > 0 else "does not"))
    y_mix = y[:, mixed_idx]  # (Δz, co-training w, seeds)
    mi, mj = np.unravel_index(np.argmin(cell[:, mixed_idx]), (len(size.dz), len(mixed_idx)))
    moderate = np.array([MODERATE_DZ[0] <= dz <= MODERATE_DZ[1] for dz in size.dz])
    small = np.array([SMALL_W[0] <= size.w[b] <= SMALL_W[1] for b in mixed_idx])
    d_dz = mean_ci(inside_minus_outside(y_mix.mean(axis=1), moderate))
    d_w = mean_ci(inside_minus_outside(y_mix.mean(axis=0), small))
    v_dz, v_w = sign_verdict(d_dz), sign_verdict(d_w)
    verdicts.append((f"the best error lies at a moderate Δz ({MODERATE_DZ[0]:g}-{MODERATE_DZ[1]:g}) and a small w "
                     f"(about {SMALL_W[0]:g}-{SMALL_W[1]:g})",
                     f"over the co-training ratios, paired within each seed: mean error at moderate Δz − at the "
                     f"other Δz {fmt_ci(d_dz)}; at small w − at the other w {fmt_ci(d_w)} (lowest co-training "
                     f"cell: Δz = {size.dz[mi]:g}, w = {size.w[mixed_idx[mj]]:g}, "
                     f"error {cell[mi, mixed_idx[mj]]:.3f})",
                     "reproduces" if v_dz == v_w == "reproduces" else f"Δz: {v_dz}; w: {v_w}"))
    regimes, regime_verdicts = _regimes(res, f5, size)
    add("")
    add(regimes)
    verdicts += regime_verdicts
    add("\n![grid](grid.png)\n")

    # ---- informativeness
    add("## Is each toy pair informative? (`target_only` on its N samples against the best co-trained policy)\n")
    add("docs/PROTOCOL.md (\"The toy model\"): a toy pair shows transfer only where `target_only` is clearly worse than the best "
        "co-trained policy. \"Clearly\": the paired difference over seeds (target_only − best) has a 95% interval "
        "above 0. The best is chosen among the co-trained runs listed, for each seed on the other seeds "
        "(`loso_choice`), so the selection does not favour co-training.\n")
    add("| pair | magnitude | target_only error | best co-trained (per seed) | its error | difference [95%] | "
        "informative |")
    add("|---|---|---|---|---|---|---|")
    info_rows = [("toy/study", f"Δz = {size.structured_dz:g}", f1["target_only"],
                  {m: f1[m] for m in MIXING_METHODS})]
    for pname, runs in checks.items():
        info_rows.append((pname, "1", runs["target_only"], {m: v for m, v in runs.items() if m != "target_only"}))
    for pname, mag_label, to_runs, mixed in info_rows:
        names = list(mixed)
        picks = [names[k] for k in loso_choice([[res[s]["eval"]["error"] for s in mixed[m]] for m in names])]
        chosen = [mixed[m][i] for i, m in enumerate(picks)]
        diff = mean_ci([res[a]["eval"]["error"] - res[b]["eval"]["error"] for a, b in zip(to_runs, chosen)])
        verdict = "yes" if diff[1] > 0 else ("no" if diff[0] <= 0 else "not resolved")
        add(f"| {pname} | {mag_label} | {fmt_ci(_stat(res, to_runs))} | {', '.join(picks)} | "
            f"{fmt_ci(_stat(res, chosen))} | {fmt_ci(diff)} | {verdict} |")
    add("")
    add(f"This call's wall time: {time.time() - t_start:.0f} s.")
    table = ["## The study's claims, measured here\n",
             "Each claim of docs/PROTOCOL.md's toy and method findings, the number it rests on here (95% intervals over "
             "seeds), and a verdict: *reproduces*, *opposite* (resolved, the other way), *does not*, or *not "
             "resolved* (the interval covers no difference). The toy was not tuned toward any of them.\n",
             "| claim (the study's) | measured here | verdict |", "|---|---|---|"]
    table += [f"| {c} | {m} | {v} |" for c, m, v in verdicts]
    lines[verdict_at:verdict_at] = table + [""]
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / "data.json").write_text(json.dumps(
        {"command": command, "size": asdict(size), "runs": [res[cfg] for cfg in everything]},
        default=float))
    log(f"wrote {path} and {len(list(out_dir.glob('*.png')))} figures ({time.time() - t_start:.0f} s)")
    return path


def _claims_methods(rows: dict, res: dict, f1: dict, best_mix: str) -> str:
    """The finding-1 claims of the study, each stated with its measured numbers."""
    out = []
    w_cot = rows["cotrain"]["align_wasserstein"]
    for m in ("ot", "adda"):
        w_m, d_m = rows[m]["align_wasserstein"], rows[m]["discern_mlp"]
        out.append(f"- {m}: W(z)/spread {fmt_ci(w_m)} against cotrain's {fmt_ci(w_cot)} (z spread "
                   f"{fmt_ci(rows[m]['z_spread'])} against {fmt_ci(rows['cotrain']['z_spread'])}); the MLP probe on z "
                   f"reads the domain at {fmt_ci(d_m, 2)} (cotrain {fmt_ci(rows['cotrain']['discern_mlp'], 2)}).")
    for m in ("domain_cond", "cfg", "cfg_adda"):
        out.append(f"- {m}: probe on z_cond {fmt_ci(rows[m]['discern_mlp_cond'], 2)}, W(z)/spread "
                   f"{fmt_ci(rows[m]['align_wasserstein'])}.")
    diff = mean_ci([res[a]["eval"]["error"] - res[b]["eval"]["error"]
                    for a, b in zip(f1["cfg_adda"], f1["cotrain"])])
    out.append(f"- Lowest mean target error among the co-training methods: {best_mix} "
               f"({fmt_ci(rows[best_mix]['error'])}). cfg_adda − cotrain, paired over seeds: {fmt_ci(diff)} "
               f"({'cfg_adda better' if diff[2] < 0 else 'cfg_adda worse' if diff[1] > 0 else 'not resolved'}).")
    return "\n".join(out)


def _regimes(res: dict, f5: dict, size: ToySize) -> tuple[str, list[tuple[str, str, str]]]:
    """The regime claims of docs/PROTOCOL.md's toy, stated with numbers from the grid, and their verdicts.

    Each claim is measured, per Δz and seed, at the co-training ratio with the lowest mean error on the
    other seeds (`loso_choice`), never at the in-sample best ratio (which favours co-training).
    """
    mixed = [w for w in size.w if 0 < w < 1]
    lines, at = [], {}
    for dz in size.dz:
        err, tm = (np.array([[res[s]["eval"][key] for s in f5[(dz, w)]] for w in mixed])
                   for key in ("error", "target_mode"))
        pick = loso_choice(err)
        seeds = np.arange(err.shape[1])
        at[dz] = ([mixed[k] for k in pick], err[pick, seeds], tm[pick, seeds])
        lines.append(f"| {dz:g} | {mixed[int(np.argmin(err.mean(axis=1)))]:g} | "
                     f"{', '.join(f'{w:g}' for w in at[dz][0])} | {fmt_ci(mean_ci(at[dz][1]))} | "
                     f"{fmt_ci(mean_ci(at[dz][2]), 2)} |")
    verdicts = []
    to = None
    if 1.0 in size.w:
        to_err = np.array([res[s]["eval"]["error"] for s in f5[(size.dz[0], 1.0)]])
        to = mean_ci(to_err)
        far = size.dz[-1]
        d = mean_ci(at[far][1] - to_err)
        verdicts.append((f"disjoint (Δz = {far:g}): no transfer",
                         f"co-training at the w chosen on the other seeds ({', '.join(f'{w:g}' for w in at[far][0])}) "
                         f"− target_only = {fmt_ci(d)}",
                         "reproduces" if d[1] > 0 else "does not" if d[2] < 0 else
                         "not resolved (consistent with no transfer)"))
    near = size.dz[0]
    tm = mean_ci(at[near][2])
    verdicts.append((f"overlapping (Δz = {near:g}): bimodal output (the two domains' actions mix)",
                     f"share of samples nearer the target map than the source map at the w chosen on the other "
                     f"seeds ({', '.join(f'{w:g}' for w in at[near][0])}): {fmt_ci(tm, 2)} (per seed "
                     f"{', '.join(f'{v:.2f}' for v in at[near][2])}; one sample per input, so a mixed population, "
                     f"not bimodality per input, is what is measured)",
                     mixed_share_verdict(tm)))
    mid = [dz for dz in size.dz if MODERATE_DZ[0] <= dz <= MODERATE_DZ[1]]
    if mid:
        shares = [float(at[dz][2].mean()) for dz in mid]
        verdicts.append((f"structured (Δz ≈ {MODERATE_DZ[0]:g}-{MODERATE_DZ[1]:g}): faithful target output",
                         ", ".join(f"Δz = {dz:g}: share {sh:.2f}, error {at[dz][1].mean():.3f}"
                                   for dz, sh in zip(mid, shares)) + " (at the w chosen on the other seeds)",
                         "reproduces" if min(shares) > 0.85 else "does not"))
    head = ("Per Δz, over the co-training ratios: the ratio with the lowest mean error (descriptive), the ratio "
            "each seed is measured at (the lowest mean error on the other seeds), and there the error and the share "
            "of sampled actions nearer the target map than the source map (a faithful target output puts it near "
            "1; a bimodal output, part of its samples on the source map, between 0 and 1)"
            + (f"; target_only: {fmt_ci(to)}" if to else "") + ":\n\n| Δz | lowest mean error at w | w per seed "
            "(chosen on the other seeds) | error | share nearer target map |\n|---|---|---|---|---|")
    return head + "\n" + "\n".join(lines), verdicts
