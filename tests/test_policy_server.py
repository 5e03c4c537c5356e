"""Policies trained elsewhere: served by `cotrain_robot.policy_server` and evaluated by `cotrain eval-policy`
(`benchmark.external`) on real sockets, real processes and real environments: the evaluator's loop runs the
harness's episodes of a suite checkpoint, a suite-trained policy gives the same episodes served as in this
process, a policy's bad chunk fails its episode, a killed server stops the evaluation (no record; a restart
resumes), a record belongs to one digest, and external records go to a board of their own."""
from __future__ import annotations

import hashlib
import json
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.analysis.records import load_records
from benchmark.analysis.submit import board_track, submit
from benchmark.cli import main
from benchmark.external import LocalPolicy, RemotePolicy, evaluate_policy, load_callable
from cotrain_robot.policy_server import PolicyServer
from tasks.seeds import episode_seeds

PAIR = "lift/dynamics"
SMOKE = {"name": "external", "budget": "smoke"}


class CheckpointPolicy:
    """A suite checkpoint as a policy_fn: the target domain's chunk from the observation history, the noise of an
    episode's k-th chunk seeded by k (so `reset` makes every episode's sampling the same function of its states)."""

    obs_keys = ("lowdim",)

    def __init__(self, checkpoint: Path):
        from baselines import load_checkpoint

        self.method = load_checkpoint(checkpoint)
        config = self.method.policy.config
        self.chunk_size, self.n_obs_steps, self.action_dim = config.horizon, config.n_obs_steps, config.action_dim
        self.actions_per_chunk = config.n_action_steps
        files = sorted(p for p in checkpoint.rglob("*") if p.is_file())
        self.digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:16]
        self.chunks = 0

    def reset(self) -> None:
        self.chunks = 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        noise = torch.randn((1, self.chunk_size, self.action_dim), generator=torch.Generator().manual_seed(self.chunks))
        self.chunks += 1
        with torch.inference_mode():
            return self.method.sample(obs["lowdim"][None], "target", noise=noise)[0]


class Reach:
    """A scripted numpy policy (toward the cube, then close the gripper) that returns a non-finite action or a
    chunk of the wrong shape on the chunks named in `faults` ({(episode, chunk): "nan" | "shape"}, both from 0)."""

    chunk_size, n_obs_steps, obs_keys = 4, 2, ("lowdim",)

    def __init__(self, digest: str = "reach-1", faults: dict[tuple[int, int], str] | None = None):
        self.digest, self.faults = digest, faults or {}
        self.episode, self.chunk = -1, 0

    def reset(self) -> None:
        self.episode, self.chunk = self.episode + 1, 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        rel = obs["lowdim"][-1, -3:]  # cube_rel_pos, the layout's last entry
        chunk = np.zeros((self.chunk_size, 7), np.float32)
        chunk[:, :3] = np.clip(10 * rel, -1, 1)
        chunk[:, 6] = 1.0 if np.linalg.norm(rel) < 0.02 else -1.0
        fault = self.faults.get((self.episode, self.chunk))
        self.chunk += 1
        if fault == "nan":
            chunk[1, 2] = np.nan
        return chunk[:, :6] if fault == "shape" else chunk


def _server(policy, address: str = "tcp://127.0.0.1:0", name: str = "policy") -> PolicyServer:
    return PolicyServer(policy, address, name, policy.digest, policy.chunk_size, policy.n_obs_steps, policy.obs_keys,
                        policy.reset).start()


@pytest.fixture(scope="module")
def checkpoint_policy(smoke_bundle) -> CheckpointPolicy:
    return CheckpointPolicy(smoke_bundle["run_dir"] / "checkpoint")


@pytest.fixture(scope="module")
def in_process_record(checkpoint_policy, tmp_path_factory) -> tuple[Path, dict]:
    """The suite policy evaluated in this process (the callable path) under the smoke budget's protocol."""
    out = tmp_path_factory.mktemp("in_process")
    rec = evaluate_policy(PAIR, LocalPolicy(checkpoint_policy), "suite-policy", out, budget="smoke",
                          actions_per_chunk=checkpoint_policy.actions_per_chunk, progress=False)
    return out / rec["run_id"] / "record.json", rec


