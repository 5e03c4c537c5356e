"""An ablation's grid: factors of one base task at magnitudes, and the items that measure each cell.

A cell is (factor, magnitude). Its magnitude is the factor's effective one (`GapEffect.effective_magnitude`),
and magnitudes that give one physical value are one cell: a step-valued factor runs at the distinct step
counts the ladder rounds to, a categorical factor at 0 and 1 (any magnitude above 0 is its one other value).
Magnitude 0 changes nothing, so every factor's magnitude-0 cell is the base task itself (pair `lift`, run
magnitude 0), shared by all factors; a cell above 0 is the factor pair `lift+<factor>@<m>` at run magnitude 1.

A factor set `a+b` moves its factors together: its cell at ladder magnitude m is the pair `lift+a@m+b@m`, each
factor at its effective magnitude of m (a categorical one on above 0), so its drop stands beside its members'.
Ladder magnitudes that give the set's factors one physical value are one cell, labelled by the largest of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from benchmark.ablation.items import CellEval, ExpertEval
from benchmark.harness.config import RunConfig

Item = RunConfig | CellEval | ExpertEval
LOWDIM = "lowdim"  # `--family lowdim`: every factor of a low-dimensional family
SET = "+"  # joins the factors of a factor set, `obs_bias+action_noise`


def members(factor: str) -> tuple[str, ...]:
    """The gap factors of an ablation's factor: itself, or a set's factors (`a+b`)."""
    return tuple(factor.split(SET))


def member_level(name: str, magnitude: float) -> float:
    """Gap factor `name`'s effective magnitude at ladder magnitude `magnitude` (a categorical one on above 0): the
    cell of the factor alone that holds it as a set's cell at `magnitude` does."""
    from tasks import GAP_FACTORS

    effect = GAP_FACTORS[name]
    return 1.0 if effect.categorical and magnitude > 0 else effect.effective_magnitude(magnitude)


def factors_of_family(family: str) -> tuple[str, ...]:
    """The registered gap factors of `family` (a factor's own `family`), or of every family but `visual` for
    `lowdim`; ValueError naming the known families."""
    from tasks import GAP_FACTORS

    families = sorted({cls.family for cls in GAP_FACTORS.values()})
    if family != LOWDIM and family not in families:
        raise ValueError(f"unknown gap family {family!r}; known: {', '.join(families)}, {LOWDIM}")
    return tuple(name for name, cls in GAP_FACTORS.items()
                 if cls.family == family or (family == LOWDIM and cls.family != "visual"))


def evaluated_only(method: str) -> bool:
    """A method whose policy does not depend on the target (it uses no target data; the ablation keeps the
    `last` checkpoint): trained once per seed, evaluated in every cell."""
    from baselines import METHODS

    return not METHODS[method].uses_target


