"""Named task pairs (`<task>/<family>`), and factor pairs: pairs named by what their factors are.

A factor pair is written `<task>+<factor>[@<m>]+...` (e.g. `lift+object_mass@0.5+obs_bias`). Its
identity is its base task and its factors sorted by name, each at its effective magnitude
(`GapEffect.effective_magnitude`: step-valued factors rounded to whole steps, continuous ones to
0.001); the canonical name spells exactly that, `@1` left out, so any spelling of one factor set
resolves to one name, one run folder and one record. A factor without `@` is at magnitude 1 and
takes the run's magnitude like a registered pair's; a pair with `@` magnitudes runs at magnitude 1
(as written) or 0 (the no-gap control) only. A bare base task (`lift`) is its gap-free pair.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from .base_tasks import BASE_TASKS, pair_layout
from .core import IMAGE_PAIR_VERSION, Domain, GapFactor, TaskPair
from .gaps import GAP_FACTORS
from .toy import TOY_PAIRS
from .visual import register_visual_factors, visual_pairs
from common.registry import Registry

PAIRS: Registry[TaskPair] = Registry("task pair")
FACTOR_SEP, MAGNITUDE_SEP = "+", "@"
SYNTAX = "<task>+<factor>[@<magnitude>]+..."

# Gap families as named pairs use them: each a tuple of factor names at magnitude 1.
FAMILIES: dict[str, tuple[str, ...]] = {
    "dynamics": ("object_friction", "object_mass", "joint_damping"),
    "sensing": ("obs_bias", "obs_noise", "obs_latency"),
    "action": ("action_scale", "action_latency"),
    "embodiment": ("embodiment_sawyer",),
    "sensing_dynamics": ("obs_bias", "obs_noise", "obs_latency", "object_friction", "object_mass", "joint_damping"),
}

# The study's gap kinds (docs/PROTOCOL.md) by family. The image pairs (tasks/visual.py) are the visual kinds
# themselves; the sensing families are their low-dimensional stand-ins where rendering is too slow
# for a budget: a sensing gap changes what the policy observes, not the physics.
GAP_KIND_OF_FAMILY = {"dynamics": "physics only", "visual": "visual only", "visual_dynamics": "visual + physics",
                      "sensing": "observation only", "sensing_dynamics": "observation + physics"}
STAND_INS = {"visual only": "observation only", "visual + physics": "observation + physics"}


def kind_text(family: str) -> str:
    """What `cotrain tasks show` says of a family's study gap kind ("" for a family outside the study)."""
    kind = GAP_KIND_OF_FAMILY.get(family)
    if kind is None:
        return ""
    stand_for = [k for k, v in STAND_INS.items() if v == kind]
    return f" Study gap kind: {kind}" + (f" (low-dimensional stand-in for {stand_for[0]})." if stand_for else ".")


# Default demo counts (N target, M source) per base task; small N leaves room for co-training.
DEMO_COUNTS = {"lift": (5, 50), "stack": (10, 100), "square": (20, 200)}
# Named pairs whose demo counts the calibration (results/calibration/) set apart from their base task's:
# name -> (N, M, revision). A pair's version is its base task's plus its revision, so the change makes new
# run ids and refuses older records. lift/dynamics, revision 1: N, M 5, 50 -> 10, 100 (target_only at N = 5
# converged at 0.15 validation success, below the leaderboard's floor of 0.2). stack/dynamics, revision 1: N, M
# 10, 100 -> 30, 300 (target_only at N = 10 stayed at 0.00-0.04 over 500-8000 steps; at 4000 steps it reached 0.28
# at N = 25 and 0.63 at N = 50, two seeds each: results/calibration/stack_dynamics_n_probe/).
# lift/sensing_dynamics, revision 1: N, M 5, 50 -> 10, 100 (target_only at N = 5 reached 0.07-0.10 over 1000-4000
# steps and 0.18 at 8000, below the floor of 0.2: results/calibration/lift_sensing_dynamics_n5/); revision 2:
# 10, 100 -> 40, 400 (at N = 10, 0.14 at 2000 steps and 0.17 at 8000, pooled over 3 seeds:
# results/calibration/lift_sensing_dynamics_n10/; at 2000 steps 0.12 and 0.32 at N = 20, 0.26 and 0.30 at N = 40:
# results/calibration/lift_sensing_dynamics_n_probe/).
CALIBRATED_DEMO_COUNTS = {"lift/dynamics": (10, 100, 1), "stack/dynamics": (30, 300, 1),
                          "lift/sensing_dynamics": (40, 400, 2)}


