"""`cotrain run`, `cotrain sweep`, `cotrain quickstart`: training and evaluating runs."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from benchmark.cli.options import (add_command, add_execution_options, add_launch_options, add_log_csv_option,
                                   add_precision_option, add_profile_option, add_run_options, silent_if)


def _run(args: argparse.Namespace) -> None:
    from benchmark.harness.config import RunConfig, parse_set
    from benchmark.harness.run import execute_run

    cfg = RunConfig(pair=args.pair, method=args.method, magnitude=args.magnitude, n_target=args.n_target,
                    n_source=args.n_source, seed=args.seed, profile=args.profile,
                    hparams=tuple(parse_set(args.set).items()), network=args.network, episodes=args.episodes,
                    backend=args.backend, device=args.device, workers=args.workers, threads=args.threads,
                    precision=args.precision, log_csv=args.log_csv)
    record = execute_run(cfg, args.runs_dir, progress=not args.quiet)
    print(f"run {record['run_id']} ({Path(args.runs_dir) / record['run_id']})")
    for domain in ("target", "source"):
        result = record["eval"].get(domain)
        if result:
            lo, hi = result["ci95"]
            print(f"  {domain} success {result['successes']}/{result['n']} = {result['success_rate']:.3f} "
                  f"[{lo:.3f}, {hi:.3f}]")
    m = record["metrics"]
    print(f"  alignment W = {m.get('align_wasserstein', float('nan')):.3f}, discernibility (MLP on z_cond) "
          f"= {m.get('discern_mlp_cond', float('nan')):.3f}, structured alignment = "
          f"{m.get('structured_alignment', float('nan')):.3f}")


def _sweep(args: argparse.Namespace) -> None:
    from benchmark.harness.grid import each_part, load_grid
    from benchmark.harness.sweep import parse_duration, run_sweep

    time_limit = parse_duration(args.time_limit) if args.time_limit else None  # a bad one is named before any work
    grid = load_grid(args.grid, track=args.track, budget=args.budget)
    for option, field in (("--only-pair", "pairs"), ("--only-method", "methods")):
        only = getattr(args, option[2:].replace("-", "_"))
        if only:
            unknown = sorted(set(only) - set(getattr(grid, field)))
            if unknown:
                raise ValueError(f"{option} {', '.join(unknown)}: not among the grid's {field} "
                                 f"({', '.join(getattr(grid, field))})")
            grid = each_part(grid, lambda g: replace(g, **{field: tuple(x for x in getattr(g, field) if x in only)}))
    if args.precision:
        grid = each_part(grid, lambda g: replace(g, precision=args.precision))
    run_sweep(grid, args.runs_dir, executor=args.executor, address=args.address, parallel=args.parallel,
              device=args.device, workers=args.workers, threads=args.threads, dry_run=args.dry_run,
              progress=not args.quiet, log_csv=args.log_csv, time_limit=time_limit)


def _quickstart(args: argparse.Namespace) -> None:
    from benchmark.harness.quickstart import quickstart

    quickstart(args.pair, args.runs_dir, args.seed, device=args.device, workers=args.workers,
               threads=args.threads, profile=args.profile, progress=not args.quiet, log=silent_if(args.quiet))


def _calibrate(args: argparse.Namespace) -> None:
    from benchmark.harness.calibrate import Calibration, report_dir, run_calibration, write_report

    given = {k: tuple(v) if isinstance(v, list) else v for k, v in
             (("ladder", args.ladder), ("seeds", args.seeds), ("episodes", args.episodes), ("methods", args.methods))
             if v is not None}
    cal = Calibration(args.pair, profile=args.profile, **given)  # what is not given: the calibration's defaults
    runs_dir = Path(args.runs_dir)
    if not args.report_only:
        run_calibration(cal, runs_dir, workers=args.workers, progress=not args.quiet)
    out = Path(args.out) if args.out else report_dir(args.pair)
    print(f"wrote {write_report(cal, runs_dir, out)}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "run", "one run: demos, training, evaluation, metrics")
    add_run_options(p)
    add_execution_options(p)
    add_precision_option(p)
    add_log_csv_option(p)
    p.set_defaults(func=_run)

    p = add_command(sub, "sweep", "a grid of runs, resumable, local or on Ray")
    p.add_argument("grid", nargs="?", help="YAML grid file")
    p.add_argument("--track", help="a committed track grid, e.g. `study`")
    p.add_argument("--budget", help="the track's budget, e.g. smoke, quick, full")
    add_launch_options(p, "runs", "local: worker processes here; ray: tasks on a Ray cluster")
    p.add_argument("--only-pair", action="append", metavar="PAIR",
                   help="run only the grid's runs on this pair (repeatable); the others stay to do, and a track's "
                        "records name the track all the same")
    p.add_argument("--only-method", action="append", metavar="METHOD",
                   help="run only the grid's runs of this method (repeatable), as --only-pair")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="start only the runs that end within this duration (e.g. 2h30m, 90m) by the estimate the "
                        "sweep prints (finished records of their pair and method, updated as runs finish); the others "
                        "are left for the next sweep, as on a machine or job with a wall-time limit (local executor)")
    add_execution_options(p)
    add_precision_option(p, default=None, help="training arithmetic of every run, replacing the grid's "
                                               "`precision` (default: the grid's, fp32 where it names none)")
    add_log_csv_option(p)
    p.set_defaults(func=_sweep)

    p = add_command(sub, "quickstart", "every method, quick profile, one pair and seed")
    p.add_argument("--pair", default="lift/dynamics", help="a registered pair or a factor pair")
    p.add_argument("--seed", type=int, default=0, help="run seed of every run")
    add_profile_option(p, help="size profile of every run")
    add_execution_options(p)
    p.set_defaults(func=_quickstart)

    p = add_command(sub, "calibrate", "learning curves of a pair on validation start states; its training length")
    p.add_argument("pair", help="the pair to calibrate")
    p.add_argument("--ladder", type=int, nargs="+", help="step counts, each double the one before (default 500-8000)")
    p.add_argument("--seeds", type=int, nargs="+", help="run seeds (default 0 1 2)")
    p.add_argument("--episodes", type=int, help="validation episodes per run and domain (default 50)")
    p.add_argument("--methods", nargs="+", help="the methods to curve (default: target_only source_only cotrain)")
    add_profile_option(p, help="profile of every run (its steps replaced by the ladder's)")
    p.add_argument("--out", help="report folder (default results/calibration/<pair>)")
    p.add_argument("--report-only", action="store_true", help="write the report from finished runs only")
    add_execution_options(p)
    p.set_defaults(func=_calibrate, runs_dir="results/calibration/runs")
