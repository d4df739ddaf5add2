"""What a server may send, through the real client: skewed Date headers and any snapshot
sequence, against a small aiohttp server of the test's own on 127.0.0.1.

- The server offset comes from successful answers only, and a skewed Date among sane ones
  never moves it out of the range the sane ones span (an hour-ahead 503 or 200 included).
- A handle polled through any sequence of (status, progress, created_at, Date) plans every
  delay finite and within [min_delay, max_delay], never raises, and ends with the DONE the
  server finally sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import time
from typing import Any

import pytest
from _servers import serve
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from voucherify_async import PollPolicy, VoucherifyClient
from voucherify_async.instrumentation import PollEvent, get_on_poll_hooks, set_on_poll_hooks

ACTION = "aa_clock"


def _action(status: str, progress: int | None, created_at: str) -> dict[str, Any]:
    return {
        "id": ACTION,
        "type": "VOUCHERS.IMPORT",
        "status": status,
        "created_at": created_at,
        "updated_at": created_at,
        "request_id": "v-req",
        "processing_time": 1000 if status == "DONE" else None,
        "progress": progress,
        "object": "async_action",
    }


class _Scripted:
    """Answers GET /v1/async-actions/{id} from a script: (HTTP status, action status,
    progress, created_at, Date header or None for the server's own)."""

    def __init__(self, script: list[tuple[int, str, int | None, str, str | None]]) -> None:
        self.script = script
        self.served = 0

    async def handle(self, request: web.Request) -> web.Response:
        step = self.script[min(self.served, len(self.script) - 1)]
        self.served += 1
        code, status, progress, created_at, date = step
        headers = {"Date": date} if date is not None else {}
        if code != 200:
            return web.json_response(
                {"code": code, "message": "busy"}, status=code, headers=headers
            )
        return web.json_response(_action(status, progress, created_at), headers=headers)


async def _client(server: _Scripted, stack: Any, **options: Any) -> VoucherifyClient:
    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", server.handle)
    url = await stack.enter_async_context(serve(app))
    client = VoucherifyClient("a", "b", base_url=url, **options)
    stack.push_async_callback(client.close)
    return client


def _date(offset: float = 0.0) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


async def test_one_skewed_date_among_sane_ones_does_not_move_the_offset() -> None:
    """Sane Date headers, then an hour-ahead one on a 503 (error pages never count) and on a
    200 (one of nine cannot move the median): the offset stays within what the sane answers
    gave. The old rule kept the highest offset ever seen: an hour."""
    created = "2024-01-01T00:00:00Z"
    sane = [(200, "IN_PROGRESS", 10, created, None)] * 6
    skewed = [
        (503, "IN_PROGRESS", 10, created, _date(3600)),
        (200, "IN_PROGRESS", 10, created, _date(3600)),
    ]
    server = _Scripted([*sane, *skewed, *sane])
    async with contextlib.AsyncExitStack() as stack:
        client = await _client(server, stack)
        transport = client.async_actions._transport
        offsets = []
        for _ in range(6):
            await client.async_actions.get(ACTION)
            assert transport.server_offset is not None
            offsets.append(transport.server_offset)
        await client.async_actions.get(ACTION)  # the 503, retried: the skewed 200
        assert server.served == 8
        for _ in range(6):
            await client.async_actions.get(ACTION)
            assert transport.server_offset is not None
            offsets.append(transport.server_offset)
        truth = time.time() - time.monotonic()
        # Every offset is a sane one: within a second and a request of the truth.
        assert all(truth - 2.0 <= offset <= truth + 0.5 for offset in offsets)


_progress = st.none() | st.integers(-(2**53), 2**53) | st.integers(-30, 130)
_created = st.sampled_from(
    [
        "2024-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2024-01-01T00:00:00+14:00",
        "2099-01-01T00:00:00.123456Z",
    ]
)
_dates = st.sampled_from(
    [None, "garbage", "Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]
) | st.floats(-1e7, 1e7).map(_date)
_snapshot = st.tuples(
    st.sampled_from([200, 200, 200, 503]),
    st.sampled_from(["IN_PROGRESS", "IN_PROGRESS", "ENQUEUED"]),
    _progress,
    _created,
    _dates,
)


@pytest.mark.slow  # a server per example
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(_snapshot, min_size=1, max_size=25))
@example(  # the crash: -25 then 25 (a ZeroDivisionError in the old steady planner)
    script=[
        (200, "IN_PROGRESS", -25, "2024-01-01T00:00:00Z", None),
        (200, "IN_PROGRESS", 25, "2024-01-01T00:00:00Z", None),
        (200, "IN_PROGRESS", 25, "2024-01-01T00:00:00Z", None),
    ]
)
def test_any_snapshot_sequence_through_a_handle(
    script: list[tuple[int, str, int | None, str, str | None]],
) -> None:
    """Negative, > 100, backwards and huge progress, odd created_at and Date headers, error
    pages between: every delay the handle plans is finite and in [min_delay, max_delay],
    and it ends with the server's final DONE."""
    policy = PollPolicy(initial_delay=0.001, min_delay=0.001, max_delay=0.004)
    events: list[PollEvent] = []
    server = _Scripted([*script, (200, "DONE", 100, "2024-01-01T00:00:00Z", None)])

    async def run() -> None:
        async with contextlib.AsyncExitStack() as stack:
            client = await _client(server, stack, max_retries=0, poll_policy=policy)
            async with asyncio.timeout(20):
                action = await client.async_actions.handle(ACTION)
            assert action.status == "DONE"

    hooks = get_on_poll_hooks()
    set_on_poll_hooks([*hooks, events.append])
    try:
        asyncio.run(run())
    finally:
        set_on_poll_hooks(hooks)
    planned = [event for event in events if event.reason != "done"]
    assert planned and events[-1].reason == "done"
    for event in planned:
        assert math.isfinite(event.delay)
        assert policy.min_delay <= event.delay <= policy.max_delay, event
