"""The client-wide request gate: concurrency, the sliding-window budget, pauses, fairness."""

from __future__ import annotations

import asyncio
import time

import pytest

from voucherify_async import ConfigurationError, VoucherifyClient
from voucherify_async._pacing import LocalGate


async def _use(gate: LocalGate, log: list[tuple[float, float]], hold: float = 0.0) -> None:
    admission = await gate.acquire()
    sent = time.monotonic()
    try:
        if hold:
            await asyncio.sleep(hold)  # stands in for the request's own duration
    finally:
        log.append((sent, time.monotonic()))
        gate.release(admission, answered=True)


async def test_window_counts_from_each_response() -> None:
    """A slot is free only `window` after its request ended: no window holds more than `limit`."""
    window, limit = 0.3, 5
    gate = LocalGate(concurrency=100, limit=limit, window=window)
    log: list[tuple[float, float]] = []
    await asyncio.gather(*(_use(gate, log, hold=0.02) for _ in range(12)))
    sends = sorted(sent for sent, _ in log)
    ends = sorted(end for _, end in log)
    # The (limit+1)-th send comes only after the first request ended plus a window.
    for i in range(limit, len(sends)):
        assert sends[i] >= ends[i - limit] + window - 0.005


async def test_fifo_order_under_budget() -> None:
    """Callers are admitted in the order they arrived (the longest waiter first)."""
    gate = LocalGate(concurrency=1, limit=1, window=0.05)
    order: list[int] = []

    async def take(n: int) -> None:
        admission = await gate.acquire()
        order.append(n)
        gate.release(admission, answered=True)

    await asyncio.gather(*(take(n) for n in range(6)))
    assert order == list(range(6))


async def test_pause_holds_everyone() -> None:
    """pause() admits nobody until it ends, and never shortens a longer pause."""
    gate = LocalGate(concurrency=10)
    gate.pause(0.2)
    gate.pause(0.05)
    assert gate.paused_for > 0.15
    started = time.monotonic()
    admission = await gate.acquire()
    gate.release(admission, answered=True)
    assert time.monotonic() - started >= 0.19


async def test_cancelled_waiter_gives_its_place_back() -> None:
    """A caller cancelled while queued takes no admission with it."""
    gate = LocalGate(concurrency=1)
    first = await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release(first, answered=True)
    again = await asyncio.wait_for(gate.acquire(), timeout=1)  # the admission is free again
    gate.release(again, answered=True)
    assert gate.waiting == 0


@pytest.mark.parametrize(
    "options",
    [{"max_concurrency": 0}, {"requests_per_minute": 0}, {"budget_window": 0}, {"timeout": -1}],
)
def test_bad_pacing_options(options: dict[str, float]) -> None:
    """Nonsense pacing options are a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        VoucherifyClient("a", "b", base_url="http://127.0.0.1:1", **options)  # type: ignore[arg-type]
