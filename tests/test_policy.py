"""PollPolicy validation and the schedule it produces, adaptive mode included."""

from __future__ import annotations

import asyncio
import random

import attrs
import pytest

from voucherify_async import PollPolicy, VoucherifyClient
from voucherify_async._polling.schedule import PollSchedule
from voucherify_async.testing import VoucherifyEmulator, fast_polling


def test_policy_is_frozen_attrs() -> None:
    """PollPolicy is an attrs frozen class: evolve, don't mutate."""
    policy = PollPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.timeout = 3  # type: ignore[misc]
    assert attrs.evolve(policy, timeout=3.0).timeout == 3.0


@pytest.mark.parametrize(
    "options",
    [
        {"initial_delay": 0},
        {"multiplier": 0.5},
        {"max_delay": -1},
        {"jitter": 1.0},
        {"timeout": 0},
        {"stall_timeout": float("nan")},
        {"first_poll_after": -1},
    ],
)
def test_nonsense_is_refused(options: dict[str, float]) -> None:
    """Out-of-range values raise ValueError at construction."""
    with pytest.raises(ValueError):
        PollPolicy(**options)  # type: ignore[arg-type]


def test_default_growth_suits_short_jobs() -> None:
    """Default delays: 0.6 s, 0.9 s, 1.35 s... capped at 120 s: a 1.3 s job costs 3 GETs."""
    delays = PollPolicy().delays()
    first = [next(delays) for _ in range(16)]
    assert first[:3] == pytest.approx([0.6, 0.9, 1.35])
    assert max(first) == 120.0
    # Polls at 0, 0.6, 1.5 (+/-10 % jitter on each delay): the third poll is past 1.3 s.
    assert 0.6 * 0.9 + 0.9 * 0.9 >= 1.3


def test_jitter_stays_in_bounds() -> None:
    """Jitter multiplies a delay by a factor in [1 - j, 1 + j], never above max_delay."""
    policy = PollPolicy(jitter=0.2, max_delay=10)
    rng = random.Random(7)
    values = [policy.jittered(5.0, rng) for _ in range(500)]
    assert min(values) >= 4.0 and max(values) <= 6.0
    assert max(policy.jittered(10.0, rng) for _ in range(100)) == 10.0


def test_adaptive_polls_before_the_predicted_finish_and_at_it_when_sure() -> None:
    """Linear progress of 1 %/s, true end at 100 s: with two readings the poll comes before
    the end, early by the estimate's doubt; once 95 is read, it lands just before 100."""
    schedule = PollSchedule(PollPolicy(jitter=0, max_lateness=None, max_delay=1000))
    assert schedule.next_delay(11.0, True, 11) == (0.6, "backoff")  # first sample: no rate yet
    delay, reason = schedule.next_delay(23.0, True, 23)  # 12 points in 12 s, 77 to go
    assert reason == "adaptive"
    assert 23.0 + 0.3 * 77 <= 23.0 + delay < 100.0
    delay, reason = schedule.next_delay(95.0, True, 95)  # 5 s to go at 1 %/s
    assert reason == "adaptive"
    assert 98.0 <= 95.0 + delay <= 100.0


def test_adaptive_off_or_no_progress_uses_growth() -> None:
    """Without adaptive mode, or without progress, the growth schedule decides."""
    fixed = PollSchedule(PollPolicy(jitter=0, adaptive=False))
    assert fixed.next_delay(0.0, True, 10)[1] == "backoff"
    assert fixed.next_delay(10.0, True, 50)[1] == "backoff"
    enqueued = PollSchedule(PollPolicy(jitter=0, max_lateness=None))
    assert enqueued.next_delay(0.0, False, None) == (0.6, "backoff")
    assert enqueued.next_delay(1.0, False, None) == (pytest.approx(0.9), "backoff")
    # With the bound, silent gaps are at most half of it (a quarter of the wait, f = 0.5),
    # counted from the first poll when the handle's start is not given.
    silent = PollSchedule(PollPolicy(jitter=0))
    assert silent.next_delay(0.0, False, None) == (0.6, "backoff")
    assert silent.next_delay(1.0, False, None) == (0.6, "backoff")
    assert silent.next_delay(10.0, False, None) == (pytest.approx(1.35), "backoff")
    assert silent.next_delay(100.0, False, None) == (pytest.approx(2.025), "backoff")
    assert silent.next_delay(200.0, False, None) == (pytest.approx(3.0375), "backoff")


def test_progress_going_back_restarts_the_estimate() -> None:
    """A progress that drops (a retried stage) discards the old run: the new one began
    after the poll before it, and its pace counts from there (10 points in 1 s), not from
    the old readings; its lateness bound counts from there too."""
    schedule = PollSchedule(PollPolicy(jitter=0, max_lateness=None))
    schedule.next_delay(0.0, True, 50)
    schedule.next_delay(0.5, True, 60)
    delay, reason = schedule.next_delay(1.5, True, 10)
    assert reason == "adaptive"
    # At least 10 points a second since the new run began (at 0.5 s at the earliest),
    # taken DOUBT (15 %) faster: 90 points to go in at most 90 / 11.5 s.
    assert 0 < delay <= 90 / (10 * 1.15)
    bounded = PollSchedule(PollPolicy(jitter=0))
    bounded.next_delay(0.0, True, 50)
    bounded.next_delay(100.0, True, 60)
    assert bounded.bound(100.0) == 50.0
    bounded.next_delay(101.0, True, 10)
    assert bounded.bound(101.0) == 0.6  # 1 s into the new run


def test_fast_polling_caps_own_delays() -> None:
    """Under fast_polling() every delay of the schedule is at most the cap."""
    schedule = PollSchedule(PollPolicy())
    with fast_polling(0.002):
        assert schedule.next_delay(0.0, False, None)[0] <= 0.002
    assert schedule.next_delay(1.0, False, None)[0] > 0.5


async def test_a_start_helper_tells_the_handle_its_type(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A handle from a start helper knows its type before its first GET: with 20-40 s
    learned for VOUCHERS.IMPORT, its first poll is planned 10 s (0.5 x the learned floor)
    after the start; a handle from a bare id, whose type and age are unknown (it may be
    over), polls at once whatever was learned."""
    durations = client.async_actions.durations
    for i in range(10):
        durations.add("VOUCHERS.IMPORT", 20.0 + 2 * i)
    loop = asyncio.get_running_loop()
    started = await client.async_actions.start_vouchers_import([{"code": "A"}])
    assert started._timer is not None and started.started_at is not None
    assert started._timer.when() - started.started_at == pytest.approx(10.0)
    bare = client.async_actions.handle(emulator.add_action(type="VOUCHERS.IMPORT", duration=None))
    assert bare._timer is None or bare._timer.when() - loop.time() <= 0.01
    started.cancel()
    bare.cancel()
