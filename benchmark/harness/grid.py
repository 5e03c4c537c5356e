"""Grids: what a sweep runs. A `Grid` is the cross product of its lists; a `GridUnion` the union of a grid's
(or budget's) `parts`; a no-gap control of kind `evaluate` is a `NoGapEval` (a trained run's checkpoint evaluated
at magnitude 0, recorded under its own id). `load_grid` reads a grid file or a committed track at a budget
(`tracks/`), checked key by key (`gridspec`); `benchmark.harness.sweep` launches them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from benchmark.harness.config import RunConfig, content_hash
from benchmark.harness.gridspec import GridError, SHARED_KEYS, check_spec, part_source

TRACKS_DIR = Path(__file__).resolve().parent / "tracks"


@dataclass(frozen=True)
class Grid:
    """A sweep: the cross product of its lists; `w` applies to the mixing methods only.

    `methods` are names `baselines.METHODS` resolves: the suite's, entry points of
    `cotrain_bench.methods`, or `package.module:Class` (found again by each run's process).

    `set` fixes hyperparameters for every method that has them; `vary` crosses one method's
    hyperparameters over lists (e.g. `{adda: {adversarial_weight: [0.05, 0.5]}}`);
    `hparam_trials` adds that many random-search draws per method (each hyperparameter from its
    own seeded stream, `baselines.random_hparams`). `eval_split` names the start states the
    runs are evaluated on (`validation` to choose hyperparameters, `test` to report).

    `nogap_control` adds magnitude 0 for every method; `nogap` for some: {method: `retrain`} trains the method
    at magnitude 0, {method: `evaluate`} evaluates its trained checkpoints there (`evaluations`). `steps`
    sets training steps per pair (absent: the profile's; null: pending a calibration, so `run_sweep` refuses to
    run the pair until a count is set, `pending_steps`). `precision` is every run's training arithmetic
    (`RunConfig.precision`). `track` ({"name", "budget"}) is named in
    every record the grid's runs make.

    A grid file or budget with `parts: [mapping, ...]` is a `GridUnion` of one `Grid` per part.
    """

    pairs: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    magnitudes: tuple[float, ...] = (1.0,)
    n_target: tuple[int | None, ...] = (None,)
    n_source: tuple[int | None, ...] = (None,)
    w: tuple[float | None, ...] = (None,)
    profile: str = "quick"
    episodes: int | None = None
    network: str = "mlp"
    set: dict[str, Any] = field(default_factory=dict)
    vary: dict[str, dict[str, list]] = field(default_factory=dict)
    hparam_trials: int = 0
    nogap_control: bool = False
    eval_split: str = "test"
    checkpoint_rule: str = "last"
    steps: dict[str, int | None] = field(default_factory=dict)
    nogap: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"
    track: dict[str, str | None] | None = None

    def runs(self) -> list[RunConfig]:
        """Every run of the grid, deduplicated, in a stable order."""
        from baselines import METHODS
        from baselines.methods import random_hparams

        out: dict[str, RunConfig] = {}
        retrain = set(self.methods) if self.nogap_control else {k for k, v in self.nogap.items() if v == "retrain"}
        mags = sorted(set(self.magnitudes) | ({0.0} if retrain else set()))
        for pair, mag, n, m, seed, method in itertools.product(
                self.pairs, mags, self.n_target, self.n_source, self.seeds, self.methods):
            if mag not in self.magnitudes and method not in retrain:
                continue
            trials = [{}] + [random_hparams(method, t) for t in range(1, self.hparam_trials + 1)]
            varied = self.vary.get(method, {})
            trials += [dict(zip(varied, values)) for values in itertools.product(*varied.values())]
            ratios = self.w if METHODS[method].mixes else (None,)
            for w, trial in itertools.product(ratios, trials):
                name = {0.0: "source_only", 1.0: "target_only"}.get(w, method)
                own = trial if name == method else {}  # w = 0 or 1 runs the single-domain method
                hp = {**{k: v for k, v in own.items() if k != "w"}, **_known(name, self.set)}
                if name == method and w is not None:
                    hp["w"] = w
                cfg = RunConfig(pair=pair, method=name, magnitude=mag, n_target=n, n_source=m, seed=seed,
                                profile=self.profile, episodes=self.episodes, network=self.network,
                                hparams=tuple(hp.items()), eval_split=self.eval_split,
                                checkpoint_rule=self.checkpoint_rule, steps=self.steps.get(pair),
                                precision=self.precision)
                out.setdefault(cfg.run_id(), cfg)
        return list(out.values())

    def evaluations(self) -> list[NoGapEval]:
        """The no-gap controls of kind `evaluate`: one per trained run of such a method at a magnitude > 0."""
        return [NoGapEval(cfg) for cfg in self.runs() if self.nogap.get(cfg.method) == "evaluate" and cfg.magnitude > 0]


@dataclass(frozen=True)
class GridUnion:
    """A grid made of parts (`parts: [mapping, ...]` in a grid file or a budget): each part a `Grid` of its
    mapping's keys on top of the file's (or budget's) other keys, the union of their runs its runs.

    Its list keys (`pairs`, `methods`, `seeds`, ...) are the union over its parts in first-appearance order,
    so a value among them is in some part, not in every one; the keys a sweep has one value of
    (`gridspec.SHARED_KEYS`: profile, episodes, ...) are its parts' (equal: `grid_from_dict` checks).
    """

    parts: tuple[Grid, ...]
    track: dict[str, str | None] | None = None

    def _union(self, key: str) -> tuple:
        return tuple(dict.fromkeys(v for part in self.parts for v in getattr(part, key)))

    pairs = property(lambda self: self._union("pairs"))
    methods = property(lambda self: self._union("methods"))
    seeds = property(lambda self: self._union("seeds"))
    magnitudes = property(lambda self: self._union("magnitudes"))
    n_target = property(lambda self: self._union("n_target"))
    n_source = property(lambda self: self._union("n_source"))
    w = property(lambda self: self._union("w"))
    profile = property(lambda self: self.parts[0].profile)
    episodes = property(lambda self: self.parts[0].episodes)
    network = property(lambda self: self.parts[0].network)
    eval_split = property(lambda self: self.parts[0].eval_split)
    checkpoint_rule = property(lambda self: self.parts[0].checkpoint_rule)
    precision = property(lambda self: self.parts[0].precision)

    def runs(self) -> list[RunConfig]:
        """Every run of every part, each once (by run id), part after part."""
        return _once(cfg for part in self.parts for cfg in part.runs())

    def evaluations(self) -> list[NoGapEval]:
        """The no-gap evaluations of every part, each once (by run id), part after part."""
        return _once(ev for part in self.parts for ev in part.evaluations())


AnyGrid = Grid | GridUnion


def _once(items: Iterable[Any]) -> list:
    """`items`, the first of each run id only, in order."""
    out: dict[str, Any] = {}
    for item in items:
        out.setdefault(item.run_id(), item)
    return list(out.values())


def each_part(grid: AnyGrid, change: Callable[[Grid], Grid]) -> AnyGrid:
    """`change` applied to a grid, or to each part of a grid made of parts."""
    if isinstance(grid, GridUnion):
        return replace(grid, parts=tuple(change(part) for part in grid.parts))
    return change(grid)


@dataclass(frozen=True)
class NoGapEval:
    """A trained run's checkpoint evaluated at magnitude 0 (the no-gap control of a policy that does not depend on
    the target's magnitude, `gridspec._check_nogap`): no retraining. Its config is the trained run's at magnitude 0
    with `checkpoint_of` naming the trained run; its id hashes that config."""

    trained: RunConfig

    measures = False  # whether its record also holds the representation metrics in its cell (`CellEval`'s do)

    @property
    def method(self) -> str:
        return self.trained.method

    def control(self) -> RunConfig:
        """The trained run's config at magnitude 0: what the evaluation runs."""
        return replace(self.trained, magnitude=0.0).resolved()

    def hashed_dict(self) -> dict[str, Any]:
        return {**self.trained.hashed_dict(), "magnitude": 0.0, "checkpoint_of": self.trained.run_id()}

    def run_id(self) -> str:
        return content_hash(self.hashed_dict())

    def to_json(self) -> dict[str, Any]:
        return {**self.hashed_dict(), "workers": self.trained.workers, "run_id": self.run_id()}


def _known(method: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The grid-wide `set` entries this method has (a `set` may name another method's)."""
    from baselines.methods import default_hparams

    known = default_hparams(method)
    return {k: v for k, v in hp.items() if k in known}


def grid_from_dict(spec: dict[str, Any], source: str = "grid", track: dict | None = None) -> AnyGrid:
    """Check a grid mapping (as read from YAML; `benchmark.harness.gridspec`) and make it a `Grid` (of `track`),
    or a `GridUnion` of one `Grid` per part where it has `parts` (which must agree on the `SHARED_KEYS`)."""
    parts = [Grid(**fields) for fields in check_spec(spec, source)]
    for i, grid in enumerate(parts):
        try:
            grid.runs()
        except (KeyError, ValueError) as err:
            where = part_source(source, i) if "parts" in spec else source
            raise GridError(f"{where}: {err.args[0] if err.args else err}") from None
    if "parts" not in spec:
        return replace(parts[0], track=track)
    for key in SHARED_KEYS:
        values = [getattr(grid, key) for grid in parts]
        if len(set(values)) > 1:
            given = ", ".join(f"parts[{i}]: {v!r}" for i, v in enumerate(values))
            raise GridError(f"{source}: the parts disagree on `{key}` ({given}); a sweep has one {key}: give it "
                            "once, outside the parts, or the same in every part")
    return GridUnion(tuple(parts), track=track)


def load_spec(path: str | None = None, track: str | None = None, budget: str | None = None) -> tuple[dict, str]:
    """A grid mapping from a YAML file, or a committed track (`benchmark/harness/tracks/<track>.yaml`)
    with its `budget`'s keys over the track's (`parts` included); returns (mapping, where it came from: the
    file and budget). A mapping with `parts` reports as one through `gridspec.union_view`."""
    if bool(path) == bool(track):
        raise GridError("give a grid file or --track, not both or neither")
    source = Path(path) if path else TRACKS_DIR / f"{track}.yaml"
    if not source.is_file():
        known = ", ".join(p.stem for p in TRACKS_DIR.glob("*.yaml"))
        raise GridError(f"no grid file {source}" + (f"; known tracks: {known}" if track else ""))
    try:
        spec = yaml.safe_load(source.read_text())
    except yaml.YAMLError as err:
        raise GridError(f"{source}: not valid YAML ({err})") from None
    if isinstance(spec, dict) and "budgets" in spec:
        budgets = spec.pop("budgets")
        if not isinstance(budgets, dict) or not all(isinstance(b, dict) or b is None for b in budgets.values()):
            raise GridError(f"{source}: `budgets` must be a mapping of budget name to a mapping of grid keys, "
                            f"got {budgets!r}")
        if budget not in budgets:
            raise GridError(f"{source}: budget {budget!r} unknown; known: {', '.join(budgets)}")
        spec.update(budgets[budget] or {})
        return spec, f"{source}: budget {budget!r}"
    if budget:
        raise GridError(f"{source} defines no budgets")
    return spec, str(source)


def load_grid(path: str | None = None, track: str | None = None, budget: str | None = None) -> AnyGrid:
    """The `Grid` (or `GridUnion`, of a grid or budget made of `parts`) of a YAML file or a track at a budget
    (a track's names it: `Grid.track`)."""
    spec, source = load_spec(path, track, budget)
    return grid_from_dict(spec, source, track={"name": track, "budget": budget} if track else None)


def pending_steps(grid: AnyGrid) -> list[str]:
    """The grid's pairs whose training steps are null in its `steps`: pending a calibration."""
    parts = grid.parts if isinstance(grid, GridUnion) else (grid,)
    return sorted({pair for part in parts for pair, steps in part.steps.items()
                   if steps is None and pair in part.pairs})
