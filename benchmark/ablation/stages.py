"""A staged ablation spec (`reference.yaml`): tasks, then stages in order, each an `Ablation` per task.

A stage's `factors` is a list of factor names, a family name (`plan.factors_of_family`, `lowdim` for every
low-dimensional factor), or `{largest_drop: k, of: <earlier stage>}`: the k factors whose source policy drops
most in that stage (its sensitivity table, `report.largest_drops`), per task. Top-level `profile`, `seeds` and
`backend` apply to every stage; a task's mapping overrides any stage key for that task (e.g. `episodes`, or
`n_target`, `n_source` and `steps`: the demo counts and training length a named pair of the task was calibrated at).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.ablation.plan import Ablation, factors_of_family
from benchmark.ablation.report import largest_drops

SPEC = Path(__file__).resolve().parent / "reference.yaml"
STAGE_KEYS = {"factors", "magnitudes", "methods", "episodes", "seeds", "profile", "backend", "n_target", "n_source",
              "steps"}


def load_spec(path: str | Path = SPEC) -> dict[str, Any]:
    """The spec mapping; ValueError naming the file where it is not one."""
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict) or not all(isinstance(spec.get(k), dict) for k in ("stages", "tasks")):
        raise ValueError(f"{path}: an ablation spec maps `tasks` and `stages` (mappings)")
    for kind, entries in (("stage", spec["stages"]), ("task", spec["tasks"])):
        for name, keys in entries.items():
            unknown = set(keys or {}) - STAGE_KEYS
            if unknown:
                raise ValueError(f"{path}: {kind} {name!r}: unknown keys {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(sorted(STAGE_KEYS))}")
    return spec


def stage_ablations(spec: dict[str, Any], stage: str, runs_dir: str | Path, task: str | None = None,
                    **execution) -> list[Ablation]:
    """Stage `stage`'s ablation of each task (of `task` alone where given); the earlier stage it ranks factors by
    must be done for that task (ValueError). `execution`: device, threads, workers."""
    stages = spec["stages"]
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}; the spec's stages: {', '.join(stages)}")
    if task is not None and task not in spec["tasks"]:
        raise ValueError(f"task {task!r} is not in the spec; its tasks: {', '.join(spec['tasks'])}")
    out = []
    for name, overrides in spec["tasks"].items():
        if task is not None and name != task:
            continue
        keys = {k: spec[k] for k in ("profile", "seeds", "backend") if k in spec}
        keys.update(stages[stage] or {})
        keys.update(overrides or {})
        factors = keys.pop("factors")
        if isinstance(factors, str):
            factors = factors_of_family(factors)
        elif isinstance(factors, dict):
            (earlier,) = stage_ablations(spec, factors["of"], runs_dir, name, **execution)
            try:
                factors = largest_drops(earlier, runs_dir, factors["largest_drop"])
            except ValueError as err:
                raise ValueError(f"stage {stage!r} ranks factors by stage {factors['of']!r}: {err}") from None
        out.append(Ablation(task=name, factors=tuple(factors), **{k: tuple(v) if isinstance(v, list) else v
                                                                  for k, v in keys.items()}, **execution))
    return out
