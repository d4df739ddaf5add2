"""The engine inside a real handle: a watcher's pace, created_at mapped through the Date
header, and durations learned from what the client sees (emulator over HTTP, no sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from voucherify_async import (
    AsyncActionHandle,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PollPolicy,
    VoucherifyClient,
    instrumentation,
)
from voucherify_async.testing import VoucherifyEmulator

MakeClient = Callable[..., VoucherifyClient]

#: A slow schedule: 30 s between polls, so any quick poll comes from a watcher.
SLOW = PollPolicy(initial_delay=30.0, multiplier=1.0, jitter=0.0, learn_durations=False)


def _next_poll_in(handle: AsyncActionHandle) -> float | None:
    timer = handle._timer
    return None if timer is None else timer.when() - asyncio.get_running_loop().time()


async def test_a_watcher_sets_the_pace_then_the_schedule_resumes(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """updates(every=...) brings a distant poll forward and keeps the pace while it runs;
    once it ends, the next poll is planned by the policy again."""
    client = make_client(poll_policy=SLOW)
    action_id = emulator.add_action(duration=None)
    handle = client.async_actions.handle(action_id)
    await emulator.wait_for_requests(1, timeout=10, action_id=action_id)
    events: list[instrumentation.PollEvent] = []
    resumed = asyncio.Event()

    def hook(event: instrumentation.PollEvent) -> None:
        events.append(event)
        if watching_ended and event.reason != "watched":
            resumed.set()

    watching_ended = False
    instrumentation.set_on_poll_hooks([hook])
    try:
        updates = handle.updates(every=0.05)
        first = await anext(updates)  # the snapshot already seen
        assert first.id == action_id
        await emulator.wait_for_requests(4, timeout=10, action_id=action_id)
        await updates.aclose()
        watching_ended = True
        # The poll already due (within 0.05 s) plans its successor without the watcher.
        async with asyncio.timeout(10):
            await resumed.wait()
    finally:
        instrumentation.set_on_poll_hooks([])
    assert [e.reason for e in events[:3]] == ["watched"] * 3
    later = _next_poll_in(handle)
    assert later is not None and later > 10.0
    handle.cancel()


async def test_every_must_be_positive_seconds(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """every is None or a finite number > 0; anything else is refused at the first step."""
    client = make_client(poll_policy=SLOW)
    handle = client.async_actions.handle(emulator.add_action(duration=None))
    for bad, error in [(0, InvalidArgumentError), (float("inf"), InvalidArgumentError)]:
        with pytest.raises(error):
            await anext(handle.updates(every=bad))
    with pytest.raises(InvalidArgumentTypeError):
        await anext(handle.updates(every="2"))  # type: ignore[arg-type]
    handle.cancel()


async def test_created_at_maps_to_no_earlier_than_the_truth(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """created_at, mapped through the Date header, lands at or after the real creation and
    within the header's one-second resolution (plus the request's time) of it."""
    client = make_client(poll_policy=SLOW)
    loop = asyncio.get_running_loop()
    before = loop.time()
    action_id = emulator.add_action(duration=None)
    handle = client.async_actions.handle(action_id)
    updates = handle.updates()
    async with asyncio.timeout(10):
        await anext(updates)  # the first snapshot
    await updates.aclose()
    after = loop.time()
    created = handle._created_on_loop_clock()
    assert created is not None
    assert before - 0.005 <= created <= after + 1.0
    assert client._transport.server_offset is not None
    assert abs(client._transport.server_offset - (time.time() - time.monotonic())) < 2.0
    handle.cancel()


async def test_durations_are_learned_from_gets_handles_and_lists(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """DONE snapshots teach the client each type's durations, each action once."""
    quick = PollPolicy(initial_delay=0.02, max_delay=0.02, min_delay=0.02)
    client = make_client(poll_policy=quick)
    stats = client.async_actions.durations
    ids = [emulator.add_action("ORDERS.IMPORT", duration=0.05) for _ in range(5)]
    await client.async_actions.wait_all(ids, timeout=30)
    assert stats.quantile("ORDERS.IMPORT", 0.5) == pytest.approx(0.05, abs=0.01)
    for action_id in ids:
        await client.async_actions.get(action_id)  # the same actions: not counted again
    assert len(stats) == 5
    for _ in range(6):
        emulator.add_action("SKUS.IMPORT_CSV", duration=0.0)
    page = await client.async_actions.list(limit=20)
    assert len(page.async_actions) == 11
    assert stats.quantile("SKUS.IMPORT_CSV", 1.0) == pytest.approx(0.0, abs=0.01)
    assert len(stats) == 11
    warm = VoucherifyClient("a", "b", base_url=emulator.base_url)
    warm.async_actions.durations.update(stats.to_dict())
    assert warm.async_actions.durations.to_dict() == stats.to_dict()
    await warm.close()


def test_the_live_view_paces_its_rows() -> None:
    """The command's live view polls each row every 2 s, slower with many rows (5 GETs/s)."""
    from voucherify_async._cli._view import live_pace

    assert live_pace(1) == 2.0
    assert live_pace(10) == 2.0
    assert live_pace(100) == 20.0
