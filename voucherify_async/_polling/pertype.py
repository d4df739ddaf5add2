"""Samples kept per action type, in bounded memory: what the learned statistics share.

Guarantee: at most ``per_type`` samples per type (the newest kept) and ``types`` types (the
least recently taught forgotten), however many are added; a type's sorted samples are
computed once and kept until it learns more (the schedule reads them on every poll, a type
learns only when an action ends).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["PerType"]

T = TypeVar("T", bound=Any)


class PerType(Generic[T]):
    """The newest samples of each type (see the module's guarantee)."""

    __slots__ = ("_by_type", "_per_type", "_sorted", "_types")

    def __init__(self, per_type: int, types: int) -> None:
        self._per_type = per_type
        self._types = types
        self._by_type: collections.OrderedDict[str, collections.deque[T]] = (
            collections.OrderedDict()
        )
        self._sorted: dict[str, list[T]] = {}

    def add(self, key: str, samples: Iterable[T]) -> None:
        """Keep *samples* as the newest of type *key* (it becomes the most recently taught)."""
        kept = self._by_type.get(key)
        if kept is None:
            kept = self._by_type[key] = collections.deque(maxlen=self._per_type)
            while len(self._by_type) > self._types:
                forgotten, _ = self._by_type.popitem(last=False)
                self._sorted.pop(forgotten, None)
        else:
            self._by_type.move_to_end(key)
        kept.extend(samples)
        self._sorted.pop(key, None)

    def count(self, key: str | None) -> int:
        """How many samples type *key* has (0 when unknown)."""
        kept = self._by_type.get(key) if key is not None else None
        return 0 if kept is None else len(kept)

    def ordered(self, key: str) -> list[T]:
        """Type *key*'s samples in order (empty when unknown); do not change the list."""
        ordered = self._sorted.get(key)
        if ordered is None:
            kept = self._by_type.get(key)
            if kept is None:
                return []
            ordered = self._sorted[key] = sorted(kept)
        return ordered

    def items(self) -> Iterator[tuple[str, list[T]]]:
        """(type, its samples oldest first), from the least recently taught type."""
        for key, kept in self._by_type.items():
            yield key, list(kept)

    def __len__(self) -> int:
        """How many types are kept."""
        return len(self._by_type)
