"""The polling schedule as a pure function, on a fake clock: every progress shape, the
lateness guarantee for any progress function, queue wait and created_at, any snapshot
sequence, the pace estimator and the learned durations.

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
from voucherify_async._polling.durations import MAX_TYPES, PER_TYPE, DurationStats
from voucherify_async._polling.estimator import Readings
from voucherify_async._polling.schedule import FIRST_POLL_CAP, FLOOR_QUANTILE, PollSchedule
from voucherify_async.testing._shapes import scripted

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
    """A job that never reports progress: the gaps grow with the wait, at most half the
    bound (a quarter of the wait), so its end is seen within a quarter of its duration
    for a few dozen GETs (the fixed 1 s loop: 600)."""
    duration = 600.0
    policy = PollPolicy(jitter=0)
    run = poll(_job("none", duration), duration, policy)
    assert run.gets < 600 / 15
    assert run.lateness <= 0.25 * duration + 0.1
    # The handle started at 0.01: a poll answered at `answered` had waited that long.
    assert all(gap <= max(0.25 * (answered - 0.01), 0.6) + 1e-9 for answered, gap, _ in run.gaps)


@pytest.mark.parametrize("queued", [0.5, 1.0, 2.0, 3.0, 5.0, 8.0])
def test_a_silent_job_seen_leaving_its_queue_is_seen_within_a_quarter_of_its_run(
    queued: float,
) -> None:
    """A job that never reports progress, seen ENQUEUED for *queued* times its running time:
    once a poll sees it running, the gaps are a quarter of the time since that poll (its
    work began before it), so its end is seen within a quarter of its running time, not
    of the time since the last ENQUEUED poll (which may be long before the work began)."""
    running = 100.0
    job = _job("none", running * (1 + queued), enqueued=running * queued)
    run = poll(job, running * (1 + queued), PollPolicy(jitter=0))
    assert run.lateness <= 0.25 * running + 0.1


def test_the_learned_floor_counts_from_the_creation() -> None:
    """Learned durations run from the action's creation (processing_time), so their floor
    applies only to an action this client started, less the time from its start to the
    bound's reference; a handle met by id (progress 0 all along, a type that reports none)
    keeps gaps of a quarter of its wait, not of the type's durations."""
    stats = DurationStats()
    for seconds in (1000.0, 1100.0, 1200.0, 1300.0, 1400.0):
        stats.add("T", seconds)
    policy = PollPolicy(jitter=0)
    by_id = PollSchedule(policy, started=0.0, stats=stats)
    for now in (1.0, 2.0, 4.0, 8.0):
        delay, reason = by_id.next_delay(now, True, 0, action_type="T")
        assert delay <= max(0.25 * now, policy.initial_delay) + 1e-9
        assert reason != "learned"
    assert by_id.bound(100.0, None, "T") == pytest.approx(50.0)
    mine = PollSchedule(policy, started=0.0, stats=stats, known_start=True)
    mine.next_delay(1.0, False, None, action_type="T", enqueued=True)
    assert mine.bound(1.0, None, "T") == pytest.approx(0.5 * 1000.0)
    mine.next_delay(400.0, False, None, action_type="T", enqueued=True)
    mine.next_delay(401.0, True, 0, action_type="T")  # left the queue after 400 s
    assert mine.bound(402.0, None, "T") == pytest.approx(0.5 * 600.0)


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
        schedule = PollSchedule(policy, started=0.0, stats=stats, known_start=True)
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


def _progress(points: list[tuple[float, int]]) -> Callable[[float], int]:
    """Any non-decreasing progress function, from hypothesis' points."""
    xs = sorted({round(x, 6) for x, _ in points})
    ys = sorted(p for _, p in points)[: len(xs)]
    return scripted(list(zip(xs, ys, strict=False)))


