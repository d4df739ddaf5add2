"""OpenTelemetry traces and metrics for voucherify-async: off until :func:`instrument`.

Install the extra (``python -m pip install -e ".[otel]"`` from a checkout: the OpenTelemetry
API only; your application brings the SDK and its exporters), then switch it on once, at
start-up::

    from voucherify_async.opentelemetry import instrument

    instrument()  # the global tracer and meter providers; or instrument(tracer_provider=...)

Every client of the process is then traced and measured: a span per ``start()``, per HTTP
attempt (OTel HTTP client conventions) and per handle (with an event per poll), and the
metrics listed in the documentation (``docs/opentelemetry.md``). Off, it costs nothing: the
library's hooks are empty tuples. :func:`uninstrument` switches it off again.
"""

from __future__ import annotations

import weakref
from importlib.metadata import PackageNotFoundError, version
from typing import TypeVar

from opentelemetry import metrics, trace

from voucherify_async import instrumentation

from ._integration import Integration
from ._metrics import Instruments

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_SCOPE = "voucherify_async"
_T = TypeVar("_T")

_current: tuple[Integration, tuple[object, ...]] | None = None
_by_provider: weakref.WeakKeyDictionary[metrics.MeterProvider, Instruments] = (
    weakref.WeakKeyDictionary()
)


def _version() -> str:
    try:
        return version("voucherify-async")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    http_spans: bool = True,
) -> None:
    """Trace and measure every client of this process, from now on.

    *http_spans* (default True) gives each HTTP attempt a CLIENT span of its own, per the
    OTel HTTP client conventions; False leaves them out (the handle span's poll events and
    the metrics stay), which takes most of the integration's CPU cost away (see the
    benchmarks page), and leaves HTTP spans to ``opentelemetry-instrumentation-aiohttp-
    client`` if you run it (with True, it is suppressed for the client's requests: a request
    is never traced twice).

    *tracer_provider* and *meter_provider* default to the global ones (``None``: whatever
    ``opentelemetry.trace.set_tracer_provider`` and ``opentelemetry.metrics.
    set_meter_provider`` set, or the API's no-op ones). Calling it again replaces the
    providers. The hooks it adds join any instrumentation hooks already set (your own stay).
    Handles created before the call are not traced (no handle span, and their polls make
    no HTTP span; their requests are still measured).
    """
    global _current
    uninstrument()
    tracer = trace.get_tracer(_SCOPE, _version(), tracer_provider=tracer_provider)
    integration = Integration(tracer, _instruments(meter_provider), http_spans=http_spans)
    hooks = (
        integration.on_request,
        integration.on_start,
        integration.on_handle,
        integration.on_poll,
        integration.on_server_pause,
    )
    instrumentation.set_on_request_hooks([*instrumentation.on_request, integration.on_request])
    instrumentation.set_on_start_hooks([*instrumentation.on_start, integration.on_start])
    instrumentation.set_on_handle_hooks([*instrumentation.on_handle, integration.on_handle])
    instrumentation.set_on_poll_hooks([*instrumentation.get_on_poll_hooks(), integration.on_poll])
    instrumentation.set_on_server_pause_hooks(
        [*instrumentation.on_server_pause, integration.on_server_pause]
    )
    _current = (integration, hooks)


def _instruments(meter_provider: metrics.MeterProvider | None) -> Instruments:
    """The instruments on *meter_provider* (None: the global one), made once per provider: a
    meter refuses a second instrument of the same name (it hands back the first, with the
    first's callbacks), so switching on again reuses them."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    instruments = _by_provider.get(provider)
    if instruments is None:
        meter = metrics.get_meter(_SCOPE, _version(), meter_provider=provider)
        instruments = _by_provider[provider] = Instruments(meter)
    instruments.active = True
    return instruments


def uninstrument() -> None:
    """Stop tracing and measuring (handles already traced still end their spans).

    Removes only this module's hooks; a no-op when not instrumented.
    """
    global _current
    if _current is None:
        return
    integration, hooks = _current
    _current = None
    integration.metrics.active = False

    instrumentation.set_on_request_hooks(_without(instrumentation.on_request, hooks))
    instrumentation.set_on_start_hooks(_without(instrumentation.on_start, hooks))
    instrumentation.set_on_handle_hooks(_without(instrumentation.on_handle, hooks))
    instrumentation.set_on_poll_hooks(_without(instrumentation.get_on_poll_hooks(), hooks))
    instrumentation.set_on_server_pause_hooks(_without(instrumentation.on_server_pause, hooks))


def _without(found: tuple[_T, ...], ours: tuple[object, ...]) -> list[_T]:
    return [hook for hook in found if hook not in ours]


def is_instrumented() -> bool:
    """True between :func:`instrument` and :func:`uninstrument`."""
    return _current is not None
