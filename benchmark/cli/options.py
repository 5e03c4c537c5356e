"""Options shared by several commands, and the one way a command's parser is made (`add_command`)."""
from __future__ import annotations

import argparse
import time

from cotrain_robot.cli import HelpFormatter

from benchmark.harness.config import PRECISIONS, PROFILES


def add_command(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose `--help` starts with `help` and shows every option's default."""
    return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """What names one run: pair, method, magnitude, demo counts, seed, profile and overrides."""
    p.add_argument("--pair", required=True, help="a registered pair (`cotrain tasks list`) or a factor pair")
    p.add_argument("--method", default="cotrain", help="a registered method or package.module:Class")
    p.add_argument("--magnitude", type=float, default=1.0, help="gap magnitude of the target domain, in [0, 1]")
    p.add_argument("--n-target", type=int, help="target demos N (default: the pair's, scaled by the profile)")
    p.add_argument("--n-source", type=int, help="source demos M (default: the pair's, scaled by the profile)")
    p.add_argument("--seed", type=int, default=0, help="run seed: derives the demo, training and evaluation streams")
    add_profile_option(p)
    p.add_argument("--network", default="mlp", choices=["mlp", "unet"], help="noise network")
    p.add_argument("--episodes", type=int, help="evaluation episodes per domain (default: the profile's)")
    p.add_argument("--backend", default="fast", choices=["fast", "robosuite"],
                   help="simulation backend of demos and evaluation (robosuite: the reference)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter override, e.g. --set w=0.1 (repeatable; `cotrain methods show`)")


def add_profile_option(p: argparse.ArgumentParser, help: str = "size profile: training steps, demos, evaluation",
                       default: str | None = "quick") -> None:
    """`--profile`, one of the harness's size profiles."""
    p.add_argument("--profile", default=default, choices=sorted(PROFILES), help=help)


def add_log_csv_option(p: argparse.ArgumentParser) -> None:
    """`--log-csv`: training scalars also as `train_log.csv` (not part of a run's identity)."""
    p.add_argument("--log-csv", action="store_true",
                   help="also write the training scalars as train_log.csv beside train_log.jsonl "
                        "(same run ids: logging is not part of a run's identity)")


def add_precision_option(p: argparse.ArgumentParser, default: str | None = "fp32",
                         help: str = "training arithmetic: bf16 autocasts the forward pass and loss (cpu, cuda); "
                                     "part of a run's identity when bf16") -> None:
    """`--precision`, fp32 or bf16 training (`RunConfig.precision`)."""
    p.add_argument("--precision", default=default, choices=PRECISIONS, help=help)


def add_execution_options(p: argparse.ArgumentParser, runs: bool = True, threads: bool = True) -> None:
    """Where runs go and how they execute: runs folder, device, workers, threads, progress bars."""
    if runs:
        p.add_argument("--runs-dir", default="runs", help="folder of run folders (one per run id)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (part of a run's identity)")
    p.add_argument("--workers", type=int, default=1, help="evaluation worker processes")
    if threads:
        p.add_argument("--threads", type=int, default=1,
                       help="torch threads for training (part of a run's identity)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")


def add_launch_options(p: argparse.ArgumentParser, items: str, executor_help: str) -> None:
    """How a resumable grid of `items` ("runs", "items") is launched: executor, Ray address, parallelism,
    and a dry run that lists them."""
    p.add_argument("--executor", default="local", choices=["local", "ray"], help=executor_help)
    p.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    p.add_argument("--parallel", type=int, default=1, help=f"{items} at once (local executor)")
    p.add_argument("--dry-run", action="store_true", help=f"list the {items} and which are done; run nothing")


def fresh_folder(kind: str) -> str:
    """`runs/<kind>-<date>-<time>`: a new output folder for a command whose `--out` is not given."""
    return f"runs/{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def silent_if(quiet: bool):
    """`print`, or a logger that prints nothing."""
    return (lambda *a, **k: None) if quiet else print
