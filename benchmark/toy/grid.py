"""The runs of `cotrain toy`: its sizes, the harness runs each finding needs, and running them.

Every run is a `benchmark.harness.config.RunConfig` of a toy pair executed by
`benchmark.harness.run.execute_run`, like any other run: its folder under `runs_dir` is named by its
config hash, holds its `record.json`, and a finished run is read back, never redone.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmark.harness.config import RunConfig

MIXING_METHODS = ("cotrain", "ot", "adda", "domain_cond", "cfg", "cfg_adda")
ALL_METHODS = ("target_only", "source_only") + MIXING_METHODS
STUDY_DZ = (0.01, 0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 50.0)  # docs/PROTOCOL.md's Δz grid
STUDY_W = (0.0, 0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)  # docs/PROTOCOL.md's toy w grid
MODERATE_DZ = (0.5, 5.0)
"""Δz range of the study's structured regime ("moderate Δz", about 1-3)."""
SMALL_W = (0.05, 0.1)
"""The study's "small w" (about 0.05-0.1) of its best toy error."""
STUDY = "toy/study"


@dataclass(frozen=True)
class ToySize:
    """Sizes of `cotrain toy` (the default is sized for under an hour on 2 cores)."""

    seeds: int = 3
    """Seeds for findings 1-4."""
    grid_seeds: int = 2
    """Seeds (replicates) of the Δz × w grid and of the per-pair checks."""
    profile: str = "toy"
    """Harness profile of every run (`benchmark.harness.config.PROFILES`): steps, network size, test inputs."""
    dz: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0, 10.0, 50.0)
    """Δz values of the grid (a subset of docs/PROTOCOL.md's; `--full` uses all nine)."""
    w: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.3, 0.7, 1.0)
    """w values of the grid (w = 0 is source_only, 1 target_only; a subset of docs/PROTOCOL.md's)."""
    ratio_w: tuple[float, ...] = (0.01, 0.05, 0.1, 0.3, 0.7)
    """w values of the ratio sweep (finding 2)."""
    n_sources: tuple[int, ...] = (300, 1000, 3000)
    """M values of the ratio sweep, N = 30."""
    reweight_w: tuple[float, ...] = (0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    """w values of the reweighting sweep (finding 3)."""
    structured_dz: float = 1.0
    """Δz of findings 1, 2 and 4 (docs/PROTOCOL.md: Δz ≈ 1-3 is the structured regime)."""

    def __post_init__(self) -> None:
        if self.grid_seeds > self.seeds:
            raise ValueError(f"grid_seeds ({self.grid_seeds}) cannot exceed seeds ({self.seeds})")
        if self.grid_seeds < 2:
            raise ValueError(f"grid_seeds ({self.grid_seeds}) must be at least 2: a best setting is chosen on the "
                             f"other seeds (`loso_choice`)")


FULL = ToySize(seeds=5, grid_seeds=3, profile="toy_full", dz=STUDY_DZ, w=STUDY_W,
               ratio_w=(0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7), n_sources=(100, 300, 1000, 3000))
"""`cotrain toy --full`: docs/PROTOCOL.md's whole Δz × w grid, more seeds, 2000 steps (a few hours on 2 cores)."""

TOY_RECIPE = {"lr": 1e-3}
"""The toy's training recipe where it departs from the suite's defaults: the toy findings were measured at
this learning rate; the suite's recipe search (results/recipe) tuned the robot pairs, not the toy."""


def toy_run(pair: str, method: str, magnitude: float, seed: int, profile: str, w: float | None = None,
            n_source: int | None = None) -> RunConfig:
    """The harness run of one toy setting (resolved, so equal settings are equal configs); w = 0 or 1 of a
    mixing method runs `source_only` or `target_only`."""
    if w in (0.0, 1.0):
        method, w = ("source_only" if w == 0.0 else "target_only"), None
    hparams = {**TOY_RECIPE, **({"w": w} if w is not None else {})}
    return RunConfig(pair=pair, method=method, magnitude=magnitude, n_source=n_source, seed=seed, profile=profile,
                     hparams=tuple(hparams.items())).resolved()


@dataclass(frozen=True)
class Findings:
    """The runs of each finding, per setting a list over seeds."""

    methods: dict[str, list[RunConfig]]
    """1: every method at the structured Δz (also finding 4's guided models)."""
    ratio: dict[tuple[int, float], list[RunConfig]]
    """2: cotrain per (M, w)."""
    ratio_source: dict[int, list[RunConfig]]
    """2: source_only per M."""
    reweighting: dict[float, list[RunConfig]]
    """3: toy/action_map per w."""
    grid: dict[tuple[float, float], list[RunConfig]]
    """5: toy/study per (Δz, w)."""
    checks: dict[str, dict[str, list[RunConfig]]]
    """Per other toy pair at magnitude 1: target_only, cotrain and cfg_adda."""

    def runs(self) -> list[RunConfig]:
        """Every run, each once, in a stable order."""
        groups = [*self.methods.values(), *self.ratio.values(), *self.ratio_source.values(), *self.reweighting.values(),
                  *self.grid.values(), *(v for c in self.checks.values() for v in c.values())]
        return list(dict.fromkeys(cfg for group in groups for cfg in group))


def findings(size: ToySize) -> Findings:
    """The runs of every finding at `size`. target_only never sees the source, so its runs do not depend on
    M nor (its normalized inputs being the same) on Δz: finding 1's serve findings 2 and 5."""
    from tasks.toy import TOY_PAIRS, study_magnitude

    seeds, gseeds, prof = range(size.seeds), range(size.grid_seeds), size.profile
    mag_s = study_magnitude(size.structured_dz)
    methods = {m: [toy_run(STUDY, m, mag_s, s, prof) for s in seeds] for m in ALL_METHODS}
    ratio = {(mm, w): [toy_run(STUDY, "cotrain", mag_s, s, prof, w, mm) for s in seeds]
             for mm in size.n_sources for w in size.ratio_w}
    ratio_source = {mm: [toy_run(STUDY, "source_only", mag_s, s, prof, n_source=mm) for s in seeds]
                    for mm in size.n_sources}
    reweighting = {w: [toy_run("toy/action_map", "cotrain", 1.0, s, prof, w) for s in seeds] for w in size.reweight_w}
    grid = {(dz, w): ([methods["target_only"][s] for s in gseeds] if w == 1.0 else
                      [toy_run(STUDY, "cotrain", study_magnitude(dz), s, prof, w) for s in gseeds])
            for dz in size.dz for w in size.w}
    checks = {p.name: {m: [toy_run(p.name, m, 1.0, s, prof) for s in gseeds] for m in ("target_only", "cotrain",
                                                                                       "cfg_adda")}
              for p in TOY_PAIRS.values() if p.name != STUDY}
    return Findings(methods, ratio, ratio_source, reweighting, grid, checks)


def result(record: dict[str, Any]) -> dict[str, Any]:
    """What the summary reads of a run's record: its run id, setting and w, the target outputs ("eval": error,
    success, position, target_mode), a guided method's outputs per guidance scale, the representation
    metrics, and its training and evaluation wall time."""
    target = record["eval"]["target"]

    def outputs(d: dict[str, float]) -> dict[str, float]:
        return {"error": d["action_error"], "success": d["success_rate"], "position": d["position"],
                "target_mode": d["target_mode"]}

    config = {k: record["config"][k] for k in ("pair", "method", "magnitude", "n_target", "n_source", "seed", "w",
                                               "profile")}
    return {"run_id": record["run_id"], "config": config, "eval": outputs(target),
            "guidance": {lam: outputs(v) for lam, v in target.get("guidance", {}).items()},
            "metrics": record["metrics"], "val_target": record["train"]["val_target"],
            "wall_s": record["timing"]["train_s"] + record["timing"]["eval_s"]}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _execute(cfg: RunConfig, runs_dir: str) -> dict[str, Any]:
    from benchmark.harness.run import execute_run

    return execute_run(cfg, runs_dir, progress=False)


def run_all(configs: list[RunConfig], runs_dir: str | Path, parallel: int = 2, log=print) -> dict[RunConfig, dict]:
    """Execute (or read back) every run with `benchmark.harness.run.execute_run`; returns each one's `result`."""
    runs_dir = Path(runs_dir)
    unique = list(dict.fromkeys(configs))
    todo = [cfg for cfg in unique if not (runs_dir / cfg.run_id() / "done").exists()]
    log(f"  {len(unique)} runs, {len(unique) - len(todo)} done, {len(todo)} to run")
    t0, done = time.time(), 0

    def progress() -> None:
        nonlocal done
        done += 1
        if done % 20 == 0:
            log(f"    {done}/{len(todo)} ({time.time() - t0:.0f} s)")

    if parallel > 1 and len(todo) > 1:
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            for fut in as_completed([pool.submit(_execute, cfg, str(runs_dir)) for cfg in todo]):
                fut.result()
                progress()
    else:
        import torch

        threads = torch.get_num_threads()
        _init_worker()
        try:
            for cfg in todo:
                _execute(cfg, str(runs_dir))
                progress()
        finally:
            torch.set_num_threads(threads)
    return {cfg: result(_execute(cfg, str(runs_dir))) for cfg in unique}
