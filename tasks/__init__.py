"""Paired source/target manipulation tasks with controlled domain gaps, experts and datasets."""
import os

# Offscreen rendering through EGL unless the user chose a backend: set before any module of the package imports
# mujoco, whose first import picks the GL backend for the process (robosuite does the same).
os.environ.setdefault("MUJOCO_GL", "egl")

from .base_tasks import BASE_TASKS, BaseTask, obs_layout, pair_layout  # noqa: E402
from .core import Domain, GapFactor, TaskPair  # noqa: E402
from .make import make_env  # noqa: E402
from .gaps import GAP_FACTORS, GapEffect  # noqa: E402
from .pairs import PAIRS, check_magnitude, custom_pair, describe_pair, factor_pair, get_pair  # noqa: E402

__all__ = ["BASE_TASKS", "BaseTask", "obs_layout", "pair_layout", "Domain", "GapFactor", "TaskPair", "make_env",
           "GAP_FACTORS", "GapEffect", "PAIRS", "check_magnitude", "custom_pair", "describe_pair",
           "factor_pair", "get_pair"]
