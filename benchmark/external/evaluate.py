"""`evaluate_policy`: an external policy's episodes on a pair's target domain under the leaderboard track's
evaluation protocol (`benchmark.harness.evaluate`'s episodes: the test start states of `tasks.seeds`, reset by
episode seed, the pair's horizon and success test, an observation history of the policy's length whose first
observation is repeated at the episode's start, `actions_per_chunk` actions of each chunk executed).

Folder: `out_dir/<record id>/` holds `config.json`, one `episodes/<episode seed>.json` per finished episode
(written as it ends, so an interrupted evaluation resumes from them) and, once every episode has ended,
`record.json` (the harness's record format, `self_reported: true`, track `external`)."""
from __future__ import annotations

import hashlib
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from benchmark.external.client import LocalPolicy, PolicyFailure, PolicyInfo, RemotePolicy
from benchmark.external.rules import NAME, EvalProtocol, eval_protocol, record_id
from benchmark.harness.config import SUITE_VERSION
from benchmark.harness.lock import run_lock
from benchmark.harness.run import RECORD_SCHEMA, read_json, write_json

ACTION_DIM = 7
LOWDIM = "lowdim"


def _as_dict(obs: Any) -> dict[str, np.ndarray]:
    """An env observation as the protocol's observation dict: {"lowdim"} (+ cameras on image pairs)."""
    if isinstance(obs, dict):
        return {k: np.asarray(v, np.float32 if k == LOWDIM else None) for k, v in obs.items()}
    return {LOWDIM: np.asarray(obs, np.float32)}


def chunk_problem(chunk: np.ndarray, shape: tuple[int, int]) -> str | None:
    """Why an action chunk cannot be executed (None when it can): another shape, or a non-finite value."""
    if chunk.shape != shape:
        return (f"the policy returned an action chunk of shape {tuple(chunk.shape)}, expected (chunk_size, "
                f"action_dim) = {shape}")
    bad = np.argwhere(~np.isfinite(chunk))
    if len(bad):
        row, col = bad[0]
        return (f"the policy returned a non-finite action ({chunk[row, col]} at chunk row {row}, dimension {col}; "
                f"{len(bad)} non-finite value(s) in the chunk)")
    return None


def run_episode(env: Any, policy: RemotePolicy | LocalPolicy, info: PolicyInfo, actions_per_chunk: int,
                seed: int) -> dict[str, Any]:
    """One episode from `seed`: {"seed", "success", "length", "chunks", "actions_sha256"} (the hash of every
    action executed, float64 bytes), plus "error" where the policy failed it (the episode is then unsuccessful).
    A link fault (`PolicyLinkError`) propagates."""
    obs, _ = env.reset(seed=seed)
    history = deque([_as_dict(obs)] * info.n_obs_steps, maxlen=info.n_obs_steps)
    keys = list(info.obs_keys) or list(history[0])
    actions, chunks = hashlib.sha256(), 0

    def result(success: bool, error: str | None = None) -> dict[str, Any]:
        out = {"seed": seed, "success": success, "length": env.t, "chunks": chunks,
               "actions_sha256": actions.hexdigest()}
        return out if error is None else {**out, "error": error}

    try:
        policy.reset()
        while True:
            chunk = policy.act({k: np.stack([ob[k] for ob in history]) for k in keys})
            chunks += 1
            problem = chunk_problem(chunk, (info.chunk_size, ACTION_DIM))
            if problem:
                return result(False, f"chunk {chunks}, step {env.t}: {problem}")
            for action in np.asarray(chunk, np.float64)[:actions_per_chunk]:
                actions.update(action.tobytes())
                ob, _, terminated, truncated, step_info = env.step(action)
                history.append(_as_dict(ob))
                if terminated or truncated:
                    return result(bool(step_info["is_success"]))
    except PolicyFailure as err:
        return result(False, f"chunk {chunks + 1}, step {env.t}: {err}")


def _config(protocol: EvalProtocol, pair: str, info: PolicyInfo, name: str, seed: int, episodes: int,
            actions_per_chunk: int, n_target: int, n_source: int) -> dict[str, Any]:
    from tasks import get_pair

    config = {"pair": pair, "pair_version": get_pair(pair).version, "magnitude": protocol.magnitude,
              "backend": protocol.backend(pair), "seed": seed, "episodes": episodes, "eval_split": "test",
              "method": name, "digest": info.digest, "chunk_size": info.chunk_size,
              "actions_per_chunk": actions_per_chunk, "n_obs_steps": info.n_obs_steps, "obs_keys": list(info.obs_keys),
              "n_target": n_target, "n_source": n_source, "w": None, "profile": "external",
              "budget": protocol.budget, "suite_version": SUITE_VERSION}
    return {**config, "run_id": record_id(config)}