@PROPERTY
@given(
    points=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 100)), min_size=1, max_size=12),
    duration=st.floats(0.05, 7200.0),
    queued=st.floats(0.0, 0.95),
    met=st.floats(0.0, 1.0),
    created=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    latency=st.floats(0.0, 0.5),
    fraction=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_lateness_is_bounded_by_what_the_user_waited(
    points: list[tuple[float, int]],
    duration: float,
    queued: float,
    met: float,
    created: float | None,
    latency: float,
    fraction: float,
    seed: int,
) -> None:
    """The guarantee, for any progress function, any queue wait (a share *queued* of the
    job, seen or not), a handle that meets the action at any moment of its life (*met*: 0
    at its creation, 1 at its end) and any created_at it is told: the poll that sees the
    end comes at most ``max(f * (end - r + latency / 2), initial_delay) + 1.5 * latency``
    after it, r being the handle's start, or the last poll that saw the job ENQUEUED once
    a later poll saw it running."""
    start = met * duration
    job = _job(_progress(points), duration, enqueued=queued * duration)
    policy = PollPolicy(max_lateness=fraction)
    run = poll(
        job,
        duration,
        policy,
        latency=latency,
        start=start,
        rng=random.Random(seed),
        created=created,
    )
    waited = duration - run.reference + latency / 2
    allowed = max(fraction * waited, policy.initial_delay) + 1.5 * latency
    assert run.lateness <= allowed + 1e-6
    assert all(gap <= bound + 1e-9 for _, gap, bound in run.gaps)


@pytest.mark.slow  # 3-5 s: 300 examples
@PROPERTY
@given(
    points=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 100)), min_size=1, max_size=12),
    duration=st.floats(0.05, 7200.0),
    learned=st.lists(st.floats(0.05, 7200.0), min_size=5, max_size=40),
    queued=st.floats(0.0, 0.95),
    met=st.floats(0.0, 1.0),
    latency=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
    told=st.booleans(),
    known=st.booleans(),
)
def test_lateness_is_bounded_with_learned_durations(
    points: list[tuple[float, int]],
    duration: float,
    learned: list[float],
    queued: float,
    met: float,
    latency: float,
    seed: int,
    told: bool,
    known: bool,
) -> None:
    """With durations learned for the type (any durations, the job's own far from them),
    the end is seen within ``max(f * max(end - r + latency / 2, L), FIRST_POLL_CAP *
    initial_delay) + 1.5 * latency``: the learned floor L counts only where the work is
    known not to have begun at r (*known*: this client started it, at its creation)."""
    start = 0.0 if known else met * duration
    stats = DurationStats()
    for seconds in learned:
        stats.add("VOUCHERS.IMPORT", seconds)
    floor = stats.quantile("VOUCHERS.IMPORT", FLOOR_QUANTILE) or 0.0
    policy = PollPolicy()
    assert policy.max_lateness is not None
    run = poll(
        _job(_progress(points), duration, enqueued=queued * duration),
        duration,
        policy,
        latency=latency,
        start=start,
        rng=random.Random(seed),
        stats=stats,
        told_type=told,
        known_start=known,
    )
    f = policy.max_lateness
    waited = duration - run.reference + latency / 2
    allowed = max(f * max(waited, floor), FIRST_POLL_CAP * policy.initial_delay)
    assert run.lateness <= allowed + 1.5 * latency + 1e-6


@pytest.mark.slow  # 3-5 s: 300 examples
@PROPERTY
@given(
    points=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 100)), min_size=1, max_size=12),
    duration=st.floats(0.05, 7200.0),
    queued=st.floats(0.0, 0.95),
    created=st.floats(allow_nan=True, allow_infinity=True),
)
def test_created_at_and_the_server_clock_change_no_plan(
    points: list[tuple[float, int]], duration: float, queued: float, created: float
) -> None:
    """Whatever created_at the handle is told (a skewed Date header maps it anywhere),
    every gap is the one it plans without it."""
    job = _job(_progress(points), duration, enqueued=queued * duration)
    told = poll(job, duration, PollPolicy(), created=created)
    blind = poll(job, duration, PollPolicy(), created=None)
    assert told.gaps == blind.gaps


_snapshots = st.lists(
    st.tuples(
        st.floats(0.0, 1e6),  # seconds since the previous poll
        st.sampled_from(["IN_PROGRESS", "ENQUEUED", "DONE?", None]),
        st.none() | st.integers() | st.integers(-(2**70), 2**70) | st.booleans(),
        st.none() | st.floats(allow_nan=True, allow_infinity=True),
        st.none() | st.floats(0.001, 1e9),
    ),
    min_size=1,
    max_size=40,
)


