"""The OpenTelemetry budget gauges from a RedisBudget: the fleet's view, not one process's."""

from __future__ import annotations

import pytest
from _support import APP_ID, APP_TOKEN

pytest.importorskip("opentelemetry.sdk")

from _otel import Telemetry

from voucherify_async import VoucherifyClient
from voucherify_async.opentelemetry import instrument, uninstrument
from voucherify_async.redis import RedisBudget
from voucherify_async.testing import VoucherifyEmulator


async def test_fleet_budget_gauge(r: object, emulator: VoucherifyEmulator) -> None:
    """Two clients share a RedisBudget: the gauge shows every slot the fleet holds in the
    window (both clients' requests), against the budget's limit."""
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
        (point,) = fleet
        assert point.value == 5  # as of the latest admission, which counts itself
        (limit,) = [
            p
            for p in telemetry.points("voucherify.budget.limit")
            if p.attributes["voucherify.budget.scope"] == "fleet"
        ]
        assert limit.value == 10
    finally:
        uninstrument()
