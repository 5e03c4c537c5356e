"""Reading a study sweep: the records of the track's grid, their bootstrap cells and one table row per run."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable

import numpy as np
import pandas as pd

from benchmark.study.design import REFERENCE, classify_regime, gap_kind
from benchmark.study.statistics import Cells


def _episodes(rec: dict) -> dict[int, float]:
    """Target episodes {episode seed: success}; records without an episode list stand in with
    their first `successes` of `n` episodes succeeding (seeds 0..n-1)."""
    t = rec["eval"]["target"]
    eps = t.get("episodes")
    if eps:
        return {int(e["seed"]): float(bool(e["success"])) for e in eps}
    return {i: float(i < int(t["successes"])) for i in range(int(t["n"]))}


def method_label(rec: dict, vary: dict[str, dict[str, list]] | None = None) -> str:
    """The method's name, with the varied hyperparameters that differ from its defaults appended
    (e.g. ``adda[adversarial_weight=0.5]``), so regime variants stay apart from the method."""
    from baselines.methods import default_hparams

    cfg = rec["config"]
    method, hp = cfg["method"], cfg.get("hparams") or {}
    varied = (vary or {}).get(method, {})
    if not varied:
        return method
    defaults = default_hparams(method)
    extra = [f"{k}={hp[k]:g}" if isinstance(hp[k], (int, float)) else f"{k}={hp[k]}"
             for k in sorted(varied) if k in hp and hp[k] != defaults.get(k)]
    return f"{method}[{','.join(extra)}]" if extra else method


def is_study_method(label: str) -> bool:
    """A study method's own label, not a regime variant such as ``adda[adversarial_weight=0.5]``."""
    return "[" not in label


def sweep_w(rec: dict) -> float | None:
    """The record's point on the ratio axis: its w, or 1 for target_only and 0 for source_only."""
    cfg = rec["config"]
    if cfg.get("w") is not None:
        return float(cfg["w"])
    return {"target_only": 1.0, "source_only": 0.0}.get(cfg["method"])


