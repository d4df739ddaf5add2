"""Every call ends, and nothing outlives close(): close, deadlines, pauses, resends, loops.

Each test talks HTTP to a server of its own on 127.0.0.1 (an aiohttp server, or a raw asyncio
server where the fault is below HTTP), synchronises on events the server sets, and bounds
itself with ``asyncio.timeout``: a hang fails instead of stalling the suite. The bounds are
far above what the behaviour needs (seconds where milliseconds suffice), so a busy machine
cannot fail them; what is asserted is the outcome and what the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import logging
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import (
    AsyncActionHandle,
    ClientClosedError,
    PollPolicy,
    PollTimeout,
    RateLimitError,
    ResponseDecodeError,
    TransportError,
    VoucherifyClient,
    VoucherifyError,
    WrongEventLoopError,
)
from voucherify_async._transport import MAX_BODY_BYTES

PREFIX = "/v1/async-actions"
#: No test here may take longer than this (seconds); each ends in well under one when idle.
BOUND = 20.0

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def action_body(action_id: str, status: str = "IN_PROGRESS", progress: int = 10) -> dict[str, Any]:
    return {"id": action_id, "type": "VOUCHERS.IMPORT", "status": status, "progress": progress}


@contextlib.asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[str]:
    """Serve *handler* on 127.0.0.1 and a free port; yield the base URL."""
    server = web.Server(handler)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server speaking HTTP by hand, for faults below HTTP; yield the base URL."""
    connections: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            await serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in list(connections):
            writer.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers of one request (GETs have no body)."""
    return await reader.readuntil(b"\r\n\r\n")


def http_response(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def client_for(url: str, **options: Any) -> VoucherifyClient:
    return VoucherifyClient(APP_ID, APP_TOKEN, base_url=url, **options)


async def until(predicate: Callable[[], bool]) -> None:
    """Let the loop run until *predicate* holds (bounded by the test's own timeout)."""
    for _ in range(int(BOUND * 1000)):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def our_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("voucherify-async")]


# --- close() ends every call -----------------------------------------------------------------


async def test_close_fails_calls_queued_behind_a_spent_budget() -> None:
    """A get() waiting for a budget slot ends with ClientClosedError when close() runs."""
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.path)
        return web.json_response(action_body(request.path.rsplit("/", 1)[1]))

    async with asyncio.timeout(BOUND), http_server(handler) as url:
        client = client_for(url, requests_per_minute=1)
        await client.async_actions.get("aa_1")
        queued = asyncio.ensure_future(client.async_actions.get("aa_2"))
        await until(lambda: client._gate.waiting > 0)  # type: ignore[attr-defined]
        await client.close()
        assert queued.done()  # ended by close(), not later
        with pytest.raises(ClientClosedError):
            await queued
        assert seen == [f"{PREFIX}/aa_1"]


async def test_close_fails_calls_queued_behind_a_server_pause() -> None:
    """A get() waiting out a 429 pause ends with ClientClosedError when close() runs."""

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.json_response({"code": 429}, status=429, headers={"Retry-After": "30"})

    async with asyncio.timeout(BOUND), http_server(handler) as url:
        client = client_for(url)
        call = asyncio.ensure_future(client.async_actions.get("aa_1"))
        await until(lambda: client._gate.paused_for > 0)  # type: ignore[attr-defined]
        queued = asyncio.ensure_future(client.async_actions.get("aa_2"))
        await until(lambda: client._gate.waiting > 0)  # type: ignore[attr-defined]
        await client.close()
        assert call.done() and queued.done()
        for pending in (call, queued):
            with pytest.raises(ClientClosedError):
                await pending


