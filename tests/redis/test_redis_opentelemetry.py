"""The OpenTelemetry budget gauges from a RedisBudget: the fleet's view, not one process's."""

from __future__ import annotations

import asyncio

import pytest
from _redis_server import RedisServer
from _support import APP_ID, APP_TOKEN

pytest.importorskip("opentelemetry.sdk")

from _faults import TcpProxy
from _otel import Telemetry

from voucherify_async import VoucherifyClient
from voucherify_async.opentelemetry import instrument, uninstrument
from voucherify_async.redis import RedisBudget
from voucherify_async.testing import VoucherifyEmulator


async def test_fleet_budget_gauge(r: object, emulator: VoucherifyEmulator) -> None:
    """Two clients share a RedisBudget: the gauge shows every slot the fleet holds in the
    window (both clients' requests), against the budget's limit; each client reports it as
    of its own latest admission, as a series of its own."""
    telemetry = Telemetry()
    instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        action_id = emulator.add_action(duration=0)
        budget = RedisBudget(r, limit=10, key="otel-fleet", hold_after_restart=False)  # type: ignore[arg-type]
        async with (
            VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url, budget=budget) as a,
            VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url, budget=budget) as b,
        ):
            for _ in range(3):
                await a.async_actions.get(action_id)
            for _ in range(2):
                await b.async_actions.get(action_id)
        assert emulator.count() == 5
        fleet = [
            p
            for p in telemetry.points("voucherify.budget.usage")
            if p.attributes["voucherify.budget.scope"] == "fleet"
        ]
        by_client = {p.attributes["voucherify.client.id"]: p.value for p in fleet}
        # a's latest admission saw its own 3; b's, the fleet's 5 (it counts itself).
        assert sorted(by_client.values()) == [3, 5]
        limits = [
            p
            for p in telemetry.points("voucherify.budget.limit")
            if p.attributes["voucherify.budget.scope"] == "fleet"
        ]
        assert [p.value for p in limits] == [10, 10]
    finally:
        uninstrument()


async def test_redis_round_trip_is_not_a_budget_wait(
    redis_server: RedisServer, emulator: VoucherifyEmulator
) -> None:
    """A request the RedisBudget admits at once waited for no slot: the round trip to Redis,
    however slow, is not recorded in voucherify.budget.wait.duration."""
    import redis.asyncio as aioredis

    proxy = TcpProxy(redis_server.port)
    await proxy.start()
    r = aioredis.Redis.from_url(proxy.url)
    telemetry = Telemetry()
    instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        budget = RedisBudget(r, limit=100, key="otel-round-trip", hold_after_restart=False)
        async with VoucherifyClient(
            APP_ID, APP_TOKEN, base_url=emulator.base_url, budget=budget
        ) as client:
            action_id = emulator.add_action(duration=0)
            await client.async_actions.get(action_id)
            proxy.hold()  # Redis answers no sooner than the release below
            slow = asyncio.ensure_future(client.async_actions.get(action_id))
            await asyncio.sleep(0.1)  # latency put on the round trip, not a wait for it
            proxy.release()
            await slow
        assert emulator.count() == 2
        # Nothing of the held round trip is a wait (a loaded machine may still show the
        # gate's own few milliseconds as one: the threshold is 1 ms).
        waits = telemetry.points("voucherify.budget.wait.duration")
        assert sum(point.sum for point in waits) < 0.1
    finally:
        uninstrument()
        await r.aclose()
        await proxy.aclose()
