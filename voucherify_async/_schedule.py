"""When a handle polls next: the policy's growth, sharpened by the observed progress rate."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ._config import PollPolicy, own_delay

if TYPE_CHECKING:
    from .instrumentation import PollReason

__all__ = ["PollSchedule"]

#: The adaptive mode aims this fraction of the predicted remaining time ahead, so that an
#: estimate made from coarse integer progress lands just before the finish, then converges.
AIM: float = 0.85


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
        delay: float = next(self._growth)
        reason: PollReason = "backoff"
        if policy.adaptive and in_progress and progress is not None:
            predicted = self._predict_remaining(now, progress)
            if predicted is not None and predicted > 0:
                delay = min(max(predicted * AIM, policy.min_delay), policy.max_delay)
                reason = "adaptive"
        return own_delay(policy.jittered(delay, self._rng)), reason

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
