"""RedisPolling against a real redis-server: one GET per poll of an id, whatever the processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _redis_server import RedisServer, Worker
from _support import APP_ID, APP_TOKEN

from voucherify_async import AsyncActionStatus, PollPolicy, VoucherifyClient
from voucherify_async.testing import VoucherifyEmulator

pytest.importorskip("redis.asyncio")
from voucherify_async.redis import RedisBudget, RedisPolling
from voucherify_async.redis._polling import RedisPoller

FAST = PollPolicy(
    first_poll_after=0.0, initial_delay=0.1, max_delay=0.1, min_delay=0.05, jitter=0.0,
    adaptive=False, timeout=60.0,
)  # fmt: skip


def make_client(emu: VoucherifyEmulator, polling: RedisPolling, **options: Any) -> VoucherifyClient:
    return VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=emu.base_url, shared_polling=polling, poll_policy=FAST,
        **options,
    )  # fmt: skip


def poller(client: VoucherifyClient) -> RedisPoller:
    shared = client.async_actions._shared
    assert isinstance(shared, RedisPoller)
    return shared


async def test_two_clients_one_poll(r: Any, emulator: VoucherifyEmulator) -> None:
    """Two clients await one action: only the leader GETs; both see every change and the end."""
    action_id = emulator.add_action(duration=1.0)
    polling = RedisPolling(r, lease=2.0)
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        ha, hb = a.async_actions.handle(action_id), b.async_actions.handle(action_id)
        seen: list[int | None] = []

        async def watch() -> None:
            async for snapshot in hb.updates():
                seen.append(snapshot.progress)

        watcher = asyncio.ensure_future(watch())
        done_a, done_b = await asyncio.gather(ha, hb.result(timeout=30))
        await asyncio.wait_for(watcher, 10)
    assert done_a.status == done_b.status == AsyncActionStatus.DONE
    assert polling.led == emulator.count(action_id)  # the follower sent no GET
    assert polling.followed >= 1
    assert seen and seen[-1] == 100


async def test_keys_expire_after_the_end(r: Any, emulator: VoucherifyEmulator) -> None:
    """Every key of a finished action has a time to live: nothing accumulates."""
    action_id = emulator.add_action(duration=0.2)
    polling = RedisPolling(r, lease=2.0, linger=5.0)
    async with make_client(emulator, polling) as a:
        await a.async_actions.wait(action_id, timeout=30)
    keys = await r.keys(f"*{action_id}*")
    assert keys
    for key in keys:
        assert 0 < await r.pttl(key) <= 5000, key


async def test_a_paused_ex_leader_cannot_publish(r: Any, emulator: VoucherifyEmulator) -> None:
    """The fencing check: a leader whose lease passed to another publishes nothing."""
    action_id = emulator.add_action(duration=None)
    polling = RedisPolling(r, lease=5.0)
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        pa, pb = poller(a), poller(b)
        await pa.fetch(action_id)  # a leads
        state_a = pa._ids[action_id]
        assert state_a.token is not None
        lease, _, stream = pa._keys(action_id)
        await r.delete(lease)  # a's lease ran out while it was paused
        await pb.fetch(action_id)  # b first returns a's snapshot, which it had not seen
        await pb.fetch(action_id)  # then takes over, with a higher fencing token
        state_b = pb._ids[action_id]
        assert state_b.token is not None and state_b.fence > state_a.fence
        before = await r.xlen(stream)
        await pa._lead(action_id, state_a)  # a wakes up mid-poll and tries to publish
        assert await r.xlen(stream) == before
        assert state_a.token is None  # and knows it no longer leads
        pa.done(action_id)
        pb.done(action_id)


@pytest.mark.slow
async def test_redis_unreachable_polls_for_itself(emulator: VoucherifyEmulator) -> None:
    """Without Redis, a handle still ends: its client polls for itself (with a WARNING)."""
    import redis.asyncio as aioredis
    from _redis_server import free_port

    r = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    action_id = emulator.add_action(duration=0.2)
    try:
        async with make_client(emulator, RedisPolling(r)) as a:
            action = await a.async_actions.wait(action_id, timeout=30)
        assert action.status == AsyncActionStatus.DONE
    finally:
        await r.aclose()


# -- many processes ---------------------------------------------------------------------


def poll_config(redis_url: str, emu: VoucherifyEmulator, ids: list[str], **extra: Any) -> Any:
    return {
        "mode": "poll",
        "redis_url": redis_url,
        "base_url": emu.base_url,
        "app_id": APP_ID,
        "app_token": APP_TOKEN,
        "ids": ids,
        "limit": 1000,
        "window": 2.0,
        "lease": 1.0,
        "delay": 0.2,
        **extra,
    }


@pytest.mark.slow
async def test_kill_9_of_a_poll_leader(
    redis_server: RedisServer, r: Any, emulator: VoucherifyEmulator
) -> None:
    """The leader is killed; the follower takes its lease over and sees the action end."""
    action_id = emulator.add_action(duration=None)
    leader = await Worker.spawn(**poll_config(redis_server.url, emulator, [action_id]))
    follower: Worker | None = None
    try:
        await emulator.wait_for_requests(1, timeout=60, action_id=action_id)
        follower = await Worker.spawn(**poll_config(redis_server.url, emulator, [action_id]))
        await follower.event("polling")
        leader.kill()
        await leader.process.wait()
        at_kill = emulator.count(action_id)
        # Only the follower is alive: any new GET is its own, after taking the lease over.
        await emulator.wait_for_requests(at_kill + 2, timeout=60, action_id=action_id)
        emulator.finish(action_id)
        result = await follower.result()
    finally:
        await leader.reap()
        if follower is not None:
            await follower.reap()
    assert result["statuses"] == ["DONE"]
    assert result["led"] >= 2


def assert_every_id_ended_by_the_leaders_gets(
    emulator: VoucherifyEmulator, ids: list[str], results: list[dict[str, Any]]
) -> None:
    """Every worker saw every id DONE, and followers sent no GET: every request the server
    saw was a leader's."""
    for result in results:
        assert result["statuses"] == ["DONE"] * len(ids)
    assert sum(emulator.count(i) for i in ids) == sum(res["led"] for res in results)


