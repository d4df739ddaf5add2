"""Learned time left (voucherify_async._timeleft) and the schedule's use of it, on a fake clock."""

from __future__ import annotations

import json
import math
import random

import pytest
from _polling import PROPERTY, _job, poll
from hypothesis import given
from hypothesis import strategies as st

from voucherify_async import AsyncActionFailed, PollPolicy, VoucherifyClient
from voucherify_async._durations import DurationStats
from voucherify_async._schedule import PollSchedule
from voucherify_async._timeleft import MAX_TYPES, MIN_RATIOS, NEIGHBORS, PER_TYPE, TimeLeft
from voucherify_async._timeleft import finish_window as window
from voucherify_async.testing import VoucherifyEmulator, fast_polling

TYPE = "VOUCHERS.IMPORT"


def _linear_readings(duration: float, ages: list[float]) -> list[tuple[float, int]]:
    """What polls at *ages* see of a linear job of *duration* (integer progress)."""
    return [(age, math.floor(100 * age / duration)) for age in ages if age < duration]


def _learned_linear(jobs: int = 40, seed: int = 3) -> TimeLeft:
    rng = random.Random(seed)
    learned = TimeLeft()
    for _ in range(jobs):
        duration = rng.uniform(15, 45)
        ages = sorted(rng.uniform(0.5, duration) for _ in range(5))
        learned.learn(TYPE, _linear_readings(duration, ages), duration)
    return learned


def test_learn_keeps_only_readings_that_foretell_something() -> None:
    learned = TimeLeft()
    readings = [(1.0, 0), (2.0, 10), (3.0, 100), (-1.0, 20), (12.0, 50), (math.nan, 30)]
    assert learned.learn(TYPE, readings, 10.0) == 1  # only (2.0, 10): 0 < p < 100, 0 < age < 10
    assert learned.learn(None, [(2.0, 10)], 10.0) == 0
    assert learned.learn(TYPE, [(2.0, 10)], math.inf) == 0
    assert learned.learn(TYPE, [(2.0, 10)], 0.0) == 0
    assert len(learned) == 1
    # A linear job read at 2 s of 10 s at 20 % foretold its end exactly: the ratio is 1.
    exact = TimeLeft()
    exact.learn(TYPE, [(2.0, 20)], 10.0)
    exact.learn(TYPE, [(2.0, 20)] * (MIN_RATIOS - 1), 10.0)
    assert exact.near(TYPE, 20) == pytest.approx([0.0] * MIN_RATIOS)


def test_memory_is_bounded() -> None:
    learned = TimeLeft()
    for i in range(PER_TYPE + 100):
        learned.learn(TYPE, [(1.0, 1 + i % 98)], 50.0)
    assert len(learned) == PER_TYPE
    for i in range(MAX_TYPES + 10):
        learned.learn(f"TYPE.{i}", [(1.0, 50)], 3.0)
    assert len(learned._by_type) == MAX_TYPES  # types kept
    assert learned.near(TYPE, 50) is None  # the least recently taught type was forgotten


def test_near_reads_the_nearest_progress_and_needs_enough() -> None:
    learned = TimeLeft()
    for _ in range(MIN_RATIOS - 1):
        learned.learn(TYPE, [(5.0, 50)], 10.0)
    assert learned.near(TYPE, 50) is None
    assert learned.near("OTHER.TYPE", 50) is None
    learned.learn(TYPE, [(9.0, 90)] * NEIGHBORS, 10.0)  # ratio (10-9)/(9*10/90) = 1
    learned.learn(TYPE, [(1.0, 10)] * NEIGHBORS, 20.0)  # ratio (20-1)/(1*90/10) = 19/9
    near = learned.near(TYPE, 88)
    assert near is not None and len(near) == NEIGHBORS
    assert near == pytest.approx([0.0] * NEIGHBORS)  # the 90s, not the 10s or the 50s
    low = learned.near(TYPE, 12)
    assert low == pytest.approx([math.log(19 / 9)] * NEIGHBORS)


def test_the_window_holds_a_linear_jobs_end_and_is_narrow() -> None:
    ratios = _learned_linear().near(TYPE, 40)
    assert ratios is not None
    # A new linear job of 30 s first read at 40 % at 12 s.
    lo_hi = window(ratios, 12.0, 40, 0.03)
    assert lo_hi is not None
    lo, hi = lo_hi
    assert lo <= 30.0 <= hi
    assert hi - lo < 0.25 * 18.0  # within a quarter of the 18 s left


@PROPERTY
@given(
    duration=st.floats(15, 45),
    fraction=st.floats(0.05, 0.95),
)
def test_the_window_holds_the_end_of_any_job_like_the_learned_ones(
    duration: float, fraction: float
) -> None:
    """Learned from linear jobs of 15-45 s, the window of a new linear job's first reading
    of a value holds its true end."""
    learned = _learned_linear(jobs=60)
    progress = math.floor(100 * fraction)
    if progress == 0:
        return
    first = progress / 100 * duration  # where the value is first seen
    ratios = learned.near(TYPE, progress)
    assert ratios is not None
    lo_hi = window(ratios, first, progress, 0.01)
    assert lo_hi is not None
    lo, hi = lo_hi
    assert lo <= duration * 1.001 and duration <= hi * 1.001


def test_knowing_it_had_not_ended_moves_the_window_and_can_rule_it_out() -> None:
    ratios = _learned_linear().near(TYPE, 40)
    assert ratios is not None
    plain = window(ratios, 12.0, 40, 0.03)
    later = window(ratios, 12.0, 40, 0.03, after=29.0)
    assert plain is not None and later is not None
    assert later[0] >= 29.0 and later[0] > plain[0] and later[1] >= plain[1] - 1e-6
    # Long past every learned finish: the ratios did not foresee this, nothing is predicted.
    assert window(ratios, 12.0, 40, 0.03, after=300.0) is None


