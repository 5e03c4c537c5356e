"""The `cotrain` command line. It only parses and dispatches: each command group has its own module
(`catalog`: tasks, demos, methods; `runs`: run, sweep, quickstart; `results`: leaderboard, analyze,
submit, study, toy; `deploy`: export, arm-eval, arm-server), whose handlers call the packages that do
the work. `cotrain perf ...` goes to `benchmark.perf.rollout`, which parses its own options."""
from __future__ import annotations

import argparse
import sys

from benchmark import __version__
from benchmark.cli import catalog, deploy, results, runs
from benchmark.harness.errors import describe_os_error

GROUPS = (catalog, runs, results, deploy)
DESCRIPTION = ("cotrain-bench: sim-and-sim task pairs with controlled domain gaps, co-training methods for "
               "one diffusion policy, and the harness that trains, evaluates and ranks them.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotrain", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"cotrain-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    sub.add_parser("perf", help="performance benchmark: env stepping, evaluation, DDIM inference (see --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["perf"]:
        from benchmark.perf.rollout import main as perf_main

        perf_main(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except OSError as err:  # permission, no space, ...: one line naming why, the path and what was being done
        print(f"cotrain {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, RuntimeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cotrain {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0

