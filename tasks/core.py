"""The data model of a task pair: `GapFactor`, `Domain`, `TaskPair`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

IMAGE_SIZE = 84  # side of an image pair's camera frames unless the pair names another (`lift/visual-48px`)
# The cameras every image pair observes: robosuite's agent view and the eye-in-hand camera (robomimic's image set).
IMAGE_CAMERAS = ("agentview", "wrist")
# Added to the base task's version for an image pair (registered or built from factors). 1: proprioception only in
# the low-dimensional entry (under 0 the object poses were in it, and `lift/visual-48px`'s source policy kept 0.96
# success in the target). 2: the wrist camera beside the agent view (robomimic's image set; the agent view shows
# Lift's cube a few pixels wide at 48x48). 3: the harness's image policies see whole frames, no random crop
# (`benchmark.harness.run.PairHooks.policy_config`).
IMAGE_PAIR_VERSION = 3


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

    name: `<task>/<family>` (e.g. `lift/dynamics`) for a registered pair; for a pair built from
        factors, its canonical factor name (`lift+object_mass@0.5+obs_bias`, `tasks.pairs.factor_pair`).
    base_task: a key of `tasks.base_tasks.BASE_TASKS`.
    version: bumped whenever the definition changes; recorded in every result.
    n_target, n_source: the pair's default demo counts (N target, M source).
    image_size: side of the square camera frames of an image pair (obs="image"); a size other than
        IMAGE_SIZE is part of the pair's name (`lift/visual-48px`), so of its runs' ids.
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
    image_size: int = IMAGE_SIZE

    @property
    def states_magnitudes(self) -> bool:
        """Whether a target factor has a magnitude other than 1 (a factor pair's `@m`)."""
        return any(g.magnitude != 1.0 for g in self.target.gaps)

    def domain(self, which: str, magnitude: float = 1.0) -> Domain:
        """The `source` domain, or the `target` domain at `magnitude` (scales every factor).

        A pair that states its factors' magnitudes takes magnitude 1 (as written) or 0 (the no-gap
        control) only: a run magnitude in between would rescale magnitudes its name states.
        """
        if which == "source":
            return self.source
        if which == "target":
            target = self.target.scaled(magnitude)
            if self.states_magnitudes and magnitude not in (0.0, 1.0):
                raise ValueError(
                    f"pair {self.name!r} states its factors' magnitudes (@): run it at magnitude 1, or 0 for the "
                    f"no-gap control, not {magnitude:g} (factors written without @ take the run's magnitude)")
            return target
        raise ValueError(f"domain must be 'source' or 'target', got {which!r}")
