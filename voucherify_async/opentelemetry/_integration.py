"""The hooks that turn the client's instrumentation events into spans and metrics.

Spans (tracer ``voucherify_async``):

* ``start {route}`` (INTERNAL) around each ``start()``: ``http.request.method``,
  ``url.template``, the expected ``voucherify.async_action.type`` and, once known, the new
  ``voucherify.async_action.id``.
* ``{method} {route}`` (CLIENT), one per HTTP attempt, per the OTel HTTP client conventions.
  While it is current, other HTTP instrumentation (``opentelemetry-instrumentation-aiohttp-
  client``) is suppressed, so a request is never traced twice.
* ``voucherify.async_action`` (INTERNAL), one per handle, from its creation to its outcome,
  parented by the span current where the handle was created; its polls' HTTP spans are its
  children (the polls run in the handle's own context), and each poll is an event on it.

Nothing here reads a header or a body: no token and no request body can reach an attribute.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import os
import re
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from voucherify_async._durations import duration_of
from voucherify_async._errors import AsyncActionFailed, PollTimeout
from voucherify_async._handle import AsyncActionHandle
from voucherify_async._models import AsyncActionStatus, AsyncActionType, OperationStatus
from voucherify_async._pacing import gate_work
from voucherify_async._polling.admission import due as polling_due
from voucherify_async.instrumentation import (
    PollEvent,
    RequestEvent,
    RequestOutcome,
    ServerPauseEvent,
    StartEvent,
    StartOutcome,
)

from ._metrics import Instruments

__all__ = ["Integration"]

# The key every OTel HTTP client instrumentation checks before it makes a span (the API
# defines it; the name is private there, but it is the documented way to suppress them).
_SUPPRESS_HTTP: Final[str | None] = getattr(
    otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None
)

HANDLE_SPAN: Final = "voucherify.async_action"

_AIOHTTP_INSTRUMENTATION: Final = "opentelemetry.instrumentation.aiohttp_client"

logger: Final = logging.getLogger("voucherify_async")

#: Waits for the gate shorter than this (seconds) are not recorded: an admission without
#: waiting still takes a few microseconds of the gate's own CPU. 1 ms is far below any wait
#: the budget imposes (a 100/minute budget spaces requests 600 ms apart) and far above
#: that CPU time; recording every near-zero wait would double the metrics' cost per request.
MIN_GATE_WAIT: Final = 0.001


class _HandleState:
    """What the integration keeps for one handle, in the handle's context."""

    __slots__ = ("gets", "polls", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.polls = 0
        self.gets = 0


_HANDLE: Final[contextvars.ContextVar[_HandleState | None]] = contextvars.ContextVar(
    "voucherify_async.opentelemetry handle", default=None
)


@functools.lru_cache(maxsize=64)
def _origin(origin: str) -> tuple[str, int | None, str]:
    """``scheme://[user@]host[:port]`` -> (host, port, the origin without user info); the
    port is the scheme's default when the URL names none (None for an unknown scheme)."""
    scheme, _, netloc = origin.partition("://")
    netloc = netloc.rpartition("@")[2]
    host, port = netloc, None
    if netloc.startswith("["):  # IPv6 literal
        end = netloc.find("]")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif ":" in netloc:
        name, _, text = netloc.rpartition(":")
        if text.isdigit():
            host, port = name, int(text)
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return host, port, f"{scheme}://{netloc}"


def _split_url(url: str) -> tuple[str, int | None, str]:
    """(server.address, server.port, url.full without user info)."""
    scheme_end = url.find("://")
    path_start = url.find("/", scheme_end + 3) if scheme_end >= 0 else -1
    origin, rest = (url, "") if path_start < 0 else (url[:path_start], url[path_start:])
    host, port, clean = _origin(origin)
    return host, port, clean + rest


class Integration:
    """The hooks of one :func:`~voucherify_async.opentelemetry.instrument` call."""

    def __init__(
        self, tracer: trace.Tracer, instruments: Instruments, *, http_spans: bool = True
    ) -> None:
        self.tracer = tracer
        self.metrics = instruments
        #: Whether each HTTP attempt gets a CLIENT span (the costliest part: see the docs).
        self.http_spans = http_spans
        self._stable_http: bool | None = None  # the semconv opt-in, read once when needed

    def _aiohttp_measures(self) -> bool:
        """True when opentelemetry-instrumentation-aiohttp-client is on and records the
        stable ``http.client.request.duration`` itself (``OTEL_SEMCONV_STABILITY_OPT_IN``
        with ``http`` or ``http/dup``): with ``http_spans=False`` it measures the client's
        requests under the same name, and recording them too would count each twice."""
        module = sys.modules.get(_AIOHTTP_INSTRUMENTATION)
        if module is None:
            return False
        try:
            if not module.AioHttpClientInstrumentor().is_instrumented_by_opentelemetry:
                return False
        except Exception:  # pragma: no cover - an instrumentation of another shape
            return False
        if self._stable_http is None:
            self._stable_http = _stable_http_metrics()
        return self._stable_http

    # -- start() ------------------------------------------------------------------------

    def on_start(self, event: StartEvent) -> Callable[[StartOutcome], None]:
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "url.template": event.route,
        }
        if event.action_type is not None:
            attributes["voucherify.async_action.type"] = event.action_type
        span = self.tracer.start_span(
            f"start {event.route}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span))

        def finish(outcome: StartOutcome) -> None:
            otel_context.detach(token)
            if outcome.action_id is not None:
                span.set_attribute("voucherify.async_action.id", outcome.action_id)
            error = outcome.error
            if error is not None:
                span.set_attribute("error.type", _error_type(error))
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

        return finish

    # -- HTTP attempts ------------------------------------------------------------------

    def on_request(self, event: RequestEvent) -> Callable[[RequestOutcome], None] | None:
        host, port, url_full = _split_url(event.url)
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "url.template": event.route,
            "server.address": host,
        }
        if port is not None:
            attributes["server.port"] = port
        handle = _HANDLE.get()
        if handle is not None and event.method == "GET":
            handle.gets += 1
        instruments = self.metrics
        wait = event.gate_wait
        work = gate_work.get()
        if work:  # a RedisBudget's round trips: the gate's work, not waiting for a slot
            gate_work.set(0.0)
            wait -= work
        if wait >= MIN_GATE_WAIT:
            # Only requests that waited: their count against http.client.request.duration's
            # says how many did (recording every near-zero wait would double the cost).
            instruments.budget_wait.record(wait, {"server.address": host})
        if event.budget:
            instruments.note_budget(host, event.budget)
        if not self.http_spans and self._aiohttp_measures():
            return None  # its http.client.request.duration counts this request already
        if not self.http_spans or (handle is None and polling_due() is not None):
            # (The second: a poll of a handle made before instrument(), which is not traced:
            # its requests are measured, but would be orphan root spans, one trace per poll.)
            return functools.partial(_record_request, instruments, attributes, None, None)
        span_attributes = dict(attributes)
        span_attributes["url.full"] = url_full
        if event.attempt > 1:
            span_attributes["http.request.resend_count"] = event.attempt - 1
        span = self.tracer.start_span(
            f"{event.method} {event.route}", kind=SpanKind.CLIENT, attributes=span_attributes
        )
        ctx = trace.set_span_in_context(span)
        if _SUPPRESS_HTTP is not None:
            ctx = otel_context.set_value(_SUPPRESS_HTTP, True, ctx)
        token = otel_context.attach(ctx)
        return functools.partial(_record_request, instruments, attributes, span, token)

    def on_server_pause(self, event: ServerPauseEvent) -> None:
        attributes = {
            "voucherify.pause.cause": event.cause,
            "http.response.status_code": event.status,
        }
        self.metrics.server_pause.record(event.seconds, attributes)
        span = trace.get_current_span()  # the HTTP span whose response asked for it
        if span.is_recording():
            span.add_event(
                "voucherify.server_pause",
                {"voucherify.pause.duration": event.seconds, "voucherify.pause.cause": event.cause},
            )

    # -- handles ------------------------------------------------------------------------

    def on_handle(self, handle: AsyncActionHandle) -> None:
        """Runs inside the handle's own context: what it attaches, only the polls see."""
        span = self.tracer.start_span(
            HANDLE_SPAN,
            kind=SpanKind.INTERNAL,
            attributes={"voucherify.async_action.id": handle.id},
        )
        state = _HandleState(span)
        _HANDLE.set(state)
        otel_context.attach(trace.set_span_in_context(span))  # the handle's context, for good
        self.metrics.handles_pending.add(1)
        self.metrics.watch(state, functools.partial(_age, weakref.ref(handle), time.time()))
        handle.add_done_callback(lambda done: self._handle_done(done, state))

    def on_poll(self, event: PollEvent) -> None:
        state = _HANDLE.get()
        if state is None:  # a handle created before instrument(), or in another context
            return
        state.polls += 1
        attributes: dict[str, Any] = {
            "voucherify.poll.attempt": event.attempt,
            "voucherify.poll.next_delay": event.delay,
            "voucherify.poll.reason": event.reason,
        }
        if event.status is not None:
            attributes["voucherify.async_action.status"] = _bounded(event.status)
        if event.progress is not None:
            attributes["voucherify.async_action.progress"] = event.progress
        if event.error is not None:
            attributes["error.type"] = _error_type(event.error)
        state.span.add_event("voucherify.poll", attributes)

    def _handle_done(self, handle: AsyncActionHandle, state: _HandleState) -> None:
        """The handle's outcome is known: end its span and record its metrics. Runs as a
        done callback on the loop, where an exception (a span processor's ``on_end``, say)
        would reach the loop's handler: it is logged and ignored, as every hook's is."""
        try:
            self._end_handle(handle, state)
        except Exception:
            logger.exception("a voucherify_async instrumentation hook raised; ignored")

    def _end_handle(self, handle: AsyncActionHandle, state: _HandleState) -> None:
        span = state.span
        self.metrics.handles_pending.add(-1)
        self.metrics.unwatch(state)
        latest = handle.latest
        outcome, error = _outcome(handle)
        span.set_attribute("voucherify.async_action.outcome", outcome)
        span.set_attribute("voucherify.poll.count", state.polls)
        span.set_attribute("voucherify.async_action.requests", state.gets)
        if latest is not None:
            action_type = _bounded(latest.type)
            status = _bounded(latest.status)
            span.set_attribute("voucherify.async_action.type", action_type)
            span.set_attribute("voucherify.async_action.status", status)
            if latest.operation_status is not None:
                span.set_attribute(
                    "voucherify.async_action.operation_status", _bounded(latest.operation_status)
                )
            if latest.is_terminal:
                by_type = {
                    "voucherify.async_action.type": action_type,
                    "voucherify.async_action.status": status,
                }
                self.metrics.action_requests.record(state.gets, by_type)
                duration = duration_of(latest)
                # A server's negative processing_time (or updated_at before created_at)
                # is no duration: the SDK would refuse it with a warning per action.
                if duration is not None and 0.0 <= duration < math.inf:
                    self.metrics.action_duration.record(duration, by_type)
                if latest.updated_at is not None:
                    # How long after the action ended we saw it (the local clock against the
                    # server's updated_at: skew between the two shows here).
                    delay = max(0.0, time.time() - latest.updated_at.timestamp())
                    span.set_attribute("voucherify.async_action.detection_delay", delay)
        if error is not None:
            span.set_attribute("error.type", _error_type(error))
            span.set_status(Status(StatusCode.ERROR, f"{outcome}: {type(error).__name__}"))
        span.end()