def _check_request(name: str, seed: int, episodes: int, declared: tuple[int | None, int | None]) -> None:
    if not NAME.fullmatch(name):
        raise ValueError(f"--name {name!r}: 1 to 64 letters, digits, '_', '.', '+' or '-', starting with a letter "
                         "or digit")
    for label, value, least in (("--seeds", seed, 0), ("--episodes", episodes, 1),
                                ("--declared-n-target", declared[0], 0), ("--declared-n-source", declared[1], 0)):
        if value is None and label.startswith("--declared"):
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{label} must be an integer >= {least}, got {value!r}")


def evaluate_policy(pair: str, policy: RemotePolicy | LocalPolicy, name: str, out_dir: str | Path = "runs/external",
                    seed: int = 0, episodes: int | None = None, actions_per_chunk: int | None = None,
                    budget: str = "full", declared_n_target: int | None = None, declared_n_source: int | None = None,
                    progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate `policy` on `pair`'s target domain under the leaderboard track's evaluation protocol at `budget`
    (episodes: the budget's unless given; actions_per_chunk: the policy's chunk_size unless given) and return
    its record (module docstring). A finished record is read back; finished episodes are not run again.

    declared_n_target / declared_n_source: the target and source demonstrations the policy was trained on, as
    its author declares them; recorded, unchecked (None: recorded as not declared, and the board files the
    record under the pair's N and M).
    Raises `PolicyLinkError` on a link fault (no record is written; the finished episodes are kept).
    """
    from tasks import get_pair, make_env
    from tasks.seeds import episode_seeds

    from benchmark.harness.evaluate import summarize
    from benchmark.harness.fingerprint import fingerprint

    protocol = eval_protocol(budget)
    task_pair = get_pair(pair)
    pair = task_pair.name
    episodes = protocol.episodes if episodes is None else episodes
    declared = (declared_n_target, declared_n_source)
    _check_request(name, seed, episodes, declared)
    env = make_env(pair, "target", protocol.magnitude, obs=task_pair.obs, backend=protocol.backend(pair))
    try:
        first = _as_dict(env.reset(seed=episode_seeds("test", seed, 1)[0])[0])
        info = policy.hello({"pair": pair, "action_dim": ACTION_DIM,
                             "observations": {k: list(v.shape) for k, v in first.items()}})
        unknown = sorted(set(info.obs_keys) - set(first))
        if unknown:
            raise ValueError(f"the policy reads observation(s) {unknown}; {pair} gives {sorted(first)}")
        k = info.chunk_size if actions_per_chunk is None else actions_per_chunk
        if not isinstance(k, int) or not 1 <= k <= info.chunk_size:
            raise ValueError(f"--actions-per-chunk must be in [1, chunk_size = {info.chunk_size}], got {k!r}")
        # the board's cell: the declared counts, or the pair's where none were declared (the record says which)
        cell = (task_pair.n_target if declared[0] is None else declared[0],
                task_pair.n_source if declared[1] is None else declared[1])
        config = _config(protocol, pair, info, name, seed, episodes, k, *cell)
        run_dir = Path(out_dir) / config["run_id"]
        if (run_dir / "record.json").exists():
            log(f"{name} ({info.digest}) on {pair}, seed {seed}: already evaluated, {run_dir / 'record.json'}")
            return read_json(run_dir / "record.json")
        (run_dir / "episodes").mkdir(parents=True, exist_ok=True)
        with run_lock(run_dir):
            if (run_dir / "config.json").exists() and read_json(run_dir / "config.json") != config:
                raise RuntimeError(f"{run_dir}/config.json belongs to another evaluation")
            write_json(run_dir / "config.json", config)
            seeds = episode_seeds("test", seed, episodes)
            done = {s: read_json(run_dir / "episodes" / f"{s}.json") for s in seeds
                    if (run_dir / "episodes" / f"{s}.json").exists()}
            if done:
                log(f"resuming {run_dir}: {len(done)} of {episodes} episodes already finished")
            t0 = time.time()
            for s in tqdm([s for s in seeds if s not in done], desc=f"eval {name}", disable=not progress,
                          leave=False):
                done[s] = run_episode(env, policy, info, k, s)
                write_json(run_dir / "episodes" / f"{s}.json", done[s])
            record = {
                "schema": RECORD_SCHEMA, "run_id": config["run_id"], "config": config, "self_reported": True,
                "declared_training": {"pair": pair, "n_target": declared[0], "n_source": declared[1],
                                      "checked": False},
                "policy": {"source": policy.source, "name": info.name, "digest": info.digest},
                "eval": {"target": summarize([done[s] for s in seeds]), "wall_s": time.time() - t0},
                "metrics": {}, "target_error": None, "fingerprint": fingerprint("cpu"), "track": protocol.track,
            }
            write_json(run_dir / "record.json", record)
    finally:
        env.close()
    return record