async def test_close_ends_calls_in_flight_and_never_retries() -> None:
    """close() with gets in flight: each raises ClientClosedError; no retry after close."""
    arrived = asyncio.Event()
    release = asyncio.Event()
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        if request.path.endswith("/aa_warm"):  # the first request, which goes alone
            return web.json_response(action_body("aa_warm"))
        seen.append(request.path)
        if len(seen) == 3:
            arrived.set()
        await release.wait()
        return web.json_response(action_body("x"))

    async with asyncio.timeout(BOUND), http_server(handler) as url:
        client = client_for(url, timeout=30)
        # Without a budget, the first request goes alone until its answer tells the server's
        # allowance (none here): answer one first, so that three can be in flight.
        await client.async_actions.get("aa_warm")
        calls = [asyncio.ensure_future(client.async_actions.get(f"aa_{i}")) for i in range(3)]
        await arrived.wait()
        await client.close()
        assert all(call.done() for call in calls)  # nothing of the client runs after close()
        for call in calls:
            error = call.exception()
            assert isinstance(error, ClientClosedError), repr(error)
            assert "Session is closed" not in str(error)
        assert len(seen) == 3
        release.set()
        assert our_tasks() == []


async def test_calls_after_close_raise_client_closed() -> None:
    """Every call on a closed client raises ClientClosedError (a RuntimeError too)."""
    client = client_for("http://127.0.0.1:9")
    await client.close()
    with pytest.raises(ClientClosedError):
        await client.async_actions.get("aa_1")
    with pytest.raises(RuntimeError):
        await client.async_actions.list()
    with pytest.raises(ClientClosedError):
        client.async_actions.handle("aa_1")
    await client.close()  # twice is fine


async def test_close_with_a_borrowed_closed_session_is_typed() -> None:
    """A borrowed session closed under the client gives ClientClosedError, not aiohttp's text."""
    import aiohttp

    session = aiohttp.ClientSession()
    await session.close()
    async with client_for("http://127.0.0.1:9", session=session) as client:
        with pytest.raises(ClientClosedError):
            await client.async_actions.get("aa_1")


# --- deadlines are deadlines -------------------------------------------------------------


async def test_deadline_ends_a_handle_whose_poll_is_in_flight() -> None:
    """A server that never answers: PollPolicy(timeout) ends the handle at its deadline."""
    arrived = asyncio.Event()
    seen: list[float] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(time.monotonic())
        arrived.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    async with (
        asyncio.timeout(BOUND),
        http_server(handler) as url,
        client_for(url, timeout=300) as client,
    ):
        handle = client.async_actions.handle("aa_1", PollPolicy(timeout=0.3))
        await arrived.wait()
        started = time.monotonic()
        with pytest.raises(PollTimeout) as info:
            await handle
        assert time.monotonic() - started < BOUND / 2  # not the 300 s request timeout
        assert info.value.handle is handle
        assert len(seen) == 1
        assert our_tasks() == []


async def test_deadline_before_the_first_poll_sends_nothing() -> None:
    """first_poll_after beyond the deadline: the handle ends at the deadline, no GET sent."""
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.path)
        return web.json_response(action_body("aa_1"))

    async with (
        asyncio.timeout(BOUND),
        http_server(handler) as url,
        client_for(url) as client,
    ):
        policy = PollPolicy(first_poll_after=60, timeout=0.05)
        with pytest.raises(PollTimeout):
            await client.async_actions.handle("aa_1", policy)
        assert seen == []


async def test_deadline_ends_a_handle_queued_behind_a_pause() -> None:
    """During a long server pause, a handle with a deadline ends at it, sending nothing more."""
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.path)
        return web.json_response({"code": 429}, status=429, headers={"Retry-After": "600"})

    async with (
        asyncio.timeout(BOUND),
        http_server(handler) as url,
        client_for(url) as client,
    ):
        with pytest.raises(RateLimitError):
            await client.async_actions.get("aa_0")
        handle = client.async_actions.handle("aa_1", PollPolicy(timeout=0.2))
        with pytest.raises(PollTimeout):
            await handle
        assert seen == [f"{PREFIX}/aa_0"]


async def test_stall_deadline_ends_a_handle_in_flight() -> None:
    """stall_timeout counts from the last change, and ends the handle even mid-request."""
    calls = 0

    async def handler(request: web.BaseRequest) -> web.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            await asyncio.Event().wait()  # the second poll never returns
        return web.json_response(action_body("aa_1"))

    async with (
        asyncio.timeout(BOUND),
        http_server(handler) as url,
        client_for(url, timeout=300) as client,
    ):
        policy = PollPolicy(initial_delay=0.01, stall_timeout=0.3)
        with pytest.raises(PollTimeout, match="no change"):
            await client.async_actions.handle("aa_1", policy)
        assert our_tasks() == []


