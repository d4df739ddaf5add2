"""The pace one run of an action showed this client, and the earliest finish it allows.

Only readings this client made count: each distinct progress value ``v`` is placed at the
moment progress crossed it, known to lie between the poll before its first sighting (which
saw a lower value) and that sighting. The middle of that interval is the crossing's
estimate, its half-width the crossing's doubt. The pace is the gain between the newest
crossing and an anchor (the oldest of the last :data:`SPAN` values; with one value, the
moment the work is known not to have begun, if the caller knows one) over the time
between them; the doubt of that pace is the crossings' half-widths over that time.

Guarantees: memory is bounded (:data:`SPAN` crossings, a few floats); nothing is allocated
for an action before its first reading (the schedule makes a :class:`Readings` then); every
answer is finite or None, whatever the readings (any values, any times); each call costs a
few arithmetic operations.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["SPAN", "Readings"]

#: The pace spans the newest this many distinct values (the newest and the oldest of them
#: anchor it). Trades noise (a short span: a 1-point gain read at 1 s polls is a 100 %
#: doubt) against lag (a long span follows a change of pace late). Three: the newest pace
#: of any job polled at most every few points, the anchor two values back.
SPAN: Final = 3


class Readings:
    """The readings of one run (progress never went back during it), oldest first."""

    __slots__ = (
        "crossings",
        "due_since",
        "first",
        "held",
        "last",
        "oldest",
        "step",
        "value",
        "zero",
    )

    def __init__(self) -> None:
        #: ``(crossing's middle, its half-width, value)`` for the newest SPAN values above 0.
        self.crossings: list[tuple[float, float, int]] = []
        self.value = -1  # the newest value (-1: none yet)
        #: The run's first crossing (``(middle, value)``): its average pace since.
        self.oldest: tuple[float, int] | None = None
        self.first = -math.inf  # when it was first seen
        self.last: float | None = None  # the newest poll of this run
        self.zero: float | None = None  # the newest poll that saw progress 0
        self.step = 0  # the gcd of the values above 0 (the quantum progress moves in)
        #: Since when the earliest plausible finish has been within the tolerance at this
        #: value (the schedule's; None: not yet).
        self.due_since: float | None = None
        self.held = False  # set by earliest()

    def observe(self, now: float, value: int, origin: float | None = None) -> None:
        """Record a poll at *now* that read *value* (0-100, never below the newest);
        *origin*: a moment the work had not begun by, if known (the first value crossed
        after it)."""
        if value == self.value:
            self.last = now
            if value == 0:
                self.zero = now
            return
        if value > 0:
            before = self.last if self.last is not None else origin
            if before is None or not before < now:
                crossing = (now, 0.0, value)  # crossed before any poll of this run
            else:
                crossing = ((before + now) / 2, (now - before) / 2, value)
            crossings = self.crossings
            if self.oldest is None:
                self.oldest = (crossing[0], value)
            crossings.append(crossing)
            if len(crossings) > SPAN:
                del crossings[0]
            self.step = math.gcd(self.step, value)
        else:
            self.zero = now
        self.value, self.first, self.last = value, now, now

    def earliest(self, now: float, origin: float | None, doubt: float) -> float | None:
        """The earliest the run plausibly reaches 100 (on the clock of *now*): from its
        progress now (the newest value moved on at the pace, at most one step on: it had
        not passed the next step by the last poll), at the pace made ``1 + doubt`` plus its
        own doubt times faster. *origin* is a moment the work had not begun by (used only
        while one value is known); None while nothing measures the pace. Sets
        :attr:`held`: whether the newest value has been shown longer than a step takes at
        the pace (the job is slower now, or stalled)."""
        self.held = False
        crossings = self.crossings
        if not crossings:
            return None
        c_n, h_n, v_n = crossings[-1]
        if len(crossings) > 1:
            c_a, h_a, v_a = crossings[0]
            step = self.step
        else:
            start = self.zero if self.zero is not None else origin
            if start is None:
                return None
            c_a, h_a, v_a, step = start, 0.0, 0, 1
        span = c_n - c_a
        if not span > 0 or not v_n > v_a:
            return None
        pace = (v_n - v_a) / span  # points per second
        # The newest value was first seen within a step of its crossing at about that
        # pace: a long gap before it does not leave its crossing that uncertain.
        seen = c_n + h_n
        low = max(c_n - h_n, seen - step / pace)
        if low > c_n - h_n:
            c_n, h_n = (low + seen) / 2, (seen - low) / 2
            span = c_n - c_a
            if not span > 0:
                return None
            pace = (v_n - v_a) / span
        if not math.isfinite(pace):
            return None
        moved = pace * max(0.0, now - c_n)
        self.held = moved > step
        progress = min(v_n + min(moved, step), 100.0)
        fastest = _fastest(v_n - v_a, span, h_n + h_a, doubt)
        if len(crossings) > 2:
            # A job speeding up: the newest step's own pace, if that is faster.
            c_p, h_p, v_p = crossings[-2]
            last = c_n - c_p
            if last > 0:
                fastest = max(fastest, _fastest(v_n - v_p, last, h_n + h_p, doubt))
        oldest = self.oldest
        if oldest is not None and c_n > oldest[0] and v_n > oldest[1]:
            # A job slower lately than on average may speed up again: the average pace.
            fastest = max(fastest, (v_n - oldest[1]) / (c_n - oldest[0]) * (1.0 + doubt))
        start = self.zero if self.zero is not None else origin
        if start is not None and self.first > start:
            # Since the work began, it made v_n points by the newest value's first sighting.
            fastest = max(fastest, v_n / (self.first - start) * (1.0 + doubt))
        hold = now - self.first
        if self.held and hold > 0:
            # It has not moved a step for `hold` seconds: it is not that fast now.
            fastest = min(fastest, (1.0 + doubt) * step / hold)
        return now + (100.0 - progress) / fastest

    def readings(self) -> list[tuple[float, int]]:
        """``(crossing, value)`` per value kept, oldest first."""
        return [(c, v) for c, _, v in self.crossings]


def _fastest(gain: float, span: float, slack: float, doubt: float) -> float:
    """The fastest pace (points per second) two crossings *span* seconds apart (their
    middles) with *slack* seconds of doubt between them allow, taken ``1 + doubt`` faster:
    *gain* over the shortest time between them; where the doubt is most of the span, the
    pace over half the span."""
    return gain / max(span - slack, span / 2) * (1.0 + doubt)