def register_pair(pair: TaskPair) -> TaskPair:
    """Validate and register a named pair."""
    validate_pair(pair)
    return PAIRS.register(pair.name, pair)


def validate_pair(pair: TaskPair) -> None:
    """Raise ValueError/KeyError naming the first unknown task or factor of `pair`."""
    BASE_TASKS[pair.base_task]
    for gap in pair.source.gaps + pair.target.gaps:
        GAP_FACTORS[gap.name]
    if pair.source.gaps:
        raise ValueError(f"pair {pair.name!r}: the source domain has no gap factors by definition")


def _named(registry: Registry, key: str, written: str):
    """`registry[key]`, its KeyError prefixed with the pair as written."""
    try:
        return registry[key]
    except KeyError as err:
        raise KeyError(f"pair {written!r}: {err.args[0]}") from None


def factor_token(gap: GapFactor) -> str:
    """`name` for a factor at magnitude 1, else `name@m` (m to 4 significant digits)."""
    return gap.name if gap.magnitude == 1.0 else f"{gap.name}{MAGNITUDE_SEP}{gap.magnitude:.4g}"


def build_factor_pair(base_task: str, factors: Iterable[GapFactor], written: str) -> TaskPair:
    """The canonical factor pair of `base_task` with `factors` (in any order); errors name `written`."""
    task = _named(BASE_TASKS, base_task, written)
    if not task.env_name:
        raise ValueError(f"pair {written!r}: base task {base_task!r} has no simulator; its pairs are "
                         f"{', '.join(n for n, p in PAIRS.items() if p.base_task == base_task)}")
    gaps: dict[str, GapFactor] = {}
    for factor in factors:
        effect = _named(GAP_FACTORS, factor.name, written)
        if factor.name in gaps:
            raise ValueError(f"pair {written!r}: factor {factor.name!r} is given twice")
        if effect.categorical and factor.magnitude not in (0.0, 1.0):
            raise ValueError(f"pair {written!r}: factor {factor.name!r} is categorical: its magnitude is 0 or 1, "
                             f"not {factor.magnitude:g}")
        gaps[factor.name] = GapFactor(factor.name, effect.effective_magnitude(factor.magnitude))
    target = tuple(gaps[name] for name in sorted(gaps))
    swapped: dict[str, str] = {}
    for gap in target:
        if (part := GAP_FACTORS[gap.name].replaces) and gap.magnitude > 0:
            if part in swapped:
                raise ValueError(f"pair {written!r}: factors {swapped[part]!r} and {gap.name!r} both replace the "
                                 f"{part}; a pair takes one of them")
            swapped[part] = gap.name
    families = sorted({GAP_FACTORS[g.name].family for g in target})
    n, m = DEMO_COUNTS.get(base_task, (10, 100))
    factors_text = ", ".join(f"{g.name} at {g.magnitude:.4g}" if g.magnitude != 1.0 else
                             f"{g.name} at the run's magnitude" for g in target) or "none (the source domain itself)"
    stated = (" Its magnitudes are stated (@): it runs at magnitude 1, or 0 for the no-gap control."
              if any(g.magnitude != 1.0 for g in target) else "")
    image = "visual" in families  # frames and proprioception, as the registered image pairs
    return TaskPair(base_task + "".join(FACTOR_SEP + factor_token(g) for g in target), base_task,
                    target=Domain("target", target), version=task.version + (IMAGE_PAIR_VERSION if image else 0),
                    n_target=n, n_source=m, obs="image" if image else "lowdim",
                    tags=tuple(families), description=f"{task.description} Target gap factors: {factors_text}.{stated}")


