"""Named task pairs (`<task>/<family>`), and pairs built from an explicit list of factors."""
from __future__ import annotations

from .base_tasks import BASE_TASKS
from .core import Domain, GapFactor, TaskPair
from .gaps import GAP_FACTORS
from .registry import Registry

PAIRS: Registry[TaskPair] = Registry("task pair")

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


def custom_pair(base_task: str, factors: list[GapFactor] | list[str], name: str = "custom") -> TaskPair:
    """A pair of `base_task` whose target applies `factors` (names mean magnitude 1)."""
    gaps = tuple(f if isinstance(f, GapFactor) else GapFactor(f, 1.0) for f in factors)
    n, m = DEMO_COUNTS.get(base_task, (10, 100))
    pair = TaskPair(name, base_task, target=Domain("target", gaps), n_target=n, n_source=m,
                    version=BASE_TASKS[base_task].version,
                    description="custom: " + ", ".join(f"{g.name}@{g.magnitude:g}" for g in gaps))
    validate_pair(pair)
    return pair


def get_pair(name: str | TaskPair) -> TaskPair:
    """A registered pair by name (KeyError listing the known ones), or the pair itself."""
    return name if isinstance(name, TaskPair) else PAIRS[name]


for _task, (_n, _m) in DEMO_COUNTS.items():
    for _family, _factors in FAMILIES.items():
        register_pair(TaskPair(
            f"{_task}/{_family}", _task, target=Domain("target", tuple(GapFactor(f) for f in _factors)),
            n_target=_n, n_source=_m, tags=(_family,), version=BASE_TASKS[_task].version,
            description=f"{BASE_TASKS[_task].description} Target: {_family.replace('_', ' + ')} gap "
                        f"({', '.join(_factors)})." + kind_text(_family)))

# The simulator-free toy pairs (`toy/<family>`, tasks/toy.py), registered explicitly.
from .toy import toy_pairs  # noqa: E402

for _pair in toy_pairs():
    register_pair(_pair)

# Visual gap factors and the image pairs (`<task>/visual`, `<task>/visual_dynamics`; tasks/visual.py).
from .visual import register_visual_factors, visual_pairs  # noqa: E402

register_visual_factors(GAP_FACTORS)
for _pair in visual_pairs(DEMO_COUNTS, FAMILIES["dynamics"]):
    register_pair(_pair)