@pytest.mark.slow  # 3-5 s: 300 examples
@PROPERTY
@given(
    snapshots=_snapshots,
    learned=st.lists(st.floats(0.0, 1e7), max_size=12),
    known=st.booleans(),
    max_lateness=st.none() | st.floats(0.01, 10.0),
    min_delay=st.floats(0.001, 5.0),
    jitter=st.sampled_from([0.0, 0.1, 0.9]),
)
def test_any_snapshot_sequence_gives_a_delay_in_range(
    snapshots: list[tuple[float, str | None, object, float | None, float | None]],
    learned: list[float],
    known: bool,
    max_lateness: float | None,
    min_delay: float,
    jitter: float,
) -> None:
    """Negative, > 100, backwards, huge or non-integer progress, any created_at, any
    status, any watcher pace: every delay is a finite number in [min_delay, max_delay]
    (at most the watcher's pace, if that is longer than min_delay), and nothing raises."""
    policy = PollPolicy(
        min_delay=min_delay,
        max_delay=max(min_delay, 60.0),
        jitter=jitter,
        max_lateness=max_lateness,
    )
    stats = DurationStats()
    for seconds in learned:
        stats.add("T", seconds)
    schedule = PollSchedule(policy, random.Random(0), started=0.0, stats=stats, known_start=known)
    assert 0.0 <= schedule.first_delay("T") <= policy.max_delay
    now = 0.0
    for step, status, progress, created, every in snapshots:
        now += step
        delay, reason = schedule.next_delay(
            now,
            status == "IN_PROGRESS",
            progress,  # type: ignore[arg-type]
            created=created,
            every=every,
            action_type="T",
            enqueued=status == "ENQUEUED",
        )
        assert math.isfinite(delay) and policy.min_delay <= delay <= policy.max_delay
        if every is not None:
            assert delay <= max(every, policy.min_delay)
        assert reason in ("backoff", "adaptive", "bounded", "watched", "learned")
        when, _ = schedule.due(now)
        assert math.isfinite(when)
    schedule.ended(now, 10.0, "T", created=created)


def test_an_action_met_after_a_queue_wait_is_not_polled_late() -> None:
    """The issue's first failure: 20-40 s jobs that waited minutes to an hour in the queue
    before this client met them (an id from list(), a webhook, another process), told
    their created_at: each is seen within 10 % of its running time (the old schedule read
    the pace from the creation and saw them about 5 times their running time late)."""
    rng = random.Random(29)
    late = []
    for i in range(40):
        running = rng.uniform(20.0, 40.0)
        queue = rng.choice([60.0, 600.0, 3600.0]) * rng.uniform(0.5, 1.0)
        met = queue + rng.uniform(-0.5, 0.5) * running  # seen queued, or already running
        duration = queue + running
        shape = ("linear", "fast-then-slow", "slow-then-fast", "noisy")[i % 4]
        run = poll(
            _job(shape, duration, enqueued=queue),
            duration,
            PollPolicy(),
            start=met,
            rng=random.Random(i),
        )
        late.append(run.lateness / running)
    late.sort()
    assert late[int(0.95 * len(late))] <= 0.10
    assert late[-1] <= 0.25


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
    started_here = PollSchedule(PollPolicy(), stats=stats, started=0.0, known_start=True)
    assert started_here.first_delay("VOUCHERS.IMPORT") == 0.5
    # Met by id: its age is unknown (it may be over), whatever was learned of any type.
    assert PollSchedule(PollPolicy(), stats=stats).first_delay("VOUCHERS.IMPORT") == 0.0
    assert PollSchedule(PollPolicy(), stats=stats).first_delay() == 0.0
    assert PollSchedule(PollPolicy(), stats=DurationStats()).first_delay() == 0.0
    off = PollPolicy(learn_durations=False)
    assert PollSchedule(off, stats=stats).first_delay() == 0.0
    for _ in range(50):
        stats.add("ORDERS.IMPORT", 600.0)
    # A type that never took less than 600 s, on an action this client started (its work
    # had not begun at the handle's start): the bound allows 0.5 x 600 s before the first
    # GET (FLOOR_QUANTILE of its durations times max_lateness), capped at max_delay (120 s);
    # without a bound, 1.2 s.
    mine = {"stats": stats, "started": 0.0, "known_start": True}
    assert PollSchedule(PollPolicy(), **mine).first_delay("ORDERS.IMPORT") == 120.0  # type: ignore[arg-type]
    patient = PollPolicy(max_delay=1000.0)
    assert PollSchedule(patient, **mine).first_delay("ORDERS.IMPORT") == 300.0  # type: ignore[arg-type]
    unbounded = PollPolicy(max_lateness=None)
    assert PollSchedule(unbounded, **mine).first_delay("ORDERS.IMPORT") == 1.2  # type: ignore[arg-type]
    # An action met elsewhere may have run for a while, or be over: polled at once.
    assert PollSchedule(PollPolicy(), stats=stats).first_delay("ORDERS.IMPORT") == 0.0
    # A type not learned, or not known yet, gets no floor from the others: 1.2 s at most.
    assert PollSchedule(PollPolicy(), **mine).first_delay("SKUS.IMPORT_CSV") == 1.2  # type: ignore[arg-type]
    assert PollSchedule(PollPolicy(), **mine).first_delay() == 1.2  # type: ignore[arg-type]


