"""Performance benchmark (`cotrain perf`): env stepping, evaluation throughput, DDIM inference.

The stepping table of a task is measured in one process, its four steppers run in alternating
chunks: timings on a shared machine move by +-20% between runs, so read the ratios.
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Callable

import numpy as np

from benchmark.analysis.markdown import md_table
from tasks.base_tasks import BASE_TASKS, obs_layout

SEED = 0
ROBOSUITE_TASKS = [name for name, task in BASE_TASKS.items() if task.env_name]


def smooth_actions(steps: int, seed: int = SEED) -> np.ndarray:
    """(steps, 7) bounded sinusoidal arm motions and a gripper that opens and closes every 25 steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    actions = 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.1, 7) * t + rng.uniform(0, 2 * np.pi, 7))
    actions[:, 3:6] *= 0.3
    actions[:, 6] = np.where((t[:, 0] // 25) % 2 == 0, -1.0, 1.0)
    return actions


def _interleaved_rates(steppers: dict[str, Callable[[np.ndarray], object]], actions: np.ndarray,
                       rounds: int = 5) -> dict[str, float]:
    """Calls/s of each stepper over `actions`, run in alternating chunks so that load drifts hit all alike.

    Each stepper is called once before timing (loading numba caches, first-call set-up).
    """
    for step in steppers.values():
        step(actions[0])
    elapsed = dict.fromkeys(steppers, 0.0)
    for chunk in np.array_split(actions, rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            for action in chunk:
                step(action)
            elapsed[name] += time.perf_counter() - start
    return {name: len(actions) / seconds for name, seconds in elapsed.items()}


def _plain_robosuite(task: str):
    """`robosuite.make` as a user would call it: all default observables, the suite's controller."""
    import robosuite
    from robosuite import load_composite_controller_config

    from tasks.env import BUILD_SEED, CONTROL_FREQ

    base = BASE_TASKS[task]
    env = robosuite.make(
        base.env_name, robots="Panda", has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False,
        control_freq=CONTROL_FREQ, horizon=10**6, ignore_done=True, seed=BUILD_SEED,
        controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
        **dict(base.env_kwargs))
    env.reset()
    return env


def _physics_stepper(env) -> Callable[[np.ndarray], None]:
    """`mj_step` x substeps per call on a copy of `env`'s state, arm gravity-compensated: the physics-only limit."""
    import mujoco

    model = env.sim.model._model
    data = copy.copy(env.sim.data._data)
    mujoco.mj_forward(model, data)
    data.qfrc_applied[env.arm_dofs()] = data.qfrc_bias[env.arm_dofs()]
    substeps = int(round(env.rs.control_timestep / env.rs.model_timestep))

    def step(_action: np.ndarray) -> None:
        for _ in range(substeps):
            mujoco.mj_step(model, data)

    return step


def stepping_table(tasks: list[str], steps: int) -> list[dict[str, float | str]]:
    """Env steps/s per base task: plain robosuite, the suite's two backends, and the physics limit."""
    from tasks.make import make_env
    from tasks.pairs import custom_pair

    actions = smooth_actions(steps)
    rows = []
    for task in tasks:
        pair = custom_pair(task, [])  # the base task without gaps
        plain = _plain_robosuite(task)
        suite = make_env(pair, "source", backend="robosuite", seed=SEED)
        fast = make_env(pair, "source", backend="fast", seed=SEED)
        suite.reset()
        fast.reset()
        steppers = {"robosuite": plain.step, "robosuite_env": suite.step, "fast_env": fast.step,
                    "limit": _physics_stepper(fast)}
        rows.append({"task": task, **_interleaved_rates(steppers, actions)})
        for env in (plain, suite, fast):
            env.close()
    return rows


def print_stepping(rows: list[dict[str, float | str]], steps: int) -> None:
    """The stepping table as markdown."""
    print(f"Env steps/s ({steps} steps per measurement, Panda, OSC_POSE, 20 Hz control, 500 Hz physics)")
    header = ("task", "robosuite", "suite robosuite", "suite fast", "fast/robosuite", "physics limit", "fast/limit")
    print(md_table(list(header), [[r["task"], f"{r['robosuite']:.0f}", f"{r['robosuite_env']:.0f}",
                                   f"{r['fast_env']:.0f}", f"{r['fast_env'] / r['robosuite']:.1f}x",
                                   f"{r['limit']:.0f}", f"{r['fast_env'] / r['limit']:.0%}"] for r in rows]))
    print("robosuite: plain robosuite.make with its default observables; suite: tasks.make_env(backend=...);\n"
          "physics limit: mujoco.mj_step x 25 per control step on the same model.")


def evaluation_throughput(checkpoint: str | None, pair: str = "lift/dynamics", episodes: int = 192) -> None:
    """Evaluation episodes/s with 1 and 2 worker processes (`benchmark.harness.evaluate`, fast backend), each
    pool warmed with one batch per worker first; the start-up (spawn, imports, policy, envs) is
    printed apart, since a pool pays it once per run."""
    try:
        from baselines import load_checkpoint  # noqa: F401  (the workers load the policy with it)
        from benchmark.harness.evaluate import EVAL_BATCH, EvalPool, EvalSpec, evaluate
    except ImportError as err:
        print(f"Evaluation throughput: not available ({err})")
        return
    if checkpoint is None:
        print("Evaluation throughput: not available (give --checkpoint)")
        return
    spec = EvalSpec(checkpoint, pair, "source", 0.0, backend="fast")
    seeds = list(range(10_000, 10_000 + episodes))
    rates, startup = {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        with EvalPool(workers) as pool:
            evaluate(spec, list(range(workers * EVAL_BATCH)), progress=False, pool=pool)
            startup[workers] = time.perf_counter() - start
            start = time.perf_counter()
            evaluate(spec, seeds, progress=False, pool=pool)
            rates[workers] = episodes / (time.perf_counter() - start)
    print(f"Evaluation throughput ({pair}, {episodes} episodes, fast backend, warm workers): "
          f"1 worker {rates[1]:.2f} episodes/s, 2 workers {rates[2]:.2f} episodes/s "
          f"(scaling {rates[2] / rates[1]:.2f}x); warm-up (start-up + {EVAL_BATCH} episodes per worker) "
          f"{startup[1]:.1f} s and {startup[2]:.1f} s")


def ddim_inference(repeats: int = 200) -> None:
    """Time of one DDIM sampling of an action chunk by the default (MLP) policy, batch 1."""
    try:
        import torch

        from baselines.policy import DiffusionPolicy, PolicyConfig
    except ImportError as err:
        print(f"DDIM inference: not available ({err})")
        return
    config = PolicyConfig(obs_dim=sum(n for _, n in obs_layout("lift")), action_dim=7)
    policy = DiffusionPolicy(config).eval()
    rng = np.random.default_rng(SEED)
    policy.fit_normalizer(rng.normal(size=(64, config.n_obs_steps, config.obs_dim)),
                          rng.normal(size=(64, config.horizon, config.action_dim)))
    obs = torch.zeros(1, config.n_obs_steps, config.obs_dim)
    for _ in range(10):
        policy.sample(obs)
    start = time.perf_counter()
    for _ in range(repeats):
        policy.sample(obs)
    ms = (time.perf_counter() - start) / repeats * 1e3
    print(f"DDIM-{config.num_inference_steps} inference ({config.network}, width {config.width}, "
          f"{torch.get_num_threads()} threads): {ms:.2f} ms per action chunk")


def main(argv: list[str] | None = None) -> None:
    """`cotrain perf`: print the stepping table, evaluation throughput and DDIM inference time."""
    parser = argparse.ArgumentParser(prog="cotrain perf", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="env steps per stepping measurement")
    parser.add_argument("--tasks", nargs="+", default=ROBOSUITE_TASKS, choices=ROBOSUITE_TASKS,
                        help="base tasks to measure")
    parser.add_argument("--checkpoint", default=None, help="policy checkpoint for the evaluation throughput")
    parser.add_argument("--episodes", type=int, default=192, help="episodes per evaluation throughput measurement")
    args = parser.parse_args(argv)
    print_stepping(stepping_table(args.tasks, args.steps), args.steps)
    print()
    evaluation_throughput(args.checkpoint, episodes=args.episodes)
    ddim_inference()


if __name__ == "__main__":
    main()
