"""RedisBudget under Redis's real failures (issue #25, items 1-6), one gate or client at a time.

Each test names the item it proves. The multi-process fault matrix is in
test_redis_budget_faults.py; the fault tools in tests/_redis_server.py and tests/redis/_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from _faults import TcpProxy, lagging_replica
from _redis_server import RedisServer, redis_server_binary
from _servers import action_json, serve
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import VoucherifyClient
from voucherify_async.testing import VoucherifyEmulator

aioredis = pytest.importorskip("redis.asyncio")
from voucherify_async.redis import BudgetUnavailableError, RedisBudget  # noqa: E402
from voucherify_async.redis._budget import RedisGate  # noqa: E402

WINDOW = 2.0
SLOTS = "voucherify-async:budget:{test}:slots"


def gate(r: Any, limit: int = 3, *, hold: float = 1.0, **options: Any) -> RedisGate:
    options.setdefault("hold_after_restart", False)  # the session's redis-server is new
    budget = RedisBudget(r, limit=limit, window=WINDOW, key="test", heartbeat=0.5, **options)
    made = budget.make_gate(concurrency=8, unanswered_hold=hold, account=None)
    assert isinstance(made, RedisGate)
    return made


async def settle(g: Any) -> None:
    """Every release of *g* has reached Redis (or failed to, quietly)."""
    flush = getattr(g, "flush_releases", None)
    if flush is not None:
        await flush()
    if g._tasks:
        await asyncio.wait(set(g._tasks))


async def redis_ms(r: Any) -> int:
    seconds, micros = await r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def server_ms(server: RedisServer) -> int:
    """Redis's clock, asked on a connection of the test's own (the clients' may be broken)."""
    seconds, micros = server.call("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


async def slot_score(r: Any, member: str) -> float:
    score = await r.zscore(SLOTS, member)
    assert score is not None
    return float(score)


async def use(g: Any, times: int) -> None:
    """*times* requests through *g*, each answered at once."""
    for _ in range(times):
        g.release(await asyncio.wait_for(g.acquire(), 30), answered=True)
    await settle(g)


class Logged(logging.Handler):
    """Sets an event when the library logs a message containing *text*."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def logged() -> Any:
    handlers: list[Logged] = []
    library = logging.getLogger("voucherify_async")

    def watch(text: str) -> Logged:
        handler = Logged(text)
        library.addHandler(handler)
        handlers.append(handler)
        return handler

    yield watch
    for handler in handlers:
        library.removeHandler(handler)


# -- item 1: Redis comes back with part of its data -------------------------------------


@pytest.mark.slow
async def test_restart_from_an_older_snapshot_holds_the_budget(tmp_path: Path) -> None:
    """Item 1: Redis restarts from an RDB snapshot older than its last admissions. Even a
    process new to the budget (which knew nothing before) waits one lease from the restart:
    the snapshot's state cannot be taken at its word."""
    server = RedisServer(redis_server_binary(), tmp_path, rdb=True)
    server.start()
    r = aioredis.Redis.from_url(server.url)
    old = gate(r, limit=3)
    try:
        await use(old, 1)
        server.snapshot()
        await use(old, 2)  # admitted after the snapshot: the restart forgets them
        server.restart()
        restarted = server_ms(server)
        newcomer = gate(r, limit=3)
        try:
            adm = await asyncio.wait_for(newcomer.acquire(), 30)
            assert adm.token.admitted_ms >= restarted + (1.0 + WINDOW) * 1000
            newcomer.release(adm, answered=True)
        finally:
            await newcomer.aclose()
    finally:
        await old.aclose()
        await r.aclose()
        server.stop()


@pytest.mark.slow
async def test_an_empty_restart_holds_the_budget_for_a_newcomer(tmp_path: Path) -> None:
    """Item 1: Redis restarts empty (no persistence) and a process new to the budget asks
    first, so no caller knew the lost state. The server has been up for less than a lease:
    the newcomer waits until a lease after the restart (hold_after_restart, the default)."""
    server = RedisServer(redis_server_binary(), tmp_path)
    server.start()
    r = aioredis.Redis.from_url(server.url)
    old = gate(r, limit=3)
    try:
        await use(old, 3)  # three requests that still count at the API after the restart
        server.restart()
        restarted = server_ms(server)
        assert server.call("ZCARD", SLOTS) == 0  # everything was forgotten
        newcomer = gate(r, limit=3, hold_after_restart=True)
        try:
            adm = await asyncio.wait_for(newcomer.acquire(), 30)
            assert adm.token.admitted_ms >= restarted + (1.0 + WINDOW) * 1000
            newcomer.release(adm, answered=True)
        finally:
            await newcomer.aclose()
    finally:
        await old.aclose()
        await r.aclose()
        server.stop()


async def test_a_flush_holds_the_budget_for_a_newcomer(r: Any) -> None:
    """Item 1: the budget's keys are flushed (or evicted) while its requests still count, and
    a process new to the budget asks first. The server says it flushed keys since it started:
    the newcomer waits a lease from its call instead of being admitted at once."""
    old = gate(r, limit=3)
    try:
        await use(old, 3)
        await r.flushall()
        flushed = await redis_ms(r)
        newcomer = gate(r, limit=3, hold_after_restart=True)
        try:
            adm = await asyncio.wait_for(newcomer.acquire(), 30)
            assert adm.token.admitted_ms >= flushed + (1.0 + WINDOW) * 1000
            newcomer.release(adm, answered=True)
        finally:
            await newcomer.aclose()
    finally:
        await old.aclose()


def test_braces_in_a_key_or_prefix_never_split_its_hash_slot() -> None:
    """On a Cluster every key of a budget, poll set or store must share one slot: braces in
    the user's key or prefix (an empty tag hashes whole keys) cannot split them."""
    from redis.crc import key_slot

    from voucherify_async.redis._scripts import key_base

    for prefix, name in [("voucherify-async", "}abc"), ("{}", "x"), ("p{", "}"), ("", "{x}")]:
        for kind in ("budget", "poll", "learn"):
            base = key_base(prefix, kind, name)
            slots = {key_slot(f"{base}:{part}".encode()) for part in ("slots", "queue", "aa_1")}
            assert len(slots) == 1, (prefix, name, kind)


def test_hold_after_restart_must_be_a_bool() -> None:
    """A non-bool is a typed error, not a truthy surprise."""
    with pytest.raises(TypeError, match="hold_after_restart"):
        RedisBudget(object(), hold_after_restart="no")  # type: ignore[arg-type]


@pytest.mark.slow
async def test_failover_to_a_lagging_replica_holds_the_budget(tmp_path: Path) -> None:
    """Item 1: a replica that missed the last admissions is promoted (REPLICAOF NO ONE) while
    the old master lives on, and the clients move to it: one lease passes before anyone,
    even a newcomer, is admitted there."""
    async with lagging_replica(redis_server_binary(), tmp_path) as (master, replica, link):
        front = TcpProxy(master.port)
        await front.start()
        r = aioredis.Redis.from_url(front.url)
        old = gate(r, limit=3)
        newcomer = gate(r, limit=3)
        try:
            await use(old, 1)
            await asyncio.to_thread(replica.wait_synced, master)
            link.hold()  # the replica falls behind
            await use(old, 2)
            replica.promote()
            front.retarget(replica.port)  # what a Sentinel-aware client does
            promoted = server_ms(replica)
            assert replica.call("ZCARD", SLOTS) < 4  # the replica did miss the last admissions
            adm = await asyncio.wait_for(newcomer.acquire(), 30)
            assert adm.token.admitted_ms >= promoted + (1.0 + WINDOW) * 1000
            newcomer.release(adm, answered=True)
        finally:
            await old.aclose()
            await newcomer.aclose()
            await r.aclose()
            await front.aclose()


# -- item 2: one client's short lease must not cut everyone's ---------------------------


async def test_a_short_lease_never_shortens_the_slot_sets_expiry(r: Any) -> None:
    """Item 2: a client with a long timeout holds a slot; one with a short timeout uses the
    same key. The slot set lives at least as long as the long request may count."""
    long, short = gate(r, hold=30.0), gate(r, hold=0.2)
    try:
        adm = await long.acquire()
        await use(short, 1)
        counts_until = adm.token.admitted_ms + (30.0 + WINDOW) * 1000
        assert await redis_ms(r) + await r.pttl(SLOTS) >= counts_until
        long.release(adm, answered=True)
    finally:
        await long.aclose()
        await short.aclose()


# -- item 3: a request that outlives its hold keeps its slot -----------------------------


@pytest.mark.slow
async def test_a_request_outliving_its_hold_keeps_its_slot(r: Any) -> None:
    """Item 3: with ``ClientTimeout(total=None)`` a request may run past the hold the gate
    was given. Its slot is not dropped mid-flight: another client waits until a window
    after its answer."""
    a, b = gate(r, limit=1, hold=1.5), gate(r, limit=1, hold=1.5)
    try:
        adm = await a.acquire()
        waiter = asyncio.ensure_future(b.acquire())
        # Past the instant a slot without renewal would free (on Redis's clock):
        lease_end = adm.token.admitted_ms + (1.5 + WINDOW) * 1000
        async with asyncio.timeout(30):
            while await redis_ms(r) < lease_end + 500:  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # the test's point is time passing on Redis's clock
        assert not waiter.done()
        a.release(adm, answered=True)
        await settle(a)
        answered = await slot_score(r, adm.token.member)
        got = await asyncio.wait_for(waiter, 30)
        assert got.token.admitted_ms >= answered + WINDOW * 1000
        b.release(got, answered=True)
    finally:
        await a.aclose()
        await b.aclose()


# -- item 4: the server's allowance ------------------------------------------------------


@pytest.mark.parametrize("budget", ["redis", "in-process"])
async def test_the_servers_allowance_paces_a_redis_budget(r: Any, budget: str) -> None:
    """Item 4: after ``X-Rate-Limit-Remaining: 1`` the client has one request in flight at a
    time, with a RedisBudget as with ``requests_per_minute=``."""
    in_flight, most = 0, 0
    counting = False

    async def action(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        if counting:
            most = max(most, in_flight)
        try:
            for _ in range(20):
                await asyncio.sleep(0)  # let the others arrive if the client sent them
            body = action_json(request.match_info["id"], "2026-11-30T12:00:00Z")
            return web.json_response(body, headers={"X-Rate-Limit-Remaining": "1"})
        finally:
            in_flight -= 1

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", action)
    options: dict[str, Any] = (
        {"budget": RedisBudget(r, limit=100, window=60.0, key="test", hold_after_restart=False)}
        if budget == "redis"
        else {"requests_per_minute": 100}
    )
    async with (
        serve(app) as url,
        VoucherifyClient("a", "b", base_url=url, max_concurrency=10, **options) as c,
    ):
        await c.async_actions.get("aa_first")  # its answer: Remaining 1
        counting = True
        async with asyncio.timeout(30):
            await asyncio.gather(*(c.async_actions.get(f"aa_{i}") for i in range(10)))
    assert most == 1


# -- item 5: processes that disagree -----------------------------------------------------


async def test_the_strictest_configuration_in_use_applies(r: Any, logged: Any) -> None:
    """Item 5: two clients share a key with limits 2 and 10. Both keep to 2, and the
    looser one logs a WARNING saying what applies."""
    warned = logged("strictest")
    strict, loose = gate(r, limit=2), gate(r, limit=10)
    try:
        first = await strict.acquire()
        second = await loose.acquire()
        strict.release(first, answered=True)
        await settle(strict)
        answered = await slot_score(r, first.token.member)
        third = await asyncio.wait_for(loose.acquire(), 30)
        assert third.token.admitted_ms >= answered + WINDOW * 1000
        assert warned.seen.is_set()
        for adm in (second, third):
            loose.release(adm, answered=True)
    finally:
        await strict.aclose()
        await loose.aclose()


async def test_the_longest_window_in_use_applies(r: Any) -> None:
    """Item 5: limits agree, windows differ (2 s and 4 s): a slot counts for 4 s."""
    short = gate(r, limit=1)
    long = RedisBudget(
        r, limit=1, window=2 * WINDOW, key="test", heartbeat=0.5, hold_after_restart=False
    ).make_gate(concurrency=8, unanswered_hold=1.0, account=None)
    try:
        await use(long, 0)
        first = await long.acquire()
        long.release(first, answered=True)
        await settle(long)
        answered = await slot_score(r, first.token.member)
        second = await asyncio.wait_for(short.acquire(), 30)
        assert second.token.admitted_ms >= answered + 2 * WINDOW * 1000
        short.release(second, answered=True)
    finally:
        await short.aclose()
        await long.aclose()


# -- item 6: a Redis that refuses writes is an outage ------------------------------------


@pytest.fixture
def refusing(tmp_path: Path) -> Any:
    """``refusing(kind)``: a redis-server of the test's own that refuses writes: "readonly"
    (demoted to a replica of another server) or "oom" (``maxmemory`` with noeviction)."""
    servers: list[RedisServer] = []

    def make(kind: str) -> tuple[RedisServer, Any]:
        server = RedisServer(redis_server_binary(), tmp_path / f"s{len(servers)}")
        server.directory.mkdir()
        server.start()
        servers.append(server)
        if kind == "readonly":
            other = RedisServer(redis_server_binary(), tmp_path / f"s{len(servers)}")
            other.directory.mkdir()
            other.start()
            servers.append(other)

            def refuse() -> None:
                server.demote(other)

            def accept() -> None:
                server.promote()
        else:
            refuse, accept = server.out_of_memory, server.memory_back
        return server, (refuse, accept)

    yield make
    for server in servers:
        server.stop()


@pytest.mark.parametrize("kind", ["readonly", "oom"])
async def test_refused_writes_are_an_outage(refusing: Any, kind: str) -> None:
    """Item 6: READONLY and OOM reach the caller as BudgetUnavailableError after the bound."""
    server, (refuse, _) = refusing(kind)
    r = aioredis.Redis.from_url(server.url)
    g = gate(r, unavailable_timeout=0.5)
    try:
        refuse()
        with pytest.raises(BudgetUnavailableError, match="not sent"):
            await asyncio.wait_for(g.acquire(), 30)
    finally:
        await g.aclose()
        await r.aclose()


@pytest.mark.parametrize("kind", ["readonly", "oom"])
async def test_a_refused_release_raises_nowhere(refusing: Any, kind: str) -> None:
    """Item 6: a release that Redis refuses leaves the slot on its lease, and no background
    task ends with an exception ("Task exception was never retrieved")."""
    server, (refuse, _) = refusing(kind)
    r = aioredis.Redis.from_url(server.url)
    g = gate(r)
    try:
        adm = await g.acquire()
        refuse()
        g.release(adm, answered=True)
        tasks = set(g._tasks)
        await settle(g)
        tasks |= set(g._tasks)
        if tasks:
            await asyncio.wait(tasks)
        assert [t.exception() for t in tasks] == [None] * len(tasks)
    finally:
        await g.aclose()
        await r.aclose()


@pytest.mark.parametrize("kind", ["readonly", "oom"])
async def test_a_handle_survives_a_redis_that_refuses_writes(
    refusing: Any, emulator: VoucherifyEmulator, logged: Any, kind: str
) -> None:
    """Item 6: a handle awaiting an action while Redis refuses writes waits (a WARNING), and
    resolves once Redis accepts them again."""
    server, (refuse, accept) = refusing(kind)
    r = aioredis.Redis.from_url(server.url)
    outage = logged("refuses writes")
    action_id = emulator.add_action(duration=0.0)
    try:
        async with VoucherifyClient(
            APP_ID,
            APP_TOKEN,
            base_url=emulator.base_url,
            budget=RedisBudget(
                r, window=WINDOW, unavailable_timeout=60.0, heartbeat=0.5, hold_after_restart=False
            ),
        ) as client:
            refuse()
            waiting = asyncio.ensure_future(client.async_actions.wait(action_id))
            await asyncio.wait_for(outage.seen.wait(), 30)
            assert not waiting.done()
            accept()
            result = await asyncio.wait_for(waiting, 60)
            assert str(result.status) == "DONE"
    finally:
        await r.aclose()
