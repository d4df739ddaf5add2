"""What the command shows: live progress rows, summaries, and the plain-text printer.

The rich printer (``_rich.py``) draws the same rows; this module needs nothing but the
standard library and the public API, so the command works without rich installed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import IO, Final, Protocol

import attrs

from voucherify_async import (
    AsyncAction,
    AsyncActionFailed,
    AsyncActionStatus,
    OperationStatus,
    PollTimeout,
    UnknownResult,
)
from voucherify_async._models import one_line

from ._exit import EXIT_API_ERROR, EXIT_OK, exit_code_for

__all__ = [
    "ActionRow",
    "Outcome",
    "PlainPrinter",
    "Printer",
    "ResultFacts",
    "SummaryRow",
    "Tracker",
    "format_seconds",
    "live_pace",
    "result_facts",
    "summarize",
    "totals",
]

#: The live view polls each action at least this often (seconds), so its bar moves smoothly.
LIVE_EVERY: Final = 2.0
#: ...but with many actions on screen, all of them together add at most this many GETs/s.
LIVE_GETS_PER_SECOND: Final = 5.0


def live_pace(actions: int) -> float:
    """Seconds between the polls of each of *actions* shown live (``updates(every=...)``)."""
    return max(LIVE_EVERY, actions / LIVE_GETS_PER_SECOND)


#: How many failure reasons a summary row shows before "(+N more)".
MAX_REASONS: Final = 2
#: How many failure reasons ``get`` shows.
DETAIL_REASONS: Final = 5
#: The longest a failure reason gets in a summary, in characters.
MAX_REASON_LENGTH: Final = 72

#: What a wait ends with for one id: the terminal action, or the exception in its place.
Outcome = AsyncAction | BaseException


def text(value: object) -> str:
    """An enum member or a plain string as the API spells it; ``-`` for None."""
    return "-" if value is None else str(value)


def iso(moment: dt.datetime | None) -> str:
    """*moment* in UTC as the API writes it (``2024-01-02T03:04:05.678Z``); ``-`` for None."""
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(milliseconds: int | None) -> float | None:
    """A ``processing_time`` (milliseconds) in seconds."""
    return None if milliseconds is None else milliseconds / 1000


def format_seconds(value: float | None) -> str:
    """``0.4s``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` for None."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# --- live rows -------------------------------------------------------------------------


class ActionRow:
    """One action being watched: its newest snapshot, and an ETA from its progress rate."""

    def __init__(self, action_id: str) -> None:
        self.id = action_id
        self.action: AsyncAction | None = None
        # (monotonic time, progress) of the first IN_PROGRESS snapshot: the rate's origin.
        self._origin: tuple[float, int] | None = None
        self._eta_at: float | None = None

    @property
    def type(self) -> str:
        return text(self.action.type if self.action is not None else None)

    @property
    def status(self) -> str:
        """The status as the summary shows it: ``DONE (operation FAILED)`` included."""
        return _status_text(self.action) if self.action is not None else text(None)

    @property
    def progress(self) -> int | None:
        return self.action.progress if self.action is not None else None

    def observe(self, action: AsyncAction, now: float, wall: dt.datetime) -> None:
        """Keep *action* (seen at monotonic *now*, wall-clock *wall*) and update the ETA."""
        self.action = action
        progress = action.progress
        if action.status != AsyncActionStatus.IN_PROGRESS or progress is None:
            self._eta_at = None
            return
        origin = self._origin
        if origin is None or progress < origin[1]:
            self._origin = (now, progress)
            # One sample only: assume the progress so far took the action's age.
            age = self._age(wall)
            rate = progress / age if age and progress > 0 else None
        else:
            since, first = origin
            rate = (progress - first) / (now - since) if progress > first and now > since else None
        if rate:
            self._eta_at = now + (100 - progress) / rate

    def _age(self, wall: dt.datetime) -> float | None:
        created = self.action.created_at if self.action is not None else None
        if created is None:
            return None
        return max(0.0, (wall - created).total_seconds())

    def elapsed(self, wall: dt.datetime) -> float | None:
        """Seconds since the action was created (its processing time once it ended)."""
        action = self.action
        if action is None:
            return None
        if action.is_terminal and action.processing_time is not None:
            return seconds(action.processing_time)
        return self._age(wall)

    def eta(self, now: float) -> float | None:
        """Seconds left, from the observed progress rate; None when unknown or ended."""
        if self._eta_at is None or self.action is None or self.action.is_terminal:
            return None
        return max(0.0, self._eta_at - now)


class Tracker:
    """The rows of every action a command waits for, in the order they were asked."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.rows: dict[str, ActionRow] = {action_id: ActionRow(action_id) for action_id in ids}

    def observe(self, action_id: str, action: AsyncAction) -> ActionRow:
        row = self.rows[action_id]
        row.observe(action, time.monotonic(), dt.datetime.now(dt.UTC))
        return row

    @property
    def ended(self) -> int:
        return sum(1 for row in self.rows.values() if row.action and row.action.is_terminal)


# --- results and summaries --------------------------------------------------------------


@attrs.frozen
class ResultFacts:
    """What a summary says about a result: counts, the first failure reasons, the message."""

    done: int | None = None
    failed: int | None = None
    reasons: tuple[str, ...] = ()
    items: int = 0
    message: str | None = None


def _get(obj: object, name: str) -> object:
    # Result classes differ per type, and an UnknownResult holds a plain dict.
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _describe_item(item: object, clip: int | None) -> str:
    what = next(
        (str(v) for v in (_get(item, "code"), _get(item, "source_id")) if isinstance(v, str) and v),
        None,
    )
    row = _count(_get(item, "row"))
    if what is None and row is not None:
        what = f"row {row}"
    why = next(
        (v for v in (_get(item, n) for n in ("reason", "details", "message", "key")) if v),
        "unknown reason",
    )
    reason = f"{what}: {why}" if what else str(why)
    if clip is not None and len(reason) > clip:
        reason = reason[: clip - 3].rstrip() + "..."
    return reason


def result_facts(
    result: object, *, reasons: int = MAX_REASONS, clip: int | None = MAX_REASON_LENGTH
) -> ResultFacts:
    """The counts and failure reasons of any result: typed, an UnknownResult, or None.

    Keeps the first *reasons* failed rows or errors, each cut to *clip* characters.
    """
    if isinstance(result, UnknownResult):
        result = result.raw
    if result is None:
        return ResultFacts()
    items = _get(result, "failed") or _get(result, "errors") or []
    if not isinstance(items, list | tuple):
        items = [items]  # some types send one object where a list was documented
    message = _get(result, "message")
    return ResultFacts(
        done=_count(_get(result, "done_count")),
        failed=_count(_get(result, "failed_count")),
        reasons=tuple(_describe_item(item, clip) for item in items[:reasons]),
        items=len(items),
        message=message if isinstance(message, str) else None,
    )


@attrs.frozen
class SummaryRow:
    """One line of the summary table; *code* is the exit code this outcome alone gives."""

    id: str
    type: str
    status: str
    done: str
    failed: str
    time: str
    reasons: str
    code: int


def _status_text(action: AsyncAction) -> str:
    status = text(action.status)
    operation_failed = action.operation_status == OperationStatus.FAILED
    if action.status == AsyncActionStatus.DONE and operation_failed:
        return f"{status} (operation FAILED)"
    return status


def summarize(action_id: str, outcome: Outcome, latest: AsyncAction | None = None) -> SummaryRow:
    """The summary row of one outcome; *latest* is the newest snapshot seen, for errors."""
    action: AsyncAction | None
    code: int | None
    if isinstance(outcome, AsyncAction):
        action, code, status = outcome, EXIT_OK, _status_text(outcome)
    elif isinstance(outcome, AsyncActionFailed):
        action, code, status = outcome.action, exit_code_for(outcome), _status_text(outcome.action)
    elif isinstance(outcome, PollTimeout):
        action = outcome.latest or latest
        code = exit_code_for(outcome)
        status = "TIMEOUT"
        if action is not None:
            status += f" ({text(action.status)} {text(action.progress)}%)"
    else:
        action, code, status = latest, exit_code_for(outcome), "ERROR"
    facts = result_facts(action.result if action is not None else None)
    reasons = list(facts.reasons)
    more = max(facts.items, facts.failed or 0) - len(reasons)
    if more > 0 and reasons:
        reasons[-1] += f" (+{more} more)"
    if not reasons and code != EXIT_OK and facts.message:
        reasons.append(facts.message)
    if not isinstance(outcome, AsyncAction | AsyncActionFailed | PollTimeout):
        reasons = [str(outcome) or type(outcome).__name__]
    elapsed = seconds(action.processing_time) if action is not None and action.is_terminal else None
    return SummaryRow(
        id=action_id,
        type=text(action.type if action is not None else None),
        status=status,
        done=text(facts.done),
        failed=text(facts.failed),
        time=format_seconds(elapsed),
        reasons="; ".join(reasons),
        code=EXIT_API_ERROR if code is None else code,
    )


def totals(rows: Sequence[SummaryRow]) -> str:
    """``25 actions: 24 done, 1 failed``: how the outcomes add up."""
    names = {0: "done", 1: "failed", 3: "timed out", 4: "error"}
    counts = {name: sum(1 for row in rows if row.code == code) for code, name in names.items()}
    parts = [
        f"{count} {name}{'s' if name == 'error' and count > 1 else ''}"
        for name, count in counts.items()
        if count
    ]
    noun = "action" if len(rows) == 1 else "actions"
    return f"{len(rows)} {noun}: {', '.join(parts) or 'none'}"


# --- printers ---------------------------------------------------------------------------


class Printer(Protocol):
    """Draws a command's human output: progress while waiting, then tables."""

    def message(self, line: str) -> None:
        """One line of prose (a header, a footer)."""

    def start_progress(self, tracker: Tracker) -> None:
        """Begin showing the rows of *tracker*."""

    def progress(self, row: ActionRow) -> None:
        """*row* has a new snapshot."""

    def tick(self) -> None:
        """Time passed: redraw elapsed times and ETAs."""

    def stop_progress(self) -> None:
        """Stop the live display (also after an interruption)."""

    def summary(self, rows: Sequence[SummaryRow]) -> None:
        """The summary table of a wait."""

    def action(self, action: AsyncAction) -> None:
        """One action in detail (``get``)."""

    def actions(self, actions: Sequence[AsyncAction]) -> None:
        """A table of actions (``list``)."""


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


class PlainPrinter:
    """Plain text lines: for pipes, logs, ``NO_COLOR`` and installs without rich."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._started = time.monotonic()

    def _print(self, line: str) -> None:
        # Lines carry server-sent text: escape what could forge a line or drive the terminal.
        print(one_line(line), file=self._out, flush=True)

    def message(self, line: str) -> None:
        self._print(line)

    def start_progress(self, tracker: Tracker) -> None:
        self._started = time.monotonic()

    def progress(self, row: ActionRow) -> None:
        now = time.monotonic()
        wall = dt.datetime.now(dt.UTC)
        progress = "-" if row.progress is None else f"{row.progress}%"
        eta = row.eta(now)
        self._print(
            f"[{now - self._started:6.1f}s] {row.id}  {row.type:<28} {row.status:<11} "
            f"{progress:>4}  elapsed {format_seconds(row.elapsed(wall))}"
            + (f"  eta {format_seconds(eta)}" if eta is not None else "")
        )

    def tick(self) -> None:
        pass

    def stop_progress(self) -> None:
        pass

    def summary(self, rows: Sequence[SummaryRow]) -> None:
        header = ("ID", "TYPE", "STATUS", "DONE", "FAILED", "TIME", "FAILURES")
        cells = [(r.id, r.type, r.status, r.done, r.failed, r.time, r.reasons) for r in rows]
        self._print("")
        for line in _columns(header, cells):
            self._print(line)
        self._print(totals(rows))

    def action(self, action: AsyncAction) -> None:
        for name, value in detail_lines(action):
            self._print(f"{name + ':' if name else '':<17} {value}")

    def actions(self, actions: Sequence[AsyncAction]) -> None:
        header = ("ID", "TYPE", "STATUS", "PROGRESS", "CREATED")
        for line in _columns(header, [list_cells(a) for a in actions]):
            self._print(line)


def list_cells(action: AsyncAction) -> tuple[str, str, str, str, str]:
    """The cells of one ``list`` row: id, type, status, progress, creation time."""
    created = action.created_at
    return (
        action.id,
        text(action.type),
        _status_text(action),
        "-" if action.progress is None else f"{action.progress}%",
        created.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if created is not None else "-",
    )


def detail_lines(action: AsyncAction) -> list[tuple[str, str]]:
    """The (name, value) lines ``get`` shows for *action*."""
    facts = result_facts(action.result, reasons=DETAIL_REASONS, clip=None)
    lines = [
        ("id", action.id),
        ("type", text(action.type)),
        ("status", text(action.status)),
        ("operation_status", text(action.operation_status)),
        ("progress", "-" if action.progress is None else f"{action.progress}%"),
        ("created_at", iso(action.created_at)),
        ("updated_at", iso(action.updated_at)),
        ("processing_time", format_seconds(seconds(action.processing_time))),
        ("request_id", text(action.request_id)),
    ]
    if facts.message is not None:
        lines.append(("message", facts.message))
    if facts.done is not None or facts.failed is not None:
        lines.append(("done / failed", f"{text(facts.done)} / {text(facts.failed)}"))
    lines.extend(("failure", reason) for reason in facts.reasons)
    more = max(facts.items, facts.failed or 0) - len(facts.reasons)
    if more > 0 and facts.reasons:
        lines.append(("", f"(+{more} more)"))
    return lines
