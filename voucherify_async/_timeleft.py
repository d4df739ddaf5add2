"""Learned time left: how long actions of one type ran on after each progress reading.

Each action of a type that ended teaches, for every progress reading ``p`` it showed at age
``t`` (0 < p < 100, its age counted from its creation, in seconds), the ratio

    m = (F - t) / (t * (100 - p) / p)

of the time it then had left (``F``: its duration) to the time the average pace since its
creation predicted. Actions of one type tend to progress alike: a linear import learns ratios
near 1, a job that starts fast and then slows learns ratios above 1 at its early readings, a
job whose pace wanders learns a wide spread, and the spread is what keeps the schedule
careful there.

A new reading ``p`` at age ``t`` of that type gives a distribution of its finish age
(:func:`finish_window`): ``F = t + m * t * (100 - p) / p`` for the learned ratios ``m`` of
the :data:`NEIGHBORS` readings nearest ``p``, each widened into a log-normal kernel
(Silverman's bandwidth, at least :data:`MIN_BANDWIDTH`), and weighed by how likely the
type's learned durations make that finish.

Guarantees:

- Memory is bounded: at most :data:`PER_TYPE` ratios per type (the newest kept) and
  :data:`MAX_TYPES` types (the least recently taught forgotten).
- Everything here is a pure function of what was learned and of its arguments.
- Nothing is predicted until a type has :data:`MIN_RATIOS` ratios (:meth:`TimeLeft.near`
  returns None), and the schedule keeps its lateness bound whatever this predicts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from ._pertype import PerType

__all__ = ["MAX_TYPES", "PER_TYPE", "TimeLeft", "finish_window"]

#: Ratios kept per type (the newest).
PER_TYPE: Final = 512
#: Types kept; the least recently taught is forgotten beyond this.
MAX_TYPES: Final = 64
#: Ratios a type needs before it predicts anything.
MIN_RATIOS: Final = 20
#: A prediction reads the ratios of this many learned readings nearest the new one's progress.
NEIGHBORS: Final = 80
#: The narrowest kernel (in log ratio): learned readings of identical jobs still leave this
#: much doubt (about 5 % of the time left).
MIN_BANDWIDTH: Final = 0.05
#: Bisection steps of a quantile (each halves the log-scale interval).
_STEPS: Final = 30


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

    def near(self, action_type: str | None, progress: int) -> list[float] | None:
        """The log ratios of the :data:`NEIGHBORS` learned readings of *action_type* whose
        progress is nearest *progress*; None with fewer than :data:`MIN_RATIOS` learned."""
        key = str(action_type) if action_type else None
        if key is None or self._by_type.count(key) < MIN_RATIOS:
            return None
        ordered = self._by_type.ordered(key)
        i = bisect.bisect_left(ordered, (progress, -math.inf))
        lo, hi = i, i
        while hi - lo < NEIGHBORS and (lo > 0 or hi < len(ordered)):
            # Widen towards the side whose next reading is nearer in progress.
            below = progress - ordered[lo - 1][0] if lo > 0 else math.inf
            above = ordered[hi][0] - progress if hi < len(ordered) else math.inf
            if below <= above:
                lo -= 1
            else:
                hi += 1
        return [ratio for _, ratio in ordered[lo:hi]]

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
                and pair[0] == int(pair[0])
                and 0 < pair[0] < 100
                and math.isfinite(pair[1])
                and pair[1] > 0
            ]
            if key and kept:
                self._by_type.add(str(key), kept)
                counted += len(kept)
        return counted

    def __len__(self) -> int:
        """How many ratios are kept, over every type."""
        return sum(len(kept) for _, kept in self._by_type.items())


def finish_window(
    log_ratios: Sequence[float],
    age: float,
    progress: int,
    risk: float,
    prior: Callable[[float], float] | None = None,
    after: float | None = None,
) -> tuple[float, float] | None:
    """The finish ages (s) between which an action first read at *progress* (1-99) at
    *age* s ends with probability ``1 - 2 * risk``, from learned *log_ratios*
    (:meth:`TimeLeft.near`) and *prior* (the density of a finish age, from the type's
    learned durations; None: flat), knowing that it had not ended at age *after* (s; None:
    *age*). None when nothing is learned, the prior rules out every learned finish, or less
    than *risk* of the finishes lie beyond *after* (the ratios did not foresee this)."""
    if not log_ratios or not 0 < progress < 100 or age <= 0 or not 0 < risk < 0.5:
        return None
    left = age * (100 - progress) / progress  # the time left at the average pace so far
    count = len(log_ratios)
    mean = sum(log_ratios) / count
    spread = math.sqrt(sum((r - mean) ** 2 for r in log_ratios) / count)
    width = max(MIN_BANDWIDTH, 1.06 * spread * count**-0.2)
    weights = [1.0] * count
    if prior is not None:
        weights = [prior(age + math.exp(r) * left) for r in log_ratios]
    total = sum(weights)
    if not total > 0:
        return None
    kernels = [(r, w / total) for r, w in zip(log_ratios, weights, strict=True) if w > 0]

    scale = 1 / (width * math.sqrt(2))

    def below(log_m: float) -> float:
        """P(ratio < exp(log_m)) under the kernels."""
        return 0.5 * sum(w * math.erfc((r - log_m) * scale) for r, w in kernels)

    low = min(log_ratios) - 8 * width
    high = max(log_ratios) + 8 * width
    passed = 0.0  # the share of the finishes before *after*
    if after is not None and after > age:
        passed = below(math.log((after - age) / left))
        if 1 - passed < risk:
            return None

    def quantile(q: float) -> float:
        q = passed + q * (1 - passed)
        lo, hi = low, high
        for _ in range(_STEPS):
            mid = (lo + hi) / 2
            if below(mid) < q:
                lo = mid
            else:
                hi = mid
        return age + math.exp((lo + hi) / 2) * left

    return quantile(risk), quantile(1 - risk)
