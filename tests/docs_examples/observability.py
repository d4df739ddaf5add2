"""Recipe: a FastAPI application whose Voucherify client is traced and measured.

``POST /imports`` starts a vouchers import and answers its id; ``GET /imports/{action_id}``
waits for it (up to *wait* seconds). Every request, start, poll and wait becomes OpenTelemetry
spans and metrics, printed by the SDK's console exporters. Run it with
``uvicorn observability:app``; in production, swap the console exporters for OTLP ones.
"""

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TextIO

from fastapi import FastAPI, HTTPException, Query, Request, Response
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from voucherify_async import AsyncActionFailed, NotFoundError, PollTimeout, VoucherifyClient
from voucherify_async.opentelemetry import instrument, uninstrument

#: The longest a request may wait for an action, in seconds.
MAX_WAIT = 20.0


def telemetry(out: TextIO = sys.stdout) -> tuple[TracerProvider, MeterProvider]:
    """Providers that print spans (in batches) and metrics (every 60 s, and at shutdown)."""
    resource = Resource.create({"service.name": "imports-api"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=out)))
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(out=out), export_interval_millis=60_000
    )
    return tracer_provider, MeterProvider(resource=resource, metric_readers=[reader])


def create_app(out: TextIO = sys.stdout) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracer_provider, meter_provider = telemetry(out)
        # One call: every client of the process is traced and measured from now on.
        instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        app.state.tracer = tracer_provider.get_tracer("imports-api")
        try:
            async with VoucherifyClient(requests_per_minute=100) as client:
                app.state.voucherify = client
                yield
        finally:
            tracer_provider.shutdown()  # prints the spans still in the batch
            meter_provider.shutdown()  # prints the metrics one last time
            uninstrument()

    app = FastAPI(lifespan=lifespan)

    @app.post("/imports", status_code=202)
    async def start_import(request: Request, vouchers: list[dict[str, Any]]) -> dict[str, str]:
        """Start a vouchers import; the browser comes back to GET /imports/{id}."""
        client: VoucherifyClient = request.app.state.voucherify
        # A span of the app's own: the start's span and its POST are its children.
        with request.app.state.tracer.start_as_current_span("POST /imports"):
            handle = await client.async_actions.start_vouchers_import(vouchers)
            handle.cancel()  # nobody waits here: stop polling, GET /imports/{id} waits
        return {"id": handle.id}

    @app.get("/imports/{action_id}")
    async def import_status(
        request: Request,
        action_id: str,
        response: Response,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = MAX_WAIT,
    ) -> dict[str, Any]:
        """The import's outcome, or its progress when it has not ended within *wait*."""
        client: VoucherifyClient = request.app.state.voucherify
        # The handle's span, and the GET of every poll, are children of this one.
        with request.app.state.tracer.start_as_current_span("GET /imports/{action_id}"):
            try:
                action = await client.async_actions.wait(action_id, timeout=wait)
            except PollTimeout as exc:
                response.status_code = 202
                latest = exc.latest
                return {"id": action_id, "progress": latest.progress if latest else None}
            except AsyncActionFailed as exc:
                action = exc.action
            except NotFoundError:
                raise HTTPException(404, f"no async action {action_id}") from None
        return {"id": action.id, "status": action.status, "progress": action.progress}

    return app


app = create_app()
