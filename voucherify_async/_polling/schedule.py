"""When a handle polls next: a pure function of what it observed, on any clock.

The guarantee (times in seconds, on the clock the caller passes as ``now``). Let ``r`` be
the *reference* of a poll at ``t``: the handle's start (its first poll when none was
given) while the action has only been seen ENQUEUED; once it was seen past ENQUEUED, the
last poll that saw it ENQUEUED (or, after its progress went back, the poll before the
new run), else the handle's start. With ``PollPolicy.max_lateness = f``:

- **Bounded lateness.** The next poll comes at most
  ``max(f * max(t - r, L), initial_delay, min_delay)`` after ``t``, and never after
  ``max_delay``. ``L`` is the :data:`FLOOR_QUANTILE` of the durations learned for the
  action's type (:meth:`PollSchedule.floor`; they run from the creation, as
  ``processing_time`` does), less the time from the handle's start to ``r``, for an action
  this client started (``known_start``: the handle's start is its creation); else 0. So
  an action that ends at ``E`` is seen by a poll at most
  ``max(f * max(E - r, L), initial_delay)`` after its end (plus that poll's own request
  time): at most ``f`` times what its user has waited since the handle met it, or since
  it left the queue under the handle's eyes. ``created_at`` plays no part in it: the
  schedule plans from its own readings, so a wrong ``created_at`` or server clock changes
  no plan.
- **Watched handles.** With ``every`` (an ``updates(every=...)`` subscriber) no gap exceeds
  ``max(every, min_delay)``.
- **Any snapshot is safe.** Every delay is finite and in ``[min_delay, max_delay]``
  (the :func:`~voucherify_async.fast_polling` cap aside), whatever the snapshots say:
  progress outside 0-100, backwards, huge, missing; no call raises.

How it picks a gap under that bound (the decision rule):

- **While progress moves** (:class:`~voucherify_async._polling.estimator.Readings`): at the
  earliest finish the pace this client measured allows, the pace taken :data:`DOUBT`
  faster (plus its own measuring doubt). Each such poll sees the job nearer its end and
  measures the pace again, so the gaps shrink geometrically towards the end. Once that
  earliest finish is within :data:`TOLERANCE` of now, the gap is the tolerance, growing by
  the silent share (below) of the time since (a job stuck near its end backs off).
- **Where progress says nothing** (ENQUEUED, a poll that failed, no pace yet, a value shown
  longer than a step takes): the growth schedule (``initial_delay * multiplier ** n``), at
  most the *silent gap* ``max(SILENT_SHARE * f * max(w, L), initial_delay)`` (with a
  learned floor, the silent gap itself), ``w`` being ``t - r``, or the time since the first
  poll that saw the action past ENQUEUED once one saw it leave the queue: such stretches
  are seen within ``SILENT_SHARE * f`` (a quarter) of the wait, and of the running time
  once the queue was seen.
- **The first poll**: the policy's ``first_poll_after``; when that is 0 and durations are
  learned, the type's median duration (a just-started action's first GET almost always sees
  it unfinished), at most ``FIRST_POLL_CAP * initial_delay``, or the bound the learned
  floor allows (``known_start`` only), if later; nothing learned yet, ``initial_delay``
  for an action this client started, at once for one met elsewhere.
- Jitter only ever brings a poll earlier.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Final

from voucherify_async._config import PollPolicy, own_delay

from .estimator import Readings

if TYPE_CHECKING:
    from voucherify_async.instrumentation import PollReason

    from .durations import DurationStats

__all__ = [
    "DOUBT",
    "FIRST_POLL_CAP",
    "FIRST_POLL_QUANTILE",
    "FLOOR_QUANTILE",
    "SILENT_SHARE",
    "TOLERANCE",
    "PollSchedule",
]

#: How much faster than the pace it measured a job is assumed to be able to run its rest
#: (a fraction). Trades GETs (each poll on the way to the end lands at most this share of
#: the remaining time early: about log(remaining / TOLERANCE) / log(1 + 1 / DOUBT) polls)
#: against lateness on jobs that speed up (a job faster than that passes the aimed poll and
#: is caught by the tolerance or the bound). 0.15: the speed-ups of the zoo's noisy shape.
DOUBT: Final = 0.15
#: How close to the earliest plausible finish the schedule aims (seconds, at least
#: ``min_delay``): polls once it is this near come every TOLERANCE. Trades GETs at the end
#: against lateness: half a fixed 1 s loop's worst, so moving jobs are seen sooner than
#: such a loop sees them.
TOLERANCE: Final = 0.5
#: Where progress says nothing (no reading, no pace yet, a value shown longer than a step
#: takes, a job past its earliest plausible finish), the gaps are at most this share of
#: the bound: such stretches end at random, so they are seen at most ``SILENT_SHARE * f``
#: of the wait late (f = 0.5: 25 %, the issue's target for them), at ``1 + SILENT_SHARE *
#: f`` times fewer polls each time the wait doubles... Trades GETs on silent jobs against
#: their lateness; moving jobs keep the whole bound.
SILENT_SHARE: Final = 0.5
#: The learned first poll goes out at this quantile of the type's durations (the median:
#: half of the type's actions are over by then, so the GET rarely costs lateness)...
FIRST_POLL_QUANTILE: Final = 0.5
#: ...but never later than this many times the policy's initial delay (or than the bound
#: the learned floor allows, when that is later): short jobs' p95 lateness stays under 0.8 s.
FIRST_POLL_CAP: Final = 2.0
#: The quantile of a type's learned durations below which its actions rarely end: the
#: lateness bound is relative to at least this long, where the work is known to have begun
#: at the bound's reference. Trades the first polls of a known type against lateness on its
#: rare shorter actions (1 in 20).
FLOOR_QUANTILE: Final = 0.05


class PollSchedule:
    """The delays of one handle. Feed it every snapshot; ask it for the next delay.

    *started* is when the handle started (its first poll when None): the bound's reference
    until the action is seen past ENQUEUED. With *known_start*, this client started the
    action at *started* (its creation), so the learned floor (durations from the creation)
    applies, less the time from there to the bound's reference.
    """

    __slots__ = (
        "_earliest",
        "_enqueued",
        "_growth",
        "_known",
        "_last",
        "_left_queue",
        "_made_here",
        "_policy",
        "_ran",
        "_rerun",
        "_rng",
        "_run",
        "_since",
        "_start",
        "_stats",
    )

    def __init__(
        self,
        policy: PollPolicy,
        rng: random.Random | None = None,
        *,
        started: float | None = None,
        stats: DurationStats | None = None,
        known_start: bool = False,
    ) -> None:
        self._policy = policy
        self._rng = rng
        self._stats = stats
        self._start = started if started is not None and math.isfinite(started) else None
        #: The bound's reference once the action was seen past ENQUEUED.
        self._since = self._start
        #: Whether the work is known not to have begun at ``_since``.
        self._known = self._made_here = known_start and self._start is not None
        self._enqueued = False  # the newest snapshot said ENQUEUED
        self._ran = False  # a snapshot said IN_PROGRESS (a later ENQUEUED is a re-queue)
        #: The first poll that saw the action past ENQUEUED after a poll saw it ENQUEUED: its
        #: work began between ``_since`` and this (None: not seen leave the queue).
        self._left_queue: float | None = None
        self._growth = 0.0  # the last growth-schedule delay (0: none yet)
        self._last: float | None = None  # the newest poll
        self._run: Readings | None = None  # allocated at the first progress reading
        self._earliest: float | None = None  # the earliest plausible finish, once known
        self._rerun = False  # progress went back once: its readings teach nothing

    @property
    def _learned(self) -> DurationStats | None:
        """The client's learned statistics, unless the policy turns learning off."""
        return self._stats if self._policy.learn_durations else None

    def first_delay(self, action_type: str | None = None) -> float:
        """Seconds before the first GET: the policy's ``first_poll_after``, or, when it is 0
        and durations are learned (``policy.learn_durations``), the median duration of
        *action_type* (any type when None), at most ``FIRST_POLL_CAP * initial_delay`` or
        ``max_lateness`` times the learned floor (:meth:`floor`), whichever is later; with
        learning on and nothing learned yet, ``initial_delay``. All this for an action this
        client started (``known_start``: it is 0 s old); 0 for one met elsewhere, whose age is
        unknown (it may be over)."""
        policy, learned = self._policy, self._learned
        if policy.first_poll_after or learned is None:
            return own_delay(policy.first_poll_after)
        if not self._made_here:
            return 0.0  # met by id: its age is unknown, and it may be over
        median = learned.quantile(action_type, FIRST_POLL_QUANTILE)
        if median is None:
            # Nothing learned: an action this client just started is still young, and a GET at
            # once would almost always see it unfinished.
            return own_delay(policy.initial_delay)
        cap = FIRST_POLL_CAP * policy.initial_delay
        if policy.max_lateness is not None and self._made_here:
            cap = max(cap, policy.max_lateness * self.floor(action_type))
        return own_delay(min(median, cap, policy.max_delay))

    def next_delay(
        self,
        now: float,
        in_progress: bool,
        progress: int | None,
        *,
        created: float | None = None,
        every: float | None = None,
        action_type: str | None = None,
        enqueued: bool = False,
    ) -> tuple[float, PollReason]:
        """Seconds until the next poll, and why, after a poll at *now*.

        *in_progress* and *progress* describe the snapshot just seen (progress 0-100; any
        other value, or ``None`` when the poll failed or the status is not IN_PROGRESS,
        says nothing). *created* (the action's creation on this clock) is accepted for
        callers that know it and plays no part in the plan; *every* is the longest gap a
        watcher accepts (None: nobody watches); *action_type* the action's type, once a
        snapshot has told it; *enqueued* whether the snapshot said ENQUEUED.
        """
        del created  # the plan comes from this client's own readings
        policy = self._policy
        if not isinstance(now, int | float) or not math.isfinite(now):
            now = self._last if self._last is not None else 0.0
        if self._start is None:
            self._start = self._since = now
        if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
            progress = None
        delay: float | None = None
        reason: PollReason = "backoff"
        was_enqueued, self._enqueued = self._enqueued, bool(enqueued) and not in_progress
        if in_progress:
            self._ran = True
        if was_enqueued and not self._enqueued:
            self._left_queue = now  # its work began between the last poll and this one
        if self._enqueued:
            # Its work had not begun by now: the bound counts from here once it runs.
            self._since, self._known = now, True
            self._run = None
            self._left_queue = None
        elif policy.adaptive and in_progress and progress is not None:
            delay = self._progress_delay(now, progress, action_type)
            if delay is not None:
                reason = "adaptive"
        self._last = now
        bound = self.bound(now, None, action_type)
        if delay is None:
            growth = self._growth
            growth = policy.initial_delay if growth <= 0 else growth * policy.multiplier
            delay = self._growth = min(growth, policy.max_delay)
            if bound is not None:
                silent = self._silent(now, action_type)
                if self._wait(now, action_type)[1] > 0:
                    delay, reason = silent, "learned"  # the type is known to take longer
                else:
                    delay = min(delay, silent)
        if policy.jitter:
            # Only ever earlier: a poll planned at a plausible end, or at the bound, keeps it.
            delay *= 1.0 - policy.jitter * (self._rng or random).random()
        if bound is not None and delay > bound:
            delay, reason = bound, "bounded"
        if every is not None and delay > every:
            delay, reason = every, "watched"
        if not delay >= policy.min_delay:  # NaN too
            delay = policy.min_delay
        return own_delay(min(delay, policy.max_delay)), reason

    def _silent_share(self) -> float:
        """The share of a silent stretch's length its gaps may be: :data:`SILENT_SHARE` of
        ``max_lateness`` (0.25 by default), or of the whole stretch without a bound."""
        f = self._policy.max_lateness
        return SILENT_SHARE * f if f is not None else SILENT_SHARE

    def _silent(self, now: float, action_type: str | None) -> float:
        """The longest gap where progress says nothing: :data:`SILENT_SHARE` of the bound's
        share of the wait (at least ``initial_delay``); infinite without a bound."""
        f = self._policy.max_lateness
        if f is None:
            return math.inf
        wait, floor = self._wait(now, action_type)
        if self._left_queue is not None:
            # It left the queue under the handle's eyes, by the poll that first saw it past:
            # its running time is at least the time since, so gaps of a share of that are
            # that share of its running time (the bound still counts from ``_since``).
            wait = min(wait, now - self._left_queue)
        return max(SILENT_SHARE * f * max(wait, floor), self._policy.initial_delay)

    def _progress_delay(self, now: float, progress: int, action_type: str | None) -> float | None:
        """The gap progress gives (see the module's rule); None while it gives none."""
        run = self._run
        if run is None:
            run = self._run = Readings()
        elif progress < run.value:
            # Progress went back: a new run, whose work began after the last poll.
            self._since, self._known, self._rerun = self._last, self._last is not None, True
            run = self._run = Readings()
        if progress > 0 and run.zero is not None:
            # It showed 0, then moved: its work had barely begun at the 0 (a type that never
            # reports progress shows 0 all along, which says nothing of its start).
            self._known = True
        origin = self._since if self._known else None
        run.observe(now, progress, origin)
        earliest = self._earliest = run.earliest(now, origin, DOUBT)
        if earliest is None:
            return None
        tolerance = max(TOLERANCE, self._policy.min_delay)
        ahead = earliest - now
        if ahead > tolerance:
            run.due_since = None
            if run.held:  # the newest value overstayed its step: a silent stretch
                return min(ahead, self._silent(now, action_type))
            return ahead
        if run.due_since is None:
            run.due_since = now
        # At the earliest plausible end: every tolerance, thinning out as a silent stretch
        # does while it lasts (the bound's silent share of the time since).
        overdue = self._silent_share() * (now - run.due_since)
        return max(tolerance, min(overdue, self._silent(now, action_type)))

    def ended(
        self, now: float, duration: float, action_type: str | None, created: float | None = None
    ) -> None:
        """A poll at *now* saw the action ended, *duration* seconds after its creation (its
        terminal snapshot's ``processing_time``): teach the type's time-left ratios what its
        readings foretold. Ages count from the action's creation: the handle's start when
        this client started it (``known_start``), else *created* (``created_at`` on this
        clock), or the handle's start if that is earlier (the action existed by then).
        Nothing is taught without learned durations, a creation or a type, nor when its
        progress went back (a second run's readings against the action's age)."""
        learned, run = self._learned, self._run
        if learned is None or run is None or not action_type or self._rerun:
            return
        if not isinstance(duration, int | float) or not math.isfinite(duration):
            return
        readings, origin = run.readings(), self._start
        if not self._made_here and origin is not None:
            # The action existed when the handle started: created_at can only move it back.
            if created is None or not math.isfinite(created):
                return
            origin = min(origin, created)
        if origin is None or not readings:
            return
        end = min(now - origin, duration)
        if self._last is not None:
            end = max(end, self._last - origin)
        learned.time_left.learn(action_type, [(c - origin, v) for c, v in readings], end)

    def due(self, now: float) -> tuple[float, bool]:
        """When the next poll becomes worth making, for the gate's admission order, and
        whether the gate may hold it until then while the budget is short.

        Once progress gives one, the earliest plausible finish (possibly past: an action
        that may have ended goes first); not held, so the lateness bound keeps its say.
        Before that, not before the handle is as old as the first-poll wait: the learned
        median duration, at most ``FIRST_POLL_CAP * initial_delay`` (which it is when
        nothing is learned), since a young action's poll almost always sees it unfinished;
        held. Else *now*.
        """
        earliest = self._earliest
        if earliest is not None:
            return (earliest if earliest <= now else now + own_delay(earliest - now)), False
        policy = self._policy
        wait = FIRST_POLL_CAP * policy.initial_delay
        if self._learned is not None:
            median = self._learned.quantile(None, FIRST_POLL_QUANTILE)
            if median is not None:
                wait = min(median, wait)
        started = now if self._start is None else self._start
        young = started + wait - now
        return now + own_delay(max(0.0, young)), young > 0

    def wants_warm_start(self, now: float, action_type: str | None) -> bool:
        """Whether learning *action_type*'s durations now (the client's warm start, one
        ``list()`` page) would help this handle after a poll at *now* that saw it
        unfinished: ``policy.warm_start`` and ``learn_durations`` are on, the client
        learns (a :class:`DurationStats` was given), the type is known but not learned
        (fewer than five of its own), and the handle has waited at least ``FIRST_POLL_CAP *
        initial_delay``: past a short job's time (the first-poll cap), where a learned
        floor skips the bound's ladder of polls (about one per 1.5x of the wait), so the
        request pays for itself; a job over by then never sends it."""
        policy, learned = self._policy, self._learned
        if not policy.warm_start or learned is None or not action_type:
            return False
        if not self._made_here or learned.given or learned.knows(action_type):
            return False  # (met by id: its creation is unknown, so a floor could not apply)
        if self._start is None:
            return False
        return now - self._start >= FIRST_POLL_CAP * policy.initial_delay

    def floor(self, action_type: str | None = None) -> float:
        """The learned floor of the lateness bound, in seconds: :data:`FLOOR_QUANTILE` of the
        durations learned for *action_type* itself; 0 when the type is not known, fewer than
        five of it are learned, or ``policy.learn_durations`` is off. (Never another type's:
        a new type may be far shorter than those the client knows.)"""
        learned = self._learned
        if learned is None or not action_type:
            return 0.0
        values = learned.quantiles(action_type, (FLOOR_QUANTILE,), fallback=False)
        return values[0] if values else 0.0

    def _wait(self, now: float, action_type: str | None) -> tuple[float, float]:
        """The wait the bound counts (seconds since its reference) and the learned floor
        that applies to it (0 where the work is not known to have begun at the reference)."""
        # While every poll saw it queued, from the handle's start; once one saw it running
        # (a re-queue too), from the last poll that saw it ENQUEUED.
        reference = self._start if self._enqueued and not self._ran else self._since
        if reference is None or self._start is None:
            return 0.0, 0.0
        wait = max(0.0, now - reference)
        if not self._made_here:
            return wait, 0.0
        # Learned durations run from the creation (processing_time): what is left of the
        # floor at the reference (the handle's start is the creation, give or take the
        # start request's answer).
        return wait, max(0.0, self.floor(action_type) - (reference - self._start))

    def bound(
        self, now: float, created: float | None = None, action_type: str | None = None
    ) -> float | None:
        """The longest gap the lateness guarantee allows after a poll at *now* (seconds,
        before the ``min_delay``/``max_delay`` clamp), given the snapshots fed so far;
        None: no bound (``max_lateness=None``). *created* plays no part (see the module)."""
        del created
        f = self._policy.max_lateness
        if f is None:
            return None
        wait, floor = self._wait(now, action_type)
        return max(f * max(wait, floor), self._policy.initial_delay)
