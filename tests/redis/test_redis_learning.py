"""RedisLearning against a real redis-server: a fleet learns once (issue 25)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _support import APP_ID, APP_TOKEN

from voucherify_async import AsyncActionStatus, PollPolicy, VoucherifyClient
from voucherify_async.testing import VoucherifyEmulator

pytest.importorskip("redis.asyncio")
from voucherify_async.redis import RedisLearning

FAST = PollPolicy(
    first_poll_after=0.0, initial_delay=0.05, max_delay=0.05, min_delay=0.05, jitter=0.0,
    adaptive=False, timeout=60.0,
)  # fmt: skip
#: Adaptive (it learns time left), polling often.
ADAPTIVE = PollPolicy(
    first_poll_after=0.0, initial_delay=0.05, max_delay=0.1, min_delay=0.05, jitter=0.0,
    timeout=60.0,
)  # fmt: skip
TYPE = "VOUCHERS.IMPORT"


def make_client(
    emu: VoucherifyEmulator, learning: RedisLearning, policy: PollPolicy = FAST
) -> VoucherifyClient:
    return VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=emu.base_url, learning=learning, poll_policy=policy
    )


async def test_a_new_client_starts_with_what_the_fleet_learned(
    r: Any, emulator: VoucherifyEmulator
) -> None:
    """One client waits for six actions and closes; a client started after it (a new worker)
    knows their durations and time-left figures before its first request."""
    ids = [emulator.add_action(TYPE, duration=0.6 + i / 20) for i in range(6)]
    learning = RedisLearning(r, flush_every=0.05)
    async with make_client(emulator, learning, ADAPTIVE) as a:
        # Time left is learned only against known durations: start with a few.
        a.async_actions.durations.update({TYPE: [0.6] * 5})
        done = await a.async_actions.wait_all(ids, timeout=60)
        learned = a.async_actions.durations.to_dict()
        time_left = a.async_actions.durations.time_left.to_dict()
    assert all(action.status == AsyncActionStatus.DONE for action in done)
    assert len(learned[TYPE]) == 11
    requests = emulator.count()
    async with make_client(emulator, RedisLearning(r)) as b:
        stats = b.async_actions.durations
        assert emulator.count() == requests  # loaded from Redis, not from the API
        assert sorted(stats.to_dict()[TYPE]) == pytest.approx(sorted(learned[TYPE]))
        assert stats.quantile(TYPE, 0.5) is not None
        assert len(stats.time_left) == sum(len(pairs) for pairs in time_left.values()) > 0


async def test_every_process_merges(r: Any, emulator: VoucherifyEmulator) -> None:
    """Two clients learn different samples (one before its load, one after): the store holds
    both, once each, and a third client loads them all."""
    learning = RedisLearning(r)
    a, b = make_client(emulator, learning), make_client(emulator, learning)
    a.async_actions.durations.update({TYPE: [1.0, 2.0]})  # learned before the load
    async with a, b:
        b.async_actions.durations.update({TYPE: [3.0]})
        a.async_actions.durations.update({TYPE: [4.0]})
    async with make_client(emulator, learning) as c:
        assert sorted(c.async_actions.durations.to_dict()[TYPE]) == [1.0, 2.0, 3.0, 4.0]


async def test_the_store_is_bounded(r: Any, emulator: VoucherifyEmulator) -> None:
    """At most max_samples newest samples per type and max_types types; keys expire."""
    learning = RedisLearning(r, max_samples=10, max_types=3, ttl=600)
    async with make_client(emulator, learning) as a:
        a.async_actions.durations.update({f"T{k}": [float(i) for i in range(30)] for k in range(4)})
    keys = await r.keys("voucherify-async:learn:*")
    assert keys
    for key in keys:
        assert 0 < await r.pttl(key) <= 600_000
    stored = await r.hgetall(next(k for k in keys if k.endswith(b":durations")))
    assert len(stored) == 3
    async with make_client(emulator, learning) as b:
        figures = b.async_actions.durations.to_dict()
    assert len(figures) == 3
    assert all(values == [float(i) for i in range(20, 30)] for values in figures.values())


async def test_a_damaged_store_loads_what_is_valid(r: Any, emulator: VoucherifyEmulator) -> None:
    """Fields that are not JSON lists of numbers (another version, a stray write) are skipped,
    never raised; a later merge replaces them."""
    learning = RedisLearning(r)
    key = "voucherify-async:learn:{127.0.0.1:" + APP_ID + "}:durations"
    await r.hset(key, mapping={"A": "not json", "B": '["x", 2.5, -1, true]', "C": "{}"})
    async with make_client(emulator, learning) as a:
        assert a.async_actions.durations.to_dict() == {"B": [2.5]}
        a.async_actions.durations.update({"A": [1.0]})
    assert await r.hget(key, "A") == b"[1]"


@pytest.mark.slow  # redis-py's own retries take seconds before the connection is given up
async def test_redis_unreachable_starts_cold(
    emulator: VoucherifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Without Redis a client starts cold and works, with one WARNING; nothing raises."""
    import redis.asyncio as aioredis
    from _redis_server import free_port

    r = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    action_id = emulator.add_action(TYPE, duration=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="voucherify_async"):
            async with make_client(emulator, RedisLearning(r, flush_every=0.01)) as a:
                assert len(a.async_actions.durations) == 0
                await a.async_actions.wait(action_id, timeout=30)
    finally:
        await r.aclose()
    warnings = [rec for rec in caplog.records if "learned durations" in rec.getMessage()]
    assert len(warnings) == 1


def test_bad_options_are_refused(r: Any) -> None:
    with pytest.raises(ValueError, match="max_samples"):
        RedisLearning(r, max_samples=0)
    with pytest.raises(ValueError, match="flush_every"):
        RedisLearning(r, flush_every=float("nan"))
    with pytest.raises(ValueError, match="key"):
        RedisLearning(r, key="")


@pytest.mark.slow
async def test_a_worker_started_later_knows_what_the_fleet_learned(
    redis_server: Any, r: Any, emulator: VoucherifyEmulator
) -> None:
    """Real processes: two workers wait for four actions each and exit; a worker started
    after them knows all eight durations before its first request."""
    from _redis_server import Worker

    def config(ids: list[str]) -> dict[str, Any]:
        return {
            "mode": "poll", "redis_url": redis_server.url, "base_url": emulator.base_url,
            "app_id": APP_ID, "app_token": APP_TOKEN, "ids": ids, "limit": 1000,
            "window": 2.0, "lease": 1.0, "delay": 0.1, "learning": True,
        }  # fmt: skip

    ids = [emulator.add_action(TYPE, duration=0.2 + i / 20) for i in range(8)]
    fleet = [await Worker.spawn(**config(ids[:4])), await Worker.spawn(**config(ids[4:]))]
    try:
        done = [await w.result() for w in fleet]
    finally:
        for w in fleet:
            await w.reap()
    assert all(res["statuses"] == ["DONE"] * 4 for res in done)
    later_id = emulator.add_action(TYPE, duration=0.2)
    later = await Worker.spawn(**config([later_id]))
    try:
        result = await later.result()
    finally:
        await later.reap()
    assert result["statuses"] == ["DONE"]
    assert result["known_at_start"] == 8