#: Type and status values the API documents: attribute values as they are.
_KNOWN_VALUES: Final = frozenset(
    str(member) for enum in (AsyncActionType, AsyncActionStatus, OperationStatus) for member in enum
)
#: The shape of the API's types and statuses (``VOUCHERS.IMPORT``, ``DONE``), at most 64
#: characters: an undocumented value of another shape is not a type the API added.
_VALUE_SHAPE: Final = re.compile(r"[A-Z][A-Z0-9_.]{0,63}")
#: Undocumented values of that shape passed on as they are (new types the API added);
#: past these, "other": a server sending random values cannot grow the metrics' series
#: without bound. 32 is more than the API's 22 documented types.
MAX_UNDOCUMENTED_VALUES: Final = 32
_undocumented: set[str] = set()


def _bounded(value: object) -> str:
    """A type or status from the server as an attribute value: documented values and the
    first MAX_UNDOCUMENTED_VALUES others of the API's shape as they are, else ``other``."""
    text = str(value)
    if text in _KNOWN_VALUES or text in _undocumented:
        return text
    if len(_undocumented) < MAX_UNDOCUMENTED_VALUES and _VALUE_SHAPE.fullmatch(text):
        _undocumented.add(text)
        return text
    return "other"


def _stable_http_metrics() -> bool:
    """Whether the OTel instrumentations report the stable HTTP metrics, as they resolved
    ``OTEL_SEMCONV_STABILITY_OPT_IN`` (their private helper; the variable itself if it moved)."""
    try:
        from opentelemetry.instrumentation._semconv import (
            _OpenTelemetrySemanticConventionStability as Stability,
        )
        from opentelemetry.instrumentation._semconv import (
            _OpenTelemetryStabilitySignalType as Signal,
        )
        from opentelemetry.instrumentation._semconv import _report_new

        Stability._initialize()  # type: ignore[no-untyped-call]
        return bool(_report_new(Stability._get_opentelemetry_stability_opt_in_mode(Signal.HTTP)))
    except Exception:  # pragma: no cover - another version of opentelemetry-instrumentation
        opted = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
        return any(part.strip() in ("http", "http/dup") for part in opted.split(","))


