"""`cotrain leaderboard`, `videos`, `analyze`, `submit`, `study`, `toy`: what finished runs say."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.options import add_command, add_execution_options, add_profile_option, fresh_folder, silent_if


def _existing_dir(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    return folder


def _leaderboard(args: argparse.Namespace) -> None:
    from benchmark.analysis.leaderboard import write_leaderboard
    from benchmark.analysis.plots import training_logs
    from benchmark.analysis.records import load_records

    runs_dir = _existing_dir(args.runs_dir)
    records = load_records(runs_dir)
    if not records:
        raise ValueError(f"{runs_dir}: no record.json found (no finished runs)")
    out = Path(args.out or runs_dir)
    paths = write_leaderboard(records, out, logs=training_logs(records, runs_dir))
    print(Path(paths["md"]).read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _videos(args: argparse.Namespace) -> None:
    from benchmark.analysis.videos import board_videos

    paths = board_videos(args.runs, args.out, episodes=args.episodes, fmt=args.format, device=args.device,
                         log=silent_if(args.quiet), train_missing=args.train_missing)
    print(f"wrote {len(paths)} video(s) to {args.out}")


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
    out = args.out or fresh_folder("study")
    command = f"cotrain study {args.runs_dir} --out {out} --track {args.track}" + (
        f" --budget {args.budget}" if args.budget else "") + (" --no-guidance" if args.no_guidance else "") + (
        f" --previous {args.previous}" if args.previous else "")
    summary = study(runs_dir, out, track=args.track, budget=args.budget, device=args.device,
                    workers=args.workers, guidance=not args.no_guidance, command=command,
                    log=silent_if(args.quiet), previous=args.previous)
    for claim in summary["claims"]:
        print(f"  {claim['verdict']:<28} {claim['claim']}")
    print(f"wrote {Path(out) / 'COMPARISON.md'} and {len(summary['files']) - 1} more files "
          f"({summary['wall_s']:.0f} s)")


def _toy(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from benchmark.toy import FULL, ToySize, toy_study

    size = FULL if args.full else ToySize()
    for name in ("seeds", "grid_seeds", "profile"):
        if getattr(args, name) is not None:
            size = replace(size, **{name: getattr(args, name)})
    out = args.out or fresh_folder("toy")
    given = {"--out": args.out, "--n-seeds": args.seeds, "--n-grid-seeds": args.grid_seeds, "--profile": args.profile,
             "--parallel": args.parallel}
    command = "cotrain toy" + (" --full" if args.full else "") + "".join(
        f" {flag} {value}" for flag, value in given.items() if value is not None)
    toy_study(out, args.runs_dir, size, parallel=args.parallel or 2, command=command, log=silent_if(args.quiet))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "leaderboard", "aggregate record.json files into md/csv/html")
    p.add_argument("runs_dir", help="folder of run folders (record.json each)")
    p.add_argument("--out", help="folder for the leaderboard and figures (default: RUNS_DIR)")
    p.set_defaults(func=_leaderboard)

    p = add_command(sub, "videos", "rollout videos of records' own target test episodes, for the leaderboard page")
    p.add_argument("runs", metavar="RUNS_DIR_OR_RUN",
                   help="a run folder, or a folder of run folders (then the first seed of each pair and method)")
    p.add_argument("--out", required=True,
                   help="folder for the videos (BOARD_DIR/media: the leaderboard page in BOARD_DIR links them)")
    p.add_argument("--episodes", type=int, default=2, help="the record's first target test episodes to film, per run")
    p.add_argument("--format", choices=["gif", "mp4"], default="gif",
                   help="gif (plays in every browser) or mp4 (mp4v: smaller, not every browser plays it)")
    p.add_argument("--device", help="torch device to re-simulate on (default: the run's, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--train-missing", action="store_true",
                   help="train a run committed without its checkpoint again (deterministic) to film it")
    p.set_defaults(func=_videos)

    p = add_command(sub, "analyze", "correlate representation metrics with success across a sweep")
    p.add_argument("runs_dir", help="folder of a sweep's run folders")
    p.add_argument("--out", help="folder for the analysis tables and plot (default: RUNS_DIR)")
    p.add_argument("--metric", default="structured_alignment", help="metric for the scatter plot")
    p.set_defaults(func=_analyze)

    p = add_command(sub, "submit", "check records against the protocol and add them to a leaderboard")
    p.add_argument("records", nargs="+", help="record.json files or run folders")
    p.add_argument("--leaderboard", default="results/leaderboard", help="leaderboard folder")
    p.set_defaults(func=_submit)

    p = add_command(sub, "study", "the study track's analyses and COMPARISON.md from a study sweep's runs")
    p.add_argument("runs_dir", help="runs folder of `cotrain sweep --track study --budget B`")
    p.add_argument("--out", help="folder for the tables, figures and COMPARISON.md (default: a new "
                                 "runs/study-<date>-<time>; the committed report: --out results/study)")
    p.add_argument("--track", default="study", help="the track whose grid the runs belong to")
    p.add_argument("--budget", help="the track's budget (default: the records' profile)")
    p.add_argument("--no-guidance", action="store_true", help="read cached guidance sweeps only, evaluate none")
    p.add_argument("--previous", metavar="PATH",
                   help="an earlier report's study.json (e.g. results/study/previous/quick.json): COMPARISON.md "
                        "shows its verdicts beside these, with why each changed (default: none)")
    add_execution_options(p, runs=False, threads=False)  # guidance evaluation runs on one thread per worker
    p.set_defaults(func=_study)

    p = add_command(sub, "toy", "the study's toy-model findings: figures and a summary")
    p.add_argument("--out", help="folder for the figures, summary.md and data.json (default: a new "
                                 "runs/toy-<date>-<time>; the committed findings: --out results/toy)")
    p.add_argument("--runs-dir", default="runs/toy", help="run folders of the toy's runs (one per config hash)")
    p.add_argument("--parallel", type=int, help="runs at once, in worker processes (default 2)")
    p.add_argument("--n-seeds", type=int, dest="seeds", help="how many seeds findings 1-4 run (default 3)")
    p.add_argument("--n-grid-seeds", type=int, dest="grid_seeds",
                   help="how many seeds the Δz × w grid and the pair checks run (default 2)")
    add_profile_option(p, help="size profile of every run (default `toy`, 1000 steps; --full: `toy_full`)",
                       default=None)
    p.add_argument("--full", action="store_true", help="the whole grid, 5 seeds, 2000 steps (a few hours)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_toy)
