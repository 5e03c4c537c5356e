"""Runs and sweeps under hostile conditions: the same run started twice at once, stale locks, malformed
grid files and run options, a read-only runs folder and a full disk. Real processes and file systems."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from benchmark.cli import main
from benchmark.harness.config import RunConfig
from benchmark.harness.lock import LOCK_FILE, RunInProgress, run_lock

PAIR = "lift/dynamics"
ROOT = Path(__file__).resolve().parent.parent
# a cheap real run: target_only (no source demos in its training), one evaluation episode per domain
RUN = ["--pair", PAIR, "--method", "target_only", "--profile", "smoke", "--episodes", "1", "--quiet"]
GRID = f"pairs: [{PAIR}]\nmethods: [target_only]\nprofile: smoke\nepisodes: 1\n"


def _cli(*args: str, prefix: tuple[str, ...] = ()) -> list[str]:
    return [*prefix, sys.executable, "-m", "benchmark.cli", *args]


def _run_id() -> str:
    return RunConfig(pair=PAIR, method="target_only", profile="smoke", episodes=1).run_id()


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---- item: one process per run --------------------------------------------------------------------------

def test_the_same_run_started_twice_at_once_runs_once(tmp_path, capsys):
    """Two real processes start the same run together: one takes the lock, the other stops at once naming
    it; the lock the first leaves when killed is stale, and the next process takes it over."""
    procs = [subprocess.Popen(_cli("run", *RUN, "--runs-dir", str(tmp_path)), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True) for _ in range(2)]
    try:
        deadline = time.time() + 120
        while all(p.poll() is None for p in procs):
            assert time.time() < deadline, "neither process stopped: the second did not see the lock"
            time.sleep(0.1)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        assert winner.poll() is None, "both processes ended: they ran the same run side by side"
        err = loser.stderr.read()
        assert loser.returncode == 2, err
        assert f"is in progress elsewhere (pid {winner.pid} on host {socket.gethostname()}" in err, err
        assert "Traceback" not in err
    finally:
        for proc in procs:
            _kill(proc)
    run_dir = tmp_path / _run_id()
    stale = json.loads((run_dir / LOCK_FILE).read_text())
    assert stale["pid"] == winner.pid  # the killed owner's lock is still there, and nobody holds it
    capsys.readouterr()
    with run_lock(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock of pid {winner.pid}" in capsys.readouterr().err
    assert not (run_dir / LOCK_FILE).exists()  # released on exit


def test_a_lock_is_released_on_exceptions_and_refused_while_held(tmp_path):
    with pytest.raises(KeyError), run_lock(tmp_path):
        raise KeyError("boom")
    assert not (tmp_path / LOCK_FILE).exists()
    with run_lock(tmp_path):
        with pytest.raises(RunInProgress, match=f"pid {os.getpid()} on host"), run_lock(tmp_path):
            pass
        assert (tmp_path / LOCK_FILE).exists()  # the refused attempt left the owner's lock alone


def test_a_sweep_reports_a_run_in_progress_elsewhere(tmp_path, capsys):
    runs = tmp_path / "runs"
    run_dir = runs / _run_id()
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from benchmark.harness.lock import run_lock\n"
         f"with run_lock(Path({str(run_dir)!r})):\n    print('locked', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / "grid.yaml").write_text(GRID)
        assert main(["sweep", str(tmp_path / "grid.yaml"), "--runs-dir", str(runs), "--quiet"]) == 0
    finally:
        _kill(holder)
    out = capsys.readouterr().out
    assert "0 finished, 0 failed, 1 in progress elsewhere" in out
    assert f"IN PROGRESS ELSEWHERE run {run_dir.name} is in progress elsewhere (pid {holder.pid}" in out
    assert not (run_dir / "error.txt").exists()


# ---- item: grid files -----------------------------------------------------------------------------------

BASE = f"pairs: [{PAIR}]\nmethods: [cotrain]\nprofile: smoke\n"
BAD_GRIDS = {
    "seeds: zero": "`seeds` must be a list of integers >= 0, got 'zero'",
    "set: {foo: 1}": "`set.foo`: no method of the grid (cotrain) has a hyperparameter 'foo'",
    'nogap_control: "no"': "`nogap_control` must be true or false, got 'no'",
    "episodes: 0": "`episodes` must be an integer >= 1 or null (the profile's), got 0",
    "vary: [1, 2]": "`vary` must be a mapping of method to {hyperparameter: list of values}, got [1, 2]",
    "hparam_trials: many": "`hparam_trials` must be an integer >= 0, got 'many'",
    'magnitudes: ["abc"]': "`magnitudes` must be a list of numbers in [0, 1], got 'abc'",
    "n_target: [0]": "`n_target` must be a list of integers >= 1 or null (the pair's default), got 0",
    "w: [1.5]": "`w` must be a list of numbers in [0, 1] or null (the default ratio), got 1.5",
    "seeds: []": "`seeds` must be a non-empty list of integers >= 0, got []",
    "network: cnn": "`network` must be one of mlp, unet, got 'cnn'",
    "vary: {adda: {adversarial_weight: [0.1]}}": "`vary.adda`: 'adda' is not one of the grid's methods (cotrain)",
    "vary: {cotrain: {w: [abc]}}": "`vary.cotrain.w`: hyperparameter w='abc' must be a number",
    "vary: {cotrain: {foo: [1]}}": "`vary.cotrain.foo`: unknown hyperparameter 'foo' for method 'cotrain'",
    "set: {w: 2}": "`set.w`: hyperparameter w=2 must be a number",
    "guidance: {scales: [a]}": "`guidance.scales` must be a list of numbers, got ['a']",
    "description: [a]": "`description` must be a string, got ['a']",
}


@pytest.mark.parametrize("line", [*BAD_GRIDS, "profile: [smoke]"])
def test_a_bad_grid_names_the_file_the_key_and_the_expected_type(line, tmp_path, capsys):
    text = f"pairs: [{PAIR}]\nmethods: [cotrain]\n{line}\n" if line.startswith("profile") else f"{BASE}{line}\n"
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    assert main(["sweep", str(grid), "--runs-dir", str(tmp_path / "runs"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    expected = BAD_GRIDS.get(line, "`profile` must be one of smoke, quick, full")
    assert err.startswith(f"cotrain sweep: error: {grid}: {expected}"), err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_budgets_must_be_mappings(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"{BASE}budgets: [smoke]\n")
    assert main(["sweep", str(grid), "--budget", "smoke", "--dry-run"]) == 2
    assert f"{grid}: `budgets` must be a mapping of budget name" in capsys.readouterr().err


# ---- item: run options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (["--set", "w=abc"], "hyperparameter w='abc' must be a number"),
    (["--set", "w=0.1", "--set", "w=0.2"], "--set w is given twice"),
    (["--set", "=0.1"], "--set expects key=value, got '=0.1'"),
    (["--episodes", "0"], "episodes must be an integer >= 1, got 0"),
    (["--n-target", "0"], "n_target must be an integer >= 1, got 0"),
    (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
    (["--workers", "0"], "workers must be an integer >= 1, got 0"),
    (["--threads", "0"], "threads must be an integer >= 1, got 0"),
    (["--device", "gpu"], "device 'gpu' is not a torch device"),
])
def test_a_bad_run_option_is_named_before_work_starts(options, message, tmp_path, capsys):
    argv = ["run", "--pair", PAIR, "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"), *options]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cotrain run: error: {message}" in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


# ---- item: operating-system errors ----------------------------------------------------------------------

def _without_file_permission_override(probe_dir: Path) -> tuple[str, ...]:
    """A command prefix under which writing into a read-only folder fails: none for a user other than root;
    for root (CI), setpriv dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (running as `nobody` fails
    where the interpreter lives under root's private home). Checked on `probe_dir`; skips where impossible."""
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no way to run a process that file permissions stop")
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe_dir / 'probe')!r}, 'w')"],
                           capture_output=True, text=True)
    if probe.returncode == 0 or "PermissionError" not in probe.stderr:
        pytest.skip(f"file permissions do not stop this process here: {probe.stderr.strip()[-200:]}")
    return prefix