def test_a_served_policy_gives_the_in_process_episodes_step_for_step(checkpoint_policy, in_process_record, tmp_path):
    _, local = in_process_record
    server = _server(checkpoint_policy, name="suite-policy")
    policy = RemotePolicy(server.bound_address, timeout_s=30)
    try:
        served = evaluate_policy(PAIR, policy, "suite-policy", tmp_path, budget="smoke",
                                 actions_per_chunk=checkpoint_policy.actions_per_chunk, progress=False)
    finally:
        policy.close()
        server.stop()
    episodes = served["eval"]["target"]["episodes"]
    assert [e["seed"] for e in episodes] == episode_seeds("test", 0, 3)  # the track's test start states
    assert episodes == local["eval"]["target"]["episodes"]  # successes, lengths and the hash of every action
    assert all("error" not in e and e["chunks"] > 1 for e in episodes)
    assert server.requests == {"hello": 1, "reset": 3, "act": sum(e["chunks"] for e in episodes)}
    assert served["run_id"] == local["run_id"] and served["self_reported"] is True
    assert served["config"]["digest"] == checkpoint_policy.digest and served["track"] == SMOKE


@pytest.mark.parametrize("path", ["served", "in-process"])
def test_a_non_finite_action_or_a_wrong_shape_fails_that_episode(path, tmp_path):
    policy = Reach(faults={(0, 1): "nan", (1, 0): "shape"})
    server = _server(policy) if path == "served" else None
    link = RemotePolicy(server.bound_address, timeout_s=30) if server else LocalPolicy(policy)
    try:
        rec = evaluate_policy(PAIR, link, "reach", tmp_path, budget="smoke", progress=False)
    finally:
        link.close()
        if server:
            server.stop()
    nan, shape, fine = rec["eval"]["target"]["episodes"]
    assert not nan["success"] and nan["length"] == Reach.chunk_size  # the first chunk ran, the second did not
    assert nan["error"].startswith("chunk 2, step 4: the policy returned a non-finite action (nan at chunk row 1, "
                                   "dimension 2")
    assert not shape["success"] and shape["length"] == 0
    assert "action chunk of shape (4, 6), expected (chunk_size, action_dim) = (4, 7)" in shape["error"]
    assert "error" not in fine and fine["length"] > Reach.chunk_size
    assert (tmp_path / rec["run_id"] / "record.json").exists()


