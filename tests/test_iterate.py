"""iterate() always moves forward: against servers that ignore end_date or share milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from _servers import action_json, serve
from aiohttp import web

from voucherify_async import ResponseDecodeError, VoucherifyClient

#: A server answers 400 after this many list requests, so a livelock fails fast, not by timeout.
REQUEST_CAP = 40

T0 = dt.datetime(2026, 11, 30, 12, 0, 0, 123_000, tzinfo=dt.UTC)


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class ListServer:
    """``GET /v1/async-actions`` over fixed actions; records every query it was asked."""

    def __init__(
        self, actions: list[tuple[str, dt.datetime]], *, honour_end_date: bool, inclusive: bool
    ) -> None:
        # Newest first; ties keep their given order (a stable sort, as a database index would).
        self.actions = sorted(actions, key=lambda a: a[1], reverse=True)
        self.honour_end_date = honour_end_date
        self.inclusive = inclusive
        self.queries: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        end = request.query.get("end_date")
        self.queries.append(end)
        if len(self.queries) > REQUEST_CAP:
            return web.json_response({"code": 400, "key": "too_many"}, status=400)
        limit = int(request.query["limit"])
        items = self.actions
        if end is not None and self.honour_end_date:
            bound = parse(end)
            items = [a for a in items if (a[1] <= bound if self.inclusive else a[1] < bound)]
        page = [action_json(i, stamp(at)) for i, at in items[:limit]]
        body = {
            "object": "list",
            "data_ref": "async_actions",
            "async_actions": page,
            "has_more": len(items) > limit,
        }
        return web.json_response(body)


MakeListClient = Callable[[ListServer], Awaitable[VoucherifyClient]]


@pytest.fixture
async def list_client() -> AsyncIterator[MakeListClient]:
    """Run a ListServer and a client against it; both are stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(server: ListServer) -> VoucherifyClient:
            app = web.Application()
            app.router.add_get("/v1/async-actions", server.handle)
            url = await stack.enter_async_context(serve(app))
            client = VoucherifyClient("a", "b", base_url=url, max_retries=0)
            stack.push_async_callback(client.close)
            return client

        yield make


async def collect(client: VoucherifyClient, page_size: int) -> list[str]:
    async with asyncio.timeout(30):
        return [a.id async for a in client.async_actions.iterate(page_size=page_size)]


async def test_server_ignoring_end_date_stops_with_a_typed_error(
    list_client: MakeListClient,
) -> None:
    """A list endpoint that ignores end_date: a few requests, then ResponseDecodeError."""
    server = ListServer(
        [("aa_1", T0), ("aa_2", T0 - dt.timedelta(seconds=1)), ("aa_3", T0 - dt.timedelta(1))],
        honour_end_date=False,
        inclusive=True,
    )
    server.actions = server.actions + server.actions  # has_more is always true
    client = await list_client(server)
    yielded: list[str] = []

    async def drain() -> None:
        async with asyncio.timeout(30):
            async for action in client.async_actions.iterate(page_size=3):
                yielded.append(action.id)

    with pytest.raises(ResponseDecodeError, match="end_date"):
        await drain()
    assert yielded == ["aa_1", "aa_2", "aa_3"]
    assert len(server.queries) == 4  # the first page and three that brought nothing new


@pytest.mark.parametrize("inclusive", [True, False], ids=["inclusive", "exclusive"])
async def test_shared_milliseconds_page_size_one(
    list_client: MakeListClient, inclusive: bool
) -> None:
    """page_size=1 and actions sharing a millisecond: the cursor moves past it and ends."""
    ms = dt.timedelta(milliseconds=1)
    server = ListServer(
        [
            ("aa_a", T0),
            ("aa_b", T0),
            ("aa_d", T0 - 5 * ms),
            ("aa_e", T0 - 5 * ms),
            ("aa_f", T0 - 9 * ms),
        ],
        honour_end_date=True,
        inclusive=inclusive,
    )
    client = await list_client(server)
    seen = await collect(client, page_size=1)
    assert seen == ["aa_a", "aa_d", "aa_f"]  # one page cannot hold two of the same millisecond
    assert len(server.queries) == len(set(server.queries))  # no request was ever repeated
    assert len(server.queries) <= 3 * len(seen)


