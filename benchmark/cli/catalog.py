"""`cotrain tasks`, `cotrain demos`, `cotrain methods`: what the suite holds."""
from __future__ import annotations

import argparse
import json
from typing import Any

from benchmark.cli.options import add_command

# What a hyperparameter's default of None means (the comments of `baselines.methods.Method.hparam_space`).
NONE_MEANS = {"ema_decay": "the policy config's EMA decay (baselines.policy.PolicyConfig.ema_decay)",
              "width": "the profile's noise-network width", "depth": "the profile's noise-network depth",
              "w": "baselines.data.default_ratio(N, M) of the run's demo counts (single-domain methods: no mixing)"}


def pair_summary(name: str) -> dict[str, Any]:
    """What `cotrain tasks list` shows of one pair."""
    from tasks import get_pair

    pair = get_pair(name)
    return {"name": pair.name, "version": pair.version, "n_target": pair.n_target, "n_source": pair.n_source,
            "obs": pair.obs, "image_size": pair.image_size if pair.obs == "image" else None,
            "gaps": [g.name for g in pair.target.gaps]}


def pair_details(name: str) -> dict[str, Any]:
    """What `cotrain tasks show` shows of one pair: its definition and each target gap factor."""
    from tasks import get_pair
    from tasks.gaps import GAP_FACTORS
    from tasks.pairs import factor_token

    from benchmark.harness.calibrate import committed_facts

    pair = get_pair(name)
    gaps = []
    for gap in pair.target.gaps:
        effect = GAP_FACTORS[gap.name]
        kind = "categorical" if effect.categorical else "step-valued" if effect.max_steps else "continuous"
        gaps.append({"token": factor_token(gap), "name": gap.name, "magnitude": gap.magnitude,
                     "family": effect.family, "kind": kind, "max_steps": effect.max_steps or None,
                     "unit": effect.unit})
    return {**pair_summary(name), "base_task": pair.base_task, "description": pair.description, "gaps": gaps,
            "calibration": committed_facts(pair.name)}


