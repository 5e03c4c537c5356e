"""The `cotrain` command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _tasks(args: argparse.Namespace) -> None:
    from tasks import GAP_FACTORS, PAIRS, get_pair

    if args.action == "list":
        for name in PAIRS.names():
            pair = PAIRS[name]
            gaps = ", ".join(g.name for g in pair.target.gaps)
            print(f"{name:<22} v{pair.version}  N={pair.n_target:<3} M={pair.n_source:<4} {pair.obs:<7} {gaps}")
        return
    if not args.pair:
        raise ValueError("tasks show needs a pair name (see `cotrain tasks list`)")
    pair = get_pair(args.pair)
    print(f"{pair.name} (version {pair.version}, base task {pair.base_task}, observations {pair.obs})")
    print(f"  {pair.description}")
    print(f"  default demos: N = {pair.n_target} target, M = {pair.n_source} source")
    print("  target gap factors (magnitude 1 means):")
    for gap in pair.target.gaps:
        effect = GAP_FACTORS[gap.name]
        kind = "categorical (0 or 1 only)" if effect.categorical else (
            f"step-valued: round(m x {effect.max_steps}) steps" if effect.max_steps else "continuous")
        print(f"    {gap.name:<18} [{effect.family}, {kind}] {effect.unit}")
    report = Path(__file__).resolve().parent.parent / "results" / "pairs.json"
    if report.exists():
        rows = json.loads(report.read_text()).get(pair.name)
        if rows:
            print("  measured (results/pairs.json):")
            for key, value in rows.items():
                print(f"    {key}: {value}")


def _demos(args: argparse.Namespace) -> None:
    from tasks.demos import generate_demos

    path = generate_demos(args.pair, args.domain, args.magnitude, args.n, args.seed, args.out,
                          expert_noise=args.noise, progress=not args.quiet)
    from tasks.dataset import load_dataset

    data = load_dataset(path)
    print(f"wrote {path}: {data.n_demos} demos of {data.attrs['tried']} tried, "
          f"{sum(len(a) for a in data.actions)} steps, obs_dim {data.obs_dim}")


def _methods(args: argparse.Namespace) -> None:
    from baselines import METHODS
    from baselines.hparams import describe

    if args.action == "list":
        for name in METHODS.names():
            print(f"{name:<12} {METHODS[name].description}")
        return
    if not args.method:
        raise ValueError("methods show needs a method name (see `cotrain methods list`)")
    METHODS[args.method]
    print(describe(args.method))


def _run_config(args: argparse.Namespace):
    from benchmark.harness.config import RunConfig, parse_set

    return RunConfig(pair=args.pair, method=args.method, magnitude=args.magnitude, n_target=args.n_target,
                     n_source=args.n_source, seed=args.seed, profile=args.profile,
                     hparams=tuple(parse_set(args.set).items()), network=args.network, episodes=args.episodes,
                     backend=args.backend, device=args.device, workers=args.workers, threads=args.threads)


def _run(args: argparse.Namespace) -> None:
    from benchmark.harness.run import execute_run

    cfg = _run_config(args)
    record = execute_run(cfg, args.runs_dir, progress=not args.quiet)
    tgt, src = record["eval"]["target"], record["eval"]["source"]
    print(f"run {record['run_id']} ({Path(args.runs_dir) / record['run_id']})")
    print(f"  target success {tgt['successes']}/{tgt['n']} = {tgt['success_rate']:.3f} "
          f"[{tgt['ci95'][0]:.3f}, {tgt['ci95'][1]:.3f}]; source {src['successes']}/{src['n']}")
    m = record["metrics"]
    print(f"  alignment W = {m.get('align_wasserstein', float('nan')):.3f}, discernibility (MLP on z_cond) "
          f"= {m.get('discern_mlp_cond', float('nan')):.3f}, structured alignment = "
          f"{m.get('structured_alignment', float('nan')):.3f}")


def _sweep(args: argparse.Namespace) -> None:
    from benchmark.harness.sweep import load_grid, run_sweep

    grid = load_grid(args.grid, track=args.track, budget=args.budget)
    run_sweep(grid, args.runs_dir, executor=args.executor, address=args.address, parallel=args.parallel,
              device=args.device, workers=args.workers, threads=args.threads, dry_run=args.dry_run,
              progress=not args.quiet)


def _leaderboard(args: argparse.Namespace) -> None:
    from benchmark.analysis.leaderboard import aggregate, load_records, write_leaderboard
    from benchmark.analysis.plots import write_plots

    runs_dir = Path(args.runs_dir)
    if not runs_dir.is_dir():
        raise ValueError(f"{runs_dir} is not a directory")
    records = load_records(runs_dir)
    if not records:
        raise ValueError(f"{runs_dir}: no record.json found (no finished runs)")
    out = Path(args.out or runs_dir)
    paths = write_leaderboard(records, out)
    logs = {f"{r['config']['method']} w={r['config'].get('w')} s{r['config']['seed']}":
            runs_dir / r["run_id"] / "train_log.jsonl" for r in records
            if (runs_dir / r["run_id"] / "train_log.jsonl").exists()}
    figures = write_plots(aggregate(records), logs, out)
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

    runs_dir = Path(args.runs_dir)
    if not runs_dir.is_dir():
        raise ValueError(f"{runs_dir} is not a directory")
    command = f"cotrain study {args.runs_dir} --out {args.out} --track {args.track}" + (
        f" --budget {args.budget}" if args.budget else "") + (" --no-guidance" if args.no_guidance else "")
    summary = study(runs_dir, args.out, track=args.track, budget=args.budget, device=args.device,
                    workers=args.workers, guidance=not args.no_guidance, command=command,
                    log=(lambda *a, **k: None) if args.quiet else print)
    for claim in summary["claims"]:
        print(f"  {claim['verdict']:<28} {claim['claim']}")
    print(f"wrote {Path(args.out) / 'COMPARISON.md'} and {len(summary['files']) - 1} more files "
          f"({summary['wall_s']:.0f} s)")


def _quickstart(args: argparse.Namespace) -> None:
    from benchmark.harness.quickstart import quickstart

    quickstart(args.pair, args.runs_dir, args.seed, device=args.device, workers=args.workers,
               threads=args.threads, profile=args.profile)


def _toy(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from benchmark.toy import FULL, ToySize, toy_study

    size = FULL if args.full else ToySize()
    for name in ("seeds", "grid_seeds", "steps"):
        if getattr(args, name) is not None:
            size = replace(size, **{name: getattr(args, name)})
    command = "cotrain toy" + (" --full" if args.full else "") + "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}" for name in ("seeds", "grid_seeds", "steps", "parallel")
        if getattr(args, name) is not None)
    toy_study(args.out, args.runs_dir, size, parallel=args.parallel or 2, command=command,
              log=(lambda *a, **k: None) if args.quiet else print)


def _export(args: argparse.Namespace) -> None:
    from benchmark.deploy.export import export_bundle

    out = export_bundle(args.run_dir, args.out, tolerance=args.tolerance, domain=args.domain,
                        guidance=args.guidance, opset=args.opset, overwrite=args.overwrite)
    check = json.loads((out / "policy.json").read_text())["check"]
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in check["max_abs_diff"].items())
    print(f"wrote {out}: max abs difference vs PyTorch {diffs} (tolerance {args.tolerance:g}, "
          f"{check['samples']} histories from {check['observations']})")


def _arm_eval(args: argparse.Namespace) -> None:
    import logging
    import time

    from benchmark.deploy.arm import SafetyLimits, log_to_stderr
    from benchmark.deploy.arm_eval import arm_eval
    from benchmark.deploy.bundle import read_spec

    log_to_stderr(logging.WARNING if args.quiet else logging.INFO)
    limits = SafetyLimits.from_bundle(read_spec(args.bundle), workspace_low=args.workspace_low,
                                      workspace_high=args.workspace_high, max_eef_step_m=args.max_step,
                                      action_tolerance=args.action_tolerance)
    out = Path(args.out or Path("arm_eval") / f"{Path(args.bundle).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = arm_eval(args.bundle, args.robot, args.episodes, out, backend=args.backend, limits=limits,
                       execution_horizon=args.execution_horizon, temporal_ensembling=args.temporal_ensembling,
                       max_steps=args.max_steps, seed=args.seed, timeout_s=args.timeout)
    lo, hi = summary["ci95"] or (float("nan"), float("nan"))
    print(f"{summary['successes']}/{summary['n']} successes [{lo:.3f}, {hi:.3f}] on {args.robot}"
          + (f"; stopped: {summary['aborted']}" if summary["aborted"] else "") + f"; wrote {out}")


def _arm_server(args: argparse.Namespace) -> None:
    import importlib
    import logging

    from benchmark.deploy.arm import SimRobot, log_to_stderr
    from benchmark.deploy.arm_net import ArmServer

    log_to_stderr(logging.INFO)
    if bool(args.sim) == bool(args.robot):
        raise ValueError("give --sim PAIR (the simulated stand-in) or --robot module:Class (your Robot)")
    if args.sim:
        robot = SimRobot(args.sim, args.domain, args.magnitude, seed=args.seed)
    else:
        module, _, name = args.robot.partition(":")
        robot = getattr(importlib.import_module(module), name)()
    server = ArmServer(robot, args.address, link_timeout_s=args.link_timeout).start()
    print(f"arm server ready on {server.bound_address} (Ctrl-C to stop)", flush=True)
    server.wait()


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pair", required=True)
    p.add_argument("--method", default="cotrain")
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


def _common(p: argparse.ArgumentParser, runs: bool = True) -> None:
    if runs:
        p.add_argument("--runs-dir", default="runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="evaluation worker processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotrain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tasks", help="list or describe task pairs")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("pair", nargs="?")
    p.set_defaults(func=_tasks)

    p = sub.add_parser("demos", help="generate demonstrations")
    p.add_argument("action", choices=["generate"])
    p.add_argument("--pair", required=True)
    p.add_argument("--domain", required=True, choices=["source", "target"])
    p.add_argument("--magnitude", type=float, default=1.0)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.1, help="expert noise")
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demos)

    p = sub.add_parser("methods", help="list or describe co-training methods")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("method", nargs="?")
    p.set_defaults(func=_methods)

    p = sub.add_parser("run", help="one run: demos, training, evaluation, metrics")
    _add_run_args(p)
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("sweep", help="a grid of runs, resumable, local or on Ray")
    p.add_argument("grid", nargs="?", help="YAML grid file")
    p.add_argument("--track", help="a committed track grid, e.g. `study`")
    p.add_argument("--budget", help="the track's budget, e.g. smoke, quick, full")
    p.add_argument("--executor", default="local", choices=["local", "ray"])
    p.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    p.add_argument("--parallel", type=int, default=1, help="runs at once (local executor)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and which are done")
    _common(p)
    p.set_defaults(func=_sweep)

    p = sub.add_parser("leaderboard", help="aggregate record.json files into md/csv/html")
    p.add_argument("runs_dir")
    p.add_argument("--out")
    p.set_defaults(func=_leaderboard)

    p = sub.add_parser("study", help="the study track's analyses and COMPARISON.md from a study sweep's runs")
    p.add_argument("runs_dir", help="runs folder of `cotrain sweep --track study --budget B`")
    p.add_argument("--out", default="results/study", help="tables, figures and COMPARISON.md")
    p.add_argument("--track", default="study", help="the track whose grid the runs belong to")
    p.add_argument("--budget", help="the track's budget (default: the records' profile)")
    p.add_argument("--no-guidance", action="store_true", help="read cached guidance sweeps only, evaluate none")
    _common(p, runs=False)
    p.set_defaults(func=_study)

    # `cotrain perf ...` is dispatched to benchmark.perf.rollout before parsing (it has its own options).
    sub.add_parser("perf", help="performance benchmark: env stepping, evaluation, DDIM inference (see --help)")

    p = sub.add_parser("analyze", help="correlate representation metrics with success across a sweep")
    p.add_argument("runs_dir")
    p.add_argument("--out")
    p.add_argument("--metric", default="structured_alignment", help="metric for the scatter plot")
    p.set_defaults(func=_analyze)

    p = sub.add_parser("submit", help="check records against the protocol and add them to a leaderboard")
    p.add_argument("records", nargs="+", help="record.json files or run folders")
    p.add_argument("--leaderboard", default="results/leaderboard", help="leaderboard folder")
    p.set_defaults(func=_submit)

    p = sub.add_parser("quickstart", help="every method, quick profile, one pair and seed")
    p.add_argument("--pair", default="lift/dynamics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="quick")
    _common(p)
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("toy", help="the study's toy-model findings: figures and a summary in results/toy")
    p.add_argument("--out", default="results/toy", help="figures, summary.md and data.json")
    p.add_argument("--runs-dir", default="runs/toy", help="cache of finished toy runs (one JSON each)")
    p.add_argument("--parallel", type=int, help="worker processes (default 2)")
    p.add_argument("--seeds", type=int, help="seeds of findings 1-4 (default 3)")
    p.add_argument("--grid-seeds", type=int, help="seeds of the Δz × w grid and the pair checks (default 2)")
    p.add_argument("--steps", type=int, help="training steps per run (default 1000)")
    p.add_argument("--full", action="store_true", help="docs/PROTOCOL.md's whole grid, 5 seeds, 2000 steps (about an hour)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_toy)

    p = sub.add_parser("export", help="export a run's policy as a bundle (ONNX + torch.export) for a robot")
    p.add_argument("run_dir", help="a run directory (config.json, checkpoint/)")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max-abs difference vs PyTorch")
    p.add_argument("--domain", default="target", help="domain token baked in (domain-conditioned methods)")
    p.add_argument("--guidance", type=float, help="guidance scale (guided methods; default: the run's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_export)

    p = sub.add_parser("arm-eval", help="evaluate a bundle on an arm: sim:PAIR or tcp://host:port")
    p.add_argument("bundle")
    p.add_argument("--robot", required=True, help="sim:<pair>[@<magnitude>] or tcp://host:port (arm-server)")
    p.add_argument("--episodes", type=int, required=True)
    p.add_argument("--out", help="output folder (default arm_eval/<bundle>-<time>)")
    p.add_argument("--seed", type=int, default=0, help="run seed of the episode seeds (test stream)")
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
    p.set_defaults(func=_arm_eval)

    p = sub.add_parser("arm-server", help="serve a robot (or the simulated stand-in) to arm-eval over TCP")
    p.add_argument("--sim", metavar="PAIR", help="serve the simulated stand-in of this pair")
    p.add_argument("--robot", metavar="MODULE:CLASS", help="serve your Robot subclass (built with no arguments)")
    p.add_argument("--domain", default="target", choices=["source", "target"])
    p.add_argument("--magnitude", type=float, default=1.0)
    p.add_argument("--address", default="tcp://127.0.0.1:5555", help="e.g. tcp://0.0.0.0:5555 (port 0: any)")
    p.add_argument("--seed", type=int, help="the stand-in's first reset seed when the client gives none")
    p.add_argument("--link-timeout", type=float, default=1.0, help="seconds of silence before the arm is held")
    p.set_defaults(func=_arm_server)
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
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cotrain {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
