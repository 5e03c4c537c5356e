"""Explicit, listable registries: a dict filled by `register`; duplicates and unknown names raise."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A named dict of entries of one kind (pairs, gap factors, methods, ...)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Add `entry` under `name`; used bare as a call or as a class decorator."""

        def add(obj: T) -> T:
            if name in self:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self[name] = obj
            return obj

        return add(entry) if entry is not None else add

    def __getitem__(self, name: str) -> T:
        try:
            return super().__getitem__(name)
        except KeyError:
            known = ", ".join(sorted(self)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self)
