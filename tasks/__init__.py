"""Paired source/target manipulation tasks with controlled domain gaps, experts and datasets."""
from .base_tasks import BASE_TASKS, BaseTask, obs_layout, pair_layout
from .core import Domain, GapFactor, TaskPair
from .make import make_env
from .gaps import GAP_FACTORS, GapEffect
from .pairs import PAIRS, check_magnitude, custom_pair, describe_pair, factor_pair, get_pair

__all__ = ["BASE_TASKS", "BaseTask", "obs_layout", "pair_layout", "Domain", "GapFactor", "TaskPair", "make_env",
           "GAP_FACTORS", "GapEffect", "PAIRS", "check_magnitude", "custom_pair", "describe_pair",
           "factor_pair", "get_pair"]
