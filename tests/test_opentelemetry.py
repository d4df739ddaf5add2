"""voucherify_async.opentelemetry: spans and metrics against the emulator, with the OTel SDK's
in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
from _support import APP_ID, APP_TOKEN
from aiohttp import web

pytest.importorskip("opentelemetry.sdk")

from _otel import Telemetry
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from voucherify_async import (
    AsyncActionFailed,
    NotFoundError,
    VoucherifyClient,
    instrumentation,
)
from voucherify_async._pacing import LocalGate
from voucherify_async._routes import route_template
from voucherify_async.opentelemetry import _integration, instrument, is_instrumented, uninstrument
from voucherify_async.testing import Delay, Status, VoucherifyEmulator, fast_polling

HANDLE = "voucherify.async_action"
GET_ROUTE = "GET /v1/async-actions/{asyncActionId}"


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    """The integration switched on, exporting to memory; switched off afterwards."""
    telemetry = Telemetry()
    instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield telemetry
    uninstrument()
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()


@pytest.fixture
async def client(emulator: VoucherifyEmulator) -> AsyncIterator[VoucherifyClient]:
    async with VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=emulator.base_url, requests_per_minute=100
    ) as made:
        yield made


def _gets(emulator: VoucherifyEmulator, action_id: str) -> int:
    return sum(1 for r in emulator.requests if r.action_id == action_id and r.method == "GET")


def _total(points: Sequence[Any], where: Callable[[dict[str, Any]], bool] = lambda a: True) -> int:
    return sum(p.count for p in points if where(dict(p.attributes)))


async def test_start_then_wait_span_tree(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """start() and the handle are children of the app's span; the POST is the start span's
    child, every poll's GET the handle span's, though a background task sends them."""
    with fast_polling(), otel.tracer.start_as_current_span("app request") as app:
        handle = await client.async_actions.start_vouchers_import([{"code": "A-1"}])
        action = await handle
    (app_span,) = otel.spans("app request")
    assert app.get_span_context().span_id == app_span.context.span_id

    (start,) = otel.children(app_span, "start /v1/vouchers/import")
    assert start.attributes is not None
    assert dict(start.attributes) == {
        "http.request.method": "POST",
        "url.template": "/v1/vouchers/import",
        "voucherify.async_action.type": "VOUCHERS.IMPORT",
        "voucherify.async_action.id": action.id,
    }
    (post,) = otel.children(start)
    assert post.name == "POST /v1/vouchers/import"
    assert post.kind is SpanKind.CLIENT
    assert post.attributes is not None
    assert post.attributes["http.response.status_code"] == 202
    assert post.attributes["server.address"] == "127.0.0.1"

    (waited,) = otel.children(app_span, HANDLE)
    gets = otel.children(waited)
    assert len(gets) == _gets(emulator, action.id) >= 1
    assert {g.name for g in gets} == {GET_ROUTE}
    assert all(g.kind is SpanKind.CLIENT for g in gets)
    # Every GET span of the run is the handle's: none escaped to the app's span or the root.
    assert len(otel.spans(GET_ROUTE)) == len(gets)
    attributes = dict(waited.attributes or {})
    assert attributes["voucherify.async_action.id"] == action.id
    assert attributes["voucherify.async_action.type"] == "VOUCHERS.IMPORT"
    assert attributes["voucherify.async_action.status"] == "DONE"
    assert attributes["voucherify.async_action.outcome"] == "done"
    assert attributes["voucherify.async_action.requests"] == len(gets)
    assert attributes["voucherify.poll.count"] == len(waited.events) == len(gets)
    assert attributes["voucherify.async_action.detection_delay"] >= 0
    assert waited.status.status_code is not StatusCode.ERROR
    # An event per poll: its status, progress and why the next delay was chosen.
    first, last = waited.events[0], waited.events[-1]
    assert first.name == "voucherify.poll"
    assert first.attributes is not None and last.attributes is not None
    assert first.attributes["voucherify.poll.attempt"] == 1
    assert last.attributes["voucherify.poll.reason"] == "done"
    assert last.attributes["voucherify.async_action.status"] == "DONE"
    assert last.attributes["voucherify.poll.next_delay"] == 0.0
    reasons = {e.attributes["voucherify.poll.reason"] for e in waited.events if e.attributes}
    assert reasons <= set(instrumentation.PollReason.__args__)  # type: ignore[attr-defined]
    # The handle span lasts from the start's answer to the last poll.
    assert waited.start_time is not None and post.end_time is not None
    assert waited.end_time is not None and gets[-1].end_time is not None
    assert waited.start_time >= post.end_time
    assert waited.end_time >= max(g.end_time or 0 for g in gets)


async def test_every_helper_under_tracing(otel: Telemetry, emulator: VoucherifyEmulator) -> None:
    """wait_all, as_completed, updates(every=...) and close() work as before under tracing;
    every handle span ends (a closed client's as an error), each with its own polls, and no
    handle is left pending."""
    async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
        with fast_polling():
            batch = [emulator.add_action(duration=0.02 * i) for i in range(5)]
            await client.async_actions.wait_all(batch)
            seen = [h.id async for h in client.async_actions.as_completed(batch[:2])]
            assert sorted(seen) == sorted(batch[:2])
        watched = emulator.add_action(duration=None)
        emulator.set_progress(watched, 10)
        handle = client.async_actions.handle(watched)
        async for snapshot in handle.updates(every=0.01):  # brings the next poll forward
            if snapshot.progress == 10:
                emulator.finish(watched)
        left = client.async_actions.handle(emulator.add_action(duration=None))
    assert left.done()
    spans = otel.spans(HANDLE)
    by_id: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_id.setdefault(str((span.attributes or {})["voucherify.async_action.id"]), []).append(
            span
        )
    assert len(by_id[left.id]) == 1
    assert by_id[left.id][0].attributes["voucherify.async_action.outcome"] == "error"  # type: ignore[index]
    for action_id in [*batch, watched]:
        assert all(
            s.attributes["voucherify.async_action.outcome"] == "done"  # type: ignore[index]
            for s in by_id[action_id]
        )
    for span in spans:  # each handle's GETs are its own children, however many ran at once
        polls = otel.children(span, GET_ROUTE)
        assert len(polls) == (span.attributes or {})["voucherify.async_action.requests"]
    # Every GET the server saw has its span (the closed handle's may or may not have left).
    sent = [
        s for s in otel.spans(GET_ROUTE) if left.id not in str((s.attributes or {})["url.full"])
    ]
    assert len(sent) == sum(1 for r in emulator.requests if r.action_id != left.id)
    (pending,) = otel.points("voucherify.handles.pending")
    assert pending.value == 0


async def test_failed_action(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """A FAILED action ends its handle span with an error status, its type and outcome."""
    action_id = emulator.add_action("VOUCHERS.BULK_UPDATE", duration=None, status="FAILED")
    emulator.finish(action_id, "FAILED")
    with pytest.raises(AsyncActionFailed):
        await client.async_actions.wait(action_id)
    (span,) = otel.spans(HANDLE)
    attributes = dict(span.attributes or {})
    assert attributes["voucherify.async_action.outcome"] == "failed"
    assert attributes["voucherify.async_action.status"] == "FAILED"
    assert attributes["voucherify.async_action.operation_status"] == "FAILED"
    assert attributes["error.type"] == "voucherify_async.AsyncActionFailed"
    assert span.status.status_code is StatusCode.ERROR
    (point,) = otel.points("voucherify.async_action.requests")
    assert dict(point.attributes) == {
        "voucherify.async_action.type": "VOUCHERS.BULK_UPDATE",
        "voucherify.async_action.status": "FAILED",
    }
    assert point.sum == _gets(emulator, action_id) == 1


async def test_cancelled_wait(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """Cancelling the task in wait() ends the handle span as cancelled, not as an error,
    and the pending-handles count goes back to zero."""
    action_id = emulator.add_action(duration=None)
    emulator.hold(action_id)
    waiter = asyncio.create_task(client.async_actions.wait(action_id))
    await emulator.wait_for_requests(1, action_id=action_id)
    (pending,) = otel.points("voucherify.handles.pending")
    assert pending.value == 1
    assert otel.spans(HANDLE) == []  # still open
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    (span,) = otel.spans(HANDLE)
    attributes = dict(span.attributes or {})
    assert attributes["voucherify.async_action.outcome"] == "cancelled"
    assert "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET
    (pending,) = otel.points("voucherify.handles.pending")
    assert pending.value == 0
    # Not terminal: no GETs-per-action or duration point for it.
    assert otel.points("voucherify.async_action.requests") == []


async def test_cancelled_request_is_not_an_http_error(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """The application cancelling a handle while its GET is in flight ends that GET's
    CLIENT span without an error status or error.type: it is no HTTP failure."""
    action_id = emulator.add_action(duration=None)
    emulator.hold(action_id)
    handle = client.async_actions.handle(action_id)
    await emulator.wait_for_requests(1, action_id=action_id)
    poll = handle._task
    assert poll is not None
    handle.cancel()
    await asyncio.gather(poll, return_exceptions=True)
    (request,) = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert request.status.status_code is StatusCode.UNSET
    assert "error.type" not in dict(request.attributes or {})
    (point,) = otel.points("http.client.request.duration")
    assert "error.type" not in dict(point.attributes)


async def test_permanent_poll_failure_is_a_poll_event(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """A poll that ends the handle with a permanent error (a 404) is a poll event too, with
    its error.type, like a transient failure's."""
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(404), action_id=action_id)
    with pytest.raises(NotFoundError):
        await client.async_actions.wait(action_id)
    (span,) = otel.spans(HANDLE)
    (event,) = span.events
    assert event.name == "voucherify.poll"
    attributes = dict(event.attributes or {})
    assert attributes["error.type"] == "voucherify_async.NotFoundError"
    assert attributes["voucherify.poll.reason"] == "done"
    assert dict(span.attributes or {})["voucherify.poll.count"] == 1


