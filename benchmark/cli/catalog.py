"""`cotrain tasks`, `cotrain demos`, `cotrain methods`: what the suite holds."""
from __future__ import annotations

import argparse


def _tasks(args: argparse.Namespace) -> None:
    from tasks import PAIRS, describe_pair

    if args.action == "list":
        for name in PAIRS.names():
            pair = PAIRS[name]
            gaps = ", ".join(g.name for g in pair.target.gaps)
            print(f"{name:<22} v{pair.version}  N={pair.n_target:<3} M={pair.n_source:<4} {pair.obs:<7} {gaps}")
        return
    if not args.pair:
        raise ValueError("tasks show needs a pair name (see `cotrain tasks list`)")
    print(describe_pair(args.pair))


def _demos(args: argparse.Namespace) -> None:
    from tasks.dataset import load_dataset
    from tasks.demos import generate_demos

    if args.n < 1:
        raise ValueError(f"-n (demos to generate) must be >= 1, got {args.n}")
    path = generate_demos(args.pair, args.domain, args.magnitude, args.n, args.seed, args.out,
                          expert_noise=args.noise, progress=not args.quiet, overwrite=args.overwrite)
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
        raise ValueError(f"methods {args.action} needs a method name (see `cotrain methods list`)")
    cls = METHODS[args.method]
    if args.action == "show":
        print(describe(args.method))
        return
    from baselines import MethodCheckError, check_method

    try:
        terms = check_method(cls)
    except MethodCheckError as err:
        raise ValueError(str(err)) from None
    print(f"{args.method}: passes check_method (loss terms: {', '.join(terms)})")


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--overwrite", action="store_true", help="replace the file at --out")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demos)

    p = sub.add_parser("methods", help="list, describe or check co-training methods")
    p.add_argument("action", choices=["list", "show", "check"], help="check: run baselines.check_method on it")
    p.add_argument("method", nargs="?", help="a registered name or package.module:Class")
    p.set_defaults(func=_methods)
