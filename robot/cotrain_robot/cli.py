"""`cotrain-robot`: the robot side's command line, without the suite.

    cotrain-robot serve --driver mypkg.driver:MyArm --address tcp://0.0.0.0:5555      # robot computer
    cotrain-robot eval bundles/my-policy --robot tcp://robot-pc:5555 --episodes 20    # policy computer

The suite's `cotrain arm-server` / `cotrain arm-eval` use the same pieces (`serve`, `add_eval_arguments`,
`run_eval`) and add its simulated stand-in.

Exit status: 0 when the session ran every episode (or the server was stopped by Ctrl-C / SIGTERM),
1 when the session ended early (`EXIT_ENDED_EARLY`: link lost, robot error, operator stop), 2 for an
error before or instead of the work (bad options, bundle or output folder; a failed serving loop).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .bundle import read_spec
from .client import remote_robot
from .robot import Robot, log_to_stderr
from .safety import SafetyLimits
from .server import ArmServer
from .session import arm_eval

EXIT_ENDED_EARLY = 1


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each option's default after its help text, unless the default is None, False or empty
    (the help text says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def load_robot(spec: str) -> Robot:
    """`module:Class` (a `--driver`) -> an instance of that `Robot` subclass, built with no arguments."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"--driver {spec!r}: expected MODULE:CLASS, e.g. mypkg.driver:MyArm")
    return getattr(importlib.import_module(module), name)()


def serve(robot: Robot, address: str, link_timeout_s: float) -> None:
    """Serve `robot` at `address` until Ctrl-C or SIGTERM (the arm is held on the way out); RuntimeError when
    the serving loop fails (the arm is held)."""
    if not link_timeout_s > 0:
        raise ValueError(f"--link-timeout must be > 0 seconds, got {link_timeout_s}")
    log_to_stderr(logging.INFO)
    server = ArmServer(robot, address, link_timeout_s=link_timeout_s).start()
    print(f"arm server ready on {server.bound_address} (Ctrl-C to stop)", flush=True)
    server.wait()


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The arm server's address and link timeout."""
    p.add_argument("--address", default="tcp://127.0.0.1:5555",
                   help="where to listen, e.g. tcp://0.0.0.0:5555 (port 0: any free port)")
    p.add_argument("--link-timeout", type=float, default=1.0,
                   help="seconds of silence from the session before the arm is held")


def add_eval_arguments(p: argparse.ArgumentParser, robot_help: str = "tcp://host:port of an arm server") -> None:
    """The options of an evaluation session (`run_eval` reads them)."""
    p.add_argument("bundle", help="a bundle folder written by `cotrain export` (policy.json, model files)")
    p.add_argument("--robot", required=True, help=f"the arm to evaluate on: {robot_help}")
    p.add_argument("--episodes", type=int, required=True, help="evaluation episodes to run")
    p.add_argument("--out", help="output folder (default arm_eval/<bundle>-<time>)")
    p.add_argument("--seed", type=int, default=0, help="run seed of the episode seeds (the bundle's test stream)")
    p.add_argument("--runtime", default="onnx", choices=["onnx", "torch"],
                   help="what runs the bundle's policy: ONNX Runtime or the torch.export program")
    p.add_argument("--max-steps", type=int, help="control steps per episode (default: the robot's horizon)")
    p.add_argument("--actions-per-chunk", type=int, help="actions of each chunk executed before the next prediction "
                                                        "(LeRobot's actions_per_chunk; default: the bundle's n_action_steps)")
    p.add_argument("--temporal-ensembling", type=float, metavar="M", help="ACT temporal ensembling, decay M")
    p.add_argument("--workspace-low", type=float, nargs=3, metavar=("X", "Y", "Z"),
                   help="lower corner of the end-effector box (m; with --workspace-high)")
    p.add_argument("--workspace-high", type=float, nargs=3, metavar=("X", "Y", "Z"),
                   help="upper corner of the end-effector box (m; with --workspace-low)")
    p.add_argument("--max-eef-step", type=float, metavar="M",
                   help="largest commanded end-effector translation per control step (m)")
    p.add_argument("--action-tolerance", type=float, default=0.05, help="refuse actions this far past the limits")
    p.add_argument("--link-timeout", type=float, default=2.0,
                   help="seconds without a reply from the arm server before the link is lost")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only, no per-episode log lines")