def test_load_callable_takes_a_policy_fn_with_its_settings(tmp_path, monkeypatch):
    (tmp_path / "my_policies.py").write_text(
        "import numpy as np\n\n"
        "def act(obs):\n    return np.zeros((8, 7))\n\n"
        "act.digest, act.chunk_size, act.obs_keys = 'sha-1', 8, ['lowdim']\n\n"
        "def bare(obs):\n    return np.zeros((8, 7))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = load_callable("my_policies:act")
    assert (policy.info.digest, policy.info.chunk_size, policy.info.n_obs_steps, policy.info.obs_keys) == (
        "sha-1", 8, 1, ("lowdim",))
    assert policy.act({"lowdim": np.zeros((1, 22), np.float32)}).shape == (8, 7)
    with pytest.raises(ValueError, match="set its digest and chunk_size as attribute"):
        load_callable("my_policies:bare")
    with pytest.raises(ValueError, match="cannot import it"):
        load_callable("my_policies:missing")


SERVER_SCRIPT = """
import numpy as np
from cotrain_robot.policy_server import serve


def policy_fn(obs):  # the history (2, 22) in, a chunk (4, 7) out: up, gripper open
    return np.tile(np.r_[0.0, 0.0, 0.2, 0.0, 0.0, 0.0, -1.0], (4, 1))


serve(policy_fn, "tcp://127.0.0.1:0", name="up", digest="up-1", chunk_size=4, n_obs_steps=2)
"""


def _start_server(script: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if line.startswith("policy server ready on "):
                return proc, line.split()[4]
        assert proc.poll() is None, proc.stdout.read()
    proc.kill()
    raise AssertionError("the policy server did not start")


def test_a_killed_server_stops_the_evaluation_without_a_record_and_a_restart_resumes(tmp_path, capsys):
    script = tmp_path / "serve_reach.py"
    script.write_text(SERVER_SCRIPT)
    out, episodes = tmp_path / "out", 4
    server, address = _start_server(script)

    def kill_after_the_first_episode() -> None:
        deadline = time.time() + 60
        while not list(out.glob("*/episodes/*.json")) and time.time() < deadline:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)

    argv = ["eval-policy", "--pair", PAIR, "--name", "up", "--budget", "smoke", "--episodes", str(episodes),
            "--out", str(out), "--link-timeout", "1"]
    killer = threading.Thread(target=kill_after_the_first_episode)
    killer.start()
    try:
        code = main(argv + ["--policy", address, "--quiet"])
    finally:
        killer.join()
        server.kill()
        server.wait()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"from the policy server at {address} within 1 s" in err, err
    assert not list(out.glob("*/record.json"))
    kept = {p.name: p.read_bytes() for p in out.glob("*/episodes/*.json")}
    assert 1 <= len(kept) < episodes

    server, address = _start_server(script)  # another port: the record is the policy's, not the address's
    try:
        assert main(argv + ["--policy", address]) == 0
    finally:
        server.kill()
        server.wait()
    assert f"{len(kept)} of {episodes} episodes already finished" in capsys.readouterr().out
    (record,) = out.glob("*/record.json")
    assert len(json.loads(record.read_text())["eval"]["target"]["episodes"]) == episodes
    assert {name: (record.parent / "episodes" / name).read_bytes() for name in kept} == kept


def test_two_servers_with_different_digests_at_one_address_do_not_share_a_record(tmp_path):
    def evaluate(digest: str, address: str) -> tuple[dict, PolicyServer]:
        server = _server(Reach(digest), address)
        policy = RemotePolicy(server.bound_address, timeout_s=30)
        try:
            return evaluate_policy(PAIR, policy, "reach", tmp_path, budget="smoke", episodes=1, progress=False), server
        finally:
            policy.close()
            server.stop()

    first, server = evaluate("reach-1", "tcp://127.0.0.1:0")
    second, other = evaluate("reach-2", server.bound_address)
    assert other.bound_address == server.bound_address and other.requests["act"] > 0  # evaluated, not reused
    assert second["run_id"] != first["run_id"] and second["config"]["digest"] == "reach-2"
    assert {p.parent.name for p in tmp_path.glob("*/record.json")} == {first["run_id"], second["run_id"]}
    again, third = evaluate("reach-1", server.bound_address)  # the first digest again: its record, read back
    assert again == first and third.requests["act"] == 0


def test_external_records_go_to_a_board_of_their_own(in_process_record, tmp_path, capsys):
    from test_tracks import _smoke_records, _write

    path, rec = in_process_record
    board = tmp_path / "external"
    assert main(["submit", str(path), "--leaderboard", str(board)]) == 0
    assert board_track(board) == SMOKE and [r["run_id"] for r in load_records(board / "records")] == [rec["run_id"]]
    markdown = (board / "leaderboard.md").read_text()
    assert markdown.startswith("# cotrain-bench: policies trained elsewhere (self-reported)")
    assert "suite-policy (self-reported)" in markdown  # the row is flagged
    assert "self-reported</span>" in (board / "leaderboard.html").read_text()

    leaderboard = tmp_path / "leaderboard"
    submit([_write(_smoke_records(), tmp_path / "runs")], leaderboard)
    before = sorted(p.parent.name for p in (leaderboard / "records").glob("*/record.json"))
    capsys.readouterr()
    assert main(["submit", str(path), "--leaderboard", str(leaderboard)]) == 2
    assert (f"made under track 'external' (budget 'smoke'), but {leaderboard} is the board of track 'leaderboard'"
            in capsys.readouterr().err)
    assert sorted(p.parent.name for p in (leaderboard / "records").glob("*/record.json")) == before

    for change, reason in ((("config", "digest", "another"), "run_id: the config hashes to"),
                           ((None, "self_reported", False), "self_reported: an external record is self-reported")):
        tampered = json.loads(path.read_text())
        (tampered[change[0]] if change[0] else tampered)[change[1]] = change[2]
        (tmp_path / "tampered").mkdir(exist_ok=True)
        (tmp_path / "tampered" / "record.json").write_text(json.dumps(tampered))
        with pytest.raises(ValueError, match=reason):
            submit([tmp_path / "tampered"], tmp_path / "refused")


class HarnessInference(CheckpointPolicy):
    """A suite checkpoint sampled exactly as the harness's evaluation samples it (`benchmark.harness.evaluate`):
    the history in a zero-padded EVAL_BATCH-row batch, the k-th chunk's noise from (episode seed, k). Told the
    episode seeds in the order they run, it is the harness's own policy in the evaluator's loop."""

    def __init__(self, checkpoint: Path, seeds: list[int]):
        super().__init__(checkpoint)
        self.seeds, self.episode = seeds, -1

    def reset(self) -> None:
        self.episode, self.chunks = self.episode + 1, 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from benchmark.harness.evaluate import EVAL_BATCH, _episode_noise

        batch = np.zeros((EVAL_BATCH, *obs["lowdim"].shape), np.float32)
        batch[0] = obs["lowdim"]
        noise = torch.zeros(EVAL_BATCH, self.chunk_size, self.action_dim)
        noise[0] = _episode_noise(self.seeds[self.episode], self.chunks, (self.chunk_size, self.action_dim))
        self.chunks += 1
        with torch.inference_mode():
            return np.asarray(self.method.sample(batch, "target", noise=noise)[0])


class ActionHashes:
    """An env factory whose envs hash every action they are stepped with (float64 bytes, as the evaluator
    hashes them), one hash per episode, in reset order."""

    def __init__(self, make_env):
        self.make_env, self.hashes = make_env, []

    def __call__(self):
        env, hashes = self.make_env(), self.hashes
        reset, step = env.reset, env.step

        def hashed_reset(*args, **kwargs):
            hashes.append(hashlib.sha256())
            return reset(*args, **kwargs)

        def hashed_step(action):
            hashes[-1].update(np.asarray(action, np.float64).tobytes())
            return step(action)
        env.reset, env.step = hashed_reset, hashed_step
        return env


def test_the_evaluator_runs_the_harness_episodes_of_a_suite_checkpoint(smoke_bundle, tmp_path):
    """The evaluator's loop (start states, observation history, actions per chunk, success and horizon) is the
    harness's: the same checkpoint sampled as the harness samples it gives the harness's episodes, action for
    action, on the track's backend."""
    from benchmark.external.rules import eval_protocol
    from benchmark.harness import evaluate as harness

    checkpoint = smoke_bundle["run_dir"] / "checkpoint"
    seeds = episode_seeds("test", 0, 3)
    replica = HarnessInference(checkpoint, seeds)
    external = evaluate_policy(PAIR, LocalPolicy(replica), "harness-replica", tmp_path, budget="smoke",
                               actions_per_chunk=replica.actions_per_chunk, progress=False)
    spec = harness.EvalSpec(checkpoint=str(checkpoint), pair=PAIR, domain="target", magnitude=1.0,
                            backend=eval_protocol("smoke").backend(PAIR))
    harness._load(spec)
    hashed = ActionHashes(harness._WORKER["make_env"])
    harness._WORKER["make_env"], harness._WORKER["envs"] = hashed, []
    try:
        episodes = [e for seed in seeds for e in harness._run_batch(spec, [seed])]  # each alone in row 0
    finally:
        harness._close_envs()
    ours = [{"seed": e["seed"], "success": e["success"], "length": e["length"], "actions_sha256": h.hexdigest()}
            for e, h in zip(episodes, hashed.hashes)]
    theirs = [{k: e[k] for k in ("seed", "success", "length", "actions_sha256")}
              for e in external["eval"]["target"]["episodes"]]
    assert theirs == ours
    assert len({e["actions_sha256"] for e in ours}) == len(seeds)  # three different episodes, not one repeated
