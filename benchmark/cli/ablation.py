"""`cotrain ablate`: gap factors one at a time (or sets of them together), at a ladder of magnitudes
(`benchmark.ablation`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.options import add_command, add_execution_options, add_launch_options, add_profile_option


def _ablations(args: argparse.Namespace) -> list[tuple[object, Path]]:
    """The ablations to run with the folder each reports to."""
    from benchmark.ablation.plan import Ablation, factors_of_family
    from benchmark.ablation.stages import load_spec, stage_ablations

    execution = dict(device=args.device, threads=args.threads, workers=args.workers)
    out = Path(args.out or Path(args.runs_dir) / "report")
    if args.spec:
        if args.factors or args.family:
            raise ValueError("--spec names its factors: give --spec (with --task for one of its tasks) or --task "
                             "with --factors/--family")
        spec = load_spec(args.spec)
        stages = [args.stage] if args.stage else list(spec["stages"])
        return [(a, out / stage / a.task) for stage in stages
                for a in stage_ablations(spec, stage, args.runs_dir, args.task, **execution)]
    if not args.task or bool(args.factors) == bool(args.family):
        raise ValueError("give --task and one of --factors or --family (or --spec)")
    factors = tuple(args.factors) if args.factors else factors_of_family(args.family)
    ablation = Ablation(task=args.task, factors=factors, magnitudes=tuple(args.magnitudes),
                        methods=tuple(args.methods), seeds=tuple(args.seeds), episodes=args.episodes,
                        profile=args.profile, backend=args.backend, **execution)
    return [(ablation, out)]


def _command(args: argparse.Namespace, ablation, out: Path) -> str:
    """The command that reproduces one ablation's report."""
    if args.spec:
        stage, task = out.parent.name, f" --task {args.task}" if args.task else ""
        return (f"cotrain ablate --spec {args.spec} --stage {stage}{task} --runs-dir {args.runs_dir} "
                f"--out {out.parent.parent}")
    return (f"cotrain ablate --task {ablation.task} --factors {' '.join(ablation.factors)} --magnitudes "
            f"{' '.join(f'{m:g}' for m in ablation.magnitudes)} --methods {' '.join(ablation.methods)} --seeds "
            f"{' '.join(map(str, ablation.seeds))} --episodes {ablation.episodes} --profile {ablation.profile} "
            f"--runs-dir {args.runs_dir} --out {out}")


def _ablate(args: argparse.Namespace) -> None:
    from benchmark.ablation.execute import run_ablation
    from benchmark.ablation.report import write_report

    for ablation, out in _ablations(args):
        if not args.report_only:
            run_ablation(ablation, args.runs_dir, executor=args.executor, address=args.address,
                         parallel=args.parallel, dry_run=args.dry_run, progress=not args.quiet)
        if not args.dry_run:
            paths = write_report(ablation, args.runs_dir, out, command=_command(args, ablation, out))
            print("wrote " + ", ".join(str(p) for p in paths))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "ablate", "gap ablation: each factor (or factor set) at a ladder of magnitudes, resumable. "
                                   "source_only is trained once per seed and evaluated in every cell; methods with "
                                   "target data train per cell; the scripted expert is rolled out in every cell")
    p.add_argument("--task", help="base task, e.g. lift or stack (with --spec: only this task of the spec)")
    p.add_argument("--factors", nargs="+", help="gap factors, e.g. object_mass obs_bias (`cotrain tasks show`); "
                                                "a set moved together joins them with +, e.g. obs_bias+action_noise")
    p.add_argument("--family", help="every factor of a gap family (dynamics, action, sensing, embodiment, visual), "
                                    "or lowdim for every low-dimensional factor")
    p.add_argument("--magnitudes", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="magnitudes in [0, 1]; categorical factors run at 0 and 1, step-valued ones "
                        "at the distinct step counts these round to")
    p.add_argument("--methods", nargs="+", default=["source_only", "cotrain", "target_only"],
                   help="methods; those without target data are trained once per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds")
    p.add_argument("--episodes", type=int, default=200, help="test episodes per seed and cell")
    add_profile_option(p, help="size profile of the training runs")
    p.add_argument("--backend", default="fast", choices=["fast", "robosuite"],
                   help="simulation backend of demos and evaluation (robosuite: the reference)")
    p.add_argument("--spec", help="a staged ablation spec instead of --task/--factors, e.g. "
                                  "benchmark/ablation/reference.yaml")
    p.add_argument("--stage", help="the spec's stage to run (default: every stage, in order)")
    p.add_argument("--runs-dir", default="runs/ablation", help="folder of run folders (one per run id; resumable)")
    p.add_argument("--out", help="report folder (default: <runs-dir>/report; with --spec: <out>/<stage>/<task>)")
    add_launch_options(p, "items", "where trainings and policy evaluations run (expert rollouts: local processes)")
    p.add_argument("--report-only", action="store_true", help="write the reports from finished items only")
    add_execution_options(p, runs=False)
    p.set_defaults(func=_ablate)