async def test_oldest_pending_age_by_type(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """The age gauge reports the oldest action still polled, by type, from its created_at;
    once the handle ends, nothing."""
    action_id = emulator.add_action("CUSTOMERS.IMPORT_CSV", duration=None)
    emulator.hold(action_id)
    handle = client.async_actions.handle(action_id)
    async for _ in handle.updates():
        break  # the first snapshot: the type and created_at are known
    (point,) = otel.points("voucherify.async_action.oldest_age")
    assert dict(point.attributes) == {"voucherify.async_action.type": "CUSTOMERS.IMPORT_CSV"}
    latest = handle.latest
    assert latest is not None and latest.created_at is not None
    # created_at is whole milliseconds on the emulator's clock: a hair ahead of ours, at most.
    assert 0 <= point.value <= max(0.0, time.time() - latest.created_at.timestamp())
    ended = asyncio.get_running_loop().create_future()
    handle.add_done_callback(lambda _: ended.set_result(None))  # after the integration's own
    handle.cancel()
    await ended
    assert otel.points("voucherify.async_action.oldest_age") == []


async def test_429_pause(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """A 429 is an HTTP span with error.type 429 and a pause event; the retry is a second
    span with a resend count; the pause is in the pause histogram with its length."""
    action_id = emulator.add_action(duration=0)
    emulator.inject(
        Status(429, headers={"Retry-After": "0.05"}, rate_limit_headers=False),
        action_id=action_id,
    )
    with fast_polling():
        await client.async_actions.get(action_id)
    refused, answered = sorted(otel.spans(GET_ROUTE), key=lambda s: s.start_time or 0)
    assert refused.attributes is not None and answered.attributes is not None
    assert refused.attributes["http.response.status_code"] == 429
    assert refused.attributes["error.type"] == "429"
    assert refused.status.status_code is StatusCode.ERROR
    (pause,) = refused.events
    assert pause.name == "voucherify.server_pause"
    assert pause.attributes is not None
    assert pause.attributes["voucherify.pause.duration"] == pytest.approx(0.05)
    assert answered.attributes["http.response.status_code"] == 200
    assert answered.attributes["http.request.resend_count"] == 1
    (point,) = otel.points("voucherify.server.pause.duration")
    assert dict(point.attributes) == {
        "voucherify.pause.cause": "429",
        "http.response.status_code": 429,
    }
    assert point.count == 1
    assert point.sum == pytest.approx(0.05)
    # The retry was sent after the pause (a lower bound the client guarantees).
    assert refused.end_time is not None and answered.start_time is not None
    assert answered.start_time - refused.end_time >= 0.05e9
    # The retry slept out the pause before asking the gate: the gate's waits (if a busy
    # machine shows any at all) are not the pause.
    assert all(p.max < 0.05 for p in otel.points("voucherify.budget.wait.duration"))


async def test_budget_wait_is_recorded(otel: Telemetry, emulator: VoucherifyEmulator) -> None:
    """A request held in the gate (by the concurrency cap, behind one in flight) records
    how long it waited."""
    slow = emulator.add_action(duration=0)
    fast = emulator.add_action(duration=0)
    emulator.inject(Delay(30), action_id=slow)
    async with VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=emulator.base_url, max_concurrency=1
    ) as client:
        first = asyncio.create_task(client.async_actions.get(slow))
        await emulator.wait_for_requests(1, action_id=slow)
        second = asyncio.create_task(client.async_actions.get(fast))
        gate = client._transport.gate
        assert isinstance(gate, LocalGate)
        await asyncio.sleep(0)  # one step of the task: it runs to the gate without a pause
        assert gate.waiting == 1
        await asyncio.sleep(0.05)  # the wait being measured, not a wait for something
        first.cancel()  # frees the one place: the second request goes
        await second
    (point,) = otel.points("voucherify.budget.wait.duration")
    # The held request's wait; the first one was admitted at once, and shows only if this
    # process was descheduled for over a millisecond right then (a busy machine).
    assert point.max >= 0.05
    assert point.count in (1, 2)
    assert dict(point.attributes) == {"server.address": "127.0.0.1"}


async def test_metrics_match_what_the_emulator_counted(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator
) -> None:
    """Request counts by route and status, GETs per action and budget use equal the
    emulator's own request log; action durations come from processing_time."""
    ids = [emulator.add_action("VOUCHERS.IMPORT", duration=0.05) for _ in range(3)]
    ids.append(emulator.add_action("ORDERS.IMPORT", duration=0))
    with fast_polling():
        await client.async_actions.wait_all(ids)
        await client.async_actions.list(limit=10)
    seen = emulator.requests
    http = otel.points("http.client.request.duration")
    assert _total(http) == len(seen)
    assert _total(http, lambda a: a["url.template"] == "/v1/async-actions") == 1
    assert _total(
        http,
        lambda a: (
            a["url.template"] == "/v1/async-actions/{asyncActionId}"
            and 200 <= a["http.response.status_code"] < 300
        ),
    ) == sum(1 for r in seen if r.action_id is not None)

    per_action = {
        dict(p.attributes)["voucherify.async_action.type"]: p
        for p in otel.points("voucherify.async_action.requests")
    }
    assert per_action["VOUCHERS.IMPORT"].count == 3
    assert per_action["VOUCHERS.IMPORT"].sum == sum(_gets(emulator, i) for i in ids[:3])
    assert per_action["ORDERS.IMPORT"].sum == _gets(emulator, ids[3])

    durations = {
        dict(p.attributes)["voucherify.async_action.type"]: p
        for p in otel.points("voucherify.async_action.duration")
    }
    expected = sum(emulator.action(i)["processing_time"] for i in ids[:3]) / 1000
    assert durations["VOUCHERS.IMPORT"].sum == pytest.approx(expected)

    usage = {
        dict(p.attributes)["voucherify.budget.scope"]: p.value
        for p in otel.points("voucherify.budget.usage")
    }
    limits = {
        dict(p.attributes)["voucherify.budget.scope"]: p.value
        for p in otel.points("voucherify.budget.limit")
    }
    # Every request of the run is in the client's 60 s window, the last one included.
    assert usage["client"] == len(seen)
    assert limits["client"] == 100
    assert limits["server"] == 1_000_000  # the emulator's X-Rate-Limit-Limit without a budget
    (pending,) = otel.points("voucherify.handles.pending")
    assert pending.value == 0
    units = otel.metric_units()
    assert units["http.client.request.duration"] == "s"
    assert units["voucherify.async_action.requests"] == "{request}"
    assert units["voucherify.handles.pending"] == "{handle}"


async def test_no_token_or_body_in_any_attribute_or_log(
    otel: Telemetry, emulator: VoucherifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the app token, an OAuth token nor a request body reaches an exported span,
    event, metric attribute or log record, even at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="voucherify_async")
    body_marker = "BODY-MARKER-91c2"
    action_id = emulator.add_action(duration=0)
    emulator.inject(Status(500), action_id=action_id)
    async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
        with fast_polling():
            handle = await client.async_actions.start_vouchers_import([{"code": body_marker}])
            await handle
            await client.async_actions.wait(action_id)
    secrets = [APP_TOKEN, body_marker]
    texts: list[str] = []
    for span in otel.spans():
        texts.append(span.name)
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    data = otel.reader.get_metrics_data()
    assert data is not None
    texts.append(data.to_json())
    texts.extend(record.getMessage() for record in caplog.records)
    assert any("500" in text for text in texts)  # the failure is there, described
    for secret in secrets:
        leaks = [text for text in texts if secret in text]
        assert leaks == []


async def test_aiohttp_instrumentation_never_doubles_a_request(
    otel: Telemetry, emulator: VoucherifyEmulator
) -> None:
    """With opentelemetry-instrumentation-aiohttp-client switched on too, each request is
    one CLIENT span: ours (the route template), never a second one from aiohttp."""
    aiohttp_client = pytest.importorskip("opentelemetry.instrumentation.aiohttp_client")
    instrumentor = aiohttp_client.AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
            action_id = emulator.add_action(duration=0)
            await client.async_actions.get(action_id)
            await client.async_actions.list(limit=5)
    finally:
        instrumentor.uninstrument()
    client_spans = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert len(client_spans) == len(emulator.requests) == 2
    assert {s.name for s in client_spans} == {GET_ROUTE, "GET /v1/async-actions"}


async def test_without_http_spans(emulator: VoucherifyEmulator) -> None:
    """instrument(http_spans=False) makes no span per HTTP attempt (an aiohttp
    instrumentation then traces each request once) and keeps the handle span, its poll
    events and the request metrics."""
    aiohttp_client = pytest.importorskip("opentelemetry.instrumentation.aiohttp_client")
    telemetry = Telemetry()
    instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        http_spans=False,
    )
    instrumentor = aiohttp_client.AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
            action_id = emulator.add_action(duration=0)
            with telemetry.tracer.start_as_current_span("app"):
                await client.async_actions.wait(action_id)
    finally:
        instrumentor.uninstrument()
        uninstrument()
    (waited,) = telemetry.spans(HANDLE)
    assert len(waited.events) == _gets(emulator, action_id) == 1
    client_spans = [s for s in telemetry.spans() if s.kind is SpanKind.CLIENT]
    assert len(client_spans) == len(emulator.requests) == 1
    assert client_spans[0].name == "GET"  # aiohttp's own span, inside the handle's
    assert client_spans[0].parent is not None
    assert client_spans[0].parent.span_id == waited.context.span_id
    assert _total(telemetry.points("http.client.request.duration")) == 1