def check_eval_options(args: argparse.Namespace, spec: dict[str, Any]) -> None:
    """ValueError naming the option when one of `add_eval_arguments`'s values is out of range for `spec`
    (the bundle's policy.json), before any work starts."""
    horizon, rule = spec["chunk"]["horizon"], spec.get("evaluation")
    checks = [("--episodes", args.episodes, args.episodes >= 1, "must be >= 1"),
              ("--max-steps", args.max_steps, args.max_steps is None or args.max_steps >= 1, "must be >= 1"),
              ("--actions-per-chunk", args.actions_per_chunk,
               args.actions_per_chunk is None or 1 <= args.actions_per_chunk <= horizon,
               f"must be in [1, {horizon}] (the bundle's chunk horizon)"),
              ("--temporal-ensembling", args.temporal_ensembling,
               args.temporal_ensembling is None or args.temporal_ensembling >= 0, "must be >= 0"),
              ("--max-eef-step", args.max_eef_step, args.max_eef_step is None or args.max_eef_step > 0,
               "must be > 0 metres"),
              ("--action-tolerance", args.action_tolerance, args.action_tolerance >= 0, "must be >= 0"),
              ("--link-timeout", args.link_timeout, args.link_timeout > 0, "must be > 0 seconds")]
    if rule is not None:
        checks += [("--seed", args.seed, 0 <= args.seed < rule["max_run_seed"],
                    f"must be in [0, {rule['max_run_seed']}) (the bundle's evaluation seeds)"),
                   ("--episodes", args.episodes, args.episodes <= rule["seeds_per_run_seed"],
                    f"must be at most {rule['seeds_per_run_seed']} (the bundle's test seeds per run seed)")]
    if (args.workspace_low is None) != (args.workspace_high is None):
        raise ValueError("give both --workspace-low and --workspace-high, or neither")
    if args.workspace_low is not None:
        checks.append(("--workspace-low", args.workspace_low,
                       all(lo < hi for lo, hi in zip(args.workspace_low, args.workspace_high)),
                       f"must be below --workspace-high {args.workspace_high} in every axis"))
    for option, value, ok, rule_text in checks:
        if not ok:
            raise ValueError(f"{option} {value} {rule_text}")


def run_eval(args: argparse.Namespace, make_robot: Callable[[str, float], Robot] = remote_robot) -> int:
    """Run the session `add_eval_arguments` describes and print its result line; returns the exit status
    (0, or `EXIT_ENDED_EARLY` with the reason on stderr). Options, bundle and robot spec are checked first."""
    log_to_stderr(logging.WARNING if args.quiet else logging.INFO)
    spec = read_spec(args.bundle)
    check_eval_options(args, spec)
    limits = SafetyLimits.from_bundle(spec, workspace_low=args.workspace_low,
                                      workspace_high=args.workspace_high, max_eef_step_m=args.max_eef_step,
                                      action_tolerance=args.action_tolerance)
    try:
        robot = make_robot(args.robot, args.link_timeout)
    except (ValueError, KeyError) as err:
        raise ValueError(f"--robot: {err.args[0] if err.args else err}") from None
    out = Path(args.out or Path("arm_eval") / f"{Path(args.bundle).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = arm_eval(args.bundle, args.robot, args.episodes, out, backend=args.runtime, limits=limits,
                       execution_horizon=args.actions_per_chunk, temporal_ensembling=args.temporal_ensembling,
                       max_steps=args.max_steps, seed=args.seed, timeout_s=args.link_timeout,
                       make_robot=lambda spec, timeout_s: robot)
    lo, hi = summary["ci95"] or (float("nan"), float("nan"))
    print(f"{summary['successes']}/{summary['n']} successes [{lo:.3f}, {hi:.3f}] on {args.robot}; wrote {out}")
    if summary["complete"]:
        return 0
    print(f"the session ended early, after {summary['n']} of {summary['episodes_requested']} episodes: "
          f"{summary['aborted']}", file=sys.stderr)
    return EXIT_ENDED_EARLY


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotrain-robot", description="Serve a robot arm to a policy computer, "
                                     "or evaluate an exported policy bundle on a served arm.",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    text = "serve your Robot to `cotrain-robot eval` over TCP"
    p = sub.add_parser("serve", help=text, description=text, formatter_class=HelpFormatter)
    p.add_argument("--driver", required=True, metavar="MODULE:CLASS",
                   help="your Robot subclass, built with no arguments")
    add_serve_arguments(p)
    p.set_defaults(func=lambda args: serve(load_robot(args.driver), args.address, args.link_timeout))
    text = "evaluate a bundle on an arm server (tcp://host:port)"
    p = sub.add_parser("eval", help=text, description=text, formatter_class=HelpFormatter)
    add_eval_arguments(p)
    p.set_defaults(func=run_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args) or 0
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cotrain-robot {args.command}: error: {msg}", file=sys.stderr)
        return 2
