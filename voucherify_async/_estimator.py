"""The earliest plausible finish of one action, from the integer progress it reported.

Guarantee: :meth:`ProgressEstimator.earliest_finish` is never later than the true finish
**when the job goes on no faster than the fastest of two models allows**: (a) the highest rate
any recent span can have had, (b) the power law ``progress = c * age ** k`` through an old
sample and the newest one (which follows progress that speeds up or slows down). Progress is
read as the whole interval it stands for: a reported 37 is anything in ``[37, 37 + q)`` where
``q`` is the job's step (1, or 25 for a job that reports quarters); every reading is taken at
its most hurried end. It errs early, not late: the schedule polls there and learns more,
instead of sleeping past the end. No estimate can hold for *every* progress function (a job
may jump from 5 to 100 at any moment): that is what the schedule's lateness bound is for.

Recent progress weighs more than old: only the last :data:`WINDOW` distinct values count, and
spans of fewer than :data:`MIN_GAIN` points (whose rate quantisation makes meaningless) are
skipped while a longer one exists. Memory is bounded: :data:`WINDOW` samples per action.
"""

from __future__ import annotations

import collections
import math
from typing import Final

__all__ = ["MIN_GAIN", "WINDOW", "ProgressEstimator"]

#: How many distinct progress values (the newest ones) the estimate looks at.
WINDOW: Final = 6
#: A span must gain at least this many points to count while a longer span exists (a gain
#: of g is anything in (g - 1, g + 1): a 4-point span's upper rate is at most 1.25x true).
MIN_GAIN: Final = 4


class _Sample:
    __slots__ = ("first", "last", "progress")

    def __init__(self, now: float, progress: int) -> None:
        self.first = now  # when this value was first seen
        self.last = now  # ... and last seen
        self.progress = progress


class ProgressEstimator:
    """Samples of one action's progress and the earliest finish they allow (monotonic s)."""

    __slots__ = ("_increases", "_samples", "_step")

    def __init__(self) -> None:
        self._samples: collections.deque[_Sample] = collections.deque(maxlen=WINDOW)
        self._step = 0  # gcd of every increase seen: 1 for most jobs, 25 for quarters
        self._increases = 0

    def reset(self) -> None:
        """Forget everything (progress went back: a new run of the job)."""
        self._samples.clear()
        self._step = 0
        self._increases = 0

    def observe(self, now: float, progress: int) -> None:
        """Record that the action reported *progress* (0-100) at *now*."""
        samples = self._samples
        if samples and progress < samples[-1].progress:
            self.reset()
        if samples and samples[-1].progress == progress:
            samples[-1].last = now
            return
        if samples:
            self._increases += 1
            self._step = math.gcd(self._step, progress - samples[-1].progress)
        samples.append(_Sample(now, progress))

    @property
    def progress(self) -> int | None:
        """The newest progress observed, or None."""
        return self._samples[-1].progress if self._samples else None

    @property
    def step(self) -> int:
        """The quantum progress moves in: the gcd of the increases seen once there are
        three or more (fewer say little of the quantum), else 1. Overstating it only makes
        the estimate earlier."""
        return max(1, self._step) if self._increases >= 3 else 1

    def rate(self) -> float | None:
        """The fastest plausible recent rate, in points per second; None without a span.

        Two upper bounds per old value ``p``, the lower one kept: between its last sighting
        (progress then at least ``p``) and now (below ``newest + q``) the job gained less
        than ``newest + q - p`` points; and between crossing ``p`` (no later than its first
        sighting) and crossing ``newest`` (after the value before it was last seen) it gained
        exactly ``newest - p``.
        """
        samples = self._samples
        if len(samples) < 2:
            return None
        newest = samples[-1]
        reached_after = samples[-2].last  # the newest value was reached after this
        q = self.step
        best: float | None = None
        fallback: float | None = None
        for sample in list(samples)[:-1]:
            elapsed = newest.last - sample.last
            if elapsed <= 0:
                continue
            gained = newest.progress - sample.progress
            upper = (gained + q) / elapsed
            # Crossings: the old value was reached by its first sighting, the newest one after
            # the value before it was last seen; exactly `gained` points lie between them.
            between = reached_after - sample.first
            if between > 0:
                upper = min(upper, gained / between)
            if gained >= max(MIN_GAIN, q):
                best = upper if best is None else max(best, upper)
            elif fallback is None:
                fallback = upper  # the oldest short span: the least noisy of the short ones
        return best if best is not None else fallback

    def linear_finish(self) -> float | None:
        """The finish at :meth:`rate` from where the newest value may have been reached."""
        rate = self.rate()
        if rate is None or rate <= 0:
            return None
        samples = self._samples
        newest = samples[-1]
        reached_after = samples[-2].last if len(samples) > 1 else newest.first
        # Reached after the value before was last seen, with at most 100 - newest to go;
        # when last seen, below newest + q, so at least 100 - newest - q to go.
        return max(
            reached_after + (100 - newest.progress) / rate,
            newest.last + (100 - newest.progress - self.step) / rate,
        )

    def power_finish(self, origin: float) -> float | None:
        """The finish of ``progress = c * age ** k`` through an old and the newest sample.

        *origin* is the action's creation on the same clock. The newest value is read at its
        top (``newest + q``), the old one at its bottom: the earliest reading.
        """
        samples = self._samples
        if len(samples) < 2:
            return None
        newest = samples[-1]
        q = self.step
        top = min(100, newest.progress + q)
        age_now = newest.last - origin
        for sample in samples:
            if sample.progress <= 0 or newest.progress - sample.progress < max(MIN_GAIN, q):
                continue
            age_then = sample.first - origin
            if age_then <= 0 or age_now <= age_then:
                continue
            k = math.log(top / sample.progress) / math.log(age_now / age_then)
            if k <= 0:
                continue
            return origin + age_now * float((100 / top) ** (1 / k))
        return None

    def earliest_finish(self, origin: float | None = None) -> float | None:
        """The earliest plausible finish (monotonic s) of both models; None if unknown.

        *origin* (the action's creation, same clock) enables the power-law model.
        """
        candidates = [self.linear_finish()]
        if origin is not None:
            candidates.append(self.power_finish(origin))
        known = [c for c in candidates if c is not None]
        return min(known) if known else None