async def test_without_http_spans_aiohttp_stable_metrics_never_double(
    emulator: VoucherifyEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With http_spans=False and the aiohttp instrumentation reporting the stable HTTP
    metrics (OTEL_SEMCONV_STABILITY_OPT_IN=http), each request is counted once in
    http.client.request.duration: by aiohttp, not by us as well."""
    aiohttp_client = pytest.importorskip("opentelemetry.instrumentation.aiohttp_client")
    semconv = pytest.importorskip("opentelemetry.instrumentation._semconv")
    stability = semconv._OpenTelemetrySemanticConventionStability
    # The opt-in is read once per process: read it again here, and restore it afterwards.
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    monkeypatch.setattr(stability, "_initialized", False)
    monkeypatch.setattr(stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})
    telemetry = Telemetry()
    instrumentor = aiohttp_client.AioHttpClientInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        http_spans=False,
    )
    try:
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
            await client.async_actions.get(emulator.add_action(duration=0))
            await client.async_actions.list(limit=5)
    finally:
        uninstrument()
        instrumentor.uninstrument()
    assert len(emulator.requests) == 2
    assert _total(telemetry.points("http.client.request.duration")) == 2


async def test_switched_on_again(
    otel: Telemetry, client: VoucherifyClient, emulator: VoucherifyEmulator, caplog: Any
) -> None:
    """instrument() twice on the same providers reuses the instruments: no duplicate
    instrument warning, and the gauges keep reporting."""
    caplog.set_level(logging.WARNING)
    instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    uninstrument()
    instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    await client.async_actions.get(emulator.add_action(duration=0))
    assert [r.getMessage() for r in caplog.records if "created already" in r.getMessage()] == []
    (limit,) = [
        p
        for p in otel.points("voucherify.budget.limit")
        if p.attributes["voucherify.budget.scope"] == "client"
    ]
    assert limit.value == 100
    assert _total(otel.points("http.client.request.duration")) == 1


async def test_request_hooks_see_each_attempt_and_never_break_it(
    client: VoucherifyClient, emulator: VoucherifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A request hook sees each attempt (route, attempt number) and its outcome; a hook or a
    finisher that raises is logged and the request goes on."""
    seen: list[tuple[str, int, int | None]] = []

    def hook(event: instrumentation.RequestEvent) -> Callable[[Any], None]:
        def finish(outcome: instrumentation.RequestOutcome) -> None:
            seen.append((event.route, event.attempt, outcome.status))
            raise RuntimeError("finisher bug")

        return finish

    def broken(event: instrumentation.RequestEvent) -> None:
        raise RuntimeError("hook bug")

    instrumentation.set_on_request_hooks([broken, hook])
    action_id = emulator.add_action(duration=0)
    emulator.inject(Status(503, headers={"Retry-After": "0"}), action_id=action_id)
    with fast_polling():
        action = await client.async_actions.get(action_id)
    assert action.id == action_id
    route = "/v1/async-actions/{asyncActionId}"
    assert seen == [(route, 1, 503), (route, 2, 200)]
    bugs = [r for r in caplog.records if "instrumentation hook raised" in r.getMessage()]
    assert len(bugs) == 4  # the hook twice, the finisher twice


async def test_handle_span_end_that_raises_is_logged_not_leaked(
    emulator: VoucherifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A span processor whose on_end raises for the handle span: the error is logged by the
    library and ignored (as for HTTP and start spans), never handed to the event loop's
    exception handler; the handle's metrics and the user's own done callback still run."""

    class Broken(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.name == HANDLE:
                raise ValueError("exporter bug")

    telemetry = Telemetry()
    telemetry.tracer_provider.add_span_processor(Broken())
    instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    leaked: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: leaked.append(context))
    try:
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
            with fast_polling():
                handle = client.async_actions.handle(emulator.add_action(duration=0))
                ours_ran = asyncio.Event()  # registered after the integration's callback
                handle.add_done_callback(lambda _: ours_ran.set())
                await handle
                await ours_ran.wait()
    finally:
        loop.set_exception_handler(None)
        uninstrument()
    assert leaked == []
    bugs = [r for r in caplog.records if "instrumentation hook raised" in r.getMessage()]
    assert len(bugs) == 1
    assert [p.value for p in telemetry.points("voucherify.handles.pending")] == [0]
    assert _total(telemetry.points("voucherify.async_action.requests")) == 1


async def test_handle_made_before_instrument_is_not_traced(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A handle created before instrument() is not traced: its later polls make no span (not
    an orphan root span each), though their requests are measured."""
    telemetry = Telemetry()
    action_id = emulator.add_action(duration=None)
    with fast_polling():
        handle = client.async_actions.handle(action_id)
        await emulator.wait_for_requests(1, action_id=action_id)
        instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        try:
            before = _gets(emulator, action_id)
            await emulator.wait_for_requests(before + 2, action_id=action_id)
            emulator.finish(action_id)
            await handle
            await client.async_actions.get(action_id)  # a plain get() is still traced
        finally:
            uninstrument()
    after = _gets(emulator, action_id) - before
    assert after >= 3
    assert [s.name for s in telemetry.spans()] == [GET_ROUTE]
    (traced,) = telemetry.spans()
    assert traced.parent is None
    # (A poll sent just before instrument() may arrive after `before` was read.)
    assert after - 1 <= _total(telemetry.points("http.client.request.duration")) <= after


async def test_hostile_server_values_are_bounded(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server's negative processing_time or updated_at before created_at records no
    duration (the SDK would warn per action); a 100,000-character type, or more undocumented
    types than the bound, become "other" in span and metric attributes."""
    monkeypatch.setattr(_integration, "_undocumented", set(), raising=False)
    bound = getattr(_integration, "MAX_UNDOCUMENTED_VALUES", 32)
    hostile: dict[str, dict[str, Any]] = {
        "aa_negative": {"processing_time": -5000},
        "aa_backwards": {
            "processing_time": None,
            "created_at": "2020-01-02T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        },
        "aa_long_type": {"type": "T" * 100_000},
        **{f"aa_new_{i}": {"type": f"NEW.TYPE_{i}"} for i in range(bound + 3)},
    }

    async def action(request: web.Request) -> web.Response:
        action_id = request.match_info["id"]
        body: dict[str, Any] = {
            "id": action_id,
            "type": "VOUCHERS.IMPORT",
            "status": "DONE",
            "progress": 100,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:10Z",
            "processing_time": 10_000,
            "result": {"message": "m"},
            "object": "async_action",
        }
        for key, value in hostile[action_id].items():
            if value is None:
                body.pop(key)
            else:
                body[key] = value
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", action)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    caplog.set_level(logging.WARNING)
    try:
        base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=base_url) as client:
            with fast_polling():
                for action_id in hostile:
                    await client.async_actions.wait(action_id, timeout=5)
    finally:
        await runner.cleanup()
    assert [r.getMessage() for r in caplog.records] == []
    durations = otel.points("voucherify.async_action.duration")
    assert _total(durations) == len(hostile) - 2  # not the negative ones
    assert min(p.min for p in durations) >= 0
    types = {dict(p.attributes)["voucherify.async_action.type"] for p in durations}
    assert types == {"other"} | {f"NEW.TYPE_{i}" for i in range(bound)}
    span_types = {s.attributes["voucherify.async_action.type"] for s in otel.spans(HANDLE)}
    assert max(len(str(t)) for t in span_types) <= 64
    assert "other" in span_types


async def test_off_costs_nothing(emulator: VoucherifyEmulator) -> None:
    """Before instrument() and after uninstrument() no hook is set and no span is made;
    the user's own hooks survive both."""
    telemetry = Telemetry()

    def mine(event: instrumentation.PollEvent) -> None:
        pass

    instrumentation.set_on_poll_hooks([mine])
    instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert is_instrumented()
    assert len(instrumentation.get_on_poll_hooks()) == 2
    uninstrument()
    assert not is_instrumented()
    assert instrumentation.get_on_poll_hooks() == (mine,)
    assert instrumentation.on_request == instrumentation.on_start == ()
    assert instrumentation.on_handle == instrumentation.on_server_pause == ()
    async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url) as client:
        with fast_polling():
            handle = client.async_actions.handle(emulator.add_action(duration=0))
            assert handle._context is None  # no context of its own: the polls run as before
            await handle
    assert telemetry.spans() == []
    uninstrument()  # a second call is a no-op


async def test_budget_gauges_have_a_series_per_client(
    otel: Telemetry, emulator: VoucherifyEmulator
) -> None:
    """Two clients to one host: each client's budget is its own series (told apart by
    voucherify.client.id), so the second one's admissions never overwrite the first's."""
    async with (
        VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url, requests_per_minute=4) as a,
        VoucherifyClient(
            APP_ID, APP_TOKEN, base_url=emulator.base_url, requests_per_minute=1000
        ) as b,
    ):
        for _ in range(2):
            await a.async_actions.get(emulator.add_action(duration=0))
        await b.async_actions.get(emulator.add_action(duration=0))
    used = {
        p.attributes["voucherify.client.id"]: p.value
        for p in otel.points("voucherify.budget.usage")
        if p.attributes["voucherify.budget.scope"] == "client"
    }
    limits = {
        p.attributes["voucherify.client.id"]: p.value
        for p in otel.points("voucherify.budget.limit")
        if p.attributes["voucherify.budget.scope"] == "client"
    }
    assert used.keys() == limits.keys()
    assert sorted((used[client], limits[client]) for client in used) == [(1, 1000), (2, 4)]


async def test_gate_usage_counts_the_window() -> None:
    """The in-process gate reports its own budget (slots held in the window, answered or
    in flight) and the server's (limit minus remaining), as the budget gauges show them."""
    now = [0.0]
    gate = LocalGate(concurrency=5, limit=3, window=60.0, clock=lambda: now[0])
    assert gate.usage() == (instrumentation.BudgetUsage("client", 0, 3),)
    assert gate.usage()[0].client == gate.client_id > 0
    first = await gate.acquire()
    await gate.acquire()
    assert gate.usage() == (instrumentation.BudgetUsage("client", 2, 3),)
    gate.release(first, answered=True)  # its slot stays taken for the window
    assert gate.usage()[0].used == 2
    now[0] = 60.5
    assert gate.usage()[0].used == 1  # only the one in flight
    gate.observe_allowance(7, 10)
    assert gate.usage()[1] == instrumentation.BudgetUsage("server", 3, 10)
    gate.close()


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/async-actions/aa_0c5559be44d7b63c06", "/v1/async-actions/{asyncActionId}"),
        ("/v1/async-actions", "/v1/async-actions"),
        ("/v1/campaigns/summer%2F2026/import", "/v1/campaigns/{campaignId}/import"),
        ("/v1/campaigns/camp_1/vouchers?vouchers_count=5", "/v1/campaigns/{campaignId}/vouchers"),
        ("/v1/loyalties/import", "/v1/loyalties/{campaignId}"),
        (
            "/v2/loyalties/programs/lp_1/members/batch",
            "/v2/loyalties/programs/{loyaltyProgramId}/members/batch",
        ),
        ("/v1/vouchers/metadata/async", "/v1/vouchers/metadata/async"),
        ("/v1/someday/cust_42/bulk/async", "/v1/{id}/{id}/bulk/async"),
    ],
)
def test_route_templates(path: str, route: str) -> None:
    """Paths become templates: the library's endpoints by shape, any other path keeps only
    the API's own words, so no id or name reaches a span name or metric attribute."""
    assert route_template(path) == route
