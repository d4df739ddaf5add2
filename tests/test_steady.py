"""The steady-pace model for progress read in steps (``_steady``) and the schedule's use of
it, on a fake clock: what a steady pace allows always holds the truth, a job that is not
steady is told apart, and jobs that report quarters are seen soon after their end."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from _polling import PROPERTY, _job, poll
from hypothesis import given
from hypothesis import strategies as st

from voucherify_async import PollPolicy
from voucherify_async._durations import DurationStats
from voucherify_async._schedule import PollSchedule
from voucherify_async._steady import Steady, plan_poll, steady_finish
from voucherify_async.testing._shapes import make_shape


def _readings(times: list[float], value: Callable[[float], int]) -> list[tuple[float, float, int]]:
    """``(first seen, last seen, progress)`` per distinct value, as polls at *times* see it."""
    readings: list[tuple[float, float, int]] = []
    for t in sorted(times):
        progress = value(t)
        if readings and readings[-1][2] == progress:
            readings[-1] = (readings[-1][0], t, progress)
        else:
            readings.append((t, t, progress))
    return readings


@PROPERTY
@given(
    step=st.sampled_from([1, 2, 5, 10, 20, 25, 50]),
    origin=st.floats(0.0, 100.0),
    origin_slack=st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 50.0)),
    span=st.floats(0.01, 10_000.0),
    shares=st.lists(st.floats(0.0, 0.999), min_size=1, max_size=12),
)
def test_a_steady_pace_holds_the_truth(
    step: int,
    origin: float,
    origin_slack: tuple[float, float],
    span: float,
    shares: list[float],
) -> None:
    """For any steady job read in any step at any moments before its end, the finish and
    the origin lie in what steady_finish allows (given an origin interval that holds it)."""
    finish = origin + span

    def value(t: float) -> int:
        done = max(0.0, (t - origin) / span) * 100
        return min(100 - step, step * math.floor(done / step + 1e-12))

    times = [
        origin - origin_slack[0] / 2 + (finish - origin + origin_slack[0] / 2) * s for s in shares
    ]
    times = [t for t in times if t < finish]
    if not times:
        return
    readings = _readings(times, value)
    low, high = origin - origin_slack[0], origin + origin_slack[1]
    fit = steady_finish(readings, step, low, high)
    if all(p == 0 for _, _, p in readings):
        assert fit is None  # nothing bounds the finish from above yet
        return
    assert fit is not None
    tolerance = 1e-6 * max(1.0, finish)
    assert fit.finish_lo - tolerance <= finish <= fit.finish_hi + tolerance
    assert fit.origin_lo - tolerance <= origin <= fit.origin_hi + tolerance
    lo, hi = fit.finishes(origin)
    assert lo - tolerance <= finish <= hi + tolerance


def test_stages_of_uneven_length_are_told_apart_from_a_steady_pace() -> None:
    """Quarters at 10 %, 15 % and 90 % of a 100 s job, seen by polls a second apart: no
    steady pace fits (the estimator's models decide alone)."""
    cuts = (10.0, 15.0, 90.0)

    def value(t: float) -> int:
        return 25 * sum(t >= c for c in cuts)

    readings = _readings([float(t) for t in range(1, 95)], value)
    assert steady_finish(readings, 25, -1.0, 0.0) is None
    # The same polls of a job that keeps its pace: it fits, and tightly.
    fit = steady_finish(
        _readings([float(t) for t in range(1, 95)], lambda t: 25 * min(3, int(t // 25))),
        25,
        -1.0,
        0.0,
    )
    assert fit is not None
    assert fit.finish_lo <= 100.0 <= fit.finish_hi
    assert fit.finish_hi - fit.finish_lo < 2.0


def test_a_plan_never_polls_before_it_may_and_ends_at_the_latest_finish() -> None:
    fit = steady_finish([(8.0, 8.0, 25)], 25, -1.0, 0.0)
    assert fit is not None
    for not_before in (8.5, 12.0, 40.0):
        assert plan_poll([(fit, 1.0)], 25, 25, not_before, 0.5) >= not_before
    narrow = Steady(30.0, 30.4, -1.0, 0.0, fit.upper, fit.lower)
    assert plan_poll([(narrow, 1.0)], 25, 75, 25.0, 0.5) == pytest.approx(30.4)


@pytest.mark.parametrize("duration", [15.0, 30.0, 45.0, 300.0, 1800.0])
def test_a_job_that_reports_quarters_is_seen_soon_after_its_end(duration: float) -> None:
    """Steady quarters, with or without an ENQUEUED phase seen first: the end is seen within
    the tolerance (0.7 s, or 0.4 % of the age for long jobs) plus the final poll's jitter and
    the request, and the GETs grow with the log of the duration (a 1 s loop's with it)."""
    for enqueued in (0.0, 0.3 * duration):
        total = duration + enqueued
        job = _job(make_shape("coarse", random.Random(1)), total, enqueued)
        run = poll(job, total, PollPolicy())
        assert run.lateness <= 1.5 * max(0.7, 0.004 * total) + 0.1
        assert run.gets <= 6 + 4 * math.log2(total)


@pytest.mark.slow
@PROPERTY
@given(
    cuts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
    step=st.sampled_from([10, 20, 25, 50]),
    duration=st.floats(0.05, 7200.0),
    enqueued_share=st.floats(0.0, 0.9),
    latency=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_stepped_progress_of_any_timing_is_seen_within_the_bound(
    cuts: list[float],
    step: int,
    duration: float,
    enqueued_share: float,
    latency: float,
    seed: int,
) -> None:
    """Progress in steps at any moments (steady or not, the ENQUEUED phase seen or not):
    the end is seen within max(f * (duration + latency / 2), initial_delay) + 1.5 latency."""
    marks = sorted(cuts)

    def shape(fraction: float) -> int:
        return min(100 - step, step * sum(fraction >= c for c in marks))

    policy = PollPolicy()
    assert policy.max_lateness is not None
    job = _job(shape, duration, enqueued=enqueued_share * duration)
    run = poll(job, duration, policy, latency=latency, rng=random.Random(seed))
    allowed = max(policy.max_lateness * (duration + latency / 2), policy.initial_delay)
    assert run.lateness <= allowed + 1.5 * latency + 1e-6


def test_the_admission_order_sees_the_earliest_finish_a_steady_pace_allows() -> None:
    """A quarter seen at 8 s (work begun at the creation, most likely): the job cannot end
    before about 16 s at that pace, so its next poll is not urgent before then."""
    schedule = PollSchedule(PollPolicy(), random.Random(1), started=0.0)
    schedule.next_delay(8.0, True, 25, created=0.0)
    when, held = schedule.due(9.0)
    assert not held
    assert 15.0 <= when <= 16.5


def test_learned_durations_weigh_the_finishes_a_steady_pace_allows() -> None:
    """The prior over finishes follows the type's learned durations (counted from the
    creation), and keeps some weight everywhere: a job may be unlike any before it."""
    stats = DurationStats()
    for seconds in range(20, 41):
        stats.add("VOUCHERS.IMPORT", float(seconds))
    schedule = PollSchedule(PollPolicy(), random.Random(1), started=0.0, stats=stats)
    prior = schedule._finish_prior(100.0, "VOUCHERS.IMPORT")
    assert prior is not None
    assert prior(130.0) > 4 * prior(110.0) > 0
    assert prior(130.0) > 4 * prior(150.0) > 0
    assert schedule._finish_prior(100.0, "CUSTOMERS.IMPORT") is None  # another type's say nothing
    unlearned = PollSchedule(PollPolicy(learn_durations=False), stats=stats)
    assert unlearned._finish_prior(100.0, "VOUCHERS.IMPORT") is None


def test_a_new_run_of_the_job_begins_after_the_progress_went_back() -> None:
    """Quarters, then progress back to 0 (the job runs again): the new run's pace is
    read from after the last poll of the old one, and its finish found anew."""
    schedule = PollSchedule(PollPolicy(), random.Random(1), started=0.0)
    for now, progress in [(5.0, 25), (10.0, 50), (15.0, 75), (20.0, 0), (30.0, 25)]:
        schedule.next_delay(now, True, progress, created=0.0)
    found = schedule._steady_fits(0.0)
    assert found is not None
    fits, _ = found
    assert all(fit.origin_lo >= 15.0 and fit.origin_hi <= 20.0 for fit, _ in fits)
    # 25 (a quarter) by 30 s but not 50, from a start between 15 and 20 s: the end between
    # 20 + 2 * 10 = 40 s and 15 + 4 * 15 = 75 s.
    assert all(40.0 - 1e-6 <= fit.finish_lo <= fit.finish_hi <= 75.0 + 1e-6 for fit, _ in fits)
