"""The `cotrain` command line. It only parses and dispatches: each command group has its own module
(`catalog`: tasks, demos, methods; `runs`: run, sweep, quickstart, calibrate; `results`: leaderboard, videos,
analyze, submit, study, toy; `deploy`: export, arm-eval, arm-server; `external`: eval-policy; `ablation`:
ablate), whose handlers call the packages that do the work. `cotrain perf ...` goes to `benchmark.perf.rollout`, which parses its own options. Every option
has help text and `--help` shows its default (`options.add_command`; tests/test_cli_help.py checks both).

One name per meaning, in every command (and in `cotrain-robot`):

| option | means |
| --- | --- |
| `--pair` | a registered pair (`cotrain tasks list`) or a factor pair |
| `--method` | a registered method or `package.module:Class` |
| `--methods` | several methods (`ablate`, `calibrate`) |
| `--magnitude` | gap magnitude of the target domain, in [0, 1] |
| `--domain` | `source` or `target` |
| `--n-target`, `--n-source` | the demos N and M a run trains on |
| `--count` | how many demos `demos generate` writes |
| `--seed` | the seed its command's streams derive from |
| `--seeds` | several run seeds |
| `--n-seeds`, `--n-grid-seeds` | how many seeds (`toy`) |
| `--profile` | a size profile (`benchmark.harness.config.PROFILES`) |
| `--episodes` | evaluation episodes (per domain, for a run) |
| `--backend` | simulation backend: `fast` or `robosuite` |
| `--runtime` | what runs an exported bundle: `onnx` or `torch` |
| `--runs-dir` | a folder of run folders, one per run id |
| `--out` | the folder (or file) a command writes |
| `--format` | the file format a command writes: a dataset's (`demos export`) or a video's (`videos`) |
| `--device` | torch device |
| `--workers` | evaluation worker processes |
| `--threads` | torch threads for training |
| `--precision` | training arithmetic: `fp32` or `bf16` (autocast of the forward pass and loss) |
| `--parallel` | runs at once |
| `--quiet` | no progress bars or progress lines |
| `--robot` | the arm `arm-eval` evaluates on: `sim:PAIR[@MAGNITUDE]` or `tcp://host:port` |
| `--driver` | a `Robot` subclass to serve, `MODULE:CLASS` |
| `--address` | the network address of the service a command uses: an arm server (`tcp://host:port`), or with `--executor ray` a Ray cluster (`HOST:PORT`) |
| `--policy` | a policy trained elsewhere: a policy server (`tcp://host:port`) or `package.module:function` |
| `--name` | the name a policy trained elsewhere goes by on its board |
| `--actions-per-chunk` | actions of each predicted chunk executed before the next prediction (LeRobot's `actions_per_chunk`) |
| `--link-timeout` | seconds of link silence before a side gives up (server: holds the arm) |
| `--max-steps` | control steps per episode |
| `--max-eef-step` | largest commanded end-effector translation per control step (m) |
| `--log-csv` | also write the training scalars as `train_log.csv` |
| `--track`, `--budget` | a committed track (`benchmark/harness/tracks/`) and one of its budgets |
| `--executor` | where runs execute: `local` processes or a `ray` cluster |
| `--dry-run` | list the runs and which are done, run none |
| `--report-only` | write the report from finished runs only |
| `--overwrite` | replace what `--out` names |
| `--json` | print what the text shows as JSON |
"""
from __future__ import annotations

import argparse
import sys

from benchmark import __version__
from benchmark.cli import ablation, catalog, deploy, external, results, runs
from benchmark.cli.options import HelpFormatter
from benchmark.harness.errors import describe_os_error

GROUPS = (catalog, runs, results, deploy, external, ablation)
DESCRIPTION = ("cotrain-bench: sim-and-sim task pairs with controlled domain gaps, co-training methods for "
               "one diffusion policy, and the harness that trains, evaluates and ranks them.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotrain", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"cotrain-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    sub.add_parser("perf", help="performance benchmark: env stepping, evaluation, DDIM inference (see --help)",
                   formatter_class=HelpFormatter)
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

