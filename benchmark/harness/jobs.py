"""One item of a sweep, run where a worker runs it: a trained run (`benchmark.harness.run.execute_run`) or a
no-gap evaluation of a trained run's checkpoint (`execute_nogap_eval`), its failure kept as text and
`error.txt`, never lost. The sweep's local pool, the Ray tasks and the recipe search all run items by `run_item`.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from benchmark.harness.config import RunConfig
from benchmark.harness.grid import NoGapEval


def execute_nogap_eval(ev: NoGapEval, runs_dir: str | Path, track: dict | None = None,
                       progress: bool = False) -> dict[str, Any]:
    """Evaluate (or read back) a `NoGapEval` under its own folder's lock; its trained run must be done (a missing
    checkpoint is trained again, `run.restore_checkpoint`). The record has the trained run's `w`, the target
    domain's evaluation at the control's magnitude, no training of its own, and representation metrics where the
    item `measures` (the trained checkpoint's z on the paired replay of the evaluated cell: `run.stage_metrics`)."""
    from benchmark.harness.fingerprint import fingerprint
    from benchmark.harness.lock import run_lock
    from benchmark.harness.run import (RECORD_SCHEMA, ensure_demos, pair_hooks, read_json, restore_checkpoint,
                                       stage_metrics, write_json)

    runs_dir = Path(runs_dir)
    trained_dir, run_dir = runs_dir / ev.trained.run_id(), runs_dir / ev.run_id()
    if is_done(ev, runs_dir):
        return read_json(run_dir / "record.json")
    if not (trained_dir / "done").exists():
        raise RuntimeError(f"the no-gap evaluation {ev.run_id()} evaluates run {trained_dir.name}, which is not "
                           f"finished in {runs_dir}")
    restore_checkpoint(ev.trained, runs_dir, progress)  # where its small files were committed without it
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        if is_done(ev, runs_dir):
            return read_json(run_dir / "record.json")
        config, cell = ev.to_json(), ev.control()
        write_json(run_dir / "config.json", config)
        if not (run_dir / "eval.json").exists():
            # the target alone, at the control's magnitude
            write_json(run_dir / "eval.json", pair_hooks(ev.trained.pair).evaluate(cell, trained_dir, progress,
                                                                                   domains=("target",)))
        evaluation = read_json(run_dir / "eval.json")
        if ev.measures and not (run_dir / "metrics.json").exists():
            replay = {d: ensure_demos(runs_dir, cell, d, cell.size.replay_episodes, "replay", progress)
                      for d in ("source", "target")}
            write_json(run_dir / "metrics.json", stage_metrics(cell, trained_dir, replay))
        trained = read_json(trained_dir / "record.json")
        record = {
            "schema": RECORD_SCHEMA, "run_id": config["run_id"], "config": {**config, "w": trained["config"]["w"]},
            "eval": evaluation, "metrics": read_json(run_dir / "metrics.json") if ev.measures else {},
            "target_error": evaluation["target"].get("target_error"),
            "train": None, "timing": {"train_s": 0.0, "eval_s": evaluation.get("wall_s")},
            "fingerprint": fingerprint(ev.trained.device), "track": track,
        }
        write_json(run_dir / "record.json", record)
        (run_dir / "done").touch()
    return record


Item = RunConfig | NoGapEval  # what a sweep launches


def is_done(item: Item, runs_dir: Path) -> bool:
    """Its folder's `done`; for an evaluation that `measures`, its metrics too (an evaluation finished before
    it measured is measured then, its evaluation kept)."""
    folder = Path(runs_dir) / item.run_id()
    return (folder / "done").exists() and (not getattr(item, "measures", False) or (folder / "metrics.json").exists())


def _execute(item: Item, runs_dir: str, track: dict | None) -> dict[str, Any]:
    from benchmark.harness.run import execute_run

    if isinstance(item, NoGapEval):
        return execute_nogap_eval(item, runs_dir, track)
    return execute_run(item, runs_dir, progress=False, track=track)


class InProgressElsewhere(str):
    """What `run_item` returns for a run that another process holds (its lock's message): neither finished
    nor failed here."""


def run_item(cfg: Item, runs_dir: str, track: dict | None = None) -> tuple[str, str | None]:
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