def runs_table(records: list[dict], vary: dict | None = None, run_dirs: dict[str, Path] | None = None) -> pd.DataFrame:
    """One row per record: keys, success, the representation and raw-discernibility metrics, the
    regime weight (ADDA's adversarial_weight, 0 for cotrain) and the regime."""
    rows = []
    for rec in records:
        cfg, m = rec["config"], rec.get("metrics") or {}
        t = rec["eval"]["target"]
        hp = cfg.get("hparams") or {}
        base = cfg["method"]
        weight = 0.0 if base == REFERENCE else (float(hp["adversarial_weight"]) if base == "adda" and
                                                hp.get("adversarial_weight") is not None else math.nan)
        row = dict(run_id=rec.get("run_id"), pair=cfg["pair"], gap=gap_kind(cfg["pair"]),
                   magnitude=float(cfg["magnitude"]), method=method_label(rec, vary), base=base,
                   w=sweep_w(rec), mix_w=cfg.get("w"), seed=int(cfg["seed"]), n_target=int(cfg["n_target"]),
                   n_source=int(cfg["n_source"]), successes=int(t["successes"]), n=int(t["n"]),
                   success=int(t["successes"]) / int(t["n"]) if int(t["n"]) else math.nan,
                   adversarial_weight=weight, guidance_hp=hp.get("guidance"),
                   gw=m.get("align_gw_shallow", m.get("align_gw")),
                   gw_kind="align_gw_shallow" if "align_gw_shallow" in m else "align_gw",
                   regime=classify_regime(m), run_dir=str((run_dirs or {}).get(rec.get("run_id"), "")))
        for k in ("z_spread", "align_wasserstein", "align_nn", "align_cka", "discern_mlp", "discern_linear",
                  "discern_mlp_cond", "discern_linear_cond", "structured_alignment", "replay_pairs",
                  "raw_discern_linear", "raw_discern_mlp", "raw_discern_obs_action_linear",
                  "raw_discern_obs_action_mlp"):
            row[k] = m.get(k, math.nan)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("align_wasserstein", "gw"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    from benchmark.analysis.metrics import normalize_across_runs

    # normalized across the runs compared, the runs of one pair (same observations, same replay states), after
    # the per-run scale-free division the record's align_wasserstein already carries (schema 2)
    df["w_norm"] = np.nan
    df["gw_norm"] = np.nan
    for _, idx in df.groupby("pair").groups.items():
        df.loc[idx, "w_norm"] = normalize_across_runs(df.loc[idx, "align_wasserstein"].to_numpy(float))
        df.loc[idx, "gw_norm"] = normalize_across_runs(df.loc[idx, "gw"].to_numpy(float))
    df["alignment"] = 1.0 - df["w_norm"]
    df["local_alignment"] = 1.0 - df["gw_norm"]
    return df


def cells_of(records: list[dict], key: Callable[[dict], Hashable | None]) -> Cells:
    """Group records into bootstrap cells by ``key(rec)`` (None skips the record)."""
    cells: Cells = {}
    for rec in records:
        k = key(rec)
        if k is None:
            continue
        eps = _episodes(rec)
        if eps:
            cells.setdefault(k, {})[int(rec["config"]["seed"])] = eps
    return cells


@dataclass
class StudyData:
    """The records of a study sweep that belong to the track's grid at a budget; `spec` is the budget's
    mapping as one (`gridspec.union_view`: of a budget made of parts, the union of its parts' lists)."""

    runs_dir: Path
    track: str
    budget: str
    spec: dict
    records: list[dict]
    run_dirs: dict[str, Path]
    expected: dict[str, Any]  # run_id -> RunConfig of the grid
    ignored: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list:
        have = {r["run_id"] for r in self.records}
        return [cfg for rid, cfg in self.expected.items() if rid not in have]

    @property
    def vary(self) -> dict:
        return self.spec.get("vary") or {}

    @property
    def episodes(self) -> int:
        from benchmark.harness.config import PROFILES

        return int(self.spec.get("episodes") or PROFILES[self.spec.get("profile", "quick")].episodes)

    @property
    def seeds(self) -> int:
        """Seeds per point: of a budget made of parts, the most seeds one part runs."""
        from benchmark.harness.gridspec import as_list

        return max(len(as_list(part.get("seeds") or [0])) for part in self.spec.get("parts") or [self.spec])


def _infer_budget(records: list[dict], budgets: Iterable[str]) -> str:
    profiles = sorted({r["config"].get("profile") for r in records})
    if len(profiles) == 1 and profiles[0] in budgets:
        return profiles[0]
    raise ValueError(f"cannot tell the budget from the records (profiles {profiles}); give --budget "
                     f"({', '.join(budgets)})")


def load_study(runs_dir: str | Path, track: str = "study", budget: str | None = None) -> StudyData:
    """Read RUNS_DIR's records and keep those of the track's grid at ``budget`` (inferred from the
    records' profile when None)."""
    import yaml

    from benchmark.analysis.records import load_records
    from benchmark.harness.gridspec import union_view
    from benchmark.harness.grid import TRACKS_DIR, load_grid, load_spec

    root = Path(runs_dir)
    records = load_records(root)
    paths = sorted(root.rglob("record.json"))
    run_dirs = {r.get("run_id"): p.parent for r, p in zip(records, paths)}
    if budget is None:
        source = TRACKS_DIR / f"{track}.yaml"
        budgets = list((yaml.safe_load(source.read_text()) or {}).get("budgets") or {}) if source.is_file() else []
        budget = _infer_budget(records, budgets)
    grid = load_grid(track=track, budget=budget)  # (checks the budget, its parts included)
    spec = union_view(load_spec(track=track, budget=budget)[0])
    # device and threads are part of a run's identity: expect the grid at the records' own (most common) setting
    settings = Counter((r["config"].get("device", "cpu"), r["config"].get("threads", 1)) for r in records)
    device, threads = settings.most_common(1)[0][0] if settings else ("cpu", 1)
    expected = {cfg.run_id(): cfg for cfg in (replace(c, device=device, threads=threads) for c in grid.runs())}
    mine = [r for r in records if r.get("run_id") in expected]
    data = StudyData(root, track, budget, spec, mine, run_dirs, expected, ignored=len(records) - len(mine))
    if len(settings) > 1:
        data.notes.append(f"records of several devices / thread counts {sorted(settings)}: read those of "
                          f"device {device!r} with {threads} thread(s)")
    mags = sorted({float(r["config"]["magnitude"]) for r in mine})
    if len(mags) > 1:
        data.notes.append(f"several gap magnitudes {mags}: the analyses use the runs at magnitude {mags[-1]:g}")
    return data


def gap_records(data: StudyData) -> list[dict]:
    """The records at the largest gap magnitude of the study (no-gap controls left out)."""
    recs = [r for r in data.records if float(r["config"]["magnitude"]) > 0]
    if recs:
        top = max(float(r["config"]["magnitude"]) for r in recs)
        recs = [r for r in recs if float(r["config"]["magnitude"]) == top]
    return recs


def describe_config(cfg) -> str:
    """A grid run in a line: pair, method, w, seed and its other hyperparameters."""
    hp = dict(cfg.hparams)
    w = hp.pop("w", None)
    extra = "".join(f" {k}={v}" for k, v in sorted(hp.items()))
    return f"{cfg.pair} {cfg.method} w={w if w is not None else '-'} seed={cfg.seed}{extra}"


def missing_text(data: StudyData, pred: Callable[[Any], bool] | None = None, limit: int = 12) -> str:
    """The runs of the grid (those ``pred`` keeps) not in the runs folder, as a sentence."""
    miss = [c for c in data.missing if pred is None or pred(c)]
    if not miss:
        return "No run of the grid is missing for this analysis."
    shown = "; ".join(describe_config(c) for c in miss[:limit])
    more = f" and {len(miss) - limit} more" if len(miss) > limit else ""
    return f"Missing ({len(miss)} runs of the grid not in the runs folder): {shown}{more}."
