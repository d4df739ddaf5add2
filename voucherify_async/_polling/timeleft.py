"""Learned time left: how long actions of each type ran on after each progress reading.

Each action of a type that ended teaches, for every progress reading ``p`` it showed at age
``t`` (0 < p < 100, its age counted from its creation, in seconds), the ratio

    m = (F - t) / (t * (100 - p) / p)

of the time it then had left (``F``: its duration) to the time the average pace since its
creation predicted (a linear job learns ratios near 1, one that slows down ratios above 1).

The store is learned by the handles of actions this client started (their creation is
known), saved with :meth:`TimeLeft.to_dict` and restored with :meth:`TimeLeft.update`, so
several processes can pool it. The schedule does not plan from it at present (the earlier
planner that did cost milliseconds per poll and was tuned in-sample; see docs/polling.md).

Guarantees: memory is bounded, at most :data:`PER_TYPE` ratios per type (the newest kept)
and :data:`MAX_TYPES` types (the least recently taught forgotten); everything here is a pure
function of what was learned and of its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from voucherify_async._validate import finite

from .pertype import PerType

__all__ = ["MAX_TYPES", "PER_TYPE", "TimeLeft"]

#: Ratios kept per type (the newest).
PER_TYPE: Final = 512
#: Types kept; the least recently taught is forgotten beyond this.
MAX_TYPES: Final = 64


class TimeLeft:
    """The learned time-left ratios of each type; bounded memory (see the module)."""

    __slots__ = ("_by_type",)

    def __init__(self) -> None:
        self._by_type: PerType[tuple[int, float]] = PerType(PER_TYPE, MAX_TYPES)

    def learn(
        self, action_type: str | None, readings: Iterable[tuple[float, int]], duration: float
    ) -> int:
        """Learn from an action of *action_type* that ended *duration* seconds after its
        creation and showed each ``(age s, progress)`` of *readings*; returns how many
        readings counted (those with 0 < progress < 100 and 0 < age < duration)."""
        if not action_type or not math.isfinite(duration) or duration <= 0:
            return 0
        pairs = [
            (progress, math.log((duration - age) * progress / (age * (100 - progress))))
            for age, progress in readings
            if 0 < progress < 100 and math.isfinite(age) and 0 < age < duration
        ]
        if not pairs:
            return 0
        self._by_type.add(str(action_type), pairs)
        return len(pairs)

    def to_dict(self) -> dict[str, list[list[float]]]:
        """What was learned, JSON-ready: type -> ``[progress, ratio]`` pairs, oldest first
        (the ratio of the time left to what the average pace foretold at that reading)."""
        return {
            key: [[progress, math.exp(log_ratio)] for progress, log_ratio in pairs]
            for key, pairs in self._by_type.items()
        }

    def update(self, data: Mapping[str, Iterable[Sequence[float]]]) -> int:
        """Add what :meth:`to_dict` saved; returns how many pairs counted (a pair whose
        progress is not a whole number in 1-99 or whose ratio is not a finite number above 0
        is skipped)."""
        counted = 0
        for key, pairs in data.items():
            kept = [
                (int(pair[0]), math.log(pair[1]))
                for pair in pairs
                if isinstance(pair, Sequence)
                and len(pair) == 2
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in pair)
                and 0 < pair[0] < 100  # first: int() of NaN or inf raises
                and pair[0] == int(pair[0])
                and finite(pair[1])
                and pair[1] > 0
            ]
            if key and kept:
                self._by_type.add(str(key), kept)
                counted += len(kept)
        return counted

    def __len__(self) -> int:
        """How many ratios are kept, over every type."""
        return sum(len(kept) for _, kept in self._by_type.items())