# --- long server pauses --------------------------------------------------------------------


async def test_a_pause_longer_than_a_call_fails_fast_with_retry_at(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retry-After: 600 -> RateLimitError with retry_at at once, for this call and the next;
    one WARNING; a handle keeps waiting (it is not failed by the pause)."""
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.path)
        return web.json_response({"code": 429}, status=429, headers={"Retry-After": "600"})

    caplog.set_level(logging.WARNING, "voucherify_async")
    async with (
        asyncio.timeout(BOUND),
        http_server(handler) as url,
        client_for(url) as client,
    ):
        with pytest.raises(RateLimitError) as first:
            await client.async_actions.get("aa_1")
        assert first.value.retry_at is not None
        with pytest.raises(RateLimitError) as second:
            await client.async_actions.get("aa_2")  # refused before sending
        assert second.value.retry_at is not None
        assert "600" in str(second.value) or "599" in str(second.value)
        handle = client.async_actions.handle("aa_3")
        await until(lambda: client._gate.waiting == 1)  # type: ignore[attr-defined]
        assert not handle.done()  # its poll waits the pause out in the gate, quietly
        assert seen == [f"{PREFIX}/aa_1"]
    pauses = [r for r in caplog.records if "pauses every request" in r.getMessage()]
    assert len(pauses) == 1
    assert not [r for r in caplog.records if "will poll again" in r.getMessage()]


@pytest.mark.parametrize(
    ("retry_value", "expected"),
    [
        (lambda: f"{(time.time() + 5) * 1000:.0f}", (3.0, 6.0)),  # milliseconds, read as such
        (lambda: f"{time.time() + 10 * 86400:.0f}", (3500.0, 3601.0)),  # days ahead: capped
        (lambda: "soon", (0.0, 0.0)),  # not a number: ignored
    ],
    ids=["milliseconds", "days-ahead-capped", "not-a-number"],
)
async def test_implausible_rate_limit_retry_values(
    retry_value: Callable[[], str], expected: tuple[float, float], caplog: pytest.LogCaptureFixture
) -> None:
    """X-Rate-Limit-Retry in milliseconds is read as such; far future is capped, with a log."""

    async def handler(request: web.BaseRequest) -> web.Response:
        headers = {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Retry": retry_value()}
        return web.json_response(action_body("aa_1"), headers=headers)

    caplog.set_level(logging.WARNING, "voucherify_async")
    async with asyncio.timeout(BOUND), http_server(handler) as url, client_for(url) as client:
        await client.async_actions.get("aa_1")
        low, high = expected
        assert low <= client._gate.paused_for <= high  # type: ignore[attr-defined]
    if expected[0] >= 3500:
        assert any("cap" in r.getMessage() for r in caplog.records)


# --- the budget sees every byte ------------------------------------------------------------


async def test_aiohttp_never_resends_behind_the_gate() -> None:
    """A kept-alive connection dropped after the request: no silent second request."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            await read_request(reader)
            requests += 1
            if requests == 2:
                return  # read the request, then drop the connection without an answer
            writer.write(http_response(b'{"id": "aa_1", "type": "X", "status": "DONE"}'))
            await writer.drain()

    async with (
        asyncio.timeout(BOUND),
        raw_server(serve) as url,
        client_for(url, max_retries=0, requests_per_minute=10) as client,
    ):
        await client.async_actions.get("aa_1")
        with pytest.raises(TransportError):
            await client.async_actions.get("aa_1")
    assert requests == 2  # aiohttp alone would have sent a third, past the gate


def busiest_window(arrivals: list[float], window: float) -> int:
    """The most arrivals any window of *window* seconds holds."""
    times = sorted(arrivals)
    return max((sum(1 for t in times[i:] if t < start + window) for i, start in
                enumerate(times)), default=0)  # fmt: skip


async def test_cancelled_requests_keep_the_budget_as_the_server_sees_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Callers cancelled mid-request while the server counts each request 0-80 ms late: no
    window of the server's holds more than the budget."""
    # An abandoned request holds its slot for max(timeout, ABANDONED_HOLD) and a window; the
    # 30 s floor (for servers that read requests long after the client gave up) is cut to the
    # 0.5 s timeout here, so that nine of them pass in seconds: the rule under test is the same.
    monkeypatch.setattr("voucherify_async._client.ABANDONED_HOLD", 0.5)
    window, limit, total = 0.4, 3, 9
    rng = random.Random(12)
    arrivals: list[float] = []
    arrived: asyncio.Queue[str] = asyncio.Queue()

    async def handler(request: web.BaseRequest) -> web.Response:
        arrivals.append(time.monotonic() + rng.uniform(0.0, 0.08))  # the server counts it late
        arrived.put_nowait(request.path.rsplit("/", 1)[1])
        await asyncio.Event().wait()  # never answers: the caller gives up first
        raise AssertionError("unreachable")

    async with (
        asyncio.timeout(BOUND * 2),
        http_server(handler) as url,
        client_for(url, requests_per_minute=limit, budget_window=window, timeout=0.5) as client,
    ):
        calls = {f"aa_{i}": asyncio.ensure_future(client.async_actions.get(f"aa_{i}"))
                 for i in range(total)}  # fmt: skip
        for _ in range(total):
            calls[await arrived.get()].cancel()  # cancelled mid-request, as soon as it is sent
        await asyncio.gather(*calls.values(), return_exceptions=True)
    assert len(arrivals) == total
    assert busiest_window(arrivals, window) <= limit


# --- bodies that do not decode ---------------------------------------------------------------


def _gzip_response(body: bytes) -> web.Response:
    return web.Response(
        body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )


async def test_corrupt_gzip_is_a_decode_error_that_ends_a_handle() -> None:
    """A 200 whose gzip body does not inflate: ResponseDecodeError for get() and a handle."""
    seen = 0

    async def handler(request: web.BaseRequest) -> web.Response:
        nonlocal seen
        seen += 1
        return _gzip_response(b"\x1f\x8b\x08\x00garbage-not-gzip" * 10)

    async with asyncio.timeout(BOUND), http_server(handler) as url, client_for(url) as client:
        with pytest.raises(ResponseDecodeError) as info:
            await client.async_actions.get("aa_1")
        assert info.value.status == 200
        with pytest.raises(ResponseDecodeError):
            await client.async_actions.handle("aa_2")
    assert seen == 2  # one GET each: not retried, not polled again


async def test_gzip_and_deflate_bodies_decode() -> None:
    """gzip, zlib-wrapped deflate and raw deflate bodies all decode."""
    payload = b'{"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "DONE", "progress": 100}'
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encodings = {
        "gzip": gzip.compress(payload),
        "deflate": zlib.compress(payload),
        "raw": raw.compress(payload) + raw.flush(),
    }

    async def handler(request: web.BaseRequest) -> web.Response:
        name = request.query["e"]
        header = "deflate" if name == "raw" else name
        return web.Response(body=encodings[name], headers={"Content-Encoding": header})

    async with asyncio.timeout(BOUND), http_server(handler) as url, client_for(url) as client:
        transport = client._transport
        from yarl import URL

        for name in encodings:
            target = URL(f"{url}{PREFIX}/aa_1?e={name}")
            status, body = await transport.get(target, path=PREFIX)
            assert (status, body) == (200, payload), name


async def test_gzip_bomb_is_refused_while_inflating() -> None:
    """A small gzip body inflating past the cap is refused without inflating it whole."""
    bomb = gzip.compress(b"\0" * (MAX_BODY_BYTES * 4), compresslevel=9)
    assert len(bomb) < MAX_BODY_BYTES // 64

    async def handler(request: web.BaseRequest) -> web.Response:
        return _gzip_response(bomb)

    async with asyncio.timeout(BOUND), http_server(handler) as url, client_for(url) as client:
        import tracemalloc

        tracemalloc.start()
        try:
            with pytest.raises(ResponseDecodeError, match="larger than"):
                await client.async_actions.get("aa_1")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 3 * MAX_BODY_BYTES  # the whole 128 MB was never held


# --- messages that say what happened ---------------------------------------------------------


async def test_a_bad_status_line_is_not_called_a_400() -> None:
    """aiohttp's parser refusing a response reads as such, not as an HTTP 400."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 OK-ish\r\n\r\n")
        await writer.drain()

    async with (
        asyncio.timeout(BOUND),
        raw_server(serve) as url,
        client_for(url, max_retries=0) as client,
    ):
        with pytest.raises(TransportError) as info:
            await client.async_actions.get("aa_1")
    text = str(info.value)
    assert "could not be parsed" in text and "400" not in text


async def test_a_redirect_says_where_it_points() -> None:
    """A 302 names its Location in the error (redirects are never followed)."""

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(status=302, headers={"Location": "https://elsewhere.example/x"})

    async with asyncio.timeout(BOUND), http_server(handler) as url, client_for(url) as client:
        with pytest.raises(VoucherifyError) as info:
            await client.async_actions.get("aa_1")
    assert "https://elsewhere.example/x" in str(info.value)
    assert "302" in str(info.value)


async def test_transient_messages_do_not_repeat_their_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A retried transport failure logs one message that names the request once."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        if connections == 1:
            return  # drop the first connection without an answer
        writer.write(http_response(b'{"id": "aa_1", "type": "X", "status": "DONE"}'))
        await writer.drain()

    caplog.set_level(logging.WARNING, "voucherify_async")
    from voucherify_async.testing import fast_polling

    async with asyncio.timeout(BOUND), raw_server(serve) as url:
        with fast_polling():
            async with client_for(url) as client:
                await client.async_actions.get("aa_1")
    messages = [r.getMessage() for r in caplog.records]
    assert messages, "the retry is logged"
    for message in messages:
        assert message.count(f"{PREFIX}/aa_1") == 1, message


# --- event loops -----------------------------------------------------------------------------


def test_a_client_used_in_a_second_loop_says_so_and_closes() -> None:
    """A module-level client used in two asyncio.run() calls: a typed error, and close() works."""
    seen: list[str] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.path)
        return web.json_response(action_body(request.path.rsplit("/", 1)[1], "DONE", 100))

    async def serve_and(steps: Callable[[str], Awaitable[None]]) -> None:
        async with asyncio.timeout(BOUND), http_server(handler) as url:
            await steps(url)

    client: VoucherifyClient | None = None

    async def first(url: str) -> None:
        nonlocal client
        client = client_for(url)
        await client.async_actions.get("aa_1")
        handle = client.async_actions.handle("aa_2")
        await handle

    async def second(url: str) -> None:
        assert client is not None
        with pytest.raises(WrongEventLoopError, match="another event loop"):
            await client.async_actions.get("aa_3")
        with pytest.raises(WrongEventLoopError):
            client.async_actions.handle("aa_4")
        await client.close()
        assert client.closed
        with pytest.raises(ClientClosedError):
            await client.async_actions.get("aa_5")

    asyncio.run(serve_and(first))
    asyncio.run(serve_and(second))
    gc.collect()
    assert seen == [f"{PREFIX}/aa_1", f"{PREFIX}/aa_2"]


def test_a_handle_awaited_from_another_loop_says_so() -> None:
    """Awaiting a handle in a loop other than its own is a WrongEventLoopError."""
    holder: list[AsyncActionHandle] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.json_response(action_body("aa_1"))

    async def make() -> None:
        async with http_server(handler) as url, client_for(url) as client:
            holder.append(client.async_actions.handle("aa_1"))
            await client.close()

    async def use() -> None:
        with pytest.raises(WrongEventLoopError):
            await holder[0].result(timeout=1)

    asyncio.run(make())
    asyncio.run(use())


def test_close_from_a_new_loop_drops_handles_of_a_dead_one() -> None:
    """Handles still polling when their loop ended: close() from another loop just drops them."""

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.json_response(action_body(request.path.rsplit("/", 1)[1]))

    holder: list[VoucherifyClient] = []

    async def first() -> None:
        async with http_server(handler) as url:
            client = client_for(url)
            holder.append(client)
            handle = client.async_actions.handle("aa_1")
            waiter = asyncio.ensure_future(handle.result())
            async for _ in handle.updates():
                break
            waiter.cancel()  # asyncio.run would cancel it too; the handle stays live

    async def second() -> None:
        await holder[0].close()
        assert holder[0].closed

    asyncio.run(first())
    asyncio.run(second())
    gc.collect()
