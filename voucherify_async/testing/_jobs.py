"""Simulated async actions: a timeline per job, turned into the API's JSON on demand.

Times here are milliseconds since the Unix epoch on the emulator's job clock (which runs
``speed`` times faster than real time and can be moved forward with ``advance()``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import attrs

from voucherify_async._errors import InvalidArgumentError

from ._examples import OPERATION_STATUS_TYPES, default_result

__all__ = ["Job", "ProgressCurve", "format_ms", "parse_end_date"]

#: How progress rises while a job is IN_PROGRESS: a shape's name (``"linear"``: 0-99 with
#: elapsed time, ``"steps"``: 0, 25, 50, 75, and the others of ``testing.PROGRESS_SHAPES``), a
#: function of the elapsed fraction (0.0-1.0) returning 0-100, or ``(fraction, progress)``
#: points joined by straight lines.
ProgressCurve: TypeAlias = str | Callable[[float], int] | Sequence[tuple[float, int]]
#: What a Job keeps: the two shapes it can solve for exactly, or a function.
JobCurve: TypeAlias = Literal["linear", "steps"] | Callable[[float], int]

TERMINAL_STATUSES = frozenset({"DONE", "FAILED"})
_REPORTS_KEPT_MS = 30 * 24 * 3600 * 1000


def format_ms(epoch_ms: float) -> str:
    """Format epoch milliseconds like the API: ``2023-01-20T07:23:43.289Z``."""
    ms = math.floor(epoch_ms)
    stamp = datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def parse_end_date(text: str) -> float:
    """Parse an ``end_date`` query value (ISO 8601 date-time or ``YYYY-MM-DD``) to epoch ms.

    A value without a UTC offset is read as UTC. Raises ValueError when it is not a date.
    """
    text = text.strip()
    if not text or not text[:4].isdigit():
        raise ValueError(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


@attrs.frozen
class _Frozen:
    status: str
    progress: int
    updated_ms: float


@attrs.define(eq=False)
class Job:
    """One simulated async action and its timeline (job-clock epoch milliseconds)."""

    id: str
    type: str
    seq: int
    #: When the job was added; its timeline (and processing_time) counts from here.
    origin_ms: float
    #: The reported created_at, which may be a little later to keep one ms per job.
    created_ms: int
    start_ms: float
    #: When the job becomes terminal: scheduled, or set by finish(); None = never.
    terminal_ms: float | None
    #: The scheduled end, which paces the progress curve; None = never.
    end_ms: float | None
    curve: JobCurve
    status: str
    operation_status: str | None
    result: dict[str, Any]
    result_is_default: bool
    request_id: str
    extra: dict[str, Any]
    held: _Frozen | None = None
    pinned: tuple[int, float] | None = None
    observed: tuple[int, float] | None = None
    #: The real (loop) time it became terminal, once that no longer follows from the clock.
    finished_real: float | None = None

    @classmethod
    def planned(
        cls,
        *,
        id: str,
        type: str,
        seq: int,
        now_ms: float,
        created_ms: int,
        enqueued: float,
        duration: float | None,
        curve: JobCurve,
        status: str,
        operation_status: str | None,
        result: Mapping[str, Any] | None,
        request_id: str,
        extra: Mapping[str, Any] | None,
    ) -> Job:
        """Plan a job starting at *now_ms* that waits *enqueued* seconds and ends after
        *duration* seconds (None: never), both on the job clock.

        *created_ms* is the ``created_at`` it reports, which may be a little later than
        *now_ms* so that every job has its own millisecond.
        """
        end_ms = None if duration is None else now_ms + duration * 1000
        job = cls(
            id=id,
            type=type,
            seq=seq,
            origin_ms=now_ms,
            created_ms=created_ms,
            start_ms=now_ms + enqueued * 1000,
            terminal_ms=end_ms,
            end_ms=end_ms,
            curve=curve,
            status="DONE",
            operation_status=None,
            result={},
            result_is_default=True,
            request_id=request_id,
            extra=dict(extra or {}),
        )
        job.set_outcome(status, operation_status, result)
        return job

    def set_outcome(
        self, status: str, operation_status: str | None, result: Mapping[str, Any] | None
    ) -> None:
        """Set the terminal status, with the defaults for whatever is None."""
        if status not in TERMINAL_STATUSES:
            raise InvalidArgumentError(f"status must be 'DONE' or 'FAILED', got {status!r}")
        if operation_status is None and self.type in OPERATION_STATUS_TYPES:
            operation_status = "SUCCESS" if status == "DONE" else "FAILED"
        self.status = status
        self.operation_status = operation_status
        self.result_is_default = result is None
        self.result = (
            default_result(self.type, "FAILED" if operation_status == "FAILED" else status)
            if result is None
            else copy.deepcopy(dict(result))
        )

    def is_terminal(self, now_ms: float) -> bool:
        """True once the job has ended at *now_ms*."""
        return self.terminal_ms is not None and now_ms >= self.terminal_ms

    def state(self, now_ms: float) -> tuple[str, int, float]:
        """Status, progress and last update time (epoch ms) at *now_ms*."""
        if self.is_terminal(now_ms):
            assert self.terminal_ms is not None
            return self.status, 100, self.terminal_ms
        if self.held is not None:
            return self.held.status, self.held.progress, self.held.updated_ms
        if now_ms < self.start_ms and self.pinned is None:
            return "ENQUEUED", 0, float(self.created_ms)
        progress, since = self._progress(now_ms)
        return "IN_PROGRESS", progress, min(now_ms, max(self.start_ms, since))

    def _progress(self, now_ms: float) -> tuple[int, float]:
        if self.pinned is not None:
            return self.pinned
        if self.end_ms is None:
            return 0, self.start_ms
        span = self.end_ms - self.start_ms
        fraction = 1.0 if span <= 0 else min(1.0, max(0.0, (now_ms - self.start_ms) / span))
        if self.curve == "linear":
            progress = min(int(fraction * 100), 99)
            return progress, self.start_ms + span * progress / 100
        if self.curve == "steps":
            step = min(int(fraction * 4), 3)
            return 25 * step, self.start_ms + span * step / 4
        assert callable(self.curve)
        progress = min(100, max(0, int(self.curve(fraction))))
        # A curve's steps cannot be solved for: the update time is when a GET first saw it.
        if self.observed is None or self.observed[0] != progress:
            self.observed = (progress, now_ms)
        return self.observed

    def hold(self, now_ms: float) -> None:
        """Freeze the job as it is at *now_ms*: it never ends until finish()."""
        if self.is_terminal(now_ms):
            raise InvalidArgumentError(f"async action {self.id!r} has already ended")
        status, progress, updated = self.state(now_ms)
        self.held = _Frozen(status, progress, updated)
        self.terminal_ms = None

    def set_progress(self, progress: int, now_ms: float) -> None:
        """Pin progress to *progress* from *now_ms* on; an ENQUEUED job starts now."""
        if not 0 <= progress <= 100:
            raise InvalidArgumentError(f"progress must be between 0 and 100, got {progress!r}")
        if self.is_terminal(now_ms):
            raise InvalidArgumentError(f"async action {self.id!r} has already ended")
        self.start_ms = min(self.start_ms, now_ms)
        self.pinned = (progress, now_ms)
        if self.held is not None:
            self.held = _Frozen("IN_PROGRESS", progress, now_ms)

    def finish(
        self,
        now_ms: float,
        status: str,
        operation_status: str | None,
        result: Mapping[str, Any] | None,
    ) -> None:
        """End the job at *now_ms* with *status*; None picks the planned or default values."""
        if self.is_terminal(now_ms):
            raise InvalidArgumentError(f"async action {self.id!r} has already ended")
        if status == self.status:
            operation_status = operation_status or self.operation_status
            if result is None and not self.result_is_default:
                result = self.result
        self.set_outcome(status, operation_status, result)
        self.held = None
        self.terminal_ms = now_ms

    def to_json(self, now_ms: float, *, list_item: bool = False) -> dict[str, Any]:
        """The action as ``GET /v1/async-actions/{id}`` serves it at *now_ms*.

        A list item (*list_item*) carries no ``result`` and no ``processing_time``, like
        the list endpoint's examples.
        """
        status, progress, updated_ms = self.state(now_ms)
        updated_ms = max(updated_ms, self.created_ms)
        terminal = self.is_terminal(now_ms)
        body: dict[str, Any] = {"id": self.id, "type": self.type, "status": status}
        if terminal and self.operation_status is not None:
            body["operation_status"] = self.operation_status
        if terminal and not list_item:
            body["result"] = self._result(updated_ms)
        body["created_at"] = format_ms(self.created_ms)
        body["updated_at"] = format_ms(updated_ms)
        body["request_id"] = self.request_id
        body["progress"] = progress
        if terminal and not list_item:
            assert self.terminal_ms is not None
            body["processing_time"] = round(self.terminal_ms - self.origin_ms)
        body["object"] = "async_action"
        body.update(copy.deepcopy(self.extra))
        return body

    def _result(self, terminal_ms: float) -> dict[str, Any]:
        result = copy.deepcopy(self.result)
        if self.result_is_default and "reports_available_till" in result:
            result["reports_available_till"] = format_ms(terminal_ms + _REPORTS_KEPT_MS)
        return result