@dataclass(frozen=True)
class Ablation:
    """Each of `factors` (a factor, or a set `a+b` moved together) on `task` at `magnitudes`, for `methods` and
    `seeds`, `episodes` test episodes per cell, training at `profile`; `n_target`, `n_source` and `steps` override
    the task's demo counts and the profile's training steps (None: theirs), e.g. the counts and length a named pair
    of the task was calibrated at."""

    task: str
    factors: tuple[str, ...]
    magnitudes: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    methods: tuple[str, ...] = ("source_only", "cotrain", "target_only")
    seeds: tuple[int, ...] = (0, 1, 2)
    episodes: int = 200
    n_target: int | None = None
    n_source: int | None = None
    steps: int | None = None
    profile: str = "quick"
    backend: str = "fast"
    device: str = "cpu"
    threads: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        from baselines import METHODS
        from tasks import BASE_TASKS, GAP_FACTORS

        if not BASE_TASKS[self.task].env_name:
            raise ValueError(f"task {self.task!r} has no simulator: an ablation needs a robot task")
        if not self.factors or not self.magnitudes or not self.methods or not self.seeds:
            raise ValueError("an ablation needs at least one factor, magnitude, method and seed")
        for name, values in (("factor", self.factors), ("method", self.methods)):
            if len(set(values)) != len(values):
                raise ValueError(f"a {name} is given twice: {', '.join(values)}")
        for factor in self.factors:
            names = members(factor)
            if len(set(names)) != len(names):
                raise ValueError(f"factor set {factor!r} names a factor twice")
            for name in names:
                GAP_FACTORS[name]
        for method in self.methods:
            METHODS[method]
        if any(not 0.0 <= m <= 1.0 for m in self.magnitudes):
            raise ValueError(f"magnitudes must lie in [0, 1], got {list(self.magnitudes)}")
        self.run("source_only", self.seeds[0], self.task, 0.0)  # names a bad profile, seed, episodes or device
        for factor in self.factors:
            self.cell_pair(factor, 1.0)  # names a factor set whose factors do not make a pair together

    def levels(self, factor: str) -> tuple[float, ...]:
        """The factor's distinct effective magnitudes on the ladder, ascending; a set's ladder magnitudes, the
        largest of those that give its factors one physical value."""
        if len(members(factor)) > 1:
            cells = {self.cell_pair(factor, m): m for m in sorted(self.magnitudes)}
            return tuple(sorted(cells.values()))
        return tuple(sorted({member_level(factor, m) for m in self.magnitudes}))

    def cells(self) -> list[tuple[str, float]]:
        return [(f, m) for f in self.factors for m in self.levels(f)]

    def cell_pair(self, factor: str, magnitude: float) -> tuple[str, float]:
        """(pair, run magnitude) of a cell: the base task at 0, else the canonical factor pair at 1 (a categorical
        factor of a set on)."""
        from tasks import get_pair

        if magnitude == 0.0:
            return self.task, 0.0
        parts = [f"{name}@{member_level(name, magnitude)!r}" for name in members(factor)]
        return get_pair(SET.join((self.task, *parts))).name, 1.0

    def run(self, method: str, seed: int, pair: str, magnitude: float) -> RunConfig:
        return RunConfig(pair=pair, method=method, magnitude=magnitude, seed=seed, profile=self.profile,
                         episodes=self.episodes, n_target=self.n_target, n_source=self.n_source, steps=self.steps,
                         backend=self.backend, device=self.device, threads=self.threads,
                         workers=self.workers).resolved()

    def item(self, method: str, seed: int, factor: str, magnitude: float) -> Item:
        """What measures `method`'s seed in a cell: its training run, or an evaluation of the one trained
        source policy (whose own run is the magnitude-0 cell), or the expert's rollouts (`method` "expert")."""
        pair, run_magnitude = self.cell_pair(factor, magnitude)
        if method == "expert":
            return ExpertEval(self.run("source_only", seed, pair, run_magnitude))
        if not evaluated_only(method):
            return self.run(method, seed, pair, run_magnitude)
        trained = self.run(method, seed, self.task, 0.0)
        return trained if magnitude == 0.0 else CellEval(trained, pair, run_magnitude)

    def items(self) -> list[Item]:
        """Every item, deduplicated (the magnitude-0 cell is one for all factors), trainings first."""
        out: dict[str, Item] = {}
        for method in (*self.methods, "expert"):
            for seed in self.seeds:
                for factor, magnitude in self.cells():
                    item = self.item(method, seed, factor, magnitude)
                    out.setdefault(item.run_id(), item)
        return sorted(out.values(), key=lambda i: (not isinstance(i, RunConfig), isinstance(i, ExpertEval)))


def describe_level(factor: str, magnitude: float) -> str:
    """What a cell's magnitude is physically: steps of a step-valued factor, on/off of a categorical one (for a
    set, each such factor's, by name)."""
    from tasks import GAP_FACTORS

    names = members(factor)
    if len(names) > 1:
        return ", ".join(f"{name} {level}" for name in names if (level := describe_level(name, magnitude)))
    effect = GAP_FACTORS[factor]
    if effect.max_steps:
        return f"{effect.step_count(magnitude)} steps"
    if effect.categorical:
        return "on" if magnitude else "off"
    return ""


def count(items: Iterable[Item]) -> dict[str, int]:
    """How many items of each kind: training runs, policy evaluations, expert evaluations."""
    kinds = {"train": RunConfig, "evaluate": CellEval, "expert": ExpertEval}
    items = list(items)
    return {k: sum(isinstance(i, t) for i in items) for k, t in kinds.items()}
