"""The guidance-scale sweep: each finished run's checkpoint evaluated at every guidance scale λ of the
track's ``guidance`` section (cached per run in ``<run>/guidance.json``, resumable), and λ = −0.5 against
λ = 0."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from benchmark.analysis.figures import figure, no_data, save
from benchmark.harness.run import NotReproduced
from benchmark.analysis.markdown import ci, md_table
from benchmark.study.load import StudyData, describe_config, method_label
from benchmark.study.statistics import Cells, cell_bootstrap, mean_cols, wilson


def _scale_key(lam: float) -> str:
    return f"{float(lam):g}"


def guidance_sweep_run(rec: dict, run_dir: Path, scales: Sequence[float], device: str = "cpu", workers: int = 1,
                       log: Callable[..., None] = print) -> dict[str, Any]:
    """Evaluate one finished run's checkpoint at each guidance scale on its test start states,
    caching every scale in ``run_dir/guidance.json`` as soon as it is done (resumable). The scale
    the run was trained and evaluated with is read from its record (evaluation is a pure function
    of checkpoint, domain, start state and scale). A run whose small files came without its checkpoint
    is trained again first (`benchmark.harness.run.restore_checkpoint`: deterministic, checked against its
    record)."""
    from tasks.seeds import episode_seeds

    from benchmark.harness.evaluate import EvalPool, EvalSpec, evaluate, summarize
    from benchmark.harness.run import config_of_record, read_json, restore_checkpoint, write_json

    cfg = rec["config"]
    eps = rec["eval"]["target"].get("episodes") or []
    seeds = [int(e["seed"]) for e in eps] or episode_seeds("test", int(cfg["seed"]), int(cfg["episodes"]))
    path = run_dir / "guidance.json"
    cache = read_json(path) if path.exists() else {}
    if cache.get("episode_seeds") != seeds or cache.get("run_id") != rec.get("run_id"):
        cache = {"schema": 1, "run_id": rec.get("run_id"), "pair": cfg["pair"], "method": cfg["method"],
                 "episode_seeds": seeds, "scales": {}}
    own = (cfg.get("hparams") or {}).get("guidance")
    pool = None  # started on the first scale that needs evaluating, shared by the rest
    try:
        for lam in scales:
            key = _scale_key(lam)
            if key in cache["scales"]:
                continue
            t0 = time.time()
            if own is not None and abs(float(own) - float(lam)) < 1e-12 and eps:
                summary, source = summarize(eps), "record"
            else:
                restore_checkpoint(config_of_record(cfg), run_dir.parent, log=lambda line: log(f"  {line}"))
                spec = EvalSpec(str(run_dir / "checkpoint"), cfg["pair"], "target", float(cfg["magnitude"]),
                                backend=cfg.get("backend", "fast"), device=device, guidance=float(lam))
                pool = pool or EvalPool(workers)
                summary, source = summarize(evaluate(spec, seeds, progress=False, pool=pool)), "evaluated"
            cache["scales"][key] = {**summary, "guidance": float(lam), "source": source, "wall_s": time.time() - t0}
            write_json(path, cache)
            log(f"  guidance {key:>5} {rec.get('run_id')}: {summary['successes']}/{summary['n']} ({source})")
    finally:
        if pool is not None:
            pool.close()
    return cache


def guidance_analysis(data: StudyData, records: list[dict], out: Path, device: str, workers: int,
                      evaluate_missing: bool, log: Callable[..., None]) -> dict[str, Any]:
    """``guidance.md/.csv`` and ``guidance.png``: the sweep's runs evaluated (or, with
    ``evaluate_missing=False``, read from their caches) at every scale, and λ = −0.5 against λ = 0."""
    gspec = data.spec.get("guidance") or {}
    scales = [float(x) for x in gspec.get("scales") or []]
    pair, methods, w = gspec.get("pair"), list(gspec.get("methods") or []), gspec.get("w")
    notes: list[str] = []
    chosen = [r for r in records if r["config"]["pair"] == pair and r["config"]["method"] in methods
              and method_label(r, data.vary) == r["config"]["method"] and r["config"].get("w") is not None
              and w is not None and abs(float(r["config"]["w"]) - float(w)) < 1e-9]
    results: dict[str, dict] = {}
    t0 = time.time()
    for rec in chosen:
        run_dir = data.run_dirs.get(rec["run_id"])
        try:
            if evaluate_missing:
                results[rec["run_id"]] = guidance_sweep_run(rec, run_dir, scales, device, workers, log)
            elif run_dir and (run_dir / "guidance.json").exists():
                results[rec["run_id"]] = json.loads((run_dir / "guidance.json").read_text())
        except (FileNotFoundError, ValueError, NotReproduced) as err:  # no checkpoint, none to train again here
            notes.append(str(err))
    wall = time.time() - t0
    cells: Cells = {}
    rows = []
    for rec in chosen:
        res = results.get(rec["run_id"])
        if not res:
            continue
        for key, s in res["scales"].items():
            lam = float(key)
            if not any(abs(lam - x) < 1e-12 for x in scales):
                continue
            cells.setdefault((rec["config"]["method"], lam), {})[int(rec["config"]["seed"])] = \
                {int(e["seed"]): float(bool(e["success"])) for e in s["episodes"]}
    boot = cell_bootstrap(cells)
    for method in methods:
        for lam in scales:
            c = cells.get((method, lam))
            if not c:
                rows.append(dict(method=method, guidance=lam, seeds=0, successes=0, n=0, success=math.nan,
                                 lo=math.nan, hi=math.nan))
                continue
            k = int(sum(sum(v.values()) for v in c.values()))
            n = int(sum(len(v) for v in c.values()))
            s, lo, hi = wilson(k, n)
            rows.append(dict(method=method, guidance=lam, seeds=len(c), successes=k, n=n, success=s, lo=lo, hi=hi))
    tab = pd.DataFrame(rows, columns=["method", "guidance", "seeds", "successes", "n", "success", "lo", "hi"])
    tab.to_csv(out / "guidance.csv", index=False)
    # claim: lambda = -0.5 against lambda = 0 (plain conditional), paired, per method and pooled
    contrasts = {}
    have = [m for m in methods if (m, -0.5) in cells and (m, 0.0) in cells]
    for m in have:
        contrasts[m] = boot.stat(lambda col, m=m: col((m, -0.5)) - col((m, 0.0)))
    pooled = (boot.stat(lambda col: mean_cols(col((m, -0.5)) - col((m, 0.0)) for m in have)) if have
              else (math.nan,) * 3)
    peaks = {}
    for m in methods:
        g = tab[(tab.method == m) & tab.success.notna()]
        if not g.empty:
            best = g.success.max()
            peaks[m] = sorted(g[g.success == best].guidance.tolist())
    fig, axes = figure(1, 1, width=6, height=4.2)
    ax = axes[0][0]
    if tab.success.notna().any():
        for i, (m, g) in enumerate(tab[tab.success.notna()].groupby("method")):
            off = (i - (len(methods) - 1) / 2) * 0.04
            ax.errorbar(g.guidance + off, g.success, yerr=[g.success - g.lo, g.hi - g.success], marker="o", capsize=3,
                        label=m)
        ax.axvline(-0.5, color="grey", linestyle=":", label="λ = −0.5 (study's peak)")
        ax.legend(fontsize="small")
    else:
        no_data(ax, f"no finished {', '.join(methods)} runs at w = {w} on {pair}")
    ax.set(xlabel="guidance scale λ (0 = plain conditional)", ylabel="target success (95% Wilson)",
           title=f"guidance sweep: {pair}, w = {w}", ylim=(-0.03, 1.03))
    save(fig, out / "guidance.png")
    expected = [c for c in data.expected.values() if c.pair == pair and c.method in methods
                and dict(c.hparams).get("w") is not None and abs(dict(c.hparams)["w"] - float(w or 0)) < 1e-9]
    have_ids = {r["run_id"] for r in chosen if r["run_id"] in results}
    missing = [c for c in expected if c.run_id() not in have_ids]
    lines = ["# Guidance-scale sweep", "",
             f"The track's `guidance` section: pair `{pair}`, methods {', '.join(methods) or 'none'}, w = {w}, "
             f"λ ∈ {{{', '.join(f'{x:g}' for x in scales)}}}. Evaluation only: each finished run's checkpoint is "
             "evaluated at every λ on the run's own test start states (cached in `<run>/guidance.json`; the λ "
             "the run was trained with is read from its record). Guidance: ε̂ = ε(∅) + (1 + λ)(ε(target) − ε(∅)); "
             "λ = 0 is plain conditional sampling.", "",
             md_table(["method", "λ", "seeds", "success [95% Wilson]"],
                      [[r.method, f"{r.guidance:g}", str(r.seeds),
                        f"{r.successes}/{r.n} = {ci(r.success, r.lo, r.hi)}" if r.n else "no runs"]
                       for r in tab.itertuples()]), "",
             "Peak λ (highest success, ties listed): " + ("; ".join(f"{m}: {', '.join(f'{x:g}' for x in v)}"
                                                                    for m, v in peaks.items()) or "n/a") + ".", "",
             "λ = −0.5 minus λ = 0, paired two-level bootstrap: " + ("; ".join(
                 f"{m}: {ci(*v, signed=True)}" for m, v in contrasts.items()) or "n/a")
             + f"; pooled: {ci(*pooled, signed=True)}.", "",
             "Figure: [guidance.png](guidance.png).", "",
             (f"Runs of the sweep not available: {'; '.join(describe_config(c) for c in missing)}." if missing
              else "Every run of the sweep was evaluated."),
             *(f"Note: {n}" for n in notes), ""]
    (out / "guidance.md").write_text("\n".join(lines), encoding="utf-8")
    return {"table": tab, "contrasts": contrasts, "pooled": pooled, "peaks": peaks, "wall_s": wall,
            "runs": len(have_ids), "files": ["guidance.md", "guidance.csv", "guidance.png"],
            "figures": {"guidance.png": fig}}
