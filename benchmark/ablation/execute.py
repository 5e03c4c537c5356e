"""Launching an ablation's items that are not done: trainings, then evaluations of trained checkpoints (both on
the sweep's executors, local processes or Ray, with its error handling), then the expert's rollouts (local
processes: no policy, no GPU)."""
from __future__ import annotations

import traceback
from contextlib import nullcontext
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from benchmark.ablation.items import CellEval, ExpertEval, execute_expert_eval
from benchmark.ablation.plan import Ablation, Item, count
from benchmark.harness.config import RunConfig
from benchmark.harness.jobs import InProgressElsewhere
from benchmark.harness.jobs import is_done as run_done
from benchmark.harness.sweep import launch


def is_done(item: Item, runs_dir: Path) -> bool:
    """An expert cell by its file, a run or evaluation as a sweep's item (`jobs.is_done`)."""
    return item.path(runs_dir).exists() if isinstance(item, ExpertEval) else run_done(item, runs_dir)


def _expert_one(item: ExpertEval, runs_dir: str) -> tuple[str, str | None]:
    """Run one expert evaluation; (id, None) or (id, the error), its traceback in `<id>.error.txt`."""
    try:
        execute_expert_eval(item, runs_dir)
        return item.run_id(), None
    except Exception as err:  # reported in the summary, never lost
        where = item.path(Path(runs_dir)).with_suffix(".error.txt")
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text("".join(traceback.format_exception(err)))
        except OSError:
            pass
        return item.run_id(), f"{type(err).__name__}: {err}"


def _launch_experts(todo: list[ExpertEval], runs_dir: Path, parallel: int, bar: tqdm) -> dict[str, str | None]:
    results: dict[str, str | None] = {}
    if parallel <= 1 or len(todo) <= 1:
        for item in todo:
            run_id, error = _expert_one(item, str(runs_dir))
            results[run_id] = error
            bar.update(1)
        return results
    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        for run_id, error in pool.map(_expert_one, todo, [str(runs_dir)] * len(todo)):
            results[run_id] = error
            bar.update(1)
    return results


def describe(item: Item) -> str:
    """One line of `--dry-run`."""
    if isinstance(item, ExpertEval):
        return f"expert      {item.cell.pair} m={item.cell.magnitude:g} seed={item.cell.seed}"
    if isinstance(item, CellEval):
        return (f"evaluate    {item.pair} m={item.magnitude:g} {item.method} seed={item.trained.seed} "
                f"(checkpoint of {item.trained.run_id()})")
    return f"train       {item.pair} m={item.magnitude:g} {item.method} seed={item.seed}"


def run_ablation(ablation: Ablation, runs_dir: str | Path, executor: str = "local", address: str | None = None,
                 parallel: int = 1, dry_run: bool = False, progress: bool = True, log=print) -> dict[str, str | None]:
    """Run the ablation's items that are not done; returns {id: error or None} of those launched (runs found in
    progress in another process left out and named). RuntimeError if any failed."""
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; known: local, ray")
    runs_dir = Path(runs_dir)
    items = ablation.items()
    todo = [i for i in items if not is_done(i, runs_dir)]
    kinds = ", ".join(f"{n} {k}" for k, n in count(todo).items())
    log(f"ablate {ablation.task}: {len(items)} items, {len(items) - len(todo)} done, {len(todo)} to run ({kinds})")
    if dry_run:
        for item in items:
            log(f"  {item.run_id()} {'done' if is_done(item, runs_dir) else 'todo':<4} {describe(item)}")
        return {}
    results: dict[str, str | None] = {}
    session = nullcontext()
    if executor == "ray" and any(not isinstance(i, ExpertEval) for i in todo):
        from benchmark.harness.ray_exec import ray_session

        session = ray_session(address)
    with tqdm(total=len(todo), desc=f"ablate {ablation.task}", disable=not progress) as bar:
        with session:
            for phase in (RunConfig, CellEval):  # the evaluations read the trained checkpoints
                results.update(launch([i for i in todo if type(i) is phase], runs_dir, executor, parallel, None, bar))
        results.update(_launch_experts([i for i in todo if isinstance(i, ExpertEval)], runs_dir, parallel, bar))
    busy = {k: v for k, v in results.items() if isinstance(v, InProgressElsewhere)}
    failed = {k: v for k, v in results.items() if v and k not in busy}
    log(f"ablate {ablation.task}: {len(results) - len(failed) - len(busy)} finished, {len(failed)} failed, "
        f"{len(busy)} in progress elsewhere")
    for run_id, error in failed.items():
        log(f"  FAILED {run_id}: {error}")
    for message in busy.values():
        log(f"  IN PROGRESS ELSEWHERE {message} (run the ablation again once it ends)")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} ablation items failed")
    return {k: v for k, v in results.items() if k not in busy}
