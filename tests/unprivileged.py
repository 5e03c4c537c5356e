"""Running `cotrain` as an unprivileged user, so that file permissions apply when the tests run as root
(root ignores them): the permission tests' subprocesses, and a folder such a user can reach."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

NOBODY = 65534  # uid and gid of `nobody`
_LAUNCHER: list[tuple[list[str], dict] | str] = []  # what `reachable_dir` found (once): a launcher, or why none


def _launchers() -> list[tuple[list[str], dict]]:
    """Ways to start a process as `nobody` (command prefix, subprocess options); as is when not root."""
    if os.geteuid() != 0:
        return [([], {})]
    setpriv = shutil.which("setpriv")
    return ([([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"], {})] if setpriv else []) + [
        ([], dict(user=NOBODY, group=NOBODY, extra_groups=[]))]


def _launcher(home: Path) -> tuple[list[str], dict] | str:
    """The first launcher that runs this Python with the suite as `nobody`, else why none does."""
    why = []
    for prefix, options in _launchers():
        try:
            probe = subprocess.run([*prefix, sys.executable, "-c", "import benchmark.cli"], capture_output=True,
                                   text=True, env={**os.environ, "HOME": str(home)}, timeout=120, **options)
        except OSError as err:
            why.append(str(err))
            continue
        if probe.returncode == 0:
            return prefix, options
        why.append(probe.stderr.strip()[-300:])
    return "; ".join(why)


@contextmanager
def reachable_dir() -> Iterator[Path]:
    """A fresh folder that the unprivileged user can read and write (pytest's own are root-only); removed
    after. Skips the test, with the reason, where that user cannot run this Python and its packages."""
    root = Path(tempfile.mkdtemp(prefix="cotrain-unprivileged-"))
    try:
        root.chmod(0o777)
        if not _LAUNCHER:
            _LAUNCHER.append(_launcher(root))
        if isinstance(_LAUNCHER[0], str):
            pytest.skip(f"uid {NOBODY} cannot run {sys.executable} with the suite: {_LAUNCHER[0]}")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_cotrain(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`cotrain ARGS` as uid 65534 when this process is root (as itself otherwise), inside `reachable_dir`;
    home: its HOME."""
    prefix, options = _LAUNCHER[0]
    return subprocess.run([*prefix, sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home)}, timeout=timeout, **options)
