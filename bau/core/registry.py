"""A name -> factory mapping, in the spirit of fast-reid's registries (datasets, backbones).

Deliberately tiny: ``REG.register("name")`` as a decorator, ``REG.get("name")`` to look up, and a
clear ``BauError`` listing the known names when a lookup fails.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, TypeVar

from bau.core.errors import BauError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name.lower()
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[key] = obj  # type: ignore[assignment]
            return obj

        return deco

    def get(self, name: str) -> Callable:
        key = name.lower()
        if key not in self._items:
            raise BauError(f"unknown {self.kind} {name!r}; expected one of: {', '.join(sorted(self._items))}")
        return self._items[key]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
