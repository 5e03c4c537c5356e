"""`cotrain leaderboard`, `analyze`, `submit`, `study`, `toy`: what finished runs say."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.options import add_execution_options, silent_if


def _existing_dir(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    return folder


def _leaderboard(args: argparse.Namespace) -> None:
    from benchmark.analysis.leaderboard import aggregate, load_records, write_leaderboard
    from benchmark.analysis.plots import write_plots

    runs_dir = _existing_dir(args.runs_dir)
    records = load_records(runs_dir)
    if not records:
        raise ValueError(f"{runs_dir}: no record.json found (no finished runs)")
    out = Path(args.out or runs_dir)
    logs = {f"{r['config']['method']} w={r['config'].get('w')} s{r['config']['seed']}":
            runs_dir / r["run_id"] / "train_log.jsonl" for r in records
            if (runs_dir / r["run_id"] / "train_log.jsonl").exists()}
    figures = write_plots(aggregate(records), logs, out)  # first: the html page embeds them
    paths = write_leaderboard(records, out)
    print(Path(paths["md"]).read_text())
    print("wrote " + ", ".join(str(p) for p in [*paths.values(), *figures]))


def _analyze(args: argparse.Namespace) -> None:
    from benchmark.analysis.analyze import analyze

    paths = analyze(args.runs_dir, args.out or args.runs_dir, metric=args.metric)
    print(Path(paths["md"]).read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _submit(args: argparse.Namespace) -> None:
    from benchmark.analysis.submit import submit

    paths = submit(args.records, args.leaderboard)
    print(f"accepted {len(args.records)} record source(s); leaderboard: " + ", ".join(str(p) for p in paths.values()))


def _study(args: argparse.Namespace) -> None:
    from benchmark.study import study

    runs_dir = _existing_dir(args.runs_dir)
    command = f"cotrain study {args.runs_dir} --out {args.out} --track {args.track}" + (
        f" --budget {args.budget}" if args.budget else "") + (" --no-guidance" if args.no_guidance else "")
    summary = study(runs_dir, args.out, track=args.track, budget=args.budget, device=args.device,
                    workers=args.workers, guidance=not args.no_guidance, command=command,
                    log=silent_if(args.quiet))
    for claim in summary["claims"]:
        print(f"  {claim['verdict']:<28} {claim['claim']}")
    print(f"wrote {Path(args.out) / 'COMPARISON.md'} and {len(summary['files']) - 1} more files "
          f"({summary['wall_s']:.0f} s)")


def _toy(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from benchmark.toy import FULL, ToySize, toy_study

    size = FULL if args.full else ToySize()
    for name in ("seeds", "grid_seeds", "profile"):
        if getattr(args, name) is not None:
            size = replace(size, **{name: getattr(args, name)})
    command = "cotrain toy" + (" --full" if args.full else "") + "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}" for name in ("seeds", "grid_seeds", "profile", "parallel")
        if getattr(args, name) is not None)
    toy_study(args.out, args.runs_dir, size, parallel=args.parallel or 2, command=command, log=silent_if(args.quiet))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="aggregate record.json files into md/csv/html")
    p.add_argument("runs_dir")
    p.add_argument("--out")
    p.set_defaults(func=_leaderboard)

    p = sub.add_parser("analyze", help="correlate representation metrics with success across a sweep")
    p.add_argument("runs_dir")
    p.add_argument("--out")
    p.add_argument("--metric", default="structured_alignment", help="metric for the scatter plot")
    p.set_defaults(func=_analyze)

    p = sub.add_parser("submit", help="check records against the protocol and add them to a leaderboard")
    p.add_argument("records", nargs="+", help="record.json files or run folders")
    p.add_argument("--leaderboard", default="results/leaderboard", help="leaderboard folder")
    p.set_defaults(func=_submit)

    p = sub.add_parser("study", help="the study track's analyses and COMPARISON.md from a study sweep's runs")
    p.add_argument("runs_dir", help="runs folder of `cotrain sweep --track study --budget B`")
    p.add_argument("--out", default="results/study", help="tables, figures and COMPARISON.md")
    p.add_argument("--track", default="study", help="the track whose grid the runs belong to")
    p.add_argument("--budget", help="the track's budget (default: the records' profile)")
    p.add_argument("--no-guidance", action="store_true", help="read cached guidance sweeps only, evaluate none")
    add_execution_options(p, runs=False)
    p.set_defaults(func=_study)

    p = sub.add_parser("toy", help="the study's toy-model findings: figures and a summary in results/toy")
    p.add_argument("--out", default="results/toy", help="figures, summary.md and data.json")
    p.add_argument("--runs-dir", default="runs/toy", help="run folders of the toy's runs (one per config hash)")
    p.add_argument("--parallel", type=int, help="worker processes (default 2)")
    p.add_argument("--seeds", type=int, help="seeds of findings 1-4 (default 3)")
    p.add_argument("--grid-seeds", type=int, help="seeds of the Δz × w grid and the pair checks (default 2)")
    p.add_argument("--profile", help="harness profile of every run (default `toy`, 1000 steps; --full: `toy_full`)")
    p.add_argument("--full", action="store_true", help="the whole grid, 5 seeds, 2000 steps (a few hours)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_toy)
