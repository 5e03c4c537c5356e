"""A run folder's lock: one process at a time works on a run.

`run_dir/lock` records its owner (pid, host, start time) and is held with an exclusive `fcntl.flock`,
which the kernel releases when the owner exits, however it exits. A lock file left by an owner that is
gone (killed, crashed) is therefore stale: the next process takes it over, and says so.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

LOCK_FILE = "lock"
OWNER_READ_S = 2.0  # how long to wait for a new owner to write its pid and host into the lock file


class RunInProgress(RuntimeError):
    """The run's folder is locked by another live process."""

    def __init__(self, run_dir: Path, owner: dict[str, Any]) -> None:
        self.run_dir, self.owner = run_dir, owner
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["started"])) if "started" in owner else "?"
        super().__init__(f"run {run_dir.name} is in progress elsewhere (pid {owner.get('pid', '?')} on host "
                         f"{owner.get('host', '?')}, since {since}); its folder {run_dir} is locked until it ends")


def _owner_of(fd: int) -> dict[str, Any]:
    """The owner recorded in an open lock file ({} where none is, or unreadable)."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _locked_fd(path: Path) -> int:
    """An open descriptor of `path` holding its exclusive flock; RunInProgress where another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            deadline = time.monotonic() + OWNER_READ_S
            owner = _owner_of(fd)
            while not owner and time.monotonic() < deadline:  # the owner has the lock, not yet its record
                time.sleep(0.05)
                owner = _owner_of(fd)
            os.close(fd)
            raise RunInProgress(path.parent, owner) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            return fd
        os.close(fd)  # the previous owner removed this file between our open and our lock: open it anew


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block (released on exit, exceptions included).

    Raises RunInProgress, naming the owner's pid and host, where another live process holds it; takes over,
    with a note on stderr, a lock whose owner is gone.
    """
    with file_lock(Path(run_dir) / LOCK_FILE, f"run {Path(run_dir).name}"):
        yield


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file `path` (of `what`, e.g. "run 0123456789ab") for the block, as `run_lock` holds a run's:
    RunInProgress (its `owner`: pid, host, start) where another live process holds it; a stale one taken over."""
    try:
        fd = _locked_fd(path)
    except OSError as err:
        err.add_note(f"locking {what}")
        raise
    try:
        stale = _owner_of(fd)
        if stale:  # one write, newline included: print's separate one lets two workers' notes share a line
            sys.stderr.write(f"{what}: taking over the stale lock of pid {stale.get('pid', '?')} on host "
                             f"{stale.get('host', '?')} (that process ended without releasing it)\n")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: a process waiting on this file sees it gone and retries
        os.close(fd)
