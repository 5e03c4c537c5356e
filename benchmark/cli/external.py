"""`cotrain eval-policy`: a policy trained elsewhere, evaluated under the leaderboard track's protocol."""
from __future__ import annotations

import argparse

from benchmark.cli.options import add_command, silent_if


def _eval_policy(args: argparse.Namespace) -> None:
    from benchmark.external import evaluate_policy, open_policy

    from benchmark.external.rules import eval_protocol

    seeds = args.seeds or eval_protocol(args.budget).seeds
    policy = open_policy(args.policy, args.link_timeout)
    try:
        for seed in seeds:
            rec = evaluate_policy(args.pair, policy, args.name, args.out, seed=seed, episodes=args.episodes,
                                  actions_per_chunk=args.actions_per_chunk, budget=args.budget,
                                  declared_n_target=args.declared_n_target, declared_n_source=args.declared_n_source,
                                  progress=not args.quiet, log=silent_if(args.quiet))
            target = rec["eval"]["target"]
            failed = [e for e in target["episodes"] if "error" in e]
            print(f"{args.name} on {rec['config']['pair']}, seed {seed}: {target['successes']}/{target['n']} "
                  f"successes ({target['success_rate']:.3f}, 95% CI [{target['ci95'][0]:.3f}, "
                  f"{target['ci95'][1]:.3f}]); record {args.out}/{rec['run_id']}/record.json")
            if failed:
                print(f"  {len(failed)} episode(s) failed by the policy, e.g. seed {failed[0]['seed']}: "
                      f"{failed[0]['error']}")
    finally:
        policy.close()


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "eval-policy", "evaluate a policy trained elsewhere (a policy server or a "
                                        "package.module:function) under the leaderboard track's protocol")
    p.add_argument("--pair", required=True, help="the pair whose target domain the policy is evaluated on")
    p.add_argument("--policy", required=True,
                   help="tcp://HOST:PORT of a policy server (cotrain_robot.policy_server), or "
                        "package.module:function, a policy_fn called in this process")
    p.add_argument("--name", required=True, help="the policy's name on the board (with the digest the policy "
                                                 "reports, it names the record)")
    p.add_argument("--seeds", type=int, nargs="+",
                   help="run seeds whose test start states are evaluated, one record per seed (default: the "
                        "budget's seeds, as the suite's own methods: 0-4 at full)")
    p.add_argument("--episodes", type=int, help="episodes per seed (default: the budget's, 200 at full)")
    p.add_argument("--budget", default="full", help="the leaderboard track's budget whose protocol to follow "
                                                    "(its episodes per seed; `smoke` for a quick check)")
    p.add_argument("--actions-per-chunk", type=int,
                   help="actions of each chunk executed before asking again (default: the policy's chunk_size)")
    p.add_argument("--out", default="runs/external", help="folder of the records (one sub-folder per record)")
    p.add_argument("--link-timeout", type=float, default=60.0,
                   help="seconds to wait for each reply of a policy server before the link counts as lost")
    p.add_argument("--declared-n-target", type=int,
                   help="target demonstrations the policy was trained on, as you declare them (recorded, "
                        "unchecked; not given: recorded as not declared, filed under the pair's N)")
    p.add_argument("--declared-n-source", type=int,
                   help="source demonstrations the policy was trained on, as you declare them (recorded, "
                        "unchecked; not given: recorded as not declared, filed under the pair's M)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    p.set_defaults(func=_eval_policy)
