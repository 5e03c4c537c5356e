"""A grid file's schema, checked before any run starts: the type and range of every key, the task pairs
and methods it names, and each method's hyperparameters in `set` and `vary`. Every error names the file,
the key and what the key expects (and the part, `parts[i]`, of a grid made of parts).

A grid (or a budget) with `parts: [mapping, ...]` is the union of several grids: each part's keys on top of
the grid's other keys. `union_view` is what such a grid reports as one mapping (the study reads it)."""
from __future__ import annotations

from typing import Any, Callable

from benchmark.harness.config import EVAL_SPLITS, PRECISIONS, PROFILES, is_number

CHECKPOINT_RULES = ("last", "best_val")
NOGAP_KINDS = ("retrain", "evaluate")  # a method's no-gap control: trained at magnitude 0, or its checkpoint evaluated

LIST_KEYS = ("pairs", "methods", "seeds", "magnitudes", "n_target", "n_source", "w")
# one value for a whole sweep (its consumers read one): the parts of a grid must agree on them
SHARED_KEYS = ("profile", "episodes", "eval_split", "checkpoint_rule", "network", "precision")
NETWORKS = ("mlp", "unet")


class GridError(ValueError):
    """A grid file or track is malformed."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(least: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= least


def _unit(value: Any) -> bool:
    return is_number(value) and 0.0 <= value <= 1.0


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


# key: (check of one value, what it expects); the LIST_KEYS take a value or a non-empty list of them
VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pairs": (lambda v: isinstance(v, str), "task pair names"),
    "methods": (lambda v: isinstance(v, str), "method names"),
    "seeds": (_int_at_least(0), "integers >= 0"),
    "magnitudes": (_unit, "numbers in [0, 1]"),
    "n_target": (_optional(_int_at_least(1)), "integers >= 1 or null (the pair's default)"),
    "n_source": (_optional(_int_at_least(1)), "integers >= 1 or null (the pair's default)"),
    "w": (_optional(_unit), "numbers in [0, 1] or null (the default ratio)"),
    "profile": (lambda v: isinstance(v, str) and v in PROFILES, f"one of {', '.join(PROFILES)}"),
    "episodes": (_optional(_int_at_least(1)), "an integer >= 1 or null (the profile's)"),
    "network": (lambda v: isinstance(v, str) and v in NETWORKS, f"one of {', '.join(NETWORKS)}"),
    "hparam_trials": (_int_at_least(0), "an integer >= 0"),
    "nogap_control": (lambda v: isinstance(v, bool), "true or false"),
    "eval_split": (lambda v: isinstance(v, str) and v in EVAL_SPLITS, f"one of {', '.join(EVAL_SPLITS)}"),
    "checkpoint_rule": (lambda v: isinstance(v, str) and v in CHECKPOINT_RULES, f"one of {', '.join(CHECKPOINT_RULES)}"),
    "precision": (lambda v: isinstance(v, str) and v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    "description": (lambda v: isinstance(v, str), "a string"),
}
GRID_KEYS = set(VALUES) | {"set", "vary", "guidance", "budgets", "steps", "nogap", "parts"}
# the study's guidance-scale sweep (`benchmark.study.guidance`)
GUIDANCE: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pair": (lambda v: isinstance(v, str), "a task pair name"),
    "methods": (lambda v: isinstance(v, list) and all(isinstance(m, str) for m in v), "a list of method names"),
    "w": (_unit, "a number in [0, 1]"),
    "scales": (lambda v: isinstance(v, list) and all(is_number(x) for x in v), "a list of numbers"),
}


def _fail(source: str, key: str, expected: str, value: Any) -> GridError:
    return GridError(f"{source}: `{key}` must be {expected}, got {value!r}")


def _list(spec: dict[str, Any], key: str, source: str) -> tuple:
    check, expected = VALUES[key]
    values = spec[key] if isinstance(spec[key], list) else [spec[key]]
    if not values:
        raise _fail(source, key, f"a non-empty list of {expected}", spec[key])
    for value in values:
        if not check(value):
            raise _fail(source, key, f"a list of {expected}", value)
    return tuple(values)


def _mapping(source: str, key: str, value: Any, expected: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(source, key, expected, value)
    return value


def _check_guidance(spec: dict[str, Any], source: str) -> None:
    guidance = _mapping(source, "guidance", spec.get("guidance"), f"a mapping with {', '.join(GUIDANCE)}")
    unknown = set(guidance) - set(GUIDANCE)
    if unknown:
        raise GridError(f"{source}: `guidance` has unknown keys {sorted(unknown)}; known: {sorted(GUIDANCE)}")
    for key, value in guidance.items():
        check, expected = GUIDANCE[key]
        if not check(value):
            raise _fail(source, f"guidance.{key}", expected, value)


def _check_hparams(method: str, hparams: dict[str, Any], source: str, key: str) -> None:
    from baselines.methods import validate_hparams

    for name, value in hparams.items():
        try:
            validate_hparams(method, {name: value})
        except ValueError as err:
            raise GridError(f"{source}: `{key}.{name}`: {err}") from None


def part_source(source: str, index: int) -> str:
    """What the errors of a grid's part `index` name."""
    return f"{source}, parts[{index}]"


