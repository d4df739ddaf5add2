"""When a handle polls next: a pure function of what it observed, on any clock.

Guarantees, for one handle (times in seconds, on the clock the caller passes as ``now``):

- **Bounded lateness.** With ``PollPolicy.max_lateness = f`` the gap after a poll made when
  the action was ``age`` old is never more than ``max(f * age, policy.initial_delay)``. So an
  action that ends at age ``d`` is seen by a poll at most ``max(f * d, initial_delay)`` after
  its end (plus that poll's own request time), whatever its progress did. ``age`` is a lower
  bound: from ``created`` (``created_at`` mapped onto the local clock) when known, else from
  the handle's start.
- **Watched handles.** With ``every`` (an ``updates(every=...)`` subscriber) no gap exceeds it.
- Gaps are at least ``policy.min_delay`` when the schedule picks them from progress, and at
  most ``policy.max_delay`` always.

How it picks a gap: while progress moves, it polls at the earliest plausible finish
(``_estimator``), never later than the bound; once that moment has passed without an end, it
waits 35 % of the time it is overdue (at least ``min_delay``), so a stalled job backs off
geometrically; with no usable progress (ENQUEUED, a stall, a type that reports none), the
policy's growth schedule under the same bound. Learned durations (``_durations``) set the
first poll of a fresh action: the first GET of a just-started action almost always sees it
unfinished, so it goes out at the type's median duration (at most ``2 * initial_delay``).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Final

from ._config import PollPolicy, own_delay
from ._estimator import ProgressEstimator

if TYPE_CHECKING:
    from ._durations import DurationStats
    from .instrumentation import PollReason

__all__ = ["PollSchedule"]


#: Once the earliest plausible finish has passed, wait this fraction of the time overdue.
OVERDUE_BACKOFF: Final = 0.35
#: The learned first poll goes out at this quantile of the type's durations...
FIRST_POLL_QUANTILE: Final = 0.5
#: ...but never later than this many times the policy's initial delay.
FIRST_POLL_CAP: Final = 2.0


class PollSchedule:
    """The delays of one handle. Feed it every snapshot; ask it for the next delay."""

    __slots__ = (
        "_due_progress",
        "_due_since",
        "_estimator",
        "_growth",
        "_last_poll",
        "_policy",
        "_rng",
        "_started",
        "_stats",
    )

    def __init__(
        self,
        policy: PollPolicy,
        rng: random.Random | None = None,
        *,
        started: float | None = None,
        stats: DurationStats | None = None,
    ) -> None:
        self._policy = policy
        self._growth = policy.delays()
        self._rng = rng
        #: When the handle started (a lower bound of the action's creation), if known.
        self._started = started
        self._stats = stats
        self._estimator = ProgressEstimator()
        # Since when the earliest plausible finish has passed at this progress (None: not yet).
        self._due_since: float | None = None
        self._due_progress: int | None = None
        self._last_poll: float | None = None

    def first_delay(self, action_type: str | None = None) -> float:
        """Seconds before the first GET: the policy's ``first_poll_after``, or, when it is 0
        and durations are learned (``policy.learn_durations``), the median duration of
        *action_type* (any type when None), at most ``FIRST_POLL_CAP * initial_delay``."""
        policy = self._policy
        if policy.first_poll_after or not policy.learn_durations or self._stats is None:
            return own_delay(policy.first_poll_after)
        median = self._stats.quantile(action_type, FIRST_POLL_QUANTILE)
        if median is None:
            return 0.0
        return own_delay(min(median, FIRST_POLL_CAP * policy.initial_delay))

    def next_delay(
        self,
        now: float,
        in_progress: bool,
        progress: int | None,
        *,
        created: float | None = None,
        every: float | None = None,
    ) -> tuple[float, PollReason]:
        """Seconds until the next poll, and why, after a poll at *now*.

        *in_progress* and *progress* describe the snapshot just seen (progress 0-100, or
        ``None`` when the poll failed or the status is not IN_PROGRESS). *created* is the
        action's creation on the same clock as *now* (a lower bound of its age), if known;
        *every* the longest gap a watcher accepts (None: nobody watches).
        """
        policy = self._policy
        backoff: float = next(self._growth)
        delay: float | None = None
        reason: PollReason = "backoff"
        if policy.adaptive and in_progress and progress is not None:
            estimator = self._estimator
            estimator.observe(now, progress)
            earliest = estimator.earliest_finish(self.origin(created))
            if earliest is not None:
                reason = "adaptive"
                remaining = earliest - now
                if progress != self._due_progress:
                    self._due_since, self._due_progress = None, progress
                if remaining > 0:
                    delay = policy.jittered(remaining, self._rng)
                    delay = min(delay, remaining)  # jitter never moves it past the estimate
                else:  # overdue: the end may come any moment, or the job has stalled
                    if self._due_since is None:
                        self._due_since = max(earliest, self._last_poll or earliest)
                    delay = (now - self._due_since) * OVERDUE_BACKOFF
                delay = max(delay, policy.min_delay)
        self._last_poll = now
        if delay is None:
            delay = policy.jittered(backoff, self._rng)
        bound = self.bound(now, created)
        if bound is not None and delay > bound:
            delay, reason = bound, "bounded"
        delay = min(delay, policy.max_delay)
        if every is not None and delay > every:
            delay, reason = every, "watched"
        return own_delay(delay), reason

    def origin(self, created: float | None) -> float | None:
        """The latest moment the action can have been created (a lower bound of its age)."""
        origins = [t for t in (created, self._started) if t is not None]
        # Each origin is no earlier than the true creation (the handle cannot start before
        # the action exists; created_at is mapped conservatively), so the earlier is tighter.
        return min(origins) if origins else None

    def due(self, now: float) -> tuple[float, bool]:
        """When the next poll becomes worth making, for the gate's admission order, and
        whether the gate may hold it until then while the budget is short.

        Once progress gives one, the earliest plausible finish (possibly past: an action that
        may have ended goes first); not held, so the lateness bound keeps its say. Before
        that, not before the handle is as old as the first-poll wait: the learned median
        duration, at most ``FIRST_POLL_CAP * initial_delay`` (which it is when nothing is
        learned), since a young action's poll almost always sees it unfinished; held. Else
        *now*.
        """
        earliest = self._estimator.earliest_finish()
        if earliest is not None:
            return (earliest if earliest <= now else now + own_delay(earliest - now)), False
        policy = self._policy
        wait = FIRST_POLL_CAP * policy.initial_delay
        if self._stats is not None and policy.learn_durations:
            median = self._stats.quantile(None, FIRST_POLL_QUANTILE)
            if median is not None:
                wait = min(median, wait)
        started = now if self._started is None else self._started
        young = started + wait - now
        return now + own_delay(max(0.0, young)), young > 0

    def bound(self, now: float, created: float | None) -> float | None:
        """The longest gap the lateness guarantee allows after a poll at *now*; None: none."""
        policy = self._policy
        if policy.max_lateness is None:
            return None
        origin = self.origin(created)
        if origin is None:
            return None  # nothing known of the action's age
        age = max(0.0, now - origin)
        return max(policy.max_lateness * age, policy.initial_delay)
