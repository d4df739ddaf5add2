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


@pytest.mark.slow  # redis-py's own retries take seconds before the connection is given up
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
    async with make_client(
        emulator, polling, budget=RedisBudget(r, window=2.0, hold_after_restart=False)
    ) as a:
        action = await a.async_actions.wait(action_id, timeout=30)
    assert action.status == AsyncActionStatus.DONE
    assert await r.keys("voucherify-async:budget:*")


# -- Redis losing state, sick leaders, start() and outages (issue 25, items 7-10) --------


async def _restart_empty(server: RedisServer) -> None:
    """kill -9 the server and start an empty one on the same port."""
    server.stop()
    await asyncio.to_thread(server.start)


async def _subscribed_again(p: RedisPoller) -> None:
    """Wait until *p*'s subscription, broken by a restart, is back (a readiness probe)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    async with asyncio.timeout(30):
        while True:
            try:
                await p._reader.ready()
                return
            except (RedisConnectionError, TimeoutError):
                await asyncio.sleep(0.05)


async def test_fence_grows_across_an_empty_restart(
    own_redis_server: RedisServer, emulator: VoucherifyEmulator
) -> None:
    """A follower that took the second leader's token still follows the leader elected after
    Redis restarted empty: the new token is above every one issued before (it comes from
    Redis's clock), so no snapshot of the new leader is dropped."""
    import redis.asyncio as aioredis

    action_id = emulator.add_action(duration=None)
    r = aioredis.Redis.from_url(own_redis_server.url)
    polling = RedisPolling(r, lease=5.0)
    try:
        async with (
            make_client(emulator, polling) as a,
            make_client(emulator, polling) as b,
            make_client(emulator, polling) as c,
        ):
            pa, pb, pc = poller(a), poller(b), poller(c)
            await pa.fetch(action_id)  # a leads
            lease = pa._keys(action_id)[0]
            await r.delete(lease)  # its lease ran out
            await pc.fetch(action_id)  # c returns a's snapshot,
            await pc.fetch(action_id)  # then leads: the second leadership
            before = pc._ids[action_id].fence
            assert pc._ids[action_id].token is not None and before > pa._ids[action_id].fence
            await pb.fetch(action_id)  # b follows c: it took c's token
            assert pb._ids[action_id].fence == before

            await _restart_empty(own_redis_server)
            await _subscribed_again(pb)  # (until then, b would poll for itself)
            async with make_client(emulator, polling) as d:
                pd = poller(d)
                await pd.fetch(action_id)  # the first leader after the restart
                assert pd._ids[action_id].token is not None
                assert pd._ids[action_id].fence > before
                # b takes d's snapshot at once (it would wait forever for a "newer" token).
                await asyncio.wait_for(pb.fetch(action_id), 30)
                assert pb._ids[action_id].fence == pd._ids[action_id].fence
                for p in (pa, pb, pc, pd):
                    p.done(action_id)
    finally:
        await r.aclose()


async def test_a_lower_fence_resyncs(r: Any, emulator: VoucherifyEmulator) -> None:
    """A snapshot newer in the stream but with a lower token than one taken (a failover to a
    replica whose clock is behind) is followed, not dropped."""
    action_id = emulator.add_action(duration=None)
    polling = RedisPolling(r, lease=5.0)
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        pa, pb = poller(a), poller(b)
        await pa.fetch(action_id)  # a leads
        await pb.fetch(action_id)  # b follows: it took a's token
        lease, _, stream = pa._keys(action_id)
        taken = pb._ids[action_id].fence
        [(_, fields)] = await r.xrevrange(stream, "+", "-", count=1)
        # The new leader (another process, another token) publishes a snapshot.
        await r.set(lease, "the new leader", px=60_000)
        fence = str(taken - 10**9).encode()
        entry_id = (await r.xadd(stream, {"fence": fence, "body": fields[b"body"]})).decode()
        # ... and pushes it, as poll_publish.lua does.
        message = f"{len(stream)}\n{stream}{entry_id}\n".encode() + fence + b"\n" + fields[b"body"]
        await r.publish(pa._channel, message)
        await asyncio.wait_for(pb.fetch(action_id), 30)
        assert pb._ids[action_id].fence == taken - 10**9
        pa.done(action_id)
        pb.done(action_id)


class _SickEgress:
    """A server of the test's own that answers every request with a 503: the only route
    to the API of one process."""

    def __init__(self) -> None:
        self.hits = 0
        self.hit = asyncio.Event()
        self._runner: Any = None
        self.url = ""

    async def __aenter__(self) -> _SickEgress:
        from aiohttp import web

        async def fail(request: web.Request) -> web.Response:
            self.hits += 1
            self.hit.set()
            return web.json_response({"code": 503, "message": "egress down"}, status=503)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fail)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


