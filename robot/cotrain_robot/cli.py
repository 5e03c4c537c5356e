"""`cotrain-robot`: the robot side's command line, without the suite.

    cotrain-robot serve --robot mypkg.driver:MyArm --address tcp://0.0.0.0:5555       # robot computer
    cotrain-robot eval bundles/my-policy --robot tcp://robot-pc:5555 --episodes 20    # policy computer

The suite's `cotrain arm-server` / `cotrain arm-eval` use the same pieces (`serve`, `add_eval_arguments`,
`run_eval`) and add its simulated stand-in.
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


def load_robot(spec: str) -> Robot:
    """`module:Class` -> an instance of that `Robot` subclass, built with no arguments."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"robot {spec!r}: expected MODULE:CLASS, e.g. mypkg.driver:MyArm")
    return getattr(importlib.import_module(module), name)()


def serve(robot: Robot, address: str, link_timeout_s: float) -> None:
    """Serve `robot` at `address` until Ctrl-C or SIGTERM (the arm is held on the way out)."""
    log_to_stderr(logging.INFO)
    server = ArmServer(robot, address, link_timeout_s=link_timeout_s).start()
    print(f"arm server ready on {server.bound_address} (Ctrl-C to stop)", flush=True)
    server.wait()


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The arm server's address and link timeout."""
    p.add_argument("--address", default="tcp://127.0.0.1:5555", help="e.g. tcp://0.0.0.0:5555 (port 0: any)")
    p.add_argument("--link-timeout", type=float, default=1.0, help="seconds of silence before the arm is held")


def add_eval_arguments(p: argparse.ArgumentParser, robot_help: str = "tcp://host:port of an arm server") -> None:
    """The options of an evaluation session (`run_eval` reads them)."""
    p.add_argument("bundle")
    p.add_argument("--robot", required=True, help=robot_help)
    p.add_argument("--episodes", type=int, required=True)
    p.add_argument("--out", help="output folder (default arm_eval/<bundle>-<time>)")
    p.add_argument("--seed", type=int, default=0, help="run seed of the episode seeds (the bundle's test stream)")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    p.add_argument("--max-steps", type=int, help="control steps per episode (default: the robot's horizon)")
    p.add_argument("--execution-horizon", type=int, help="actions executed per chunk (default: the bundle's)")
    p.add_argument("--temporal-ensembling", type=float, metavar="M", help="ACT temporal ensembling, decay M")
    p.add_argument("--workspace-low", type=float, nargs=3, metavar=("X", "Y", "Z"), help="end-effector box (m)")
    p.add_argument("--workspace-high", type=float, nargs=3, metavar=("X", "Y", "Z"))
    p.add_argument("--max-step", type=float, help="largest end-effector step per control step (m)")
    p.add_argument("--action-tolerance", type=float, default=0.05, help="refuse actions this far past the limits")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds without a reply before the link is lost")
    p.add_argument("--quiet", action="store_true")


def run_eval(args: argparse.Namespace, make_robot: Callable[[str, float], Robot] = remote_robot) -> dict[str, Any]:
    """Run the session `add_eval_arguments` describes, print its result line; returns the summary."""
    log_to_stderr(logging.WARNING if args.quiet else logging.INFO)
    limits = SafetyLimits.from_bundle(read_spec(args.bundle), workspace_low=args.workspace_low,
                                      workspace_high=args.workspace_high, max_eef_step_m=args.max_step,
                                      action_tolerance=args.action_tolerance)
    out = Path(args.out or Path("arm_eval") / f"{Path(args.bundle).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = arm_eval(args.bundle, args.robot, args.episodes, out, backend=args.backend, limits=limits,
                       execution_horizon=args.execution_horizon, temporal_ensembling=args.temporal_ensembling,
                       max_steps=args.max_steps, seed=args.seed, timeout_s=args.timeout, make_robot=make_robot)
    lo, hi = summary["ci95"] or (float("nan"), float("nan"))
    print(f"{summary['successes']}/{summary['n']} successes [{lo:.3f}, {hi:.3f}] on {args.robot}"
          + (f"; stopped: {summary['aborted']}" if summary["aborted"] else "") + f"; wrote {out}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotrain-robot", description="Serve a robot arm to a policy computer, "
                                     "or evaluate an exported policy bundle on a served arm.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve your Robot to `cotrain-robot eval` over TCP")
    p.add_argument("--robot", required=True, metavar="MODULE:CLASS",
                   help="your Robot subclass (built with no arguments)")
    add_serve_arguments(p)
    p.set_defaults(func=lambda args: serve(load_robot(args.robot), args.address, args.link_timeout))
    p = sub.add_parser("eval", help="evaluate a bundle on an arm server (tcp://host:port)")
    add_eval_arguments(p)
    p.set_defaults(func=run_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cotrain-robot {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0
