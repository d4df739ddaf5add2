"""Admission order when the gate is the bottleneck: due times first, nobody starves.

No real time: the gate has a concurrency of one and every admission is released by hand.
"""

from __future__ import annotations

import asyncio

from voucherify_async._pacing import LocalGate
from voucherify_async._polling.admission import (
    MAX_ADVANCE,
    MAX_DEFERRAL,
    admission_key,
    polling_due,
)


async def _queue(
    gate: LocalGate, dues: list[float | None]
) -> tuple[list[int], list[asyncio.Task[None]]]:
    order: list[int] = []

    async def take(n: int, when: float | None) -> None:
        with polling_due(when):
            admission = await gate.acquire()
        order.append(n)
        gate.release(admission, answered=True)

    tasks = []
    for n, when in enumerate(dues):
        tasks.append(asyncio.ensure_future(take(n, when)))
        await asyncio.sleep(0)  # each starts waiting before the next arrives
    return order, tasks


async def test_overdue_polls_go_before_fresh_ones_and_users_keep_their_turn() -> None:
    """Waiting requests are admitted by due time: an action whose end may have passed goes
    before one just polled; a user's call (no due time) is due when made; ties are FIFO."""
    now = 1000.0
    gate = LocalGate(concurrency=1, clock=lambda: now)
    held = await gate.acquire()
    dues = [now + 5.0, None, now - 3.0, now + 5.0, now - 1.0, None]
    order, tasks = await _queue(gate, dues)
    gate.release(held, answered=True)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert order == [2, 4, 1, 5, 0, 3]


async def test_without_due_times_the_gate_is_fifo() -> None:
    """Nobody sets a due time: first come, first served, as before."""
    gate = LocalGate(concurrency=1, clock=lambda: 50.0)
    held = await gate.acquire()
    order, tasks = await _queue(gate, [None] * 8)
    gate.release(held, answered=True)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert order == list(range(8))


def test_due_times_are_clamped_so_nobody_starves() -> None:
    """A due time moves a request at most MAX_ADVANCE ahead of or MAX_DEFERRAL behind its
    arrival: a request is never passed by one that arrives much later."""
    assert admission_key(100.0, None) == 100.0
    assert admission_key(100.0, -1e9) == 100.0 - MAX_ADVANCE
    assert admission_key(100.0, 1e9) == 100.0 + MAX_DEFERRAL
    # A user's call at t=100 is passed by no request arriving after t=100 + MAX_ADVANCE.
    later = 100.0 + MAX_ADVANCE + 0.001
    assert admission_key(later, float("-inf")) > admission_key(100.0, None)


async def test_a_deferred_request_is_not_held_while_the_gate_has_room() -> None:
    """Order applies only among waiters: with room, a far-due request goes at once."""
    gate = LocalGate(concurrency=2, clock=lambda: 0.0)
    with polling_due(1e9):
        admission = await asyncio.wait_for(gate.acquire(), timeout=10)
    gate.release(admission, answered=True)


async def test_a_young_poll_waits_for_its_due_time_while_the_budget_is_short() -> None:
    """With most of the budget spent, a deferrable poll waits for its due time even with a
    free slot (a slot spent early is gone for a whole window); a user's call does not."""
    clock = [100.0]
    gate = LocalGate(concurrency=5, limit=10, window=60.0, clock=lambda: clock[0])
    for _ in range(2):  # 8 of 10 slots free: below the 90 % that lets young polls through
        gate.release(await gate.acquire(), answered=True)
    with polling_due(clock[0] + 5.0, defer=True):
        young = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    assert not young.done()
    user = await asyncio.wait_for(gate.acquire(), timeout=10)  # goes at once
    gate.release(user, answered=True)
    clock[0] += 5.0
    gate._reschedule()  # the gate's timer would do this once the due time comes
    admission = await asyncio.wait_for(young, timeout=10)
    gate.release(admission, answered=True)
    gate.close()