async def test_a_sick_leader_hands_over(r: Any, emulator: VoucherifyEmulator) -> None:
    """The leader's GETs all fail (a 503 only its process gets): it steps down, a healthy
    process takes the poll over, and both handles see the action end."""
    action_id = emulator.add_action(duration=0.5)
    polling = RedisPolling(r, lease=1.0, key="account")
    async with _SickEgress() as sick:
        sick_client = VoucherifyClient(
            APP_ID, APP_TOKEN, base_url=sick.url, shared_polling=polling, poll_policy=FAST,
            max_retries=0,
        )  # fmt: skip
        async with sick_client as a, make_client(emulator, polling) as b:
            ha = a.async_actions.handle(action_id)
            await asyncio.wait_for(sick.hit.wait(), 30)  # a leads, and its GET failed
            hb = b.async_actions.handle(action_id)
            done_b = await hb.result(timeout=30)
            done_a = await ha.result(timeout=30)
    assert done_a.status == done_b.status == AsyncActionStatus.DONE
    assert emulator.count(action_id) == polling.led >= 1  # only b's GETs reached the API


async def test_started_handles_share_polls(r: Any, emulator: VoucherifyEmulator) -> None:
    """A handle from start() joins shared polling: an action started by one worker and
    awaited by another is polled once."""
    polling = RedisPolling(r, lease=2.0)
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        ha = await a.async_actions.start_vouchers_import([{"code": "A"}])
        hb = b.async_actions.handle(ha.id)
        done_a, done_b = await asyncio.gather(ha.result(timeout=30), hb.result(timeout=30))
    assert done_a.status == done_b.status == AsyncActionStatus.DONE
    assert emulator.count(ha.id) == polling.led  # the follower sent no GET


async def test_a_leader_without_redis_gets_once_per_poll(
    own_redis_server: RedisServer, emulator: VoucherifyEmulator
) -> None:
    """Redis goes down under a leader: each poll is one GET (the snapshot whose publish failed
    is returned, not thrown away for a second GET)."""
    import redis.asyncio as aioredis

    action_id = emulator.add_action(duration=None)
    r = aioredis.Redis.from_url(own_redis_server.url, socket_connect_timeout=1.0)
    polling = RedisPolling(r, lease=5.0)
    try:
        async with make_client(emulator, polling) as a:
            pa = poller(a)
            await pa.fetch(action_id)  # a leads
            own_redis_server.stop()
            before = emulator.count(action_id)
            for _ in range(3):
                await pa.fetch(action_id)
            assert emulator.count(action_id) == before + 3
            pa.done(action_id)
    finally:
        await r.aclose()


