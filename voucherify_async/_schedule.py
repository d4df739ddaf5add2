"""When a handle polls next: a pure function of what it observed, on any clock.

Guarantees, for one handle (times in seconds, on the clock the caller passes as ``now``):

- **Bounded lateness.** With ``PollPolicy.max_lateness = f`` the gap after a poll made when
  the action was ``age`` old is never more than ``max(f * max(age, L), initial_delay)``,
  where ``L`` (the learned floor, :meth:`PollSchedule.floor`) is the :data:`FLOOR_QUANTILE`
  of the durations learned for the action's type, and 0 while the type is unknown (no
  snapshot yet, and no start helper said it), with fewer than five of it learned, or with
  ``learn_durations=False``. So an action
  that ends at age ``d`` is seen by a poll at most ``max(f * max(d, L), initial_delay)``
  after its end (plus that poll's own request time, and the rest of the request before it
  after the server read the job unfinished), whatever its progress did; the first
  poll of a client with learned durations may wait ``FIRST_POLL_CAP * initial_delay``.
  ``age`` is a lower bound: from ``created`` (``created_at`` mapped onto the local clock)
  when known, else from the handle's start.
- **Watched handles.** With ``every`` (an ``updates(every=...)`` subscriber) no gap exceeds it.
- Gaps are at least ``policy.min_delay`` when the schedule picks them from progress, and at
  most ``policy.max_delay`` always.

How it picks a gap, under that bound:

- **While progress moves**, from the estimate (``_estimator``): before the predicted finish
  by its doubt while the doubt is wide (each poll teaches more), at the finish once the
  doubt is within :data:`PRECISION` of the age (at least :data:`TOLERANCE_MIN`, at most
  :data:`TOLERANCE_MAX`). A poll that saw the same value again does not make the next gap shorter,
  and no gap is shorter than :data:`STEP_SHARE` of the time a step of progress took lately.
  Once the predicted finish has passed without an end, it waits :data:`OVERDUE_BACKOFF` of
  the time overdue (at least :data:`OVERDUE_STEP` of the last step's time), so a stalled
  job backs off geometrically.
- **The speed-up guard**, while the estimate plans because the type's learned time left
  spreads too wide (a type whose pace wanders) and puts the end ahead: no gap exceeds a
  share of the time the average pace since the origin says is left
  (``age * (100 - p) / p``) or, if longer, :data:`HOLD_SHARE` of the time the newest value
  has been held (a job stuck near its end backs off), and none is cut below the tolerance.
  The share is what the type has shown: the :data:`GUARD_QUANTILE` of its learned time-left
  ratios near ``p`` (how much faster than their average pace its earlier actions ran out
  their remaining work), from :data:`GUARD_FLOOR` to :data:`SPEEDUP_GUARD`. The estimate
  follows the recent pace; a job that was slow lately and then speeds up (a stall that
  ends, noisy progress) would finish inside a gap planned from it. With the guard, a job
  whose remaining work runs at up to ``1 / share`` times its average pace (at least
  ``1 / SPEEDUP_GUARD``, about 3, and up to 10 on a type that has shown such speed-ups) is
  not passed by a gap. The cost falls on such types that crawl or stall near their end: in
  the zoo's 2-30 minute range, 4-15 more polls per job.
- **While progress moves, on a type whose time left is learned** (:mod:`._timeleft`: what
  the progress of its earlier actions foretold, taught by :meth:`PollSchedule.ended`), in
  place of the estimate: a poll the tolerance after the finish that only
  :data:`TIME_LEFT_RISK` of the learned ratios put earlier, weighed by the learned
  durations, while they span at most :data:`TIME_LEFT_SPAN` tolerances.
- **While progress moves in steps** (:data:`STEADY_STEP` points or more; one quarter mark
  counts as a quarter until a second value tells the step), as long as a steady pace fits
  every reading: the poll :func:`._steady.plan_poll` plans over the finishes it allows, the
  work having begun between the creation (or the last ENQUEUED sighting) and the first
  IN_PROGRESS sighting, at the creation with :data:`CREATED_SHARE` belief when ENQUEUED was
  never seen.
- **Where progress says nothing** (ENQUEUED, a stall at 0, a type that reports none): with
  learned durations, as the action outlives each decile of its type's durations; else the
  policy's growth schedule.
- **The first poll**: the policy's ``first_poll_after``; when that is 0 and durations are
  learned, the type's median duration (a just-started action's first GET almost always sees
  it unfinished), at most ``FIRST_POLL_CAP * initial_delay`` or the bound, if later.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ._config import PollPolicy, own_delay
from ._estimator import Estimate, ProgressEstimator
from ._steady import Steady, plan_poll
from ._timeleft import finish_window

if TYPE_CHECKING:
    from ._durations import DurationStats
    from .instrumentation import PollReason

__all__ = ["PollSchedule"]


#: Once the earliest plausible finish has passed, wait this fraction of the time overdue.
OVERDUE_BACKOFF: Final = 0.35
#: ... and at least this fraction of the time the job's last step takes (a job that reports
#: quarters spends a quarter of its time on its last reading).
OVERDUE_STEP: Final = 0.2
#: No gap chosen from progress is shorter than this share of the time one step of progress
#: took lately: closer polls mostly see the same value again.
STEP_SHARE: Final = 0.25
#: The learned first poll goes out at this quantile of the type's durations...
FIRST_POLL_QUANTILE: Final = 0.5
#: ...but never later than this many times the policy's initial delay (or than the bound
#: the learned durations allow, when that is later).
FIRST_POLL_CAP: Final = 2.0
#: The quantile of a type's learned durations below which its actions rarely end: the
#: lateness bound is relative to at least this long (see the module's guarantee).
FLOOR_QUANTILE: Final = 0.05
#: Where progress says nothing, poll as the action outlives each of these quantiles of its
#: type's learned durations.
DECILES: Final = tuple(i / 10 for i in range(1, 10))
#: Poll at the predicted finish once its doubt is within this fraction of the action's age,
PRECISION: Final = 0.02
#: ... but at least this many seconds (a short job is not approached in steps of min_delay)
TOLERANCE_MIN: Final = 0.5
#: ... and at most this many (about what a 1 s loop is late on average, so long jobs are not
#: seen later than such a loop would see them); never below ``min_delay``.
TOLERANCE_MAX: Final = 0.6
#: Readings in steps of at least this many points are checked against a steady pace
#: (:mod:`._steady`): one such reading says little, so where the steps' crossings fall is
#: worth polls of its own.
STEADY_STEP: Final = 10
#: A steady job's end is sought within the tolerance above, and no closer than this share
#: of its age (a job that reports quarters is not polled every few seconds for an hour to
#: see its end within a second).
STEADY_PRECISION: Final = 0.004
#: One value seen that is a multiple of this is read as a quarter mark (a job that reports
#: per stage), until a second value says what the step is.
QUARTER: Final = 25
#: How much earlier than ``created`` (mapped through the Date header's whole seconds) the
#: action may have been created (seconds).
ORIGIN_SLACK: Final = 1.0
#: How much a job never seen ENQUEUED is believed to have begun its work when created.
CREATED_SHARE: Final = 0.7
#: A steady job's finishes are weighed by the durations learned for its type: each tenth
#: of them spread evenly between its ends, and this share of the weight over every finish
#: (a job may take longer or shorter than any before it).
PRIOR_FLOOR: Final = 0.2
PRIOR_CUTS: Final = tuple(i / 10 for i in range(11))
#: A poll at the predicted finish is moved later by jitter, at most this share of the tolerance.
SURE_SPREAD: Final = 0.5
#: With time-left ratios learned for the type (:mod:`._timeleft`), a poll goes out when the
#: chance that the action ended more than the tolerance before it reaches this...
TIME_LEFT_RISK: Final = 0.03
#: ... as long as the learned finishes (from that chance to its complement) span at most
#: this many tolerances; wider, and the estimator plans (each of its polls teaches more).
TIME_LEFT_SPAN: Final = 70.0
#: A poll from time-left ratios aims within this share of the action's age of its end (at
#: least the estimator's tolerance).
TIME_LEFT_PRECISION: Final = 0.003
#: The learned durations weigh the finishes time-left ratios give, with this share of the
#: weight over every finish (a smaller one than the steady planner's: ratios from other
#: jobs say less about this one's length than its own readings do).
TIME_LEFT_FLOOR: Final = 0.01
#: The speed-up guard: while the estimator plans because the type's learned time left
#: spreads over more than TIME_LEFT_SPAN tolerances, and puts the end ahead, no gap exceeds
#: this share of the time the average pace since the origin says is left (a smaller one
#: where the type has shown speed-ups: GUARD_QUANTILE), so a job whose remaining work runs
#: at up to 1 / SPEEDUP_GUARD (about 3) times its average pace is not passed by a gap.
#: Chosen by the zoo's sweep (0.25, 0.35, 0.5): on 2-30 min noisy and late-stall jobs it
#: brings p95 lateness from 4.3 % and 15.5 % to about 0.8 % and 0.5 %, for 3-10 more GETs
#: per job.
SPEEDUP_GUARD: Final = 0.35
#: ... but a gap may always be this share of the time the newest value has been held: a job
#: stuck near its end backs off geometrically instead of being polled ever faster.
HOLD_SHARE: Final = 0.1
#: The guard's share is this quantile of the type's learned time-left ratios near the
#: progress (the speed-ups its earlier actions showed), when below SPEEDUP_GUARD...
#: Chosen by the zoo's sweep (0.1, 0.2; floors 0.1, 0.2): on 2-30 min jobs that stall in
#: the middle it brings p95 lateness from 4.0 % to 0.4 % (max 10 % to 3 %), and on a mix
#: of shapes of one type the worst from 22 % to 3 %, for under a GET more per job.
GUARD_QUANTILE: Final = 0.2
#: ... and at least this share: a type whose earlier jobs sometimes ran out their work all
#: at once does not shrink every gap to the tolerance.
GUARD_FLOOR: Final = 0.1


class PollSchedule:
    """The delays of one handle. Feed it every snapshot; ask it for the next delay."""

    __slots__ = (
        "_due_progress",
        "_due_since",
        "_earliest",
        "_estimate",
        "_estimator",
        "_growth",
        "_guard",
        "_last_gap",
        "_last_poll",
        "_last_progress",
        "_origin",
        "_policy",
        "_rerun",
        "_rng",
        "_running_since",
        "_started",
        "_stats",
        "_waiting_since",
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
        self._estimate: Estimate | None = None  # the newest, for the admission order
        # The earliest finish the most believed steady fit allows, while one fits.
        self._earliest: float | None = None
        # Since when the earliest plausible finish has passed at this progress (None: not yet).
        self._due_since: float | None = None
        self._due_progress: int | None = None
        self._last_poll: float | None = None
        self._last_progress: int | None = None
        self._last_gap: float | None = None
        # The last poll that saw the action ENQUEUED: its work started later.
        self._waiting_since: float | None = None
        # The first poll that saw it IN_PROGRESS: its work had started by then.
        self._running_since: float | None = None
        # The newest origin (a lower bound of the age counts from it), for learning at the end.
        self._origin: float | None = None
        # The speed-up guard's share, while the type's learned time left spreads too wide to
        # plan from (None: no guard).
        self._guard: float | None = None
        self._rerun = False  # progress went back once: what it showed teaches nothing

    @property
    def _learned(self) -> DurationStats | None:
        """The client's learned statistics, unless the policy turns learning off."""
        return self._stats if self._policy.learn_durations else None

    def first_delay(self, action_type: str | None = None) -> float:
        """Seconds before the first GET: the policy's ``first_poll_after``, or, when it is 0
        and durations are learned (``policy.learn_durations``), the median duration of
        *action_type* (any type when None), at most ``FIRST_POLL_CAP * initial_delay`` or
        ``max_lateness`` times the learned floor (:meth:`floor`), whichever is later."""
        policy, learned = self._policy, self._learned
        if policy.first_poll_after or learned is None:
            return own_delay(policy.first_poll_after)
        median = learned.quantile(action_type, FIRST_POLL_QUANTILE)
        if median is None:
            return 0.0
        cap = FIRST_POLL_CAP * policy.initial_delay
        if policy.max_lateness is not None:
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

        *in_progress* and *progress* describe the snapshot just seen (progress 0-100, or
        ``None`` when the poll failed or the status is not IN_PROGRESS). *created* is the
        action's creation on the same clock as *now* (a lower bound of its age), if known;
        *every* the longest gap a watcher accepts (None: nobody watches); *action_type* the
        action's type, once a snapshot has told it; *enqueued* whether the snapshot said
        ENQUEUED (the job's work had not started by *now*).
        """
        policy = self._policy
        backoff: float = next(self._growth)
        delay: float | None = None
        reason: PollReason = "backoff"
        origin = self._origin = self.origin(created)
        if policy.adaptive and in_progress and progress is not None:
            estimator = self._estimator
            if self._last_progress is not None and progress < self._last_progress:
                # Progress went back: a new run, whose work began after the last poll (its
                # readings, against the action's age, would teach the type nothing true).
                self._waiting_since, self._running_since = self._last_poll, None
                self._rerun = True
            estimator.observe(now, progress)
            estimate = self._estimate = estimator.estimate(origin)
            if self._running_since is None:
                self._running_since = now
            steady = None
            if origin is not None:
                steady = self._steady_fits(origin)
            # The most believed fit's earliest finish orders admission.
            self._earliest = (
                max(steady[0], key=lambda pair: pair[1])[0].finish_lo if steady else None
            )
            # The age, or with nothing known of it, the time since the newest value came.
            age = now - (origin if origin is not None else estimate.seen if estimate else now)
            if progress != self._due_progress:
                self._due_since, self._due_progress = None, progress
            if steady is not None and origin is not None:
                self._due_since = None
                reason = "adaptive"
                fits, quantum = steady
                delay = self._steady_delay(now, fits, quantum, progress, age, origin, action_type)
                delay = max(delay, policy.min_delay)
            elif estimate is not None:
                reason = "adaptive"
                delay = self._time_left_delay(now, progress, estimate.seen, origin, action_type)
                if delay is None:
                    tolerance = self._tolerance(age)
                    delay = self._estimate_delay(now, estimate, progress, tolerance)
                    guard = self._guard
                    if guard is not None and origin is not None and estimate.finish > now:
                        cap = _speedup_cap(guard, now, estimate, progress, age)
                        delay = min(delay, max(tolerance, cap))
                delay = max(delay, policy.min_delay)
        elif enqueued:
            self._waiting_since = now
        self._last_poll = now
        self._last_progress = progress
        if delay is None:
            learned = self._learned_wait(now, origin, action_type)
            if learned is not None:
                delay, reason = policy.jittered(learned, self._rng), "learned"
            else:
                delay = policy.jittered(backoff, self._rng)
        bound = self.bound(now, created, action_type)
        if bound is not None and delay > bound:
            delay, reason = bound, "bounded"
        delay = min(delay, policy.max_delay)
        if every is not None and delay > every:
            delay, reason = every, "watched"
        self._last_gap = delay
        return own_delay(delay), reason

    def _estimate_delay(
        self, now: float, estimate: Estimate, progress: int, tolerance: float
    ) -> float:
        """The gap the estimator's prediction gives (see the module's "while progress
        moves")."""
        policy = self._policy
        remaining = estimate.finish - now
        if remaining > 0:
            self._due_since = None
            early = remaining * estimate.doubt
            if early <= tolerance:
                # Sure enough: poll at the predicted finish.
                delay = self._jittered_later(remaining, tolerance)
            else:
                delay = remaining - early  # not yet: come closer and learn more
                if progress == self._last_progress and self._last_gap is not None:
                    # The last poll taught nothing new: do not close in faster.
                    delay = min(remaining, max(delay, self._last_gap))
                # Jitter only ever brings this poll forward, never past the estimate.
                delay = min(delay, policy.jittered(delay, self._rng))
        else:  # overdue: the end may come any moment, or the job has stalled
            if self._due_since is None:
                self._due_since = max(estimate.finish, self._last_poll or estimate.finish)
            delay = max(
                (now - self._due_since) * OVERDUE_BACKOFF, estimate.last_step * OVERDUE_STEP
            )
        return max(delay, STEP_SHARE * estimate.seen_step)

    def _steady_fits(self, origin: float) -> tuple[list[tuple[Steady, float]], int] | None:
        """What a steady pace allows (see :mod:`._steady`), with how much each assumption
        about when the work began is believed, and the step progress is read in; None while
        progress does not move in steps (or one value is not a quarter mark), or no steady
        pace fits."""
        estimator = self._estimator
        quantum = estimator.quantum
        if estimator.values >= 2:  # progress moves in steps of `quantum` (or less)
            if quantum < STEADY_STEP or 100 % quantum:
                return None
        elif quantum % QUARTER:
            return None
        else:  # one value: a quarter mark is read as a job that reports quarters
            quantum = QUARTER
        # The work began after the action was created and after it was last seen ENQUEUED,
        # and before it was first seen IN_PROGRESS.
        start = origin - ORIGIN_SLACK
        if self._waiting_since is not None:
            start = max(start, self._waiting_since)
        running = self._running_since if self._running_since is not None else origin
        loose = estimator.steady(start, running, quantum)
        if loose is None:
            return None
        if self._waiting_since is not None:
            return [(loose, 1.0)], quantum
        # Never seen ENQUEUED: most likely it began when it was created.
        tight = estimator.steady(start, origin, quantum)
        if tight is None:
            return [(loose, 1.0)], quantum
        return [(tight, CREATED_SHARE), (loose, 1.0 - CREATED_SHARE)], quantum

    def _steady_delay(
        self,
        now: float,
        fits: list[tuple[Steady, float]],
        step: int,
        progress: int,
        age: float,
        origin: float,
        action_type: str | None,
    ) -> float:
        """The gap while a steady pace fits every reading: the poll
        :func:`._steady.plan_poll` plans, to see the end within the tolerance (as the
        estimator's, but at least :data:`STEADY_PRECISION` of the age). A poll after every
        finish allowed is moved later by jitter, at most :data:`SURE_SPREAD` of the
        tolerance. The finishes are weighed by the durations learned for *action_type*,
        counted from *origin* (:meth:`_finish_prior`)."""
        tolerance = max(self._tolerance(age), STEADY_PRECISION * age)
        prior = self._finish_prior(origin, action_type)
        not_before = now + self._policy.min_delay
        when = plan_poll(fits, step, progress, not_before, tolerance, prior)
        if when >= max(fit.finish_hi for fit, _ in fits):
            return self._jittered_later(when - now, tolerance)
        return when - now

    def _time_left_delay(
        self,
        now: float,
        progress: int,
        seen: float,
        origin: float | None,
        action_type: str | None,
    ) -> float | None:
        """The gap the type's learned time-left ratios give (:mod:`._timeleft`), from when
        *progress* was first *seen* and knowing the action had not ended by *now*: a poll the
        tolerance after the finish that only :data:`TIME_LEFT_RISK` of them put earlier
        (the estimator's tolerance, at least :data:`TIME_LEFT_PRECISION` of the age). None
        without them, without an origin, or while they spread over more than
        :data:`TIME_LEFT_SPAN` tolerances; then (only then) it sets the speed-up guard's share
        from them (:func:`_guard_share`)."""
        self._guard = None
        learned = self._learned
        if learned is None or origin is None or not action_type or not 0 < progress < 100:
            return None
        if seen <= origin:
            return None
        ratios = learned.time_left.near(action_type, progress)
        if ratios is None:
            return None
        prior = self._finish_prior(origin, action_type, TIME_LEFT_FLOOR)
        on_age = (lambda finish_age: prior(origin + finish_age)) if prior is not None else None
        age = now - origin
        window = finish_window(ratios, seen - origin, progress, TIME_LEFT_RISK, on_age, after=age)
        if window is None:
            return None
        tolerance = max(self._tolerance(age), TIME_LEFT_PRECISION * age)
        early, late = window
        if late - early > TIME_LEFT_SPAN * tolerance:
            self._guard = _guard_share(ratios)
            return None
        self._due_since = None
        return self._jittered_later(max(0.0, origin + early + tolerance - now), tolerance)

    def ended(self, now: float, duration: float, action_type: str | None) -> None:
        """A poll at *now* saw the action ended, *duration* seconds after its creation (its
        terminal snapshot's ``processing_time``): teach the type's time-left ratios what its
        readings foretold (nothing without learned durations, an origin or a type, nor when
        its progress went back: a second run's readings against the action's age).

        The ages count from the origin (up to :data:`ORIGIN_SLACK` after the true creation
        when ``created_at`` alone bounds it), the end from the creation: it is taken no
        later than *now* and no earlier than the last poll that saw the action unfinished.
        """
        origin, learned = self._origin, self._learned
        if learned is None or origin is None or not action_type or self._rerun:
            return
        if not math.isfinite(duration):
            return
        end = min(now - origin, duration)
        if self._last_poll is not None:
            end = max(end, self._last_poll - origin)
        # Each value where it was first seen (what a new reading of it will be compared to).
        readings = [(first - origin, value) for first, _, value in self._estimator.readings()]
        learned.time_left.learn(action_type, readings, end)

    def _tolerance(self, age: float) -> float:
        """How close to a predicted end a poll aims, for an action *age* seconds old:
        :data:`PRECISION` of the age, from :data:`TOLERANCE_MIN` to :data:`TOLERANCE_MAX`
        (and never below ``min_delay``)."""
        near = min(TOLERANCE_MAX, max(TOLERANCE_MIN, PRECISION * age))
        return max(self._policy.min_delay, near)

    def _jittered_later(self, wait: float, tolerance: float) -> float:
        """*wait* (s) for a poll at a predicted end: jitter, which spreads handles apart,
        only moves it later, by at most :data:`SURE_SPREAD` of *tolerance* (a poll just
        before the end only sees it unfinished)."""
        spread = abs(self._policy.jittered(wait, self._rng) - wait)
        return wait + min(spread, tolerance * SURE_SPREAD)

    def _finish_prior(
        self, origin: float, action_type: str | None, share: float = PRIOR_FLOOR
    ) -> Callable[[float], float] | None:
        """How likely each finish (monotonic s) is from the durations learned for
        *action_type*, counted from *origin*, with *share* of the weight over every finish
        (see :data:`PRIOR_FLOOR`); None without five of them learned (or with
        ``learn_durations=False``)."""
        learned = self._learned
        if not action_type or learned is None:
            return None
        cuts = learned.quantiles(action_type, PRIOR_CUTS, fallback=False)
        if cuts is None:
            return None
        span = max(cuts[-1] - cuts[0], 1e-9)
        floor = share / span

        def density(finish: float) -> float:
            duration = finish - origin
            i = bisect.bisect_right(cuts, duration) - 1
            if 0 <= i < len(cuts) - 1 and cuts[i + 1] > cuts[i]:
                return floor + (1 - share) / (len(cuts) - 1) / (cuts[i + 1] - cuts[i])
            return floor

        return density

    def _learned_wait(
        self, now: float, origin: float | None, action_type: str | None
    ) -> float | None:
        """Where progress says nothing: the wait until the next decile of the durations
        learned for *action_type* that the action has not reached yet (at least
        ``min_delay``); past the last decile, unbounded (the lateness bound decides). None
        when the type or the action's age is unknown, or fewer than five of the type are
        learned (another type's durations say nothing of this one)."""
        policy, learned = self._policy, self._learned
        if learned is None or origin is None or not action_type:
            return None
        deciles = learned.quantiles(action_type, DECILES, fallback=False)
        if deciles is None:
            return None
        age = now - origin
        for value in deciles:
            if value - age >= policy.min_delay:
                return value - age
        return math.inf

    def origin(self, created: float | None) -> float | None:
        """The latest moment the action can have been created (a lower bound of its age)."""
        origins = [t for t in (created, self._started) if t is not None]
        # Each origin is no earlier than the true creation (the handle cannot start before
        # the action exists; created_at is mapped conservatively), so the earlier is tighter.
        return min(origins) if origins else None

    def due(self, now: float) -> tuple[float, bool]:
        """When the next poll becomes worth making, for the gate's admission order, and
        whether the gate may hold it until then while the budget is short.

        Once progress gives one, the earliest plausible finish (for progress read in steps,
        the earliest the most believed steady pace allows; possibly past: an action that may
        have ended goes first); not held, so the lateness bound keeps its say. Before
        that, not before the handle is as old as the first-poll wait: the learned median
        duration, at most ``FIRST_POLL_CAP * initial_delay`` (which it is when nothing is
        learned), since a young action's poll almost always sees it unfinished; held. Else
        *now*.
        """
        earliest = self._earliest
        if earliest is None and self._estimate is not None:
            earliest = self._estimate.earliest
        if earliest is not None:
            return (earliest if earliest <= now else now + own_delay(earliest - now)), False
        policy = self._policy
        wait = FIRST_POLL_CAP * policy.initial_delay
        if self._learned is not None:
            median = self._learned.quantile(None, FIRST_POLL_QUANTILE)
            if median is not None:
                wait = min(median, wait)
        started = now if self._started is None else self._started
        young = started + wait - now
        return now + own_delay(max(0.0, young)), young > 0

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

    def bound(
        self, now: float, created: float | None, action_type: str | None = None
    ) -> float | None:
        """The longest gap the lateness guarantee allows after a poll at *now*; None: none."""
        policy = self._policy
        if policy.max_lateness is None:
            return None
        origin = self.origin(created)
        if origin is None:
            return None  # nothing known of the action's age
        age = max(0.0, now - origin)
        return max(policy.max_lateness * max(age, self.floor(action_type)), policy.initial_delay)


def _guard_share(log_ratios: list[float]) -> float:
    """The speed-up guard's share: the :data:`GUARD_QUANTILE` of the learned time-left
    *log_ratios* near the progress (time left over what the average pace foretold, from
    :meth:`._timeleft.TimeLeft.near`), from :data:`GUARD_FLOOR` to :data:`SPEEDUP_GUARD`."""
    ordered = sorted(log_ratios)
    low = math.exp(ordered[int(GUARD_QUANTILE * (len(ordered) - 1))])
    return min(SPEEDUP_GUARD, max(GUARD_FLOOR, low))


def _speedup_cap(share: float, now: float, estimate: Estimate, progress: int, age: float) -> float:
    """The longest gap the speed-up guard allows while the estimate plans and puts the end
    ahead (seconds): *share* (:func:`_guard_share`) of the time the average pace since the
    origin says is left (``age * (100 - p) / p``), or :data:`HOLD_SHARE` of the time the
    newest value has been held, if longer (a job stuck near its end is not polled ever
    faster)."""
    average = share * age * (100 - progress) / progress
    return max(average, HOLD_SHARE * (now - estimate.seen))