def test_the_prior_weighs_the_finishes() -> None:
    rng = random.Random(8)
    # Ratios spread wide: a job of this type may end anywhere from 15 to 60 s.
    ratios = [math.log(rng.uniform(0.25, 2.5)) for _ in range(80)]
    flat = window(ratios, 10.0, 50, 0.03)
    only_late = window(ratios, 10.0, 50, 0.03, prior=lambda age: 1.0 if age > 25 else 0.0)
    assert flat is not None and only_late is not None
    assert only_late[0] > flat[0] + 5  # (each kernel is weighed at its centre)
    assert window(ratios, 10.0, 50, 0.03, prior=lambda age: 0.0) is None
    assert window([], 10.0, 50, 0.03) is None
    assert window(ratios, 10.0, 0, 0.03) is None and window(ratios, 10.0, 100, 0.03) is None


# The schedule: handles of a type whose time left was learned.


def _run_many(
    shape: str, stats: DurationStats, count: int, seed: int, *, progress: bool
) -> list[tuple[int, float]]:
    """Poll *count* jobs of *shape* (15-45 s) with a client whose *stats* learn each one's
    duration, and, with *progress*, what its progress foretold; (GETs, lateness share)."""
    rng = random.Random(seed)
    runs = []
    for _ in range(count):
        duration = math.exp(rng.uniform(math.log(15), math.log(45)))
        run = poll(
            _job(shape, duration),
            duration,
            PollPolicy(),
            stats=stats,
            told_type=True,
            learn=progress,
            rng=random.Random(rng.random()),
        )
        if not progress:
            stats.add(TYPE, duration)
        runs.append((run.gets, run.lateness / duration))
    return runs


@pytest.mark.parametrize("shape", ["linear", "fast-then-slow", "s-curve"])
def test_learned_time_left_makes_jobs_of_a_type_cheaper(shape: str) -> None:
    """A client that learns what progress foretold polls jobs of the type with fewer GETs
    than one that learns durations only, and still sees 95 % of them end within 5 % of
    their duration."""
    durations_only, learning = DurationStats(), DurationStats()
    _run_many(shape, durations_only, 40, seed=1, progress=False)
    _run_many(shape, learning, 40, seed=1, progress=True)
    assert len(durations_only.time_left) == 0 and len(learning.time_left) > 0
    plain = _run_many(shape, durations_only, 60, seed=2, progress=False)
    learned = _run_many(shape, learning, 60, seed=2, progress=True)
    mean_gets = [sum(g for g, _ in runs) / len(runs) for runs in (plain, learned)]
    assert mean_gets[1] < mean_gets[0]
    p95 = sorted(late for _, late in learned)[int(0.95 * len(learned))]
    assert p95 < 0.05


def test_ended_teaches_only_with_a_type_an_origin_and_learning_on() -> None:
    stats = DurationStats()
    run = poll(_job("linear", 20.0), 20.0, PollPolicy(), stats=stats, told_type=True, learn=True)
    assert run.gets >= 2 and len(stats.time_left) > 0
    off = DurationStats()
    policy = PollPolicy(learn_durations=False)
    poll(_job("linear", 20.0), 20.0, policy, stats=off, told_type=True, learn=True)
    assert len(off.time_left) == 0


async def test_a_handle_teaches_its_types_time_left_when_its_action_is_done(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A handle that saw progress and then DONE teaches the type's time left; FAILED does
    not (its progress foretold no finish)."""
    learned = client.async_actions.durations.time_left
    done, failed = emulator.add_action(duration=None), emulator.add_action(duration=None)
    with fast_polling():
        handles = {}
        for action_id in (done, failed):
            emulator.set_progress(action_id, 40)
            handles[action_id] = client.async_actions.handle(action_id)
            await emulator.wait_for_requests(2, action_id=action_id)  # it has seen 40
        emulator.finish(failed, "FAILED")
        with pytest.raises(AsyncActionFailed):
            await handles[failed]
        assert len(learned) == 0
        emulator.finish(done)
        await handles[done]
    assert len(learned) == 1


def test_what_was_learned_can_be_saved_and_restored() -> None:
    """to_dict() is JSON-ready and update() restores it (bad pairs skipped); a restored
    type predicts what the original does."""
    learned = _learned_linear()
    saved = json.loads(json.dumps(learned.to_dict()))
    assert list(saved) == [TYPE] and all(len(pair) == 2 for pair in saved[TYPE])
    restored = TimeLeft()
    bad = [[0, 1.0], [100, 1.0], [50, 0.0], [50, -1.0], [50, math.inf], [50.5, 1.0], [True, 1.0],
           ["50", 1.0], [50], 7]  # fmt: skip
    assert restored.update({TYPE: [*saved[TYPE], *bad], "": [[50, 1.0]]}) == len(saved[TYPE])
    assert len(restored) == len(learned)
    assert restored.near(TYPE, 40) == pytest.approx(learned.near(TYPE, 40))


def test_a_job_whose_progress_went_back_teaches_nothing() -> None:
    """A second run's readings, set against the action's age, would mislead the type."""
    for values, taught in (((20, 40, 60), True), ((20, 40, 10, 60), False)):
        stats = DurationStats()
        schedule = PollSchedule(PollPolicy(), random.Random(1), started=0.0, stats=stats)
        for i, value in enumerate(values, 1):
            schedule.next_delay(5.0 * i, True, value, created=0.0, action_type=TYPE)
        schedule.ended(30.0, 29.0, TYPE)
        assert (len(stats.time_left) > 0) is taught