async def test_a_follower_sees_a_snapshot_when_it_comes(
    r: Any, emulator: VoucherifyEmulator
) -> None:
    """A follower whose own schedule would poll again only in a minute sees the leader's
    terminal snapshot as it is published: the stream wakes its handle."""
    action_id = emulator.add_action(duration=None)
    polling = RedisPolling(r, lease=5.0)
    slow = PollPolicy(
        first_poll_after=0.0, initial_delay=60.0, max_delay=60.0, min_delay=60.0, jitter=0.0,
        adaptive=False, timeout=120.0,
    )  # fmt: skip
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        ha = a.async_actions.handle(action_id)
        await emulator.wait_for_requests(1, timeout=30, action_id=action_id)
        hb = b.async_actions.handle(action_id, policy=slow)
        seen = hb.updates()
        await anext(seen)  # b took a's first snapshot; its next poll is due in a minute
        await seen.aclose()
        emulator.finish(action_id)
        done_b = await hb.result(timeout=30)
        await ha
    assert done_b.status == AsyncActionStatus.DONE
    assert emulator.count(action_id) == polling.led


# -- Redis Cluster ------------------------------------------------------------------------


@pytest.mark.slow
async def test_shared_polls_on_a_cluster(rc: Any, emulator: VoucherifyEmulator) -> None:
    """Three masters: an account's keys share one hash tag, so the scripts (several keys) and
    one blocking read over several streams work; two clients await six ids, the server sees
    only the leaders' GETs, and the keys sit in one slot."""
    from redis.cluster import key_slot

    ids = [emulator.add_action(duration=0.5 + i / 10) for i in range(6)]
    polling = RedisPolling(rc, lease=2.0)
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        done = await asyncio.gather(
            *(a.async_actions.wait(i, timeout=60) for i in ids),
            *(b.async_actions.wait(i, timeout=60) for i in ids),
        )
        keys = [poller(a)._keys(i) for i in ids]
    assert all(action.status == AsyncActionStatus.DONE for action in done)
    assert sum(emulator.count(i) for i in ids) == polling.led
    assert polling.followed >= 6
    assert len({key_slot(key.encode()) for group in keys for key in group}) == 1


@pytest.mark.slow
async def test_followers_of_a_live_leader_do_not_ask_for_its_lease(
    r: Any, emulator: VoucherifyEmulator
) -> None:
    """A leader that polls less often than its lease renews it, and each renewal reaches the
    followers: for leases on end without a snapshot, a follower never asks for the lease (a
    round trip per lease) and sends no GET."""
    action_id = emulator.add_action(duration=None)
    polling = RedisPolling(r, lease=0.6)
    async with make_client(emulator, polling) as a, make_client(emulator, polling) as b:
        pa, pb = poller(a), poller(b)
        await pa.fetch(action_id)  # a leads, then polls no more: only its renewer runs
        await pb.fetch(action_id)  # b takes a's snapshot
        pubsub = r.pubsub()
        await pubsub.subscribe(pa._channel)
        waiting = asyncio.ensure_future(pb.fetch(action_id))  # b waits for the next one
        renewals = 0
        async with asyncio.timeout(30):
            async for message in pubsub.listen():  # what the followers hear
                if message["type"] == "message" and message["data"].endswith(b"alive"):
                    renewals += 1
                    if renewals == 8:  # one per third of a lease: over two leases
                        break
        await pubsub.aclose()
        assert not waiting.done()
        assert polling.trips["poll_lead"] == 0
        assert emulator.count(action_id) == 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        pa.done(action_id)
        pb.done(action_id)


@pytest.mark.slow
async def test_processes_share_polls_on_a_cluster(
    redis_cluster: Any, rc: Any, emulator: VoucherifyEmulator
) -> None:
    """Three processes on a three-master cluster await the same six ids: every one ends
    everywhere, and the server saw only the leaders' GETs."""
    ids = [emulator.add_action(duration=1.0 + i / 10) for i in range(6)]
    workers = [
        await Worker.spawn(
            **poll_config(redis_cluster.url, emulator, ids[k:] + ids[:k], cluster=True,
                          budget=False)
        )
        for k in (0, 2, 4)
    ]  # fmt: skip
    try:
        results = [await w.result() for w in workers]
    finally:
        for w in workers:
            await w.reap()
    assert_every_id_ended_by_the_leaders_gets(emulator, ids, results)
    assert sum(res["followed"] for res in results) >= 6