def print_table(rows: list[list[str]]) -> None:
    """Rows as left-aligned columns two spaces apart, each as wide as its longest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _tasks(args: argparse.Namespace) -> None:
    from tasks import PAIRS, describe_pair, get_pair

    if args.action == "list":
        pairs = [pair_summary(name) for name in PAIRS.names()]
        if args.json:
            print(json.dumps(pairs, indent=1))
            return
        print_table([[p["name"], f"v{p['version']}", f"N={p['n_target']}", f"M={p['n_source']}",
                      p["obs"] + (f" {p['image_size']}px" if p["image_size"] else ""), ", ".join(p["gaps"])]
                     for p in pairs])
        return
    if not args.pair:
        raise ValueError("tasks show needs a pair name (see `cotrain tasks list`)")
    if args.json:
        print(json.dumps(pair_details(args.pair), indent=1))
        return
    from benchmark.harness.calibrate import committed_facts

    print(describe_pair(args.pair))
    calibration = committed_facts(get_pair(args.pair).name)
    if calibration:
        print("  calibration (results/calibration/, validation start states):")
        print("\n".join(f"    {line}" for line in calibration))


def _demos(args: argparse.Namespace) -> None:
    import tempfile
    from pathlib import Path

    from tasks.dataset import load_dataset
    from tasks.demos import generate_demos
    from tasks.lerobot import export_demos, read_demos

    if args.action == "export" and args.source:
        if args.count is not None:
            raise ValueError("--count is for generating demos; --from exports the demos a file already holds")
        data = read_demos(args.source)
        for flag, key, wanted in (("--pair", "pair", args.pair), ("--domain", "domain", args.domain)):
            if wanted is not None and data.attrs.get(key) != wanted:
                raise ValueError(f"{args.source} holds {key} {data.attrs.get(key)!r} demos, not {flag} {wanted!r}")
        path = export_demos(data, args.format, args.out, overwrite=args.overwrite)
        print(f"wrote {path} ({args.format}): {data.n_demos} demos, {sum(len(a) for a in data.actions)} steps")
        return
    if args.pair is None or args.domain is None or args.count is None:
        raise ValueError(f"demos {args.action} needs --pair, --domain and --count"
                         + (" (or --from PATH)" if args.action == "export" else ""))
    if args.count < 1:
        raise ValueError(f"--count (demos to generate) must be >= 1, got {args.count}")
    lerobot = args.action == "export" and args.format == "lerobot"
    if lerobot and Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists (pass overwrite=True / --overwrite to replace it)")
    with tempfile.TemporaryDirectory() as tmp:  # a LeRobot export converts a generated HDF5 file
        path = generate_demos(args.pair, args.domain, args.magnitude, args.count, args.seed,
                              Path(tmp) / "demos.hdf5" if lerobot else args.out, expert_noise=args.noise,
                              progress=not args.quiet, overwrite=args.overwrite or lerobot)
        data = load_dataset(path)
        if lerobot:
            path = export_demos(data, "lerobot", args.out, overwrite=args.overwrite)
    print(f"wrote {path}: {data.n_demos} demos of {data.attrs['tried']} tried, "
          f"{sum(len(a) for a in data.actions)} steps, obs_dim {data.obs_dim}")


def method_details(method: str) -> dict[str, Any]:
    """What `cotrain methods show` shows: the method's description and each hyperparameter's default,
    search distribution and, for a default of None, what None means."""
    from baselines import METHODS

    cls = METHODS[method]
    return {"name": method, "description": cls.description,
            "hparams": [{"name": name, "default": default, "search": str(sampler),
                         **({"none_means": NONE_MEANS.get(name, "the method's own choice")} if default is None
                            else {})}
                        for name, (default, sampler) in cls.hparam_space.items()]}


def _methods(args: argparse.Namespace) -> None:
    from baselines import METHODS
    from baselines.methods import describe

    if args.action == "list":
        methods = [{"name": name, "description": METHODS[name].description} for name in METHODS.names()]
        if args.json:
            print(json.dumps(methods, indent=1))
        else:
            print_table([[m["name"], m["description"]] for m in methods])
        return
    if not args.method:
        raise ValueError(f"methods {args.action} needs a method name (see `cotrain methods list`)")
    cls = METHODS[args.method]
    if args.action == "show":
        details = method_details(args.method)
        if args.json:
            print(json.dumps(details, indent=1))
            return
        print(describe(args.method))
        nones = [h for h in details["hparams"] if "none_means" in h]
        if nones:
            print("default None means:")
            print_table([[f"  {h['name']}", h["none_means"]] for h in nones])
        return
    from baselines import MethodCheckError, check_method

    try:
        terms = check_method(cls)
    except MethodCheckError as err:
        raise ValueError(str(err)) from None
    print(f"{args.method}: passes check_method (loss terms: {', '.join(terms)})")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "tasks", "list or describe task pairs")
    p.add_argument("action", choices=["list", "show"], help="list: every registered pair; show: one pair")
    p.add_argument("pair", nargs="?", help="the pair to show: a registered pair or a factor pair")
    p.add_argument("--json", action="store_true", help="print what the text shows as JSON")
    p.set_defaults(func=_tasks)

    p = add_command(sub, "demos", "generate demonstrations, or export them to robomimic or LeRobot")
    p.add_argument("action", choices=["generate", "export"],
                   help="generate: run the pair's expert, write an HDF5 file; export: write the demos of --from "
                        "(or newly generated ones) in --format")
    p.add_argument("--pair", help="a registered pair or a factor pair (with --from: checked against the file)")
    p.add_argument("--domain", choices=["source", "target"],
                   help="the domain to demonstrate in (with --from: checked against the file)")
    p.add_argument("--magnitude", type=float, default=1.0, help="gap magnitude of the target domain, in [0, 1]")
    p.add_argument("--count", type=int, help="successful demos to generate (needed unless export --from)")
    p.add_argument("--from", dest="source", metavar="PATH",
                   help="export: a demo HDF5 file or a LeRobot v3.0 dataset folder to convert, instead of generating")
    p.add_argument("--format", choices=["robomimic", "lerobot"], default="lerobot",
                   help="export: robomimic (the suite's HDF5 file, complete for robomimic's SequenceDataset) or "
                        "lerobot (a LeRobotDataset v3.0 folder; tasks/lerobot.py)")
    p.add_argument("--seed", type=int, default=0, help="seed of the domain's episode seeds")
    p.add_argument("--noise", type=float, default=0.1, help="expert noise")
    p.add_argument("--out", required=True, help="HDF5 file to write (export --format lerobot: the dataset folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the file (or LeRobot folder) at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demos)

    p = add_command(sub, "methods", "list, describe or check co-training methods")
    p.add_argument("action", choices=["list", "show", "check"],
                   help="list: every registered method; show: one method's hyperparameters; "
                        "check: run baselines.check_method on it")
    p.add_argument("method", nargs="?", help="a registered name or package.module:Class")
    p.add_argument("--json", action="store_true", help="print what the text shows as JSON (list, show)")
    p.set_defaults(func=_methods)
