"""`cotrain export`, `cotrain arm-eval`, `cotrain arm-server`: a trained policy on an arm."""
from __future__ import annotations

import argparse
import json
import sys

from cotrain_robot.cli import add_eval_arguments, add_serve_arguments

from benchmark.cli.options import add_command


def _export(args: argparse.Namespace) -> None:
    from benchmark.deploy.export import export_bundle

    out = export_bundle(args.run_dir, args.out, tolerance=args.tolerance, domain=args.domain,
                        guidance=args.guidance, opset=args.opset, overwrite=args.overwrite,
                        allow_unfinished=args.allow_unfinished)
    spec = json.loads((out / "policy.json").read_text())
    check, prov = spec["check"], spec["provenance"]
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in check["max_abs_diff"].items())
    print(f"wrote {out}: max abs difference vs PyTorch {diffs} (tolerance {args.tolerance:g}, "
          f"{check['samples']} histories from {check['observations']})")
    if not prov["finished"]:
        print(f"cotrain export: warning: {args.run_dir} is not finished: the bundle's policy is its checkpoint at "
              f"step {prov['checkpoint_step']} of {prov['total_steps'] or 'an unknown number'} (policy.json: "
              "provenance.finished is false)", file=sys.stderr)


def _arm_eval(args: argparse.Namespace) -> None:
    from benchmark.deploy.standin import make_robot
    from cotrain_robot.cli import run_eval

    status = run_eval(args, make_robot)
    if status:
        raise SystemExit(status)  # the session ended early (the reason is on stderr)


def _arm_server(args: argparse.Namespace) -> None:
    from benchmark.deploy.standin import SimRobot
    from cotrain_robot.cli import load_robot, serve

    if bool(args.sim) == bool(args.driver):
        raise ValueError("give --sim PAIR (the simulated stand-in) or --driver MODULE:CLASS (your Robot)")
    robot = SimRobot(args.sim, args.domain, args.magnitude, seed=args.seed) if args.sim else load_robot(args.driver)
    serve(robot, args.address, args.link_timeout)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", "export a run's policy as a bundle (ONNX + torch.export) for a robot")
    p.add_argument("run_dir", help="a run directory (config.json, checkpoint/)")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max-abs difference vs PyTorch")
    p.add_argument("--domain", default="target", choices=["source", "target"],
                   help="domain token baked in (domain-conditioned methods)")
    p.add_argument("--guidance", type=float, help="guidance scale (guided methods; default: the run's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--overwrite", action="store_true", help="replace the bundle at --out")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="export a run that has not finished training (policy.json then says so)")
    p.set_defaults(func=_export)

    p = add_command(sub, "arm-eval", "evaluate a bundle on an arm: sim:PAIR or tcp://host:port")
    add_eval_arguments(p, robot_help="sim:<pair>[@<magnitude>] or tcp://host:port (arm-server)")
    p.set_defaults(func=_arm_eval)

    p = add_command(sub, "arm-server", "serve a robot (or the simulated stand-in) to arm-eval over TCP")
    p.add_argument("--sim", metavar="PAIR", help="serve the simulated stand-in of this pair")
    p.add_argument("--driver", metavar="MODULE:CLASS", help="serve your Robot subclass (built with no arguments)")
    p.add_argument("--domain", default="target", choices=["source", "target"], help="the stand-in's domain")
    p.add_argument("--magnitude", type=float, default=1.0, help="the stand-in's gap magnitude, in [0, 1]")
    p.add_argument("--seed", type=int, help="the stand-in's first reset seed when the client gives none")
    add_serve_arguments(p)
    p.set_defaults(func=_arm_server)
