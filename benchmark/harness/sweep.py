"""Sweeps: a grid's runs (`benchmark.harness.grid`), listed, launched where not done, on local processes or Ray
(`ray_exec`).

A sweep of a track (`grid.load_grid(track=...)`) names the track and budget in every record it makes
(`record["track"]`); a run outside any track names none. A no-gap control of kind `evaluate` (a `NoGapEval`) runs
after the trained runs (`execute_nogap_eval`).
"""
from __future__ import annotations

import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmark.harness.config import RunConfig
from benchmark.harness.grid import AnyGrid, NoGapEval, pending_steps
from benchmark.harness.gridspec import GridError


def execute_nogap_eval(ev: NoGapEval, runs_dir: str | Path, track: dict | None = None,
                       progress: bool = False) -> dict[str, Any]:
    """Evaluate (or read back) a `NoGapEval` under its own folder's lock; its trained run must be done (a missing
    checkpoint is trained again, `run.restore_checkpoint`). The record has the trained run's `w`, the target domain's evaluation only (the source's is the
    trained run's), no representation metrics and no training of its own."""
    from benchmark.harness.fingerprint import fingerprint
    from benchmark.harness.lock import run_lock
    from benchmark.harness.run import RECORD_SCHEMA, pair_hooks, read_json, restore_checkpoint, write_json

    runs_dir = Path(runs_dir)
    trained_dir, run_dir = runs_dir / ev.trained.run_id(), runs_dir / ev.run_id()
    if (run_dir / "done").exists():
        return read_json(run_dir / "record.json")
    if not (trained_dir / "done").exists():
        raise RuntimeError(f"the no-gap evaluation {ev.run_id()} evaluates run {trained_dir.name}, which is not "
                           f"finished in {runs_dir}")
    if not (trained_dir / "checkpoint").exists():  # its small files were committed without it: train it again
        restore_checkpoint(ev.trained, runs_dir, progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        if (run_dir / "done").exists():
            return read_json(run_dir / "record.json")
        config = ev.to_json()
        write_json(run_dir / "config.json", config)
        if not (run_dir / "eval.json").exists():
            # the target alone: the source is the trained run's own, evaluated with it
            write_json(run_dir / "eval.json", pair_hooks(ev.trained.pair).evaluate(ev.control(), trained_dir, progress,
                                                                                   domains=("target",)))
        evaluation = read_json(run_dir / "eval.json")
        trained = read_json(trained_dir / "record.json")
        record = {
            "schema": RECORD_SCHEMA, "run_id": config["run_id"], "config": {**config, "w": trained["config"]["w"]},
            "eval": evaluation, "metrics": {}, "target_error": evaluation["target"].get("target_error"),
            "train": None, "timing": {"train_s": 0.0, "eval_s": evaluation.get("wall_s")},
            "fingerprint": fingerprint(ev.trained.device), "track": track,
        }
        write_json(run_dir / "record.json", record)
        (run_dir / "done").touch()
    return record


Item = RunConfig | NoGapEval  # what a sweep launches


def is_done(item: Item, runs_dir: Path) -> bool:
    return (runs_dir / item.run_id() / "done").exists()


def _execute(item: Item, runs_dir: str, track: dict | None) -> dict[str, Any]:
    from benchmark.harness.run import execute_run

    if isinstance(item, NoGapEval):
        return execute_nogap_eval(item, runs_dir, track)
    return execute_run(item, runs_dir, progress=False, track=track)


class InProgressElsewhere(str):
    """What `_run_one` returns for a run that another process holds (its lock's message): neither finished
    nor failed here."""


def _run_one(cfg: Item, runs_dir: str, track: dict | None = None) -> tuple[str, str | None]:
    """Execute a run; return (run_id, None), or (run_id, error text) writing error.txt where it can, or
    (run_id, `InProgressElsewhere`) where another process holds the run."""
    from benchmark.harness.errors import describe_os_error
    from benchmark.harness.lock import RunInProgress

    try:
        _execute(cfg, runs_dir, track)
        return cfg.run_id(), None
    except RunInProgress as err:
        return cfg.run_id(), InProgressElsewhere(err)
    except Exception as err:  # a failed run is reported in the sweep summary, never lost
        summary = describe_os_error(err) if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
        try:
            run_dir = Path(runs_dir) / cfg.run_id()
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text("".join(traceback.format_exception(err)))
        except OSError as write_err:  # e.g. the runs folder is read-only: the summary still says what failed
            summary += f" (error.txt not written: {write_err.strerror})"
        return cfg.run_id(), summary


def run_sweep(grid: AnyGrid, runs_dir: str | Path, executor: str = "local", address: str | None = None,
              parallel: int = 1, device: str = "cpu", workers: int = 1, threads: int = 1, dry_run: bool = False,
              progress: bool = True, log_csv: bool = False) -> dict[str, str | None]:
    """Launch the grid's runs that are not done; returns {run_id: error or None} of those launched, leaving
    out the runs found in progress in another process (named in the summary, not failed)."""
    runs_dir = Path(runs_dir)
    runs: list[Item] = [replace(cfg, device=device, workers=workers, threads=threads, log_csv=log_csv)
                        for cfg in grid.runs()]
    runs += [NoGapEval(replace(ev.trained, device=device, workers=workers, threads=threads))
             for ev in grid.evaluations()]
    todo = [cfg for cfg in runs if not is_done(cfg, runs_dir)]
    pending = pending_steps(grid)
    if pending and not dry_run:  # runs at a length the calibration has not named would be thrown away
        raise GridError(f"{', '.join(pending)}: training steps pending (null in the grid's `steps`): calibrate "
                        f"(`cotrain calibrate PAIR`) and set them, or leave the pair out (--only-pair)")
    print(f"sweep: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run ({executor})"
          + (f"; steps pending for {', '.join(pending)}" if pending else ""))
    if dry_run:
        for cfg in runs:
            state = "done" if is_done(cfg, runs_dir) else "todo"
            if isinstance(cfg, NoGapEval):
                print(f"  {cfg.run_id()} {state:<4} {cfg.trained.pair} m=0 {cfg.method} seed={cfg.trained.seed} "
                      f"(evaluates {cfg.trained.run_id()})")
                continue
            w, resolved = dict(cfg.hparams).get("w"), cfg.resolved()
            others = "".join(f" {k}={v}" for k, v in cfg.hparams if k != "w")  # set or varied hyperparameters
            print(f"  {cfg.run_id()} {state:<4} {cfg.pair} m={cfg.magnitude:g} {cfg.method} w={w} seed={cfg.seed} "
                  f"N={resolved.n_target} M={resolved.n_source}{others}")
        return {}
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; known: local, ray")
    results: dict[str, str | None] = {}
    bar = tqdm(total=len(todo), desc="sweep", disable=not progress)
    session = nullcontext()
    if executor == "ray" and todo:
        from benchmark.harness.ray_exec import ray_session

        session = ray_session(address)
    with session:
        # the evaluations of trained checkpoints after the training runs (whose folders the driver then has)
        for phase in ([c for c in todo if isinstance(c, RunConfig)], [c for c in todo if isinstance(c, NoGapEval)]):
            results.update(launch(phase, runs_dir, executor, parallel, grid.track, bar))
    bar.close()
    busy = {k: v for k, v in results.items() if isinstance(v, InProgressElsewhere)}
    results = {k: v for k, v in results.items() if k not in busy}
    failed = {k: v for k, v in results.items() if v}
    print(f"sweep: {len(results) - len(failed)} finished, {len(failed)} failed, {len(busy)} in progress elsewhere")
    for run_id, error in failed.items():
        where = runs_dir / run_id / "error.txt"
        print(f"  FAILED {run_id}: {error}" + (f" (see {where})" if where.is_file() else ""))
    for message in busy.values():
        print(f"  IN PROGRESS ELSEWHERE {message} (run the sweep again once it ends)")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} runs failed")
    return results


def launch(todo: list[Item], runs_dir: Path, executor: str, parallel: int, track: dict | None,
           bar: tqdm) -> dict[str, str | None]:
    """Run `todo` on the executor (Ray: in the session the caller opened, `ray_exec.ray_session`); returns
    {run_id: error or None}."""
    results: dict[str, str | None] = {}
    if not todo:
        return results
    if executor == "local" and parallel <= 1:
        for cfg in todo:
            run_id, error = _run_one(cfg, str(runs_dir), track)
            results[run_id] = error
            bar.update(1)
    elif executor == "local":
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_one, cfg, str(runs_dir), track) for cfg in todo]
            for fut in as_completed(futures):
                run_id, error = fut.result()
                results[run_id] = error
                bar.update(1)
    else:
        from benchmark.harness.ray_exec import run_on_ray

        results = run_on_ray(todo, runs_dir, track, bar)
    return results