# -- the pace -----------------------------------------------------------------------------


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
    """A value shown longer than a step takes at the measured pace is a silent stretch, and
    the earliest finish moves on no further than one step: a job that crawls through its
    last points is polled a few dozen times over 30 minutes (the fixed 1 s loop: 1,800),
    and still seen within a quarter of its duration (the silent stretches' share)."""
    duration = 1800.0
    run = poll(_job(scripted(shape), duration), duration, PollPolicy())
    assert run.gets <= 60, name
    assert run.lateness <= 0.25 * duration, name


@PROPERTY
@given(
    rate=st.floats(0.01, 50.0),
    gaps=st.lists(st.floats(0.05, 30.0), min_size=2, max_size=40),
    origin=st.booleans(),
)
def test_the_earliest_finish_is_never_after_a_steady_jobs_end(
    rate: float, gaps: list[float], origin: bool
) -> None:
    """Integer progress at a steady pace (points per second), read at any moments: the
    earliest finish the readings allow is never after the true end by more than a quarter
    of a point's time (the pace is taken DOUBT faster than the readings allow at most)."""
    readings, end, now = Readings(), 100 / rate, 0.0
    for gap in gaps:
        now += gap
        if now >= end:
            break
        readings.observe(now, math.floor(rate * now), 0.0 if origin else None)
        earliest = readings.earliest(now, 0.0 if origin else None, 0.15)
        if earliest is not None:
            # The newest reading's place within its step is read as the pace says, which
            # may put it up to a fraction of a step behind: a few percent of a step late.
            assert earliest <= end + 0.25 / rate


def test_the_pace_is_this_clients_own_and_a_speed_up_is_followed() -> None:
    """One value says nothing without a moment the work is known not to have begun; two
    measure the pace; a faster newest step is followed."""
    readings = Readings()
    readings.observe(10.0, 40)
    assert readings.earliest(10.0, None, 0.0) is None  # 40 % after an unknown time
    assert readings.earliest(10.0, 0.0, 0.0) == pytest.approx(10.0 + 60 / 4)
    readings.observe(11.0, 41)
    readings.observe(12.0, 42)  # 1 point a second lately
    slow = readings.earliest(12.0, None, 0.0)
    assert slow is not None and 12.0 + 58 / 2.1 <= slow <= 12.0 + 58 / 0.9
    readings.observe(13.0, 52)  # 10 points in the last second
    fast = readings.earliest(13.0, None, 0.0)
    assert fast is not None and fast <= 13.0 + 48 / 9


