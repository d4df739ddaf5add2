"""RedisBudget against a real redis-server: one exact budget for many gates and processes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from _redis_server import RedisServer, Worker, free_port, max_in_window
from _support import APP_ID, APP_TOKEN

from voucherify_async import ClientClosedError, ConfigurationError, VoucherifyClient
from voucherify_async._pacing import ServerPause
from voucherify_async.testing import VoucherifyEmulator

aioredis = pytest.importorskip("redis.asyncio")
from voucherify_async.redis import BudgetUnavailableError, RedisBudget  # noqa: E402
from voucherify_async.redis._budget import RedisGate  # noqa: E402

WINDOW = 2.0


def gate(r: Any, limit: int = 3, *, hold: float = 1.0, **options: Any) -> RedisGate:
    options.setdefault("hold_after_restart", False)  # the session's redis-server is new
    budget = RedisBudget(r, limit=limit, window=WINDOW, key="test", heartbeat=0.5, **options)
    made = budget.make_gate(concurrency=8, unanswered_hold=hold, account=None)
    assert isinstance(made, RedisGate)
    return made


async def redis_ms(r: Any) -> int:
    seconds, micros = await r.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def slot_scores(r: Any) -> dict[str, float]:
    pairs = await r.zrange("voucherify-async:budget:{test}:slots", 0, -1, withscores=True)
    return {member.decode(): score for member, score in pairs if not member.startswith(b"~")}


# -- one process ------------------------------------------------------------------------


async def test_gates_share_the_limit_and_wait_for_the_earliest_slot(r: Any) -> None:
    """Two gates (two clients) share 3 slots; the 4th waits until a window after a response."""
    a, b = gate(r), gate(r)
    try:
        first = [await a.acquire(), await b.acquire(), await a.acquire()]
        fourth = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(0)
        assert not fourth.done()
        a.release(first[0], answered=True)
        await a.flush_releases()  # the release reached Redis
        frees = (await slot_scores(r))[first[0].token.member] + WINDOW * 1000
        admission = await asyncio.wait_for(fourth, 30)
        # Admitted no earlier than the released slot freed, on Redis's clock.
        assert admission.token.admitted_ms >= frees
        assert frees >= first[0].token.admitted_ms + WINDOW * 1000
        for adm in (*first[1:], admission):
            (a if adm in first else b).release(adm, answered=True)
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.slow
async def test_unanswered_slot_is_held_past_the_hold(r: Any) -> None:
    """A request without a response frees a window after admitted + hold (LocalGate's rule)."""
    g = gate(r, hold=5.0)
    try:
        adm = await g.acquire()
        g.release(adm, answered=False)
        await g.flush_releases()
        # The last instant it may reach the server: it counts a window after that.
        score = (await slot_scores(r))[adm.token.member]
        assert score == adm.token.admitted_ms + 5000
    finally:
        await g.aclose()


@pytest.mark.slow
async def test_lease_covers_a_request_that_is_never_released(r: Any) -> None:
    """Until released, a slot may reach the server until admitted + hold (and counts a
    window after)."""
    g = gate(r, hold=5.0)
    try:
        adm = await g.acquire()
        score = (await slot_scores(r))[adm.token.member]
        assert score == adm.token.admitted_ms + 5000
        g.release(adm, answered=True)
    finally:
        await g.aclose()


async def test_a_pause_in_one_gate_pauses_the_others(r: Any) -> None:
    """A 429 seen by one client pauses every client of the budget."""
    a, b = gate(r), gate(r)
    try:
        a.pause(30.0)
        assert a.paused_for > 29
        await asyncio.wait(a._tasks)
        with pytest.raises(ServerPause):
            await b.acquire(max_wait=1.0)
        assert b.paused_for > 25
    finally:
        await a.aclose()
        await b.aclose()


async def test_close_fails_waiters_and_later_callers(r: Any) -> None:
    g = gate(r, limit=1)
    try:
        held = await g.acquire()
        waiters = [asyncio.ensure_future(g.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        g.close()
        for waiter in waiters:
            with pytest.raises(ClientClosedError):
                await asyncio.wait_for(waiter, 10)
        with pytest.raises(ClientClosedError):
            await g.acquire()
        g.release(held, answered=True)
    finally:
        await g.aclose()
    assert not g._tasks and (g._listener is None or g._listener.done())


async def test_cancelled_waiter_leaves_the_queue(r: Any) -> None:
    """A cancelled waiter's queue entry goes at once: it blocks nobody behind it."""
    g = gate(r, limit=1)
    try:
        held = await g.acquire()
        waiter = asyncio.ensure_future(g.acquire())
        async with asyncio.timeout(30):  # Redis's state, another process's: probe it, bounded
            while not await r.zcard("voucherify-async:budget:{test}:queue"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait(g._tasks)
        assert await r.zcard("voucherify-async:budget:{test}:queue") == 0
        g.release(held, answered=True)
    finally:
        await g.aclose()


@pytest.mark.slow
async def test_scripts_survive_a_script_flush(r: Any) -> None:
    """Scripts are called by SHA; NOSCRIPT (a flushed or restarted server) loads them again."""
    g = gate(r)
    try:
        g.release(await g.acquire(), answered=True)
        await r.script_flush()
        g.release(await g.acquire(), answered=True)
    finally:
        await g.aclose()


async def _use_then_lose(r: Any, g: Any) -> None:
    """*g* takes and answers one request (its bookkeeping done), then Redis loses every key."""
    g.release(await g.acquire(), answered=True)
    await g.flush_releases()
    await r.flushdb()


@pytest.mark.slow
async def test_lost_state_holds_the_budget_for_a_lease(r: Any) -> None:
    """After Redis loses the budget's keys, nothing is admitted for one lease."""
    g = gate(r, hold=1.0)
    try:
        await _use_then_lose(r, g)
        lost_at = await redis_ms(r)
        adm = await asyncio.wait_for(g.acquire(), 30)
        assert adm.token.admitted_ms >= lost_at + 1000 + WINDOW * 1000
        g.release(adm, answered=True)
    finally:
        await g.aclose()


async def test_lost_state_recreated_by_a_newcomer_still_holds_the_budget(r: Any) -> None:
    """Redis loses the budget's keys, and a process new to the budget (it cannot tell a
    loss from a first use) is the first to call: the first caller that knew the old state
    holds the budget for one lease from then on, instead of taking the recreated state at
    its word."""
    old, newcomer = gate(r, hold=1.0), gate(r, hold=1.0)
    try:
        await _use_then_lose(r, old)
        newcomer.release(await asyncio.wait_for(newcomer.acquire(), 30), answered=True)
        await newcomer.flush_releases()
        noticed = await redis_ms(r)
        adm = await asyncio.wait_for(old.acquire(), 30)
        assert adm.token.admitted_ms >= noticed + 1000 + WINDOW * 1000
        old.release(adm, answered=True)
    finally:
        await old.aclose()
        await newcomer.aclose()


@pytest.mark.slow
async def test_unreachable_redis_is_a_typed_error_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens: the caller waits, logs a WARNING, then gets BudgetUnavailableError."""
    r = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    g = gate(r, unavailable_timeout=0.5)
    try:
        with (
            caplog.at_level(logging.WARNING, "voucherify_async"),
            pytest.raises(BudgetUnavailableError, match="not sent"),
        ):
            await asyncio.wait_for(g.acquire(), 30)
        assert any("unreachable" in rec.getMessage() for rec in caplog.records)
    finally:
        await g.aclose()
        await r.aclose()


async def test_callers_waiting_behind_an_outage_end_together() -> None:
    """Six callers of one process ask at once while nothing listens: each gets
    BudgetUnavailableError about unavailable_timeout after it asked, not one timeout after
    the one before it (the five waiting behind the one asking Redis used to end in turn)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    timeout = 1.0
    r = aioredis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    g = gate(r, unavailable_timeout=timeout)
    loop = asyncio.get_running_loop()
    ends: list[float] = []

    async def ask() -> BaseException | None:
        try:
            await g.acquire()
        except BudgetUnavailableError as exc:
            ends.append(loop.time())
            return exc
        return None

    try:
        started = loop.time()
        outcomes = await asyncio.wait_for(asyncio.gather(*(ask() for _ in range(6))), 60)
        assert all(isinstance(o, BudgetUnavailableError) for o in outcomes)
        # In turn, the last would end six timeouts in; together, all end within about one
        # (the bound leaves room for a loaded machine, and is half the old behaviour's).
        assert max(ends) - started < 3 * timeout
    finally:
        await g.aclose()
        await r.aclose()


async def test_oauth_needs_a_key(r: Any) -> None:
    with pytest.raises(ConfigurationError, match="key="):
        VoucherifyClient(oauth_token="tok", budget=RedisBudget(r))


@pytest.mark.slow
async def test_keys_name_the_account_never_the_token(r: Any, emulator: VoucherifyEmulator) -> None:
    action_id = emulator.add_action(duration=0.0)
    async with VoucherifyClient(
        APP_ID,
        APP_TOKEN,
        base_url=emulator.base_url,
        budget=RedisBudget(r, window=WINDOW, hold_after_restart=False),
    ) as client:
        await client.async_actions.get(action_id)
    keys = [k.decode() for k in await r.keys("*")]
    assert any(f"127.0.0.1:{APP_ID}" in k for k in keys), keys
    assert not any(APP_TOKEN in k for k in keys)
    for k in keys:
        if await r.type(k) == b"string":
            assert APP_TOKEN.encode() not in await r.get(k)


# -- many processes ---------------------------------------------------------------------

LIMIT = 6


def worker_config(redis_url: str, emu: VoucherifyEmulator, action_id: str, **extra: Any) -> Any:
    return {
        "mode": "budget",
        "redis_url": redis_url,
        "base_url": emu.base_url,
        "app_id": APP_ID,
        "app_token": APP_TOKEN,
        "action_id": action_id,
        "limit": LIMIT,
        "window": WINDOW,
        # The emulator reads every request at once: an abandoned request's hold (and so the
        # lease of a lost budget) may be the client's timeout instead of the 30 s floor.
        "abandoned_hold": extra.get("timeout", 5.0),
        **extra,
    }


@pytest.fixture
async def counting_emulator() -> Any:
    """The emulator enforcing the account's budget: any excess is a 429 it counts."""
    async with VoucherifyEmulator(
        app_id=APP_ID, app_token=APP_TOKEN, requests_per_minute=LIMIT, rate_limit_window=WINDOW
    ) as emu:
        yield emu


def assert_budget_kept(emu: VoucherifyEmulator) -> None:
    arrivals = [req.time for req in emu.requests]
    assert [req.status for req in emu.requests if req.status == 429] == []
    assert max_in_window(arrivals, WINDOW) <= LIMIT


async def run_workers(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    workers = [await Worker.spawn(**config) for config in configs]
    try:
        return [await w.result() for w in workers]
    finally:
        for w in workers:
            await w.reap()


@pytest.mark.slow
async def test_processes_share_one_budget(
    redis_server: RedisServer, r: Any, counting_emulator: VoucherifyEmulator
) -> None:
    """Three processes, 8 requests each, 6 per 2 s between them: no window holds more."""
    emu = counting_emulator
    action_id = emu.add_action(duration=0.0)
    config = worker_config(redis_server.url, emu, action_id, requests=8)
    results = await run_workers([config] * 3)
    for result in results:
        assert result["errors"] == [] and result["done"] == 8
        assert result["round_trips"] >= 8
    assert len(emu.requests) == 24
    assert_budget_kept(emu)


@pytest.mark.slow
async def test_clock_offsets_do_not_matter(
    redis_server: RedisServer, r: Any, counting_emulator: VoucherifyEmulator
) -> None:
    """Processes whose clocks disagree by hours still keep the one budget (Redis's clock counts).

    Offsets are positive only: a wall clock behind makes the core read ``X-Rate-Limit-Retry``
    as a longer pause (it would only slow this test), and a monotonic clock is never negative.
    """
    emu = counting_emulator
    action_id = emu.add_action(duration=0.0)
    offsets = [(0.0, 0.0), (86_400.0, 5.0), (3_600.0, 3_600.0)]
    configs = [
        worker_config(
            redis_server.url, emu, action_id, requests=6, clock_offset=mono, wall_offset=wall
        )
        for mono, wall in offsets
    ]
    results = await run_workers(configs)
    assert [(res["done"], res["errors"][:2]) for res in results] == [(6, [])] * 3
    assert_budget_kept(emu)


@pytest.mark.slow
async def test_kill_9_of_a_process_holding_slots(redis_server: RedisServer, r: Any) -> None:
    """A process killed holding every slot: its leases free them at admitted + hold + window."""
    hold = 1.0
    worker = await Worker.spawn(
        mode="hold", redis_url=redis_server.url, limit=3, window=WINDOW, key="test",
        slots=3, hold=hold,
    )  # fmt: skip
    try:
        held = await worker.event("held")
        leases = await slot_scores(r)
        assert set(held["slots"]) == set(leases)
        worker.kill()
        await worker.process.wait()
        g = gate(r, hold=hold)
        try:
            adm = await asyncio.wait_for(g.acquire(), 30)
            assert adm.token.admitted_ms >= min(leases.values()) + WINDOW * 1000
            g.release(adm, answered=True)
        finally:
            await g.aclose()
    finally:
        await worker.reap()


@pytest.mark.slow
async def test_redis_restarted_mid_run(
    own_redis_server: RedisServer, counting_emulator: VoucherifyEmulator
) -> None:
    """Redis dies under two busy processes (each has had a request answered) and comes back
    empty: they wait (a WARNING), then carry on, and the server never sees the budget
    exceeded."""
    emu = counting_emulator
    action_id = emu.add_action(duration=0.0)
    config = worker_config(own_redis_server.url, emu, action_id, requests=12, timeout=2.0)
    workers = [await Worker.spawn(**config) for _ in range(2)]
    try:
        for w in workers:
            await w.event("first")
        own_redis_server.stop()
        for w in workers:
            event = await w.event("log")
            while "unreachable" not in event["message"]:
                event = await w.event("log")
        own_redis_server.start()
        results = [await w.result() for w in workers]
    finally:
        for w in workers:
            await w.reap()
    assert [res["errors"] for res in results] == [[], []]
    assert sum(res["done"] for res in results) == 24
    assert_budget_kept(emu)
    for w in workers:
        assert any("reachable again" in e["message"] for e in w.events if e["event"] == "log")


def test_the_core_never_imports_redis() -> None:
    """Only ``voucherify_async.redis`` imports the redis package: the extra stays optional."""
    import subprocess
    import sys

    code = (
        "import sys, voucherify_async, voucherify_async.testing; "
        "assert 'redis' not in sys.modules, sorted(m for m in sys.modules if 'redis' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_release_rides_on_the_next_call(r: Any) -> None:
    """One script call per request: each release goes with the next admission (plus one
    subscription and one call for the last release). Before, every release was a call."""
    g = gate(r, limit=100)
    try:
        for _ in range(10):
            g.release(await g.acquire(), answered=True)
        await g.flush_releases()
        assert g.round_trips <= 10 + 2
        scores = await slot_scores(r)
        assert len(scores) == 10
        # Every slot was released: each counts from its answer, not from its lease (a second
        # after its admission).
        now = await redis_ms(r)
        assert all(score <= now + 5 for score in scores.values())
    finally:
        await g.aclose()


@pytest.mark.slow
async def test_a_budget_on_a_redis_cluster(rc: Any) -> None:
    """On a three-master cluster: every key of the budget in one hash slot, and the gate
    works (admission, a wait for the earliest slot, a release, a pause)."""
    a, b = gate(rc, limit=2), gate(rc, limit=2)
    try:
        slots = {await rc.cluster_keyslot(key) for key in a._keys}
        assert len(slots) == 1
        first = [await a.acquire(), await b.acquire()]
        third = asyncio.ensure_future(a.acquire())
        b.release(first[1], answered=True)
        await b.flush_releases()
        adm = await asyncio.wait_for(third, 30)
        assert adm.token.admitted_ms >= first[1].token.admitted_ms + WINDOW * 1000
        b.pause(5.0)
        await asyncio.wait(b._tasks)
        with pytest.raises(ServerPause):
            await a.acquire(max_wait=1.0)
        for adm_ in (first[0], adm):
            a.release(adm_, answered=True)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_queued_next_caller_that_is_cancelled_leaves_the_queue(r: Any) -> None:
    """An admitted caller queues its process's next one in the same call; if that one is
    cancelled while it sleeps for its turn, its place in Redis's queue goes too."""
    g = gate(r, limit=1)
    try:
        held = await g.acquire()
        first = asyncio.ensure_future(g.acquire())
        second = asyncio.ensure_future(g.acquire())
        await asyncio.sleep(0)
        g.release(held, answered=True)
        admitted = await asyncio.wait_for(first, 30)  # a window later; it queued `second`
        assert g._queued is not None or g._turn_at is not None
        assert await r.zcard("voucherify-async:budget:{test}:queue") == 1
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        await asyncio.wait(g._tasks)
        assert await r.zcard("voucherify-async:budget:{test}:queue") == 0
        g.release(admitted, answered=True)
    finally:
        await g.aclose()
