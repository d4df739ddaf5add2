"""close() from an event loop other than the client's own: no crash, the client ends closed.

The server runs in a thread of its own with its own loop, so it outlives the client's
``asyncio.run()`` calls and keeps the client's pooled connection open between them (a server
that stops with the first loop closes that connection, and hides the case).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import warnings
from collections.abc import Iterator

import pytest
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import PollPolicy, VoucherifyClient, WrongEventLoopError

#: No step may take longer than this (seconds); each takes milliseconds when idle.
BOUND = 20.0


@contextlib.contextmanager
def threaded_server() -> Iterator[tuple[str, list[str]]]:
    """An aiohttp server on 127.0.0.1 in a thread and loop of its own; yield URL and paths seen."""
    seen: list[str] = []
    ready = threading.Event()
    box: dict[str, object] = {}

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.path)
        action_id = request.path.rsplit("/", 1)[1]
        body = {"id": action_id, "type": "VOUCHERS.IMPORT", "status": "IN_PROGRESS", "progress": 5}
        return web.json_response(body)

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handler), handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop = asyncio.Event()
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["stop"] = stop
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(BOUND), "the server thread started"
    try:
        yield str(box["url"]), seen
    finally:
        loop = box["loop"]
        stop = box["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(BOUND)


def collect_dead_loop_sockets() -> None:
    """Collect the pooled socket of a closed loop, whose finalizer closes it with a warning.

    Nothing public closes a socket of a closed loop (its transport's close() needs that loop),
    so close() leaves it to this finalizer; collecting here keeps its ResourceWarning out of
    whichever test the collector would otherwise run in.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_close_from_a_new_loop_with_a_handle_between_polls() -> None:
    """A handle left waiting between polls, its connection pooled: close() from a new loop works."""
    holder: list[VoucherifyClient] = []

    with threaded_server() as (url, seen):

        async def first() -> None:
            client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
            holder.append(client)
            handle = client.async_actions.handle("aa_1", policy=PollPolicy(min_delay=60))
            async with asyncio.timeout(BOUND):
                async for _ in handle.updates():
                    break  # one poll answered; the next is a minute away

        async def second() -> None:
            async with asyncio.timeout(BOUND):
                await holder[0].close()

        asyncio.run(first())
        asyncio.run(second())
        assert holder[0].closed
        holder.clear()
        collect_dead_loop_sockets()
        assert seen == ["/v1/async-actions/aa_1"]


def test_close_from_another_thread_while_the_owner_loop_runs() -> None:
    """The client's loop still runs in another thread: close() there ends its handles for real."""
    with threaded_server() as (url, seen):
        started = threading.Event()
        box: dict[str, object] = {}
        release: list[asyncio.Event] = []

        async def owner() -> None:
            client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
            box["client"] = client
            box["loop"] = asyncio.get_running_loop()
            handle = client.async_actions.handle("aa_1", policy=PollPolicy(min_delay=60))
            async for _ in handle.updates():
                break
            box["handle"] = handle
            release.append(asyncio.Event())
            started.set()
            with contextlib.suppress(BaseException):
                await handle
            box["ended"] = True
            await release[0].wait()  # keep the loop running until close() returned

        thread = threading.Thread(target=asyncio.run, args=(owner(),), daemon=True)
        thread.start()
        assert started.wait(BOUND)

        async def close() -> None:
            client = box["client"]
            assert isinstance(client, VoucherifyClient)
            async with asyncio.timeout(BOUND):
                await client.close()
            assert client.closed
            assert box.get("ended") is True  # the handle ended before close() returned

        try:
            asyncio.run(close())
        finally:
            loop = box["loop"]
            assert isinstance(loop, asyncio.AbstractEventLoop)
            loop.call_soon_threadsafe(release[0].set)
        thread.join(BOUND)
        assert not thread.is_alive()
        assert box.get("ended") is True
        handle = box["handle"]
        assert handle.done()  # type: ignore[attr-defined]
        assert seen == ["/v1/async-actions/aa_1"]


@pytest.mark.parametrize("closer", ["close", "aexit"])
def test_close_from_a_new_loop_is_quiet(closer: str, recwarn: pytest.WarningsRecorder) -> None:
    """No "Unclosed client session" or connector warning once close() ran from a new loop."""
    holder: list[VoucherifyClient] = []
    with threaded_server() as (url, _):

        async def first() -> None:
            client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
            holder.append(client)
            await client.async_actions.get("aa_1")

        async def second() -> None:
            if closer == "close":
                await holder[0].close()
            else:
                async with holder[0]:
                    pass

        asyncio.run(first())
        asyncio.run(second())
        holder.clear()
        collect_dead_loop_sockets()
    texts = [str(w.message) for w in recwarn]
    assert not [t for t in texts if "Unclosed client session" in t], texts
    assert not [t for t in texts if "Unclosed connector" in t], texts


def test_a_second_asyncio_run_gets_the_typed_error_without_unclosed_noise(
    recwarn: pytest.WarningsRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A client used in a second asyncio.run() (never closed): WrongEventLoopError, and no
    "Unclosed client session" or "Unclosed connector" from aiohttp afterwards."""
    holder: list[VoucherifyClient] = []
    with threaded_server() as (url, seen):

        async def first() -> None:
            client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
            holder.append(client)
            await client.async_actions.get("aa_1")

        async def second() -> None:
            with pytest.raises(WrongEventLoopError, match="another event loop"):
                await holder[0].async_actions.get("aa_2")
            with pytest.raises(WrongEventLoopError):
                await holder[0].async_actions.wait("aa_3")

        asyncio.run(first())
        asyncio.run(second())
        holder.clear()
        collect_dead_loop_sockets()
    texts = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if "Unclosed client session" in t], texts
    assert not [t for t in texts if "Unclosed connector" in t], texts
    assert seen == ["/v1/async-actions/aa_1"]


def test_close_from_a_new_loop_while_the_owner_loop_is_stopped_but_open() -> None:
    """The client's loop stopped but not closed (run_until_complete done): close() from another
    loop runs that loop in a worker thread until the client is closed for real."""
    with threaded_server() as (url, seen):
        owner = asyncio.new_event_loop()
        holder: list[VoucherifyClient] = []
        handles: list[object] = []

        async def first() -> None:
            client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
            holder.append(client)
            handle = client.async_actions.handle("aa_1", policy=PollPolicy(min_delay=60))
            handles.append(handle)
            async for _ in handle.updates():
                break

        async def second() -> None:
            async with asyncio.timeout(BOUND):
                await holder[0].close()

        try:
            owner.run_until_complete(first())
            asyncio.run(second())
            assert holder[0].closed
            assert handles[0].done()  # type: ignore[attr-defined]
        finally:
            owner.close()
        assert seen == ["/v1/async-actions/aa_1"]


def test_close_from_another_loop_while_the_owner_loop_stops_on_the_way() -> None:
    """The owner runs run_until_complete(main()) in a thread; close() from another loop ends the
    handle main() awaits, so main() returns and the loop stops before the close sent to it
    finished there: close() still returns (it runs the stopped loop on until it did)."""
    with threaded_server() as (url, seen):
        owner = asyncio.new_event_loop()
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
        polled = threading.Event()
        outcome: list[str] = []

        async def main() -> None:
            handle = client.async_actions.handle("aa_1", policy=PollPolicy(min_delay=60))
            try:
                async for _ in handle.updates():
                    polled.set()
            except BaseException as exc:
                outcome.append(type(exc).__name__)

        thread = threading.Thread(target=owner.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        try:
            assert polled.wait(BOUND)

            async def close() -> None:
                async with asyncio.timeout(BOUND):
                    await client.close()

            asyncio.run(close())
            thread.join(BOUND)
            assert not thread.is_alive()
            assert client.closed
            assert outcome == ["ClientClosedError"]
        finally:
            thread.join(BOUND)
            if not owner.is_running():
                owner.close()
        assert seen == ["/v1/async-actions/aa_1"]