@pytest.mark.slow
async def test_many_ids_across_processes(
    redis_server: RedisServer, r: Any, emulator: VoucherifyEmulator
) -> None:
    """Three processes await the same 12 ids: every one ends everywhere, and the server saw
    exactly the leaders' GETs (followers send none)."""
    ids = [emulator.add_action(duration=1.5 + i / 10) for i in range(12)]
    workers = [
        await Worker.spawn(**poll_config(redis_server.url, emulator, ids[k:] + ids[:k]))
        for k in (0, 4, 8)
    ]
    try:
        results = [await w.result() for w in workers]
    finally:
        for w in workers:
            await w.reap()
    assert_every_id_ended_by_the_leaders_gets(emulator, ids, results)
    assert sum(res["followed"] for res in results) >= 12


@pytest.mark.slow
async def test_leaders_spread_across_processes(
    redis_server: RedisServer, r: Any, emulator: VoucherifyEmulator
) -> None:
    """Three processes each lead four of 12 held ids (each asks for its own four first,
    alone), then all three await all 12: every process sees every id end, and the server saw
    only the leaders' GETs, so each process followed the two others' streams and polled none
    of their ids."""
    ids = [emulator.add_action(duration=60.0) for _ in range(12)]
    for action_id in ids:
        emulator.hold(action_id)
    own = [ids[4 * k : 4 * k + 4] for k in range(3)]
    workers = []
    try:
        for k in range(3):
            config = poll_config(
                redis_server.url, emulator, ids[4 * k :] + ids[: 4 * k], lead_first=own[k],
                lease=5.0,
            )  # fmt: skip
            workers.append(await Worker.spawn(**config))
        leading = [await w.event("leading") for w in workers]
        # Each process alone asked for its four: it made their first GETs, as their leader.
        for k, event in enumerate(leading):
            assert event["led"] >= 4 and event["followed"] == 0
            assert all(emulator.count(i) >= 1 for i in own[k])
        assert len(await r.keys("*:lease")) == 12
        for w in workers:
            await w.send("go")
        for w in workers:
            await w.event("polling")
        for action_id in ids:
            emulator.finish(action_id)
        results = [await w.result() for w in workers]
    finally:
        for w in workers:
            await w.reap()
    assert_every_id_ended_by_the_leaders_gets(emulator, ids, results)
    # Each id ended in two processes that did not lead it: by the stream, not by a GET.
    assert all(res["followed"] >= 8 for res in results)


async def test_budget_and_polling_together(r: Any, emulator: VoucherifyEmulator) -> None:
    """Both backends on one client: polls pass the shared budget."""
    action_id = emulator.add_action(duration=0.3)
    polling = RedisPolling(r)
    async with make_client(emulator, polling, budget=RedisBudget(r, window=2.0)) as a:
        action = await a.async_actions.wait(action_id, timeout=30)
    assert action.status == AsyncActionStatus.DONE
    assert await r.keys("voucherify-async:budget:*")
