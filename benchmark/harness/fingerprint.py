"""The environment a result was produced in."""
from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from pathlib import Path
from typing import Any


def git_revision() -> str | None:
    """The suite's git revision (with `-dirty` when the tree has changes), or None outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """The installed version of each distribution in `names` (None where it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def fingerprint(device: str = "cpu") -> dict[str, Any]:
    """Package versions (mujoco, robosuite, torch, numpy, gymnasium), CPU/GPU, Python and the git revision."""
    import torch

    return {
        "packages": package_versions(("mujoco", "robosuite", "torch", "numpy", "gymnasium")),
        "python": platform.python_version(), "machine": platform.machine(),
        "device": device, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(), "git": git_revision(),
    }