def test_a_value_that_overstays_its_step_is_a_silent_stretch() -> None:
    """A value shown longer than a step takes at the pace sets ``held``, and the earliest
    finish then moves on with the clock (the job might resume at its pace at any time)."""
    readings = Readings()
    for t, p in [(10.0, 10), (20.0, 20), (30.0, 30)]:
        readings.observe(t, p)
    first = readings.earliest(30.0, None, 0.15)
    assert not readings.held
    readings.observe(60.0, 30)
    later = readings.earliest(60.0, None, 0.15)
    assert readings.held
    assert first is not None and later is not None and later >= first + 25


def test_a_pending_handle_holds_no_readings() -> None:
    """Nothing is allocated for the pace before the first progress reading."""
    schedule = PollSchedule(PollPolicy(), started=0.0)
    schedule.next_delay(0.1, False, None, enqueued=True)
    assert schedule._run is None
    schedule.next_delay(0.7, True, 3)
    assert schedule._run is not None


@pytest.mark.parametrize("shape", ["linear", "slow-then-fast", "fast-then-slow"])
def test_learned_durations_make_medium_jobs_cheaper(shape: str) -> None:
    """15-45 s jobs this client started, of a type whose durations it learned: the learned
    floor spares the first polls, so they cost at least 30 % fewer GETs than on a fresh
    client, and are all seen within 4 % of 45 s."""
    rng, draw = random.Random(4), _log_uniform(15, 45)
    stats = DurationStats()
    for _ in range(40):
        stats.add("VOUCHERS.IMPORT", draw(rng))
    warm, fresh = [], []
    for i in range(40):
        duration = draw(rng)
        job = _job(shape, duration)
        warm.append(
            poll(job, duration, PollPolicy(), stats=stats, told_type=True, known_start=True)
        )
        fresh.append(poll(job, duration, PollPolicy(), rng=random.Random(i), known_start=True))
    assert sum(r.gets for r in warm) <= 0.7 * sum(r.gets for r in fresh)
    assert all(r.lateness <= 0.04 * 45 for r in warm)


def _log_uniform(low: float, high: float) -> Callable[[random.Random], float]:
    """Durations (s) drawn log-uniform from *low* to *high*."""
    return lambda rng: math.exp(rng.uniform(math.log(low), math.log(high)))


def test_a_fresh_clients_first_poll_of_an_action_it_started_waits_initial_delay() -> None:
    """Nothing learned: an action this client just started is polled first after
    initial_delay (a GET at once almost always sees it unfinished), one met by id at once;
    0.1-1.3 s jobs then cost at most 2 GETs on average, seen within 0.8 s."""
    fresh = DurationStats()
    assert (
        PollSchedule(PollPolicy(), stats=fresh, started=0.0, known_start=True).first_delay() == 0.6
    )
    assert PollSchedule(PollPolicy(), stats=fresh, started=0.0).first_delay() == 0.0
    off = PollPolicy(learn_durations=False)
    assert PollSchedule(off, stats=fresh, started=0.0, known_start=True).first_delay() == 0.0
    rng = random.Random(11)
    runs = []
    for i in range(200):
        duration = rng.uniform(0.1, 1.3)
        job = _job("linear", duration, enqueued=min(0.05 * duration, 0.5))
        runs.append(
            poll(
                job,
                duration,
                PollPolicy(),
                start=0.0,
                rng=random.Random(i),
                stats=DurationStats(),
                known_start=True,
            )
        )
    assert sum(r.gets for r in runs) / len(runs) <= 2.0
    assert sorted(r.lateness for r in runs)[int(0.95 * len(runs))] <= 0.8


def test_a_requeued_action_is_bounded_from_its_last_queued_poll() -> None:
    """An action seen running that goes back to ENQUEUED: the bound's reference is the poll
    that saw it queued again (not the handle's start, nor when it first left the queue), so
    the next gap is at most ``initial_delay``."""
    policy = PollPolicy(jitter=0.0)
    schedule = PollSchedule(policy, random.Random(0), started=0.0)
    t = 0.0
    for _ in range(6):  # running, no progress, for about six seconds
        delay, _ = schedule.next_delay(t, True, None)
        t += delay
    delay, _ = schedule.next_delay(t, False, None, enqueued=True)  # queued again
    assert delay <= policy.initial_delay + 1e-9
    delay, _ = schedule.next_delay(t + delay, False, None, enqueued=True)
    assert delay <= policy.initial_delay + 1e-9