@lru_cache(maxsize=None)
def factor_pair(name: str) -> TaskPair:
    """Parse a factor pair `<task>+<factor>[@<m>]+...` (or a bare `<task>`) into its canonical pair.

    KeyError names an unknown base task or factor; ValueError a malformed name, a magnitude that is
    not a number or lies outside [0, 1], a repeated factor, or a categorical factor at neither 0 nor 1.
    """
    base, *tokens = name.split(FACTOR_SEP)
    factors = []
    for token in tokens:
        factor, sep, magnitude = token.partition(MAGNITUDE_SEP)
        if not factor or (sep and not magnitude):
            raise ValueError(f"pair {name!r}: malformed factor {token!r}; the syntax is {SYNTAX}")
        try:
            value = float(magnitude) if sep else 1.0
        except ValueError:
            raise ValueError(f"pair {name!r}: magnitude {magnitude!r} of factor {factor!r} is not a number") from None
        try:
            factors.append(GapFactor(factor, value))
        except ValueError as err:
            raise ValueError(f"pair {name!r}: {err}") from None
    return build_factor_pair(base, factors, name)


def custom_pair(base_task: str, factors: list[GapFactor] | list[str]) -> TaskPair:
    """The factor pair of `base_task` whose target applies `factors` (names mean magnitude 1)."""
    gaps = [f if isinstance(f, GapFactor) else GapFactor(f, 1.0) for f in factors]
    return build_factor_pair(base_task, gaps, base_task + "".join(FACTOR_SEP + factor_token(g) for g in gaps))


def get_pair(name: str | TaskPair) -> TaskPair:
    """A registered pair or a factor pair by name (KeyError listing the known pairs), or the pair itself."""
    if isinstance(name, TaskPair):
        return name
    if name in PAIRS:
        return PAIRS[name]
    if FACTOR_SEP in name or name in BASE_TASKS:
        return factor_pair(name)
    try:
        return PAIRS[name]
    except KeyError as err:
        raise KeyError(f"{err.args[0]}; or a factor pair {SYNTAX}") from None


def check_magnitude(pair: str | TaskPair, magnitude: float) -> None:
    """ValueError if `pair`'s target cannot run at `magnitude`: outside [0, 1], a pair with stated
    magnitudes at neither 0 nor 1, or a categorical factor scaled strictly between 0 and 1."""
    task_pair = get_pair(pair)
    for gap in task_pair.domain("target", magnitude).gaps:
        if GAP_FACTORS[gap.name].categorical and gap.magnitude not in (0.0, 1.0):
            raise ValueError(f"pair {task_pair.name!r}: factor {gap.name!r} is categorical, so the run magnitude "
                             f"is 0 or 1, not {magnitude:g}")


def describe_pair(name: str | TaskPair) -> str:
    """What `cotrain tasks show` prints of a registered or factor pair: its definition and its factors."""
    pair = get_pair(name)
    obs = f"image {pair.image_size}x{pair.image_size}" if pair.obs == "image" else pair.obs
    lines = [f"{pair.name} (version {pair.version}, base task {pair.base_task}, observations {obs})",
             f"  {pair.description}",
             f"  low-dimensional observation: {', '.join(f'{k} ({n})' for k, n in pair_layout(pair))}",
             f"  default demos: N = {pair.n_target} target, M = {pair.n_source} source",
             "  target gap factors (magnitude 1 means):"]
    for gap in pair.target.gaps:
        effect = GAP_FACTORS[gap.name]
        kind = "categorical (0 or 1 only)" if effect.categorical else (
            f"step-valued: round(m x {effect.max_steps}) steps" if effect.max_steps else "continuous")
        lines.append(f"    {factor_token(gap):<18} [{effect.family}, {kind}] {effect.unit}")
    return "\n".join(lines)


for _task, _counts in DEMO_COUNTS.items():
    for _family, _factors in FAMILIES.items():
        _n, _m, _revision = CALIBRATED_DEMO_COUNTS.get(f"{_task}/{_family}", (*_counts, 0))
        register_pair(TaskPair(
            f"{_task}/{_family}", _task, target=Domain("target", tuple(GapFactor(f) for f in _factors)),
            n_target=_n, n_source=_m, tags=(_family,), version=BASE_TASKS[_task].version + _revision,
            description=f"{BASE_TASKS[_task].description} Target: {_family.replace('_', ' + ')} gap "
                        f"({', '.join(_factors)})." + kind_text(_family)))

# The simulator-free toy pairs (`toy/<family>`, tasks/toy.py), registered explicitly.
for _pair in TOY_PAIRS.values():
    register_pair(_pair)

# Visual gap factors and the image pairs (`<task>/visual`, `<task>/visual_dynamics`; tasks/visual.py).
register_visual_factors(GAP_FACTORS)
for _pair in visual_pairs(DEMO_COUNTS, FAMILIES["dynamics"]):
    register_pair(_pair)