def _age(handle_ref: weakref.ref[AsyncActionHandle], opened: float) -> tuple[str, float] | None:
    """(type, seconds since the action was created) of a pending handle, for the age gauge.

    Runs in the metric reader's thread: it only reads the handle's newest snapshot. Before
    the first snapshot the type is ``"unknown"`` and the age counts from the handle's start.
    """
    handle = handle_ref()
    if handle is None:
        return None
    latest = handle.latest
    if latest is None:
        return "unknown", max(0.0, time.time() - opened)
    created = latest.created_at.timestamp() if latest.created_at is not None else opened
    return _bounded(latest.type), max(0.0, time.time() - created)


def _record_request(
    instruments: Instruments,
    attributes: dict[str, Any],
    span: Span | None,
    token: contextvars.Token[Context] | None,
    outcome: RequestOutcome,
) -> None:
    """An HTTP attempt ended: close its span (if it has one) and record its duration."""
    if token is not None:
        otel_context.detach(token)
    status, error = outcome.status, outcome.error
    error_type = None
    if status is not None:
        attributes["http.response.status_code"] = status
        if status >= 400:
            error_type = str(status)
    elif error is not None and not isinstance(error, asyncio.CancelledError):
        # (The application cancelling its call is not an HTTP error.)
        error_type = _error_type(error)
    if error_type is not None:
        attributes["error.type"] = error_type
    if span is not None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
    instruments.http_duration.record(outcome.duration, attributes)


def _outcome(handle: AsyncActionHandle) -> tuple[str, BaseException | None]:
    """How a done handle ended: done, failed, timeout, cancelled or error (and its error)."""
    future: asyncio.Future[Any] = handle._future  # the handle's own outcome, read once done
    if future.cancelled():
        return "cancelled", None
    error = future.exception()
    if error is None:
        return "done", None
    if isinstance(error, AsyncActionFailed):
        return "failed", error
    if isinstance(error, PollTimeout):
        return "timeout", error
    return "error", error


def _error_type(error: BaseException) -> str:
    """``error.type`` for an exception: its class's fully qualified name (never its
    message), the same on every span and metric; the library's own classes by the public
    module that exports them (``voucherify_async.PollTimeout``, not ``._errors``)."""
    cls = type(error)
    module = cls.__module__
    if module.startswith("voucherify_async"):
        module = ".".join(part for part in module.split(".") if not part.startswith("_"))
    return f"{module}.{cls.__qualname__}"
