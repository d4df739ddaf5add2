"""The polling schedule as a pure function, on a fake clock: every progress shape, the
lateness bound for any progress function, the estimator and the learned durations.

Nothing here sleeps or touches the network: a job is the emulator's own timeline read at
the moments the schedule asks, so a 30-minute job costs microseconds.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable

import pytest
from _polling import PROPERTY, _job, poll
from hypothesis import given
from hypothesis import strategies as st

from voucherify_async import AsyncAction, AsyncActionStatus, PollPolicy
from voucherify_async._durations import MAX_TYPES, PER_TYPE, DurationStats
from voucherify_async._estimator import ProgressEstimator
from voucherify_async._schedule import FLOOR_QUANTILE, PollSchedule
from voucherify_async.testing._shapes import make_shape, noisy, scripted

SHAPES = (
    *("linear", "fast-then-slow", "slow-then-fast", "stall", "coarse", "noisy", "none"),
    *("s-curve", "jump-then-crawl", "late-stall", "cubic", "tenths", "stages", "mixed"),
)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("duration", [0.3, 30.0, 1800.0])
def test_every_shape_is_seen_within_the_bound(shape: str, duration: float) -> None:
    """On every shape and duration the end is seen within max(f * duration, initial_delay)
    (plus one request), and every gap respects the bound of its moment."""
    policy = PollPolicy()
    assert policy.max_lateness is not None
    run = poll(_job(shape, duration), duration, policy)
    allowed = max(policy.max_lateness * (duration + 0.025), policy.initial_delay) + 0.075
    assert 0 <= run.lateness <= allowed
    assert all(gap <= bound + 1e-9 for _, gap, bound in run.gaps)


@pytest.mark.parametrize(
    ("shape", "late"),
    [("linear", 0.01), ("fast-then-slow", 0.01), ("slow-then-fast", 0.01), ("noisy", 0.05)],
)
def test_moving_progress_is_seen_early_and_cheaply(shape: str, late: float) -> None:
    """Where progress moves, a 30-minute job is seen within 1 % of its duration (5 % when
    its rate jumps at random) for a few dozen GETs (the fixed 1 s loop pays 1,800)."""
    duration = 1800.0
    run = poll(_job(shape, duration), duration, PollPolicy())
    assert run.lateness <= late * duration
    assert run.gets <= 60


def test_a_long_enqueued_phase_then_linear() -> None:
    """ENQUEUED for 30 % of the time says nothing; the bound holds, then progress takes over."""
    duration = 600.0
    run = poll(_job("linear", duration, enqueued=180.0), duration, PollPolicy())
    assert run.lateness <= 0.02 * duration
    assert run.gets <= 60


def test_no_progress_costs_the_bound_and_no_more() -> None:
    """A job that never reports progress: gaps grow with its age, up to the bound."""
    duration = 600.0
    policy = PollPolicy(jitter=0)
    run = poll(_job("none", duration), duration, policy)
    assert run.gets < 600 / 30  # far fewer than even a 30 s loop
    # The job was created at 0: a poll answered at `answered` saw it that old.
    assert all(gap <= max(0.5 * answered, 0.6) + 1e-9 for answered, gap, _ in run.gaps)


def test_a_watcher_sets_the_pace() -> None:
    """With every=2, no gap exceeds 2 s, whatever the schedule would rather do."""
    duration = 120.0
    run = poll(_job("linear", duration), duration, PollPolicy(), every=2.0)
    assert all(gap <= 2.0 for _, gap, _ in run.gaps)
    assert run.gets >= duration / 2.0 - 1


def test_short_jobs_with_learned_durations() -> None:
    """Once durations are learned, the first GET waits for the median instead of seeing an
    unfinished job: jobs of 0.1-1.3 s cost at most two GETs each and are seen within 0.8 s."""
    rng = random.Random(3)
    stats = DurationStats()
    for _ in range(50):
        stats.add("VOUCHERS.IMPORT", rng.uniform(0.1, 1.3))
    policy = PollPolicy(jitter=0)
    gets, lateness = [], []
    for _ in range(200):
        duration = rng.uniform(0.1, 1.3)
        job = _job("linear", duration, enqueued=min(0.05 * duration, 0.5))
        schedule = PollSchedule(policy, started=0.0, stats=stats)
        t = schedule.first_delay("VOUCHERS.IMPORT")
        for count in range(1, 20):
            status, progress, _ = job.state(t * 1000)
            if status == "DONE":
                gets.append(count)
                lateness.append(t - duration)
                break
            in_progress = status == "IN_PROGRESS"
            delay, _ = schedule.next_delay(t, in_progress, progress if in_progress else None)
            t += delay
    assert sum(gets) / len(gets) <= 2.0
    assert max(lateness) <= 0.8


@pytest.mark.slow
@PROPERTY
@given(
    points=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 100)), min_size=1, max_size=12),
    duration=st.floats(0.05, 7200.0),
    enqueued_share=st.floats(0.0, 0.9),
    start=st.floats(0.0, 5.0),
    latency=st.floats(0.0, 0.5),
    fraction=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_lateness_is_bounded_for_any_progress(
    points: list[tuple[float, int]],
    duration: float,
    enqueued_share: float,
    start: float,
    latency: float,
    fraction: float,
    seed: int,
) -> None:
    """For any non-decreasing progress and any duration, the poll that sees the end comes
    at most max(f * (duration + latency / 2), initial_delay) + 1.5 * latency after it."""
    xs = sorted({round(x, 6) for x, _ in points})
    ys = sorted(p for _, p in points)[: len(xs)]
    shape = scripted(list(zip(xs, ys, strict=False)))
    start = min(start, duration)  # the handle starts at or after the creation
    job = _job(shape, duration, enqueued=enqueued_share * duration)
    policy = PollPolicy(max_lateness=fraction)
    run = poll(job, duration, policy, latency=latency, start=start, rng=random.Random(seed))
    allowed = max(fraction * (duration + latency / 2), policy.initial_delay) + 1.5 * latency
    assert run.lateness <= allowed + 1e-6


@pytest.mark.slow
@PROPERTY
@given(
    points=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 100)), min_size=1, max_size=12),
    duration=st.floats(0.05, 7200.0),
    learned=st.lists(st.floats(0.05, 7200.0), min_size=5, max_size=40),
    start=st.floats(0.0, 5.0),
    latency=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
    told=st.booleans(),
    taught=st.booleans(),
)
def test_lateness_is_bounded_with_learned_durations(
    points: list[tuple[float, int]],
    duration: float,
    learned: list[float],
    start: float,
    latency: float,
    seed: int,
    told: bool,
    taught: bool,
) -> None:
    """With durations learned for the type (any durations, the job's own far from them),
    and with *taught* the time left after each reading of linear jobs of those durations
    (the job's own progress anything), the end is seen within max(f * max(duration, floor),
    2 * initial_delay) + 1.5 * latency, the floor being FLOOR_QUANTILE of the learned
    durations."""
    xs = sorted({round(x, 6) for x, _ in points})
    ys = sorted(p for _, p in points)[: len(xs)]
    shape = scripted(list(zip(xs, ys, strict=False)))
    start = min(start, duration)
    stats = DurationStats()
    for seconds in learned:
        stats.add("VOUCHERS.IMPORT", seconds)
        if taught:
            readings = [(seconds * k / 6, 100 * k // 6) for k in range(1, 6)]
            stats.time_left.learn("VOUCHERS.IMPORT", readings, seconds)
    floor = stats.quantile("VOUCHERS.IMPORT", FLOOR_QUANTILE) or 0.0
    policy = PollPolicy()
    assert policy.max_lateness is not None
    run = poll(
        _job(shape, duration),
        duration,
        policy,
        latency=latency,
        start=start,
        rng=random.Random(seed),
        stats=stats,
        told_type=told,
    )
    f = policy.max_lateness
    allowed = max(f * max(duration + latency / 2, floor), 2 * policy.initial_delay)
    assert run.lateness <= allowed + 1.5 * latency + 1e-6


def test_silent_progress_polls_at_the_learned_deciles() -> None:
    """A type that never reports progress, learned to take 100-190 s: the polls go as the
    action outlives each decile of those durations (not on the growth schedule), and the
    end is seen within the bound for fewer GETs than without the learned durations."""
    stats = DurationStats()
    for i in range(10):
        stats.add("VOUCHERS.IMPORT", 100.0 + 10 * i)
    policy = PollPolicy(jitter=0)
    learned = poll(_job("none", 150.0), 150.0, policy, stats=stats, told_type=True)
    fresh = poll(_job("none", 150.0), 150.0, policy)
    assert learned.gets < fresh.gets
    moments = [answered for answered, _, _ in learned.gaps]
    # The first GET waits for the bound's floor (0.5 x 100 s), then deciles: 110, 120, ...
    assert moments[0] == pytest.approx(0.01 + 50.0 + 0.05)  # started at 0.01, 50 ms a GET
    assert any(abs(moment - 110.05) < 0.01 for moment in moments)
    assert learned.lateness <= 0.5 * 150.0 + 0.1


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("jumps to 95 then crawls", [(0.0, 0), (0.5, 10), (0.55, 95), (1.0, 99)]),
        ("crawls through its last points", [(0.0, 0), (0.3, 80), (0.6, 96), (1.0, 99)]),
    ],
)
def test_progress_that_crawls_is_not_polled_ever_faster(
    name: str, shape: list[tuple[float, int]]
) -> None:
    """A value shown longer than the pace allows moves the estimate later (the stall rule),
    so a job that crawls through its last points is polled a few dozen times over 30 minutes
    (the fixed 1 s loop: 1,800; a rule-less estimate, which keeps predicting the end a
    moment away, over 130), and still seen within 5 % of its duration."""
    duration = 1800.0
    run = poll(_job(scripted(shape), duration), duration, PollPolicy())
    assert run.gets <= 60, name
    assert run.lateness <= 0.05 * duration, name


def _log_uniform(low: float, high: float) -> Callable[[random.Random], float]:
    """Durations (s) drawn log-uniform from *low* to *high*."""
    return lambda rng: math.exp(rng.uniform(math.log(low), math.log(high)))


def _learned_type(
    shape: Callable[[int], Callable[[float], int]],
    duration: Callable[[random.Random], float],
    jobs: int,
) -> DurationStats:
    """What a client learns from *jobs* earlier actions of one type polled to their end:
    progress ``shape(1000 + i)``, durations from *duration* (seed 7)."""
    stats, warm = DurationStats(), random.Random(7)
    for i in range(jobs):
        d = duration(warm)
        poll(_job(shape(1000 + i), d), d, PollPolicy(), stats=stats, told_type=True, learn=True)
    return stats


@pytest.mark.parametrize("kind", ["noisy", "late-stall"])
def test_progress_that_speeds_up_late_is_not_passed_by_a_long_gap(kind: str) -> None:
    """The speed-up guard, on types whose learned time left is too wide to plan from: a job
    whose pace jumps after a slow stretch (a stall at 30 % until 65 % of its time; noisy
    progress, whose pace changes every twentieth of it) is seen within 1 % of its duration
    (5-20 minutes), for a few dozen GETs at most (the fixed 1 s loop: 300-1,200). Without
    the guard the estimate, which follows the recent slow pace, waits past the end: up to
    12 % of the duration on these jobs."""

    def shape(seed: int) -> Callable[[float], int]:
        return noisy(random.Random(seed)) if kind == "noisy" else make_shape(kind, random.Random(0))

    duration = _log_uniform(300, 1200)
    stats = _learned_type(shape, duration, 30)
    rng = random.Random(8)
    for i in range(12):
        d = duration(rng)
        run = poll(_job(shape(i), d), d, PollPolicy(), stats=stats, told_type=True)
        assert run.lateness <= 0.01 * d, (kind, i)
        assert run.gets <= 40, (kind, i)


def test_the_speed_up_guard_tightens_on_types_that_have_shown_speed_ups() -> None:
    """A job that stalls at 30 % and then runs on at several times its average pace: the
    type's learned time left says how much faster its earlier jobs ran out their work, and
    the guard's share follows it (down to a tenth of what the average pace says is left).
    20 jobs of 2-30 minutes, learned from as a client does, are each seen within 2 % of
    their duration for a few dozen GETs; at the fixed share (35 %) some were 7 % late."""

    def stall(seed: int) -> Callable[[float], int]:
        return make_shape("stall", random.Random(seed))

    duration = _log_uniform(120, 1800)
    stats = _learned_type(stall, duration, 60)
    rng = random.Random(8)
    for i in range(20):
        d = duration(rng)
        run = poll(
            _job(stall(i), d),
            d,
            PollPolicy(),
            rng=random.Random(i),
            stats=stats,
            told_type=True,
            learn=True,
        )
        assert run.lateness <= 0.02 * d, i
        assert run.gets <= 40, i


@pytest.mark.parametrize(
    ("shape", "most"), [("linear", 6.0), ("slow-then-fast", 6.0), ("fast-then-slow", 7.5)]
)
def test_learned_durations_make_medium_jobs_cheap(shape: str, most: float) -> None:
    """With the type's durations learned, 15-45 s jobs whose progress moves cost about 5
    GETs each (linear, speeding up) or about 7 (slowing down: its last point takes 2 % of
    the job) and are all seen within 4 % of 45 s. The zoo benchmark sets these against
    exponential backoff (about 7.2 GETs) and the fixed 1 s loop."""
    rng, draw = random.Random(4), _log_uniform(15, 45)
    stats = DurationStats()
    for _ in range(40):
        stats.add("VOUCHERS.IMPORT", draw(rng))
    runs = []
    for _ in range(40):
        duration = draw(rng)
        runs.append(
            poll(_job(shape, duration), duration, PollPolicy(), stats=stats, told_type=True)
        )
        stats.add("VOUCHERS.IMPORT", duration)
    assert sum(r.gets for r in runs) / len(runs) <= most
    assert all(r.lateness <= 0.04 * 45 for r in runs)


# -- the estimator -----------------------------------------------------------------------


def test_estimator_errs_early_on_integer_progress() -> None:
    """Linear progress read as integers, polled every 2.5 % of the job: the predicted finish
    less its doubt is never after the true one, and the prediction is within 2 % of it once
    70 % of the job has passed."""
    for rate in (0.05, 1.0, 20.0):  # points per second
        estimator = ProgressEstimator()
        finish = 100 / rate
        for i in range(1, 40):
            t = finish * i / 41 * 1.013
            estimator.observe(t, math.floor(rate * t))
            estimate = estimator.estimate(origin=0.0)
            if estimate is not None:
                assert estimate.earliest <= finish + 1e-9
                if t >= 0.7 * finish:
                    assert abs(estimate.finish - finish) <= 0.02 * finish


def test_estimator_follows_a_speed_up_with_the_power_law() -> None:
    """Progress ~ t^2: a straight line through the readings would put the end late; the
    power law from the creation does not."""
    estimator = ProgressEstimator()
    finish = 100.0
    for t in (20.0, 45.0, 70.0):  # 4, 20, 49
        estimator.observe(t, math.floor(100 * (t / finish) ** 2))
    straight = estimator.estimate(origin=None)  # no creation known: the local rate only
    assert straight is not None and straight.finish > finish + 5  # the trap
    estimate = estimator.estimate(origin=0.0)
    assert estimate is not None and abs(estimate.finish - finish) <= 5


def test_estimator_weighs_recent_progress() -> None:
    """After a stall, the pace comes from the recent values, not the whole history."""
    estimator = ProgressEstimator()
    for t, p in [(0.0, 0), (10.0, 10), (20.0, 20), (100.0, 20), (105.0, 30), (110.0, 40)]:
        estimator.observe(t, p)
    estimate = estimator.estimate()
    # ~2 points/s lately (60 to go: ~140 s); the average since 0 (0.36/s) would say ~276 s.
    assert estimate is not None and 130 <= estimate.finish <= 150


def test_estimator_detects_coarse_steps_and_resets_on_a_drop() -> None:
    """Quarters are read as quarters; progress that goes back starts a new estimate."""
    estimator = ProgressEstimator()
    for t, p in [(0.0, 0), (10.0, 25), (20.0, 50), (30.0, 75)]:
        estimator.observe(t, p)
    assert estimator.step == 25
    estimator.observe(31.0, 10)
    assert estimator.progress == 10 and estimator.estimate() is None


def test_estimator_doubts_a_job_whose_pace_jumps() -> None:
    """The doubt comes from how well the model foretold the last values: narrow for a
    steady job, wide for one whose pace jumps."""
    steady, jumpy = ProgressEstimator(), ProgressEstimator()
    for i, t in enumerate((10.0, 20.0, 30.0, 40.0, 50.0, 60.0)):
        steady.observe(t, math.floor(1.07 * t))
        jumpy.observe(t, (8, 30, 33, 55, 57, 60)[i])
    calm, wild = steady.estimate(origin=0.0), jumpy.estimate(origin=0.0)
    assert calm is not None and wild is not None
    assert calm.doubt < 0.35 and wild.doubt >= 0.6


def test_a_value_that_overstays_pushes_the_estimate_later() -> None:
    """The stall rule: a value shown for longer than the pace allows moves the predicted
    finish later each time it is seen again, so a stalled job is not polled ever faster."""
    estimator = ProgressEstimator()
    for t, p in [(10.0, 10), (20.0, 20), (30.0, 30)]:
        estimator.observe(t, p)
    first = estimator.estimate(origin=0.0)
    estimator.observe(60.0, 30)
    later = estimator.estimate(origin=0.0)
    assert first is not None and later is not None
    assert later.finish >= first.finish + 25


# -- learned durations --------------------------------------------------------------------


def _done(action_id: str, type_: str, seconds: float, *, listed: bool = False) -> AsyncAction:
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return AsyncAction(
        id=action_id,
        type=type_,
        status=AsyncActionStatus.DONE,
        created_at=created,
        updated_at=created + dt.timedelta(seconds=seconds),
        processing_time=None if listed else round(seconds * 1000),
    )


def test_durations_learn_each_action_once_and_fall_back_to_any_type() -> None:
    """DONE snapshots and list items count once each; an unknown type uses every type's."""
    stats = DurationStats()
    for i in range(10):
        assert stats.learn(_done(f"aa_{i}", "VOUCHERS.IMPORT", 1.0 + i))
    assert not stats.learn(_done("aa_0", "VOUCHERS.IMPORT", 99.0))  # seen already
    assert (
        stats.learn_from_list(
            [_done(f"aa_l{i}", "ORDERS.IMPORT", 2.0, listed=True) for i in range(6)]
        )
        == 6
    )
    assert stats.quantile("VOUCHERS.IMPORT", 0.5) == 5.0
    assert stats.quantile("ORDERS.IMPORT", 0.5) == 2.0
    assert stats.quantile("SKUS.IMPORT_CSV", 1.0) == 10.0  # any type's
    assert DurationStats().quantile(None, 0.5) is None  # nothing learned: no guess


def test_durations_memory_is_bounded_and_saved_figures_load() -> None:
    """At most MAX_TYPES types of PER_TYPE durations; to_dict/from_dict round-trips."""
    stats = DurationStats()
    for t in range(MAX_TYPES + 10):
        for i in range(PER_TYPE + 5):
            stats.add(f"TYPE_{t}", float(i))
    saved = stats.to_dict()
    assert len(saved) <= MAX_TYPES
    assert all(len(values) == PER_TYPE for values in saved.values())
    again = DurationStats.from_dict(saved)
    assert again.to_dict() == saved
    again.update({"X": [1.0, "nonsense", True, -3.0, 2.0]})  # type: ignore[list-item]
    assert again.to_dict()["X"] == [1.0, 2.0]


def test_first_poll_waits_for_the_learned_median() -> None:
    """With durations learned, the first GET waits for the median, at most 2 x initial_delay
    or what the lateness bound allows with the learned floor; without them, or with
    learn_durations=False, it goes at once."""
    stats = DurationStats()
    for i in range(9):
        stats.add("VOUCHERS.IMPORT", 0.1 * (i + 1))
    assert PollSchedule(PollPolicy(), stats=stats).first_delay("VOUCHERS.IMPORT") == 0.5
    assert PollSchedule(PollPolicy(), stats=DurationStats()).first_delay() == 0.0
    off = PollPolicy(learn_durations=False)
    assert PollSchedule(off, stats=stats).first_delay() == 0.0
    for _ in range(50):
        stats.add("ORDERS.IMPORT", 600.0)
    # A type that never took less than 600 s: the bound allows 0.5 x 600 s before the first
    # GET (FLOOR_QUANTILE of its durations times max_lateness), capped at max_delay (120 s);
    # without a bound, 1.2 s.
    assert PollSchedule(PollPolicy(), stats=stats).first_delay("ORDERS.IMPORT") == 120.0
    patient = PollPolicy(max_delay=1000.0)
    assert PollSchedule(patient, stats=stats).first_delay("ORDERS.IMPORT") == 300.0
    unbounded = PollPolicy(max_lateness=None)
    assert PollSchedule(unbounded, stats=stats).first_delay("ORDERS.IMPORT") == 1.2
    # A type not learned, or not known yet, gets no floor from the others: 1.2 s at most.
    assert PollSchedule(PollPolicy(), stats=stats).first_delay("SKUS.IMPORT_CSV") == 1.2
    assert PollSchedule(PollPolicy(), stats=stats).first_delay() == 1.2
