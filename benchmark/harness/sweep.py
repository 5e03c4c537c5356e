"""Sweeps: a grid's runs (`benchmark.harness.grid`), listed, launched where not done, on local processes or Ray
(`ray_exec`).

A sweep of a track (`grid.load_grid(track=...)`) names the track and budget in every record it makes
(`record["track"]`); a run outside any track names none. A no-gap control of kind `evaluate` (a `NoGapEval`) runs
after the trained runs. Each item runs by `jobs.run_item`.
"""
from __future__ import annotations

import heapq
import json
import re
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.analysis.cost import core_seconds
from benchmark.harness.config import RunConfig
from benchmark.harness.grid import AnyGrid, NoGapEval, pending_steps
from benchmark.harness.gridspec import GridError
from benchmark.harness.jobs import InProgressElsewhere, Item, is_done, run_item


def _kind(item: Item) -> tuple[str, str]:
    """(pair, method), the method at a magnitude other than 1 as `<method>@<magnitude>` (no-gap controls `@0`)."""
    pair, method, magnitude = ((item.trained.pair, item.method, 0.0) if isinstance(item, NoGapEval)
                               else (item.pair, item.method, item.magnitude))
    return pair, method + ("" if magnitude == 1.0 else f"@{magnitude:g}")


def status_lines(runs: list[Item], todo: list[Item]) -> list[str]:
    """Per pair, each method's runs done (those of `runs` not in `todo`) out of its runs, in grid order:
    `lift/sensing: target_only 5/20, cotrain 20/20, cotrain@0 5/5, source_only@0 5/5`."""
    pending = {id(item) for item in todo}
    counts: dict[str, dict[str, list[int]]] = {}
    for item in runs:
        pair, method = _kind(item)
        done_all = counts.setdefault(pair, {}).setdefault(method, [0, 0])
        done_all[0] += id(item) not in pending
        done_all[1] += 1
    return [f"{pair}: " + ", ".join(f"{m} {d}/{n}" for m, (d, n) in methods.items())
            for pair, methods in counts.items()]


class RunCosts:
    """What finished runs cost, to estimate the runs to go: core-seconds (training and evaluation,
    `analysis.cost.core_seconds`) of each finished record by (pair, method) and by pair. A run's estimate is the
    median of its pair and method, else of its pair, else none (never guessed)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.of_kind: dict[tuple[str, str], list[float]] = {}
        self.of_pair: dict[str, list[float]] = {}

    def learn(self, item: Item) -> None:
        """Count `item`'s record, where it has a timed one."""
        record = self.runs_dir / item.run_id() / "record.json"
        spent = core_seconds(json.loads(record.read_text())) if record.is_file() else None
        if spent is not None:
            self.of_kind.setdefault(_kind(item), []).append(spent)
            self.of_pair.setdefault(_kind(item)[0], []).append(spent)

    def estimate(self, item: Item) -> tuple[float | None, bool]:
        """(core-seconds or None, whether by its pair's median for want of its method's)."""
        kind = _kind(item)
        if kind in self.of_kind:
            return float(np.median(self.of_kind[kind])), False
        if kind[0] in self.of_pair:
            return float(np.median(self.of_pair[kind[0]])), True
        return None, False


def run_costs(runs: list[Item], todo: list[Item], runs_dir: Path) -> RunCosts:
    """`RunCosts` learnt from the runs of `runs` not in `todo` (finished)."""
    pending = {id(item) for item in todo}
    costs = RunCosts(runs_dir)
    for item in runs:
        if id(item) not in pending:
            costs.learn(item)
    return costs


def wall_seconds(seconds: list[float], parallel: int) -> float:
    """The wall time of runs taking `seconds` each, started in this order by the first of `parallel` slots to come
    free, as the local executor starts them."""
    slots = [0.0] * max(parallel, 1)
    for spent in seconds:
        heapq.heapreplace(slots, slots[0] + spent)
    return max(slots)


def to_go_line(costs: RunCosts, todo: list[Item], parallel: int) -> str:
    """The compute `todo` will take, by `costs`, and its wall time at `parallel` (the trained runs, then the
    no-gap evaluations, as `run_sweep` launches them); the pairs with no estimate are named."""
    estimates = [(item, *costs.estimate(item)) for item in todo]
    timed = [(item, seconds) for item, seconds, _ in estimates if seconds is not None]
    total, known = sum(seconds for _, seconds in timed), len(timed)
    wall = (wall_seconds([seconds for item, seconds in timed if not isinstance(item, NoGapEval)], parallel)
            + wall_seconds([seconds for item, seconds in timed if isinstance(item, NoGapEval)], parallel))
    by_pair = sum(pair for _, seconds, pair in estimates if seconds is not None)
    unknown = Counter(_kind(item)[0] for item, seconds, _ in estimates if seconds is None)
    line = (f"to go: about {total / 3600:.1f} core-hours for {known} runs, about "
            f"{wall / 3600:.1f} h at --parallel {parallel} (each run: the median of the "
            f"finished records here of its pair and method, or for {by_pair} of them of its pair)")
    if unknown:
        line += "; not estimated, no run of their pair finished yet: " + ", ".join(
            f"{pair} {n} runs" for pair, n in unknown.items())
    return line


