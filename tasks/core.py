"""The data model of a task pair: `GapFactor`, `Domain`, `TaskPair`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class GapFactor:
    """One controlled difference between the source and the target domain.

    name: a key of `tasks.gaps.GAP_FACTORS`.
    magnitude: in [0, 1]; 0 is the source domain itself, 1 the largest gap the factor defines.
    """

    name: str
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        m = float(self.magnitude)
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"gap factor {self.name!r}: magnitude {self.magnitude} is outside [0, 1]")
        object.__setattr__(self, "magnitude", m)


@dataclass(frozen=True)
class Domain:
    """A base task plus the gap factors applied to it (empty for the source domain)."""

    name: str
    gaps: tuple[GapFactor, ...] = ()

    def scaled(self, magnitude: float) -> "Domain":
        """This domain with every factor's magnitude multiplied by `magnitude` in [0, 1]."""
        if not 0.0 <= magnitude <= 1.0:
            raise ValueError(f"magnitude {magnitude} is outside [0, 1]")
        return replace(self, gaps=tuple(GapFactor(g.name, g.magnitude * magnitude) for g in self.gaps))


@dataclass(frozen=True)
class TaskPair:
    """A source/target pair of one base task whose domains differ only by `target.gaps`.

    name: `<task>/<family>` (e.g. `lift/dynamics`), or `custom` for pairs built from factors.
    base_task: a key of `tasks.base_tasks.BASE_TASKS`.
    version: bumped whenever the definition changes; recorded in every result.
    n_target, n_source: the pair's default demo counts (N target, M source).
    """

    name: str
    base_task: str
    source: Domain = Domain("source")
    target: Domain = Domain("target")
    version: int = 1
    description: str = ""
    n_target: int = 10
    n_source: int = 100
    obs: str = "lowdim"
    tags: tuple[str, ...] = field(default_factory=tuple)

    def domain(self, which: str, magnitude: float = 1.0) -> Domain:
        """The `source` domain, or the `target` domain at `magnitude` (scales every factor)."""
        if which == "source":
            return self.source
        if which == "target":
            return self.target.scaled(magnitude)
        raise ValueError(f"domain must be 'source' or 'target', got {which!r}")
