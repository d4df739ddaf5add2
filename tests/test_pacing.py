"""The client-wide request gate: concurrency, the sliding-window budget, pauses, fairness."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _servers import action_json, serve
from aiohttp import web

from voucherify_async import (
    ClientClosedError,
    ConfigurationError,
    TransportError,
    VoucherifyClient,
)
from voucherify_async._pacing import ABANDONED_HOLD, LocalGate, ServerPause
from voucherify_async.testing import VoucherifyEmulator, fast_polling


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


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_unanswered_request_holds_its_slot_past_its_timeout() -> None:
    """A request cancelled mid-flight may still reach the server up to its timeout later: its
    slot frees a window after admitted + unanswered_hold, not a window after the cancel."""
    clock = FakeClock()
    gate = LocalGate(concurrency=10, limit=2, window=60.0, unanswered_hold=30.0, clock=clock)
    first = await gate.acquire()
    second = await gate.acquire()
    clock.now += 0.05
    gate.release(first, answered=False)  # cancelled 50 ms after it was sent
    gate.release(second, answered=True)
    assert gate._next_admission_in(clock.now) == pytest.approx(60.0 - 0.0)  # the answered one
    clock.now += 60.0  # the answered slot is free; the unanswered one is not
    third = await gate.acquire()
    gate.release(third, answered=True)
    clock.now = 1000.0 + 30.0 + 60.0 - 0.001
    assert gate._next_admission_in(clock.now) == pytest.approx(0.001, abs=1e-6)
    clock.now += 0.002
    fourth = await gate.acquire()  # admitted + hold + window has passed
    gate.release(fourth, answered=True)


async def test_admitted_then_cancelled_before_sending_frees_at_once() -> None:
    """A waiter admitted and cancelled before it could send gives its slot straight back."""
    clock = FakeClock()
    gate = LocalGate(concurrency=1, limit=5, window=60.0, clock=clock)
    holder = await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    gate.release(holder, answered=True)  # admits the waiter (its future gets the admission)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.in_flight == 0
    # 1 answered request in the window: 4 slots left, none lost to the cancelled waiter.
    admissions = [await gate.acquire() for _ in range(1)]
    assert gate._pending + len(gate._finished) == 2
    for admission in admissions:
        gate.release(admission, answered=True)


async def test_server_allowance_caps_what_is_in_flight() -> None:
    """Without a budget of its own, the gate sends no more than X-Rate-Limit-Remaining: the
    first request alone, then as many as its answer allows, requests in flight counted."""
    gate = LocalGate(concurrency=50, probe_first=True)
    first = await gate.acquire()
    second = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    assert not second.done()  # the first request goes alone: nothing is known yet
    gate.observe_allowance(2, 100)  # the first one's answer: 2 more allowed
    gate.release(first, answered=True)
    admitted = [await asyncio.wait_for(second, timeout=10)]
    admitted.append(await asyncio.wait_for(gate.acquire(), timeout=10))
    third = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    assert not third.done() and gate.in_flight == 2 and gate.server_limit == 100
    gate.observe_allowance(1, 100)  # one answer: 1 left, the other request still in flight
    gate.release(admitted.pop(), answered=True)
    await asyncio.sleep(0)
    assert not third.done()  # 1 allowed, 1 in flight that the server may not have counted
    gate.observe_allowance(5, 100)
    gate.release(admitted.pop(), answered=True)
    gate.release(await asyncio.wait_for(third, timeout=10), answered=True)
    gate.close()


async def test_server_without_rate_headers_is_not_throttled() -> None:
    """A server that never sends the headers: after the first answer, no allowance applies."""
    gate = LocalGate(concurrency=50, probe_first=True)
    gate.release(await gate.acquire(), answered=True)
    admissions = [await asyncio.wait_for(gate.acquire(), timeout=10) for _ in range(20)]
    assert gate.in_flight == 20
    for admission in admissions:
        gate.release(admission, answered=True)


async def test_close_fails_waiters_and_later_callers() -> None:
    """close() ends every queued acquire() with ClientClosedError, and every later one."""
    gate = LocalGate(concurrency=1)
    holder = await gate.acquire()
    waiters = [asyncio.ensure_future(gate.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    gate.close()
    for waiter in waiters:
        with pytest.raises(ClientClosedError):
            await waiter
    with pytest.raises(ClientClosedError):
        await gate.acquire()
    gate.release(holder, answered=True)  # a late release after close is harmless


async def test_a_pause_longer_than_max_wait_is_refused_at_once() -> None:
    """acquire(max_wait) raises ServerPause instead of waiting out a longer pause, including
    for callers already queued when the pause begins."""
    clock = FakeClock()
    gate = LocalGate(concurrency=1, clock=clock)
    holder = await gate.acquire()
    queued = asyncio.ensure_future(gate.acquire(max_wait=10.0))
    patient = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    gate.pause(600.0)
    with pytest.raises(ServerPause):
        await queued
    with pytest.raises(ServerPause):
        await gate.acquire(max_wait=120.0)
    assert not patient.done()  # no bound: it waits the pause out
    patient.cancel()
    gate.release(holder, answered=True)


@pytest.mark.parametrize("seconds", [float("nan"), float("-inf"), -1.0, 0.0])
def test_pause_ignores_nonsense(seconds: float) -> None:
    """pause() with NaN, a negative or zero length pauses nothing (NaN would poison timers)."""
    gate = LocalGate(concurrency=1)
    gate.pause(seconds)
    assert gate.paused_for == 0.0


async def test_a_client_without_a_budget_never_overruns_the_server() -> None:
    """requests_per_minute=None against a server allowing 4 per window: once a first answer
    has said so, every call succeeds and the server sees none over its allowance (no 429)."""
    async with VoucherifyEmulator(requests_per_minute=4, rate_limit_window=1.0) as emu:
        ids = [emu.add_action(duration=0) for _ in range(10)]
        async with VoucherifyClient("app", "token", base_url=emu.base_url) as client:
            await client.async_actions.get(ids[0])  # before any answer nothing is known
            actions = await asyncio.wait_for(
                asyncio.gather(*(client.async_actions.get(i) for i in ids)), timeout=60
            )
        assert [a.id for a in actions] == ids
        assert [r.status for r in emu.requests] == [200] * 11


def test_requests_per_hour_is_a_budget_per_hour() -> None:
    """requests_per_hour=100 is a sliding window of an hour; budgets are exclusive."""
    client = VoucherifyClient("app", "token", requests_per_hour=100)
    gate = client._gate
    assert isinstance(gate, LocalGate)
    assert (gate._limit, gate._window) == (100, 3600.0)
    with pytest.raises(ConfigurationError, match="one of"):
        VoucherifyClient("app", "token", requests_per_hour=100, requests_per_minute=5)


async def test_client_without_budget_sends_its_first_request_alone() -> None:
    """With requests_per_minute=None nothing is known of the account's allowance until an
    answer carries X-Rate-Limit-Remaining: the client's first request goes alone (held by
    the server until the test lets it answer), then no more than the allowance it said."""
    in_flight, most, seen = 0, 0, []
    first_arrived, answer_first = asyncio.Event(), asyncio.Event()

    async def action(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        seen.append(in_flight)
        try:
            if len(seen) == 1:
                first_arrived.set()
                await answer_first.wait()
            else:
                await asyncio.sleep(0)  # let the others arrive if the client sent them
            body = action_json(request.match_info["id"], "2026-11-30T12:00:00Z")
            return web.json_response(body, headers={"X-Rate-Limit-Remaining": "3"})
        finally:
            in_flight -= 1

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", action)
    async with serve(app) as url:
        client = VoucherifyClient("a", "b", base_url=url, max_concurrency=20)
        try:
            async with asyncio.timeout(30):
                gets = [
                    asyncio.ensure_future(client.async_actions.get(f"aa_{i}")) for i in range(10)
                ]
                await first_arrived.wait()
                gate = client._gate
                assert isinstance(gate, LocalGate)
                for _ in range(10_000):  # until every get() has asked the gate
                    if gate.waiting + gate.in_flight == 10:
                        break
                    await asyncio.sleep(0)
                assert gate.in_flight == 1 and gate.waiting == 9 and len(seen) == 1
                answer_first.set()
                await asyncio.gather(*gets)
        finally:
            await client.close()
    assert len(seen) == 10 and most <= 3


class _BudgetOnClock:
    """A budget of *limit* requests per 2 s on the test's clock (``budget=`` takes it)."""

    def __init__(self, clock: FakeClock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.gate: LocalGate | None = None

    def make_gate(
        self, *, concurrency: int, unanswered_hold: float, account: str | None
    ) -> LocalGate:
        self.gate = LocalGate(
            concurrency=concurrency,
            limit=self.limit,
            window=2.0,
            unanswered_hold=unanswered_hold,
            clock=self.clock,
        )
        return self.gate


@contextlib.asynccontextmanager
async def _dropping_server(
    mode: str, requests: list[int], read: asyncio.Event | None = None
) -> AsyncIterator[str]:
    """A raw server that reads each request and then drops its connection: ``"close"``
    closes it, ``"reset"`` resets it, ``"hang"`` never answers (and sets *read*)."""

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            requests.append(1)
            if mode == "hang":
                assert read is not None
                read.set()
                await reader.read()  # until the client gives up
            elif mode == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("mode", ["close", "reset"])
async def test_a_connection_the_server_dropped_frees_its_slot_a_window_after_its_end(
    mode: str,
) -> None:
    """Requests whose connection the server closed (before answering, or by a reset) free
    their slots a window after they ended, not a window after admitted + the timeout."""
    clock = FakeClock()
    budget = _BudgetOnClock(clock, limit=5)
    requests: list[int] = []
    async with asyncio.timeout(20), _dropping_server(mode, requests) as url:
        client = VoucherifyClient("a", "b", base_url=url, budget=budget, max_retries=4)
        async with client:
            with fast_polling():
                with pytest.raises(TransportError):
                    await client.async_actions.get("aa_1")  # 5 attempts: the whole budget
                assert len(requests) == 5
                gate = budget.gate
                assert gate is not None
                # Every slot frees 2 s after its (dropped) end; not 2 s after admitted + 30 s.
                assert gate._next_admission_in(clock.now) == pytest.approx(2.0)
                clock.now += 2.0
                assert gate._next_admission_in(clock.now) == 0.0
                with pytest.raises(TransportError):
                    await client.async_actions.get("aa_2")
    assert len(requests) == 10


async def test_a_request_the_client_abandoned_keeps_the_long_hold() -> None:
    """A request the client cancelled may still reach the server: its slot is held a window
    after admitted + the request timeout (30 s by default)."""
    clock = FakeClock()
    budget = _BudgetOnClock(clock, limit=1)
    requests: list[int] = []
    read = asyncio.Event()
    async with (
        asyncio.timeout(20),
        _dropping_server("hang", requests, read) as url,
        VoucherifyClient("a", "b", base_url=url, budget=budget) as client,
    ):
        call = asyncio.ensure_future(client.async_actions.get("aa_1"))
        await read.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        gate = budget.gate
        assert gate is not None
        assert gate._next_admission_in(clock.now) == pytest.approx(30.0 + 2.0)


@pytest.mark.parametrize("timeout", [0.2, 120.0])
async def test_a_request_abandoned_on_a_short_timeout_keeps_the_long_hold(timeout: float) -> None:
    """A short request timeout does not shorten the hold of an abandoned request: a stalled
    server may read it from its socket later, so its slot is held a window after admitted +
    max(timeout, ABANDONED_HOLD); a longer timeout holds longer."""
    clock = FakeClock()
    budget = _BudgetOnClock(clock, limit=1)
    requests: list[int] = []
    read = asyncio.Event()
    async with (
        asyncio.timeout(20),
        _dropping_server("hang", requests, read) as url,
        VoucherifyClient(
            "a", "b", base_url=url, budget=budget, timeout=timeout, max_retries=0
        ) as client,
    ):
        call = asyncio.ensure_future(client.async_actions.get("aa_1"))
        if timeout < 1:  # the client's timeout gives up on it (read by the server or not)
            with pytest.raises(TransportError, match="timed out"):
                await call
        else:
            await read.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        gate = budget.gate
        assert gate is not None
        hold = max(timeout, ABANDONED_HOLD)
        assert gate._next_admission_in(clock.now) == pytest.approx(hold + 2.0)
    assert ABANDONED_HOLD >= 30.0


async def test_a_stale_remaining_arriving_late_does_not_raise_the_allowance() -> None:
    """Without a budget, answers that come back out of order: the answer to an earlier request
    (Remaining 2, counted before the later one) arrives after the later one's (Remaining 1).
    The stale figure is not believed, so one request goes next, not two."""
    ids = [f"aa_{i}" for i in range(1, 6)]
    arrived = {i: asyncio.Event() for i in ids}
    release = {i: asyncio.Event() for i in ids}
    remaining = dict.fromkeys(ids, 5)
    remaining["aa_1"] = 2
    release["aa_1"].set()

    async def get_action(request: web.Request) -> web.Response:
        action_id = request.match_info["id"]
        arrived[action_id].set()
        await release[action_id].wait()
        headers = {"X-Rate-Limit-Limit": "5", "X-Rate-Limit-Remaining": str(remaining[action_id])}
        body = action_json(action_id, "2026-01-01T00:00:00.000Z")
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", get_action)
    async with asyncio.timeout(20), serve(app) as url:
        client = VoucherifyClient("a", "b", base_url=url)
        async with client:
            calls = {i: asyncio.create_task(client.async_actions.get(i)) for i in ids}
            try:
                await _answer_out_of_order(client, calls, arrived, release, remaining)
            finally:
                for i in ids:
                    release[i].set()
            await asyncio.gather(*calls.values())


async def _answer_out_of_order(
    client: VoucherifyClient,
    calls: dict[str, asyncio.Task[Any]],
    arrived: dict[str, asyncio.Event],
    release: dict[str, asyncio.Event],
    remaining: dict[str, int],
) -> None:
    await arrived["aa_2"].wait()
    await arrived["aa_3"].wait()
    remaining["aa_3"] = 1  # the server counted aa_2 and aa_3: one left
    release["aa_3"].set()
    await calls["aa_3"]
    remaining["aa_2"] = 2  # computed when only aa_2 was counted: stale now
    release["aa_2"].set()
    await calls["aa_2"]
    await arrived["aa_4"].wait()
    gate = client._transport._gate
    assert isinstance(gate, LocalGate)
    assert gate.in_flight == 1 and not arrived["aa_5"].is_set()
