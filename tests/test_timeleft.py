"""Learned time left (voucherify_async._polling.timeleft): what handles teach it, its bounds,
and saving and restoring it."""

from __future__ import annotations

import json
import math
import random

import pytest
from _polling import _job, poll

from voucherify_async import AsyncActionFailed, PollPolicy, VoucherifyClient
from voucherify_async._polling.durations import DurationStats
from voucherify_async._polling.schedule import PollSchedule
from voucherify_async._polling.timeleft import MAX_TYPES, PER_TYPE, TimeLeft
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
    assert exact.to_dict() == {TYPE: [[20, pytest.approx(1.0)]]}


def test_memory_is_bounded() -> None:
    learned = TimeLeft()
    for i in range(PER_TYPE + 100):
        learned.learn(TYPE, [(1.0, 1 + i % 98)], 50.0)
    assert len(learned) == PER_TYPE
    for i in range(MAX_TYPES + 10):
        learned.learn(f"TYPE.{i}", [(1.0, 50)], 3.0)
    assert len(learned._by_type) == MAX_TYPES  # types kept
    assert TYPE not in learned.to_dict()  # the least recently taught type was forgotten


def test_ended_teaches_only_with_a_type_an_origin_and_learning_on() -> None:
    stats = DurationStats()
    run = poll(
        _job("linear", 20.0),
        20.0,
        PollPolicy(),
        stats=stats,
        told_type=True,
        learn=True,
        known_start=True,
    )
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
    again, original = restored.to_dict()[TYPE], learned.to_dict()[TYPE]
    assert [p for p, _ in again] == [p for p, _ in original]
    assert [r for _, r in again] == pytest.approx([r for _, r in original])


def test_a_job_whose_progress_went_back_teaches_nothing() -> None:
    """A second run's readings, set against the action's age, would mislead the type."""
    for values, taught in (((20, 40, 60), True), ((20, 40, 10, 60), False)):
        stats = DurationStats()
        schedule = PollSchedule(
            PollPolicy(), random.Random(1), started=0.0, stats=stats, known_start=True
        )
        for i, value in enumerate(values, 1):
            schedule.next_delay(5.0 * i, True, value, created=0.0, action_type=TYPE)
        schedule.ended(30.0, 29.0, TYPE)
        assert (len(stats.time_left) > 0) is taught
