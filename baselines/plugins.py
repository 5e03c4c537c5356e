"""The method registry, which also finds methods defined outside the suite.

A name `package.module:Class` imports that class; any other unknown name is looked up in the
`cotrain_bench.methods` entry-point group (an installed package declares
`my_method = "my_package.module:MyMethod"` under `[project.entry-points."cotrain_bench.methods"]`). Both resolve
inside the lookup itself, so every process that looks a run's method up (spawned evaluation workers,
sweep processes, Ray workers) finds it again. A method from outside the suite has an `identity` (its
import path and a digest of the source of its modules), which the run hash includes, so an edited
plug-in never returns a stale run.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from common.registry import Registry

ENTRY_POINT_GROUP = "cotrain_bench.methods"
IN_TREE_PACKAGE = "baselines"


def import_path(cls: type) -> str:
    """`module:QualifiedName` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def is_in_tree(cls: type) -> bool:
    return cls.__module__.split(".")[0] == IN_TREE_PACKAGE


def load_attribute(path: str, kind: str = "method") -> Any:
    """The object at `package.module:Attribute` (dotted attributes allowed); KeyError saying what is wrong."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise KeyError(f"bad {kind} path {path!r}: expected package.module:Class")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise KeyError(f"{kind} {path!r}: module {err.name!r} not found (is its directory on PYTHONPATH, "
                       f"or its package installed?)") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise KeyError(f"{kind} {path!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class MethodRegistry(Registry):
    """A `Registry` of method classes that also resolves `package.module:Class` names and the
    `cotrain_bench.methods` entry points on lookup (each resolved once per process, then held)."""

    def __init__(self, kind: str, base: type, group: str = ENTRY_POINT_GROUP):
        super().__init__(kind)
        self.base, self.group = base, group
        self._found: dict[str, Any] | None = None

    def _entry_points(self) -> dict[str, Any]:
        """The group's installed entry points by name (read once per process)."""
        if self._found is None:
            self._found = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._found

    def __getitem__(self, name: str) -> type:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if not isinstance(name, str):
            raise KeyError(f"unknown {self.kind} {name!r}: a {self.kind} name is a string")
        if ":" in name:
            cls, where = load_attribute(name, self.kind), "its import path"
        elif name in (found := self._entry_points()):
            try:
                cls, where = found[name].load(), f"entry point {self.group} {found[name].value!r}"
            except (ImportError, AttributeError) as err:
                raise KeyError(f"{self.kind} {name!r}: entry point {found[name].value!r} does not load: {err}") from None
        else:
            return super().__getitem__(name)  # raises: unknown, with the known names
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise KeyError(f"{self.kind} {name!r} ({where}) is {cls!r}, not a subclass of "
                           f"{self.base.__module__}.{self.base.__qualname__}")
        dict.__setitem__(self, name, cls)
        return cls

    def names(self) -> list[str]:
        """Registered names and the installed entry points' (not `package.module:Class` names)."""
        return sorted(({k for k in self if ":" not in k}) | set(self._entry_points()))

    def key(self, cls: type) -> str:
        """The name that finds `cls` in every process: its `name` where that resolves to it (every in-tree
        method, and an entry point named as its class), else its import path."""
        name = getattr(cls, "name", "")
        try:
            if name and self[name] is cls:
                return name
        except KeyError:
            pass
        return import_path(cls)

    def identity(self, name: str) -> dict[str, str] | None:
        """None for an in-tree method; else its import path and a digest of the source of every module of
        its class hierarchy outside the suite."""
        cls = self[name]
        if is_in_tree(cls):
            return None
        digest = hashlib.sha256()
        for module_name in dict.fromkeys(k.__module__ for k in reversed(cls.__mro__)
                                         if k is not object and not is_in_tree(k)):
            digest.update(module_name.encode() + b"\0" + _module_fingerprint(module_name).encode() + b"\0")
        return {"import": import_path(cls), "source_sha256": digest.hexdigest()[:16]}


def _module_fingerprint(module_name: str) -> str:
    """sha256 of a module's current source (read now, so an edit shows)."""
    try:
        path = inspect.getsourcefile(sys.modules[module_name])
    except TypeError:
        path = None
    if not path or not Path(path).is_file():
        raise ValueError(f"method module {module_name!r} has no readable source file: its runs cannot be named")
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
