"""When a handle polls next: the policy's growth, sharpened by the observed progress rate."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ._config import PollPolicy, own_delay

if TYPE_CHECKING:
    from .instrumentation import PollReason

__all__ = ["PollSchedule"]

#: When the predicted finish is further away than the next backoff poll, the adaptive mode
#: aims this fraction of the way there: an estimate made from coarse integer progress lands
#: just before the finish, and the next, better estimate converges on it.
AIM: float = 0.85
#: When the predicted finish comes before the next backoff poll, aim this much past it: one
#: more GET then almost always sees the end (a short job costs no fourth poll).
OVERSHOOT: float = 1.15


class PollSchedule:
    """The delays of one handle. Feed it every snapshot's progress; ask it for the next delay."""

    __slots__ = ("_first", "_growth", "_policy", "_rng")

    def __init__(self, policy: PollPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._growth = policy.delays()
        self._rng = rng
        # (time, progress) of the first in-progress snapshot with progress, for the rate.
        self._first: tuple[float, int] | None = None

    def next_delay(
        self, now: float, in_progress: bool, progress: int | None
    ) -> tuple[float, PollReason]:
        """Seconds until the next poll, and why, after a poll at *now* (monotonic seconds).

        *in_progress* and *progress* describe the snapshot just seen (progress 0-100, or
        ``None`` when the poll failed or the status is not IN_PROGRESS).
        """
        policy = self._policy
        backoff: float = next(self._growth)
        if policy.adaptive and in_progress and progress is not None:
            predicted = self._predict_remaining(now, progress)
            if predicted is not None and predicted > 0:
                if predicted * OVERSHOOT <= backoff:
                    # Just past the finish, never jittered to before it.
                    delay = max(policy.jittered(predicted * OVERSHOOT, self._rng), predicted)
                else:
                    delay = policy.jittered(predicted * AIM, self._rng)
                delay = min(max(delay, policy.min_delay), policy.max_delay)
                return own_delay(delay), "adaptive"
        return own_delay(policy.jittered(backoff, self._rng)), "backoff"

    def _predict_remaining(self, now: float, progress: int) -> float | None:
        first = self._first
        if first is None:
            self._first = (now, progress)
            return None
        started_at, started_progress = first
        if progress < started_progress:  # progress went back: start measuring again
            self._first = (now, progress)
            return None
        gained = progress - started_progress
        span = now - started_at
        if gained <= 0 or span <= 0:
            return None
        return (100 - progress) * span / gained
