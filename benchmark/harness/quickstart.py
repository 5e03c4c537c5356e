"""`cotrain quickstart`: every method on one pair and seed at the `quick` profile, then the leaderboard."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from benchmark.harness.config import RunConfig
from benchmark.analysis.leaderboard import write_leaderboard
from benchmark.analysis.records import load_records
from benchmark.harness.run import execute_run
from benchmark.analysis.stats import min_detectable_difference


def quickstart(pair: str = "lift/dynamics", runs_dir: str | Path = "runs/quickstart", seed: int = 0,
               device: str = "cpu", workers: int = 1, threads: int = 1, profile: str = "quick",
               progress: bool = True, log: Callable[..., None] = print) -> Path:
    """Run all registered methods once; print the leaderboard and where the files are (`progress`: the
    runs' progress bars; `log`: a line per method as it starts and ends)."""
    from baselines import METHODS

    runs_dir = Path(runs_dir)
    start = time.time()
    ids = []
    for i, method in enumerate(METHODS.names(), 1):
        cfg = RunConfig(pair=pair, method=method, seed=seed, profile=profile, device=device, workers=workers,
                        threads=threads)
        log(f"[{i}/{len(METHODS)}] {method} ({time.time() - start:.0f} s elapsed)", flush=True)
        record = execute_run(cfg, runs_dir, progress=progress)
        ids.append(record["run_id"])
        tgt = record["eval"]["target"]
        log(f"    target success {tgt['successes']}/{tgt['n']}", flush=True)
    records = [r for r in load_records(runs_dir) if r["run_id"] in ids]
    paths = write_leaderboard(records, runs_dir, title=f"Quickstart: {pair}, seed {seed}, profile {profile}")
    print(Path(paths["md"]).read_text())
    episodes = records[0]["eval"]["target"]["n"]
    print(f"One seed, {episodes} episodes per method: differences under "
          f"{min_detectable_difference(episodes):.2f} in success rate are not resolved; this is a "
          f"demonstration of the path, not a ranking.")
    print(f"Total {time.time() - start:.0f} s. Runs, checkpoints and logs: {runs_dir}/<run id>/; "
          f"leaderboard: {', '.join(str(p) for p in paths.values())}")
    return runs_dir