def part_specs(spec: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The grid mappings `spec` stands for: itself, or, where it has `parts`, each part's keys on top of its
    other keys (a part holds grid keys, neither `budgets` nor `parts`)."""
    if "parts" not in spec:
        return [spec]
    parts = spec["parts"]
    if not isinstance(parts, list) or not parts:
        raise _fail(source, "parts", "a non-empty list of mappings of grid keys", parts)
    base = {k: v for k, v in spec.items() if k not in ("parts", "budgets")}
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise GridError(f"{part_source(source, i)}: a part is a mapping of grid keys, got {part!r}")
        nested = sorted({"parts", "budgets"} & set(part))
        if nested:
            raise GridError(f"{part_source(source, i)}: a part cannot hold `{'` or `'.join(nested)}`")
    return [{**base, **part} for part in parts]


def check_spec(spec: Any, source: str) -> list[dict[str, Any]]:
    """Check a grid mapping (as read from YAML) key by key, each of its `parts` on its own; returns the `Grid`
    fields of each grid it stands for (itself, or one per part)."""
    if not isinstance(spec, dict):
        raise GridError(f"{source}: a grid is a mapping of keys to values, got {type(spec).__name__}")
    if "parts" not in spec:
        return [_check_grid(spec, source)]
    return [_check_grid(part, part_source(source, i)) for i, part in enumerate(part_specs(spec, source))]


def as_list(value: Any) -> list:
    """A list key's value as a list (a grid file may give one value)."""
    return value if isinstance(value, list) else [value]


def _union(lists: list[list]) -> list:
    """The values of `lists`, each once, in first-appearance order."""
    out: list = []
    for values in lists:
        out += [v for v in values if v not in out]
    return out


def union_view(spec: dict[str, Any]) -> dict[str, Any]:
    """A grid mapping as one mapping to report (the study reads it): one without `parts` as it is. Of one with
    `parts`: each list key (`LIST_KEYS`) the union over its parts, in first-appearance order (`seeds`: every
    seed some part runs; seeds per point are the most one part runs, read from `parts`); `vary` merged the same
    way, method by method; every other key as the first part that has it gives it (the `SHARED_KEYS` are equal
    across parts, `sweep.grid_from_dict` refuses parts that disagree); and `parts` each part on top of the
    grid's other keys."""
    if "parts" not in spec:
        return spec
    parts = part_specs(spec, "grid")
    view: dict[str, Any] = {}
    for part in parts:
        view.update({k: v for k, v in part.items() if k not in view})
    for key in LIST_KEYS:
        if key in view:
            view[key] = _union([as_list(p[key]) for p in parts if key in p])
    vary: dict[str, dict[str, list]] = {}
    for part in parts:
        for method, varied in (part.get("vary") or {}).items():
            merged = vary.setdefault(method, {})
            for name, values in (varied or {}).items():
                merged[name] = _union([merged.get(name, []), as_list(values)])
    if "vary" in view:
        view["vary"] = vary
    view["parts"] = parts
    return view


def _check_grid(spec: dict[str, Any], source: str) -> dict[str, Any]:
    """Check one grid mapping (no `parts`); returns the `Grid` fields it sets."""
    from baselines import METHODS
    from baselines.methods import default_hparams
    from tasks import get_pair

    unknown = set(spec) - GRID_KEYS
    if unknown:
        raise GridError(f"{source}: unknown keys {sorted(map(str, unknown))}; known: {sorted(GRID_KEYS)}")
    for key in ("pairs", "methods"):
        if spec.get(key) in (None, [], ""):
            raise GridError(f"{source}: `{key}` is required and must be a non-empty list of "
                            f"{VALUES[key][1]}")
    fields: dict[str, Any] = {}
    for key, (check, expected) in VALUES.items():
        if key not in spec:
            continue
        if key not in LIST_KEYS and not check(spec[key]):
            raise _fail(source, key, expected, spec[key])
        if key != "description":  # (read by people and the study, not by the runs)
            fields[key] = _list(spec, key, source) if key in LIST_KEYS else spec[key]
    for key, lookup in (("pairs", get_pair), ("methods", METHODS.__getitem__)):
        for name in fields[key]:
            try:
                lookup(name)
            except (KeyError, ValueError) as err:
                raise GridError(f"{source}: {err.args[0] if err.args else err} (in `{key}`)") from None
    methods = fields["methods"]

    hparams_set = _mapping(source, "set", spec.get("set"), "a mapping of hyperparameter to value")
    for name, value in hparams_set.items():
        owners = [m for m in methods if name in default_hparams(m)]
        if not owners:
            raise GridError(f"{source}: `set.{name}`: no method of the grid ({', '.join(methods)}) has a "
                            f"hyperparameter {name!r}")
        for method in owners:
            _check_hparams(method, {name: value}, source, "set")
    fields["set"] = dict(hparams_set)

    vary = _mapping(source, "vary", spec.get("vary"), "a mapping of method to {hyperparameter: list of values}")
    fields["vary"] = {}
    for method, varied in vary.items():
        if method not in methods:
            raise GridError(f"{source}: `vary.{method}`: {method!r} is not one of the grid's methods "
                            f"({', '.join(methods)})")
        varied = _mapping(source, f"vary.{method}", varied, "a mapping of hyperparameter to a list of values")
        lists = {name: values if isinstance(values, list) else [values] for name, values in varied.items()}
        for name, values in lists.items():
            if not values:
                raise _fail(source, f"vary.{method}.{name}", "a non-empty list of values", values)
            for value in values:
                _check_hparams(method, {name: value}, source, f"vary.{method}")
        fields["vary"][method] = lists

    fields["steps"] = _check_steps(spec, source, fields["pairs"])
    fields["nogap"] = _check_nogap(spec, source, methods, fields.get("checkpoint_rule", "last"))
    _check_guidance(spec, source)
    return fields


def _check_steps(spec: dict[str, Any], source: str, pairs: tuple[str, ...]) -> dict[str, int | None]:
    """`steps`: training steps per pair of the grid (absent: the profile's; null: pending a calibration)."""
    steps = _mapping(source, "steps", spec.get("steps"), "a mapping of pair to training steps")
    for pair, value in steps.items():
        if pair not in pairs:
            raise GridError(f"{source}: `steps.{pair}`: {pair!r} is not one of the grid's pairs ({', '.join(pairs)})")
        if value is not None and not _int_at_least(1)(value):
            raise _fail(source, f"steps.{pair}", "an integer >= 1 or null (pending a calibration)", value)
    return dict(steps)


def _check_nogap(spec: dict[str, Any], source: str, methods: tuple[str, ...], checkpoint_rule: str) -> dict[str, str]:
    """`nogap`: method -> `retrain` (trained again at magnitude 0) or `evaluate` (its trained checkpoint
    evaluated at magnitude 0: only for a method that uses no target data, under the `last` checkpoint rule,
    whose policy then does not depend on the target's magnitude)."""
    from baselines import METHODS

    nogap = _mapping(source, "nogap", spec.get("nogap"), f"a mapping of method to {' or '.join(NOGAP_KINDS)}")
    for method, kind in nogap.items():
        if method not in methods:
            raise GridError(f"{source}: `nogap.{method}`: {method!r} is not one of the grid's methods "
                            f"({', '.join(methods)})")
        if kind not in NOGAP_KINDS:
            raise _fail(source, f"nogap.{method}", f"one of {', '.join(NOGAP_KINDS)}", kind)
        if kind == "evaluate" and (METHODS[method].uses_target or checkpoint_rule != "last"):
            raise GridError(f"{source}: `nogap.{method}: evaluate` needs a policy that does not depend on the "
                            f"target: a method without target data under the `last` checkpoint rule")
    return dict(nogap)