@pytest.fixture
def read_only_runs(tmp_path) -> Iterator[Path]:
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    yield runs
    runs.chmod(0o755)


def test_a_read_only_runs_folder_is_one_line_and_the_sweep_keeps_its_summary(read_only_runs, tmp_path):
    prefix = _without_file_permission_override(read_only_runs)
    (tmp_path / "grid.yaml").write_text(f"pairs: [{PAIR}]\nmethods: [target_only, source_only]\nprofile: smoke\n")
    sweep = subprocess.run(_cli("sweep", str(tmp_path / "grid.yaml"), "--runs-dir", str(read_only_runs), "--quiet",
                                prefix=prefix), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert sweep.returncode == 2
    assert "Traceback" not in sweep.stderr + sweep.stdout
    assert sweep.stderr == "cotrain sweep: error: 2 of 2 runs failed\n"
    assert "sweep: 0 finished, 2 failed, 0 in progress elsewhere" in sweep.stdout
    failed = [line for line in sweep.stdout.splitlines() if line.startswith("  FAILED ")]
    assert len(failed) == 2
    for line in failed:
        run_id = line.split()[1].rstrip(":")
        assert f"permission denied: {read_only_runs / run_id} (while creating the folder of run {run_id})" in line

    run = subprocess.run(_cli("run", *RUN, "--runs-dir", str(read_only_runs), prefix=prefix), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr == (f"cotrain run: error: permission denied: {read_only_runs / _run_id()} "
                          f"(while creating the folder of run {_run_id()})\n")
    assert not any(read_only_runs.iterdir())


@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    """A tmpfs of `size` mounted on `path` for the block (a full disk); skips where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a small full disk) needs root")
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_partial_checkpoint(tmp_path):
    """The run folder on a 128 KiB file system: the config and log fit, the smoke checkpoint (~840 KB) does not."""
    run_dir = tmp_path / "runs" / _run_id()
    with _tmpfs(run_dir, "128k"):
        run = subprocess.run(_cli("run", *RUN, "--runs-dir", str(tmp_path / "runs")), cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        left = sorted(p.name for p in run_dir.iterdir())
    assert run.returncode == 2
    assert run.stderr == (f"cotrain run: error: no space left on device: {run_dir / 'checkpoint.tmp' / 'state.pt'} "
                          f"(while training run {run_dir.name})\n")
    assert left == ["config.json", "train_log.jsonl"]  # no checkpoint.tmp, no temporary file, no lock


def test_atomic_writes_on_a_full_disk_name_the_file_and_leave_nothing(tmp_path):
    import torch

    from baselines.checkpoints import save_torch
    from benchmark.harness.run import write_json

    disk = tmp_path / "disk"
    with _tmpfs(disk, "16k"):
        with pytest.raises(OSError, match="No space left on device") as info:
            write_json(disk / "big.json", {"x": "y" * 100_000})
        assert info.value.filename == str(disk / "big.json")
        with pytest.raises(OSError, match="No space left on device") as info:
            save_torch({"w": torch.zeros(100_000)}, disk / "state.pt")
        assert info.value.filename == str(disk / "state.pt")
        assert not any(disk.iterdir())


def test_a_log_line_cut_short_is_dropped_on_resume(tmp_path):
    from benchmark.harness.train import _truncate_log

    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n{"step": 3, "lo')
    _truncate_log(log, 2)
    assert log.read_text() == '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n'
