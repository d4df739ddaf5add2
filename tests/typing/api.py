"""Pins the public typing: type-checked by `nox -s mypy` (mypy --strict), never run."""

from __future__ import annotations

from voucherify_async import (
    AsyncAction,
    AsyncActionHandle,
    AsyncActionList,
    AsyncActionStatus,
    PollPolicy,
    VoucherifyClient,
    converter,
)


async def uses() -> None:
    async with VoucherifyClient("id", "token", requests_per_minute=100) as client:
        action: AsyncAction = await client.async_actions.get("aa_1")
        page: AsyncActionList = await client.async_actions.list(limit=10)
        items: list[AsyncAction] = page.async_actions
        more: bool = page.has_more
        handle: AsyncActionHandle = client.async_actions.handle(
            "aa_1", policy=PollPolicy(timeout=60)
        )
        done: AsyncAction = await handle
        again: AsyncAction = await handle.result(timeout=1.0)
        status: AsyncActionStatus | str | None = handle.status
        progress: int | None = handle.progress
        waited: AsyncAction = await client.async_actions.wait("aa_1", timeout=5)
        many: list[AsyncAction] = await client.async_actions.wait_all(["a", "b"])
        mixed: list[AsyncAction | BaseException] = await client.async_actions.wait_all(
            ["a"], return_exceptions=True
        )
        async for h in client.async_actions.as_completed(["a", handle]):
            finished: AsyncAction = await h
        async for snapshot in handle.updates():
            latest: AsyncAction = snapshot
        async for item in client.async_actions.iterate():
            listed: AsyncAction = item
        cancelled: bool = handle.cancel()
        started: AsyncActionHandle = await client.async_actions.start(
            "POST", "/v1/vouchers/import", json=[{"code": "A"}]
        )
        csv: AsyncActionHandle = await client.async_actions.start_vouchers_import_csv("v.csv")
        deleted: AsyncActionHandle = await client.async_actions.delete_campaign("camp_1")
        when: float | None = started.started_at
        payload = converter.unstructure(action)
        back: AsyncAction = converter.structure(payload, AsyncAction)
        del items, more, done, again, status, progress, waited, many, mixed, finished
        del latest, listed, cancelled, back, csv, deleted, when


def telemetry() -> bool:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    from voucherify_async import instrumentation
    from voucherify_async.opentelemetry import instrument, is_instrumented, uninstrument

    instrument()
    instrument(
        tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider(), http_spans=False
    )

    def finish(outcome: instrumentation.RequestOutcome) -> int | None:
        return outcome.status

    def hook(event: instrumentation.RequestEvent) -> None:
        assert event.route

    instrumentation.set_on_request_hooks([hook, lambda event: finish])
    instrumentation.set_on_server_pause_hooks([lambda event: event.seconds])
    uninstrument()
    return is_instrumented()