def parse_duration(text: str) -> float:
    """Seconds of a duration written `2h`, `90m`, `1h30m` or `45s` (GridError naming it otherwise)."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise GridError(f"--time-limit {text!r}: expected a duration such as 2h, 90m, 1h30m or 45s")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


class LeftForLater(str):
    """What `launch` gives a run that the time limit did not start: neither finished nor failed; the next sweep
    runs it."""


@dataclass
class TimeLimit:
    """Start no run whose estimate (`RunCosts`, core-seconds: its wall time at one thread), as the runs finished
    so far give it, says it would end more than `seconds` after the limit began; a run without one is started."""

    seconds: float
    costs: RunCosts
    began: float = field(default_factory=time.monotonic)

    def allows(self, item: Item) -> bool:
        return time.monotonic() - self.began + (self.costs.estimate(item)[0] or 0.0) <= self.seconds


def run_sweep(grid: AnyGrid, runs_dir: str | Path, executor: str = "local", address: str | None = None,
              parallel: int = 1, device: str = "cpu", workers: int = 1, threads: int = 1, dry_run: bool = False,
              progress: bool = True, log_csv: bool = False, time_limit: float | None = None) -> dict[str, str | None]:
    """Launch the grid's runs that are not done; returns {run_id: error or None} of those launched, leaving
    out the runs found in progress in another process (named in the summary, not failed). With `time_limit`
    (seconds, local executor), a run is started only where its estimate says it ends within the limit; the
    others are left for the next sweep (named in the summary, not failed)."""
    if time_limit is not None and executor != "local":
        raise GridError("--time-limit is for the local executor (a Ray cluster schedules its own runs)")
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
    limit = None
    if todo:
        costs = run_costs(runs, todo, runs_dir)  # the finished records, read once for the line and the limit
        print(to_go_line(costs, todo, parallel))
        limit = None if time_limit is None or dry_run else TimeLimit(time_limit, costs)
    if dry_run:
        todo_ids = {id(item) for item in todo}
        for cfg in runs:
            state = "todo" if id(cfg) in todo_ids else "done"
            if isinstance(cfg, NoGapEval):
                print(f"  {cfg.run_id()} {state:<4} {cfg.trained.pair} m=0 {cfg.method} seed={cfg.trained.seed} "
                      f"(evaluates {cfg.trained.run_id()})")
                continue
            w, resolved = dict(cfg.hparams).get("w"), cfg.resolved()
            others = "".join(f" {k}={v}" for k, v in cfg.hparams if k != "w")  # set or varied hyperparameters
            print(f"  {cfg.run_id()} {state:<4} {cfg.pair} m={cfg.magnitude:g} {cfg.method} w={w} seed={cfg.seed} "
                  f"N={resolved.n_target} M={resolved.n_source}{others}")
        for line in status_lines(runs, todo):
            print(line)
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
        results.update(launch([c for c in todo if isinstance(c, RunConfig)], runs_dir, executor, parallel,
                              grid.track, bar, limit))
        evaluations = [c for c in todo if isinstance(c, NoGapEval)]
        for ev in evaluations:  # an evaluation of a run the time limit left waits with it
            if isinstance(results.get(ev.trained.run_id()), LeftForLater):
                results[ev.run_id()] = LeftForLater("its trained run was not started within --time-limit")
        results.update(launch([ev for ev in evaluations if ev.run_id() not in results], runs_dir, executor,
                              parallel, grid.track, bar, limit))
    bar.close()
    busy = {k: v for k, v in results.items() if isinstance(v, InProgressElsewhere)}
    later = [k for k, v in results.items() if isinstance(v, LeftForLater)]
    results = {k: v for k, v in results.items() if k not in busy and k not in later}
    failed = {k: v for k, v in results.items() if v}
    print(f"sweep: {len(results) - len(failed)} finished, {len(failed)} failed, {len(busy)} in progress elsewhere"
          + (f", {len(later)} not started: by their estimates they would end after --time-limit (the next sweep "
             f"runs them)" if later else ""))
    for run_id, error in failed.items():
        where = runs_dir / run_id / "error.txt"
        print(f"  FAILED {run_id}: {error}" + (f" (see {where})" if where.is_file() else ""))
    for message in busy.values():
        print(f"  IN PROGRESS ELSEWHERE {message} (run the sweep again once it ends)")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} runs failed")
    return results


def launch(todo: list[Item], runs_dir: Path, executor: str, parallel: int, track: dict | None,
           bar: tqdm, limit: TimeLimit | None = None) -> dict[str, str | None]:
    """Run `todo` on the executor (Ray: in the session the caller opened, `ray_exec.ray_session`), at most
    `parallel` at once locally, each started only where `limit` allows it (else `LeftForLater`); returns
    {run_id: error or None}."""
    results: dict[str, str | None] = {}
    if not todo:
        return results
    if executor != "local":
        from benchmark.harness.ray_exec import run_on_ray

        return run_on_ray(todo, runs_dir, track, bar)
    queue = list(todo)

    def next_item() -> Item | None:
        while queue:
            item = queue.pop(0)
            if limit is None or limit.allows(item):
                return item
            results[item.run_id()] = LeftForLater("not started within --time-limit")
        return None

    def finish(item: Item, run_id: str, error: str | None) -> None:
        results[run_id] = error
        bar.update(1)
        if limit is not None and not error:
            limit.costs.learn(item)  # the estimates of the runs still to start learn from it

    if parallel <= 1:
        while (item := next_item()) is not None:
            finish(item, *run_item(item, str(runs_dir), track))
        return results
    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        running: dict = {}
        while True:
            while len(running) < parallel and (item := next_item()) is not None:
                running[pool.submit(run_item, item, str(runs_dir), track)] = item
            if not running:
                return results
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                finish(running.pop(fut), *fut.result())
