"""The metric instruments of the OpenTelemetry integration: names, units, attributes.

docs/opentelemetry.md lists them for users; keep the two in step. Names follow the OTel
semantic conventions where one exists (``http.client.request.duration``), and the
``voucherify.`` namespace otherwise; durations are in seconds (``s``), counts in
``{request}`` / ``{handle}`` (UCUM annotations).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from voucherify_async.instrumentation import BudgetUsage

__all__ = ["Instruments"]

#: The semantic conventions' advice for ``http.client.request.duration`` (seconds).
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
#: Waits for the budget and server pauses: from none to the two-minute cap (seconds).
WAIT_BUCKETS: Final = (0, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: Action durations: the seed's sub-second jobs to hour-long imports (seconds).
ACTION_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Budget gauge series kept (client x scope x server): far above the few clients a process
#: runs, and a bound on what closed clients' series hold (about 200 bytes each).
MAX_BUDGET_SERIES: Final = 256
#: GETs per finished action: 1 is ideal; tens mean the schedule polls too eagerly.
GETS_BUCKETS: Final = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 100)


class Instruments:
    """Every instrument, created once per :func:`instrument` call on *meter*."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.http_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of the client's HTTP requests to Voucherify, per attempt.",
            explicit_bucket_boundaries_advisory=HTTP_BUCKETS,
        )
        self.budget_wait = meter.create_histogram(
            "voucherify.budget.wait.duration",
            unit="s",
            description="Time a request waited to be admitted: budget, concurrency cap, pauses.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self.server_pause = meter.create_histogram(
            "voucherify.server.pause.duration",
            unit="s",
            description="Pauses of every request the server demanded (429, X-Rate-Limit-*).",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self.handles_pending = meter.create_up_down_counter(
            "voucherify.handles.pending",
            unit="{handle}",
            description="Handles still polling (not yet done).",
        )
        self.action_requests = meter.create_histogram(
            "voucherify.async_action.requests",
            unit="{request}",
            description="GET requests a handle sent for one async action, recorded when it ends.",
            explicit_bucket_boundaries_advisory=GETS_BUCKETS,
        )
        self.action_duration = meter.create_histogram(
            "voucherify.async_action.duration",
            unit="s",
            description="How long finished async actions ran (their processing_time).",
            explicit_bucket_boundaries_advisory=ACTION_BUCKETS,
        )
        # The budgets as of each scope's latest admission: written on the event loop, read
        # by the SDK's reader (often a thread of its own). The lock guards the pending
        # handles' table, and keeps readers one at a time.
        self._budget: dict[tuple[int, str, str], BudgetUsage] = {}
        self._budget_lock = threading.Lock()
        self.active = True
        # Pending handles -> a callable giving (type, age in seconds), for the age gauge.
        self._pending: dict[object, Callable[[], tuple[str, float] | None]] = {}
        meter.create_observable_gauge(
            "voucherify.async_action.oldest_age",
            callbacks=[self._observe_age],
            unit="s",
            description="Age of the oldest async action still polled, by type (from created_at).",
        )
        meter.create_observable_gauge(
            "voucherify.budget.usage",
            callbacks=[self._observe_used],
            unit="{request}",
            description="Requests in the budget's window as of the latest admission.",
        )
        meter.create_observable_gauge(
            "voucherify.budget.limit",
            callbacks=[self._observe_limit],
            unit="{request}",
            description="The budget's limit per window (requests_per_minute, RedisBudget, server).",
        )

    def watch(self, key: object, age: Callable[[], tuple[str, float] | None]) -> None:
        """Count a pending handle in the oldest-age gauge: *age* gives (type, seconds)."""
        with self._budget_lock:
            self._pending[key] = age

    def unwatch(self, key: object) -> None:
        with self._budget_lock:
            self._pending.pop(key, None)

    def _observe_age(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.active:
            return []
        with self._budget_lock:
            ages = list(self._pending.values())
        oldest: dict[str, float] = {}
        for age in ages:
            found = age()
            if found is not None:
                action_type, seconds = found
                oldest[action_type] = max(seconds, oldest.get(action_type, 0.0))
        return [
            Observation(seconds, {"voucherify.async_action.type": action_type})
            for action_type, seconds in oldest.items()
        ]

    def note_budget(self, server: str, usages: tuple[BudgetUsage, ...]) -> None:
        """Keep the budgets an admission reported, for the gauges: one series per client,
        scope and server (each assignment is atomic, and the reader copies the dict before
        reading). Past MAX_BUDGET_SERIES the series first seen longest ago goes (a closed
        client's would stay forever); a client still sending is back at its next request."""
        budget = self._budget
        for usage in usages:
            key = (usage.client, usage.scope, server)
            if len(budget) >= MAX_BUDGET_SERIES and key not in budget:
                del budget[next(iter(budget))]
            budget[key] = usage

    def _snapshot(self) -> list[tuple[dict[str, str | int], BudgetUsage]]:
        if not self.active:
            return []
        with self._budget_lock:  # one reader at a time; writers need no lock (see above)
            found = list(self._budget.copy().items())
        return [
            (
                {
                    "voucherify.budget.scope": scope,
                    "server.address": server,
                    "voucherify.client.id": client,
                },
                usage,
            )
            for (client, scope, server), usage in found
        ]

    def _observe_used(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(usage.used, attributes) for attributes, usage in self._snapshot()]

    def _observe_limit(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(usage.limit, attributes) for attributes, usage in self._snapshot()]
