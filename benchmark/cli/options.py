"""Options shared by several commands."""
from __future__ import annotations

import argparse


def add_run_options(p: argparse.ArgumentParser) -> None:
    """What names one run: pair, method, magnitude, demo counts, seed, profile and overrides."""
    p.add_argument("--pair", required=True)
    p.add_argument("--method", default="cotrain", help="a registered method or package.module:Class")
    p.add_argument("--magnitude", type=float, default=1.0)
    p.add_argument("--n-target", type=int)
    p.add_argument("--n-source", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="quick")
    p.add_argument("--network", default="mlp")
    p.add_argument("--episodes", type=int)
    p.add_argument("--backend", default="fast", choices=["fast", "robosuite"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter override, e.g. --set w=0.1")


def add_execution_options(p: argparse.ArgumentParser, runs: bool = True) -> None:
    """Where runs go and how they execute: runs folder, device, workers, threads, progress bars."""
    if runs:
        p.add_argument("--runs-dir", default="runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="evaluation worker processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def silent_if(quiet: bool):
    """`print`, or a logger that prints nothing."""
    return (lambda *a, **k: None) if quiet else print
