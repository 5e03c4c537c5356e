"""Expert success per named pair and domain, and whether each pair's gap matters.

Run: `python -m tasks.expert_report [--episodes 50] [--magnitudes 0 0.5 1] [--pairs lift/dynamics ...]`.

Table 1: the privileged-state expert's success in the source and in the target at each magnitude.
Table 2 ("gap matters"): how the source domain's behaviour fares in the target. Dynamics, action and
embodiment pairs replay the source expert's recorded actions open loop from the same initial state
(then hold still until the horizon); sensing pairs run the expert on the target's observations
(`observed=True`) instead of the privileged state. The source column is the same test in the source.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp

import numpy as np

from tasks import BASE_TASKS, GAP_FACTORS, PAIRS, get_pair, make_env
from tasks.experts import make_expert

SEED0 = 1_000_000  # episode seeds SEED0, SEED0 + 1, ...; outside every demo/eval stream of tasks.seeds
NOISE = 0.1  # the expert noise demo generation uses


def lowdim_pairs() -> list[str]:
    return sorted(name for name, p in PAIRS.items() if BASE_TASKS[p.base_task].simulated and p.obs == "lowdim")


def run_expert(pair: str, domain: str, magnitude: float, episodes: int,
               observed: bool = False) -> tuple[int, list[list[np.ndarray]]]:
    """Expert successes over `episodes` seeded episodes, and each episode's actions."""
    env = make_env(pair, domain, magnitude)
    expert = make_expert(get_pair(pair).base_task, noise=NOISE, seed=0, observed=observed)
    successes, recordings = 0, []
    for episode in range(episodes):
        env.reset(seed=SEED0 + episode)
        expert.reset(env)
        actions, done, info = [], False, {}
        while not done:
            actions.append(expert.act(env))
            _, _, terminated, truncated, info = env.step(actions[-1])
            done = terminated or truncated
        successes += bool(info["is_success"])
        recordings.append(actions)
    env.close()
    return successes, recordings


def replay(pair: str, magnitude: float, recordings: list[list[np.ndarray]]) -> int:
    """Successes of the recorded source actions replayed open loop in the target, then holding still."""
    env = make_env(pair, "target", magnitude)
    successes = 0
    for episode, actions in enumerate(recordings):
        env.reset(seed=SEED0 + episode)
        hold = np.zeros(7)
        hold[6] = actions[-1][6]
        for t in range(env.horizon):
            _, _, terminated, truncated, _ = env.step(actions[t] if t < len(actions) else hold)
            if terminated or truncated:
                successes += terminated
                break
    env.close()
    return successes


def pair_rows(pair: str, episodes: int, magnitudes: tuple[float, ...]) -> dict:
    """Both tables' cells for one pair: {"expert": {column: k}, "gap": {column: k}, "test": name};
    "n/a" where a categorical factor has no such magnitude."""
    task_pair = get_pair(pair)
    sensing = "sensing" in task_pair.tags
    categorical = any(GAP_FACTORS[g.name].categorical for g in task_pair.target.gaps)
    source, recordings = run_expert(pair, "source", 1.0, episodes)
    expert = {"source": source}
    gap = {"source": source}  # the observed expert in the source sees the true state: identical episodes
    for m in magnitudes:
        if categorical and m not in (0.0, 1.0):
            expert[m] = gap[m] = "n/a"
            continue
        expert[m] = run_expert(pair, "target", m, episodes)[0]
        gap[m] = run_expert(pair, "target", m, episodes, observed=True)[0] if sensing else replay(pair, m, recordings)
    return {"expert": expert, "gap": gap, "test": "observed expert" if sensing else "open-loop replay"}


def _job(args: tuple[str, int, tuple[float, ...]]) -> tuple[str, dict]:
    pair, episodes, magnitudes = args
    return pair, pair_rows(pair, episodes, magnitudes)


def main(episodes: int = 50, magnitudes: tuple[float, ...] = (0.0, 0.5, 1.0), pairs: list[str] | None = None,
         workers: int = 2) -> dict[str, dict]:
    """Compute and print both tables (successes out of `episodes` per cell); returns the cells."""
    pairs = pairs or lowdim_pairs()
    jobs = [(p, episodes, tuple(magnitudes)) for p in pairs]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = dict(pool.imap_unordered(_job, jobs))
    else:
        results = dict(map(_job, jobs))
    columns = ["source"] + [f"target@{m:g}" for m in magnitudes]
    keys = ["source", *magnitudes]
    print(f"\nExpert success (privileged state, noise {NOISE}), successes / {episodes} episodes\n")
    print("| pair | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for p in pairs:
        print(f"| {p} | " + " | ".join(str(results[p]["expert"][k]) for k in keys) + " |")
    print(f"\nGap matters: source behaviour in the target, successes / {episodes} episodes\n")
    print("| pair | test | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for p in pairs:
        print(f"| {p} | {results[p]['test']} | " + " | ".join(str(results[p]["gap"][k]) for k in keys) + " |")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--magnitudes", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--pairs", nargs="+", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    main(args.episodes, tuple(args.magnitudes), args.pairs, args.workers)