@pytest.mark.parametrize("inclusive", [True, False], ids=["inclusive", "exclusive"])
async def test_shared_milliseconds_warn_when_skipped(
    list_client: MakeListClient, inclusive: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Three actions in one millisecond, page_size=2: one is unreachable; a WARNING says so."""
    ms = dt.timedelta(milliseconds=1)
    server = ListServer(
        [
            ("aa_a", T0),
            ("aa_b", T0),
            ("aa_c", T0),
            ("aa_d", T0 - 5 * ms),
            ("aa_e", T0 - 7 * ms),
            ("aa_f", T0 - 9 * ms),
        ],
        honour_end_date=True,
        inclusive=inclusive,
    )
    client = await list_client(server)
    with caplog.at_level(logging.WARNING, logger="voucherify_async"):
        seen = await collect(client, page_size=2)
    assert seen == ["aa_a", "aa_b", "aa_d", "aa_e", "aa_f"]
    assert len(server.queries) == len(set(server.queries))
    skipped = [r for r in caplog.records if "share created_at" in r.getMessage()]
    assert len(skipped) == 1 and stamp(T0) in skipped[0].getMessage()


@pytest.mark.parametrize("inclusive", [True, False], ids=["inclusive", "exclusive"])
async def test_shared_milliseconds_within_a_page_lose_nothing(
    list_client: MakeListClient, inclusive: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """When a page holds a whole millisecond, every action comes once, without a warning."""
    ms = dt.timedelta(milliseconds=1)
    actions = [(f"aa_{n}", T0 - (n // 3) * ms) for n in range(12)]  # three per millisecond
    server = ListServer(actions, honour_end_date=True, inclusive=inclusive)
    client = await list_client(server)
    with caplog.at_level(logging.WARNING, logger="voucherify_async"):
        seen = await collect(client, page_size=4)
    assert sorted(seen) == sorted(i for i, _ in actions) and len(seen) == len(set(seen))
    if inclusive:  # re-asking a millisecond returns it again: one extra request per page
        assert max(server.queries.count(q) for q in server.queries) <= 2
        assert len(server.queries) <= 2 * (len(actions) // 4) + 2
    else:
        assert len(server.queries) == len(set(server.queries))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_id_repeated_within_one_page_is_yielded_once(list_client: MakeListClient) -> None:
    """Ids already yielded are dropped, also when one page holds the same id twice."""
    server = ListServer(
        [("aa_x", T0), ("aa_x", T0), ("aa_y", T0 - dt.timedelta(seconds=1))],
        honour_end_date=True,
        inclusive=False,
    )
    client = await list_client(server)
    assert await collect(client, page_size=5) == ["aa_x", "aa_y"]


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"])
async def test_created_at_at_the_ends_of_the_calendar_ends_the_iteration_cleanly(
    created_at: str,
) -> None:
    """A page of actions created at 0001-01-01 (or 9999-12-31) that always says has_more:
    the next end_date cannot be represented, and iterate() ends (or gives its typed error),
    never a bare OverflowError."""
    end_dates: list[str | None] = []

    async def pages(request: web.Request) -> web.Response:
        end_dates.append(request.query.get("end_date"))
        items = [action_json(f"aa_{i}", created_at) for i in range(3)]
        return web.json_response({"object": "list", "async_actions": items, "has_more": True})

    app = web.Application()
    app.router.add_get("/v1/async-actions", pages)
    seen: list[str] = []
    async with serve(app) as url, VoucherifyClient("a", "b", base_url=url) as client:
        with contextlib.suppress(ResponseDecodeError):
            async for action in client.async_actions.iterate(page_size=3):
                seen.append(action.id)
    assert seen == ["aa_0", "aa_1", "aa_2"]
    assert 1 < len(end_dates) <= 5
