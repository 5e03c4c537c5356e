"""The evaluation-only items of an ablation: a trained checkpoint in another cell, and the scripted expert.

`CellEval` is a `NoGapEval` whose evaluation runs in a named cell (pair and run magnitude) instead of at
magnitude 0: the sweep's `execute_nogap_eval` runs it through `control()` into its own run folder, with the
trained run's `w` and no training, and measures the trained checkpoint's representation on the cell's paired
replay (its raw-observation discernibility, and how the policy's z aligns the cell's two domains).
`ExpertEval` rolls the pair's scripted expert out in the target domain on the start states a policy of that
seed is evaluated on, with the expert noise the demos are made with, so its success is also the cell's demo
yield; its result is a JSON file under `<runs_dir>/_expert/` (not a run record: leaderboards read run records
only).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.harness.config import SUITE_VERSION, RunConfig, content_hash
from benchmark.harness.grid import NoGapEval

EXPERT_DIR = "_expert"


@dataclass(frozen=True)
class CellEval(NoGapEval):
    """`trained`'s checkpoint evaluated in the target of `pair` at run magnitude `magnitude`; its id hashes the
    trained run's config with the cell in place of its own and `checkpoint_of` naming the trained run."""

    pair: str
    magnitude: float

    measures = True

    def control(self) -> RunConfig:
        """The trained run's config moved to the cell: what the evaluation runs."""
        return replace(self.trained, pair=self.pair, magnitude=self.magnitude).resolved()

    def hashed_dict(self) -> dict[str, Any]:
        from tasks import get_pair

        return {**self.trained.hashed_dict(), "pair": self.pair, "pair_version": get_pair(self.pair).version,
                "magnitude": self.magnitude, "checkpoint_of": self.trained.run_id()}


@dataclass(frozen=True)
class ExpertEval:
    """The scripted expert of `cell`'s base task in `cell`'s target (its pair, magnitude, backend) on the start
    states `cell` is evaluated on (its split, seed and episodes)."""

    cell: RunConfig

    method = "expert"

    def hashed_dict(self) -> dict[str, Any]:
        from tasks import get_pair
        from tasks.experts import EXPERT_VERSION

        from benchmark.harness.run import EXPERT_NOISE

        c = self.cell.resolved()
        return {"kind": "expert", "pair": c.pair, "pair_version": get_pair(c.pair).version, "magnitude": c.magnitude,
                "seed": c.seed, "episodes": c.episodes, "eval_split": c.eval_split, "backend": c.backend,
                "expert_version": EXPERT_VERSION, "expert_noise": EXPERT_NOISE, "suite_version": SUITE_VERSION}

    def run_id(self) -> str:
        return content_hash(self.hashed_dict())

    def path(self, runs_dir: Path) -> Path:
        return Path(runs_dir) / EXPERT_DIR / f"{self.run_id()}.json"


def execute_expert_eval(item: ExpertEval, runs_dir: str | Path) -> dict[str, Any]:
    """Roll out (or read back) `item`; returns {"config", "eval": {"target": summary, "wall_s"}}."""
    from tasks import get_pair, make_env
    from tasks.demos import rollout_expert
    from tasks.experts import make_expert
    from tasks.seeds import episode_seeds

    from benchmark.harness.evaluate import summarize
    from benchmark.harness.run import EXPERT_NOISE, read_json, write_json

    path = item.path(Path(runs_dir))
    if path.exists():
        return read_json(path)
    config = {**item.hashed_dict(), "run_id": item.run_id()}
    pair = get_pair(config["pair"])
    t0 = time.time()
    env = make_env(pair, "target", config["magnitude"], obs=pair.obs, backend=config["backend"])
    episodes = []
    try:
        for seed in episode_seeds(config["eval_split"], config["seed"], config["episodes"]):
            # one expert per episode, seeded by it: an episode is a function of its start state alone
            _, actions, rewards = rollout_expert(env, make_expert(pair.base_task, noise=EXPERT_NOISE, seed=seed), seed)
            episodes.append({"seed": seed, "success": bool(rewards[-1] > 0), "length": len(actions)})
    finally:
        env.close()
    result = {"config": config, "eval": {"target": summarize(episodes), "wall_s": time.time() - t0}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    return result
