"""The rich printer: a live table of progress bars, then coloured summary tables.

Imported only when rich is installed (the ``cli`` extra) and stdout is a colour terminal.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import IO, Final

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from voucherify_async import AsyncAction
from voucherify_async._models import one_line

from ._view import (
    ActionRow,
    SummaryRow,
    Tracker,
    detail_lines,
    format_seconds,
    list_cells,
    totals,
)

__all__ = ["RichPrinter"]

_STATUS_STYLES: Final = {
    "DONE": "green",
    "FAILED": "bold red",
    "IN_PROGRESS": "yellow",
    "ENQUEUED": "cyan",
    "TIMEOUT": "magenta",
    "ERROR": "bold red",
}
_CODE_STYLES: Final = {0: "green", 1: "bold red", 3: "magenta", 4: "bold red"}


def _status(status: str) -> Text:
    first = status.split(" ", 1)[0]
    style = "bold red" if "operation FAILED" in status else _STATUS_STYLES.get(first, "")
    return Text(one_line(status), style=style)


def _safe(text: str) -> Text:
    """Server-sent *text* as a cell: no markup read from it, no control sequence let through."""
    return Text(one_line(text))


class RichPrinter:
    """Live progress bars and tables on a terminal."""

    def __init__(self, out: IO[str]) -> None:
        self._console = Console(file=out, highlight=False)
        self._live: Live | None = None
        self._tracker: Tracker | None = None

    def message(self, line: str) -> None:
        self._console.print(_safe(line))

    def start_progress(self, tracker: Tracker) -> None:
        self._tracker = tracker
        # Refreshed by our own ticks, from the event loop: no drawing thread.
        self._live = Live(self._render(), console=self._console, auto_refresh=False, transient=True)
        self._live.start()

    def progress(self, row: ActionRow) -> None:
        self.tick()

    def tick(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def stop_progress(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _render(self) -> Table:
        tracker = self._tracker
        rows = list(tracker.rows.values()) if tracker is not None else []
        now, wall = time.monotonic(), dt.datetime.now(dt.UTC)
        ended = tracker.ended if tracker is not None else 0
        table = Table(
            title=f"Waiting for {len(rows)} async action(s): {ended} ended",
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        table.add_column("Action", no_wrap=True)  # ids get copied: never cut them
        table.add_column("Type", overflow="ellipsis", no_wrap=True)
        table.add_column("Status", no_wrap=True)
        table.add_column("Progress", no_wrap=True)
        for name in ("%", "Elapsed", "ETA"):
            table.add_column(name, justify="right")
        for row in rows:
            progress = row.progress
            table.add_row(
                _safe(row.id),
                _safe(row.type),
                _status(row.status),
                ProgressBar(total=100, completed=progress or 0, width=20),
                "-" if progress is None else f"{progress}%",
                format_seconds(row.elapsed(wall)),
                format_seconds(row.eta(now)),
            )
        return table

    def summary(self, rows: Sequence[SummaryRow]) -> None:
        table = Table(title="Summary", title_justify="left")
        table.add_column("Action", no_wrap=True)
        for name in ("Type", "Status"):
            table.add_column(name)
        for name in ("Done", "Failed", "Time"):
            table.add_column(name, justify="right")
        table.add_column("Failures", overflow="fold")
        for r in rows:
            table.add_row(
                _safe(r.id), _safe(r.type), _status(r.status), r.done, r.failed, r.time,
                _safe(r.reasons),
            )  # fmt: skip
        self._console.print(table)
        worst = max((r.code for r in rows), default=0)
        self._console.print(Text(totals(rows), style=_CODE_STYLES.get(worst, "")))

    def action(self, action: AsyncAction) -> None:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in detail_lines(action):
            table.add_row(name, _status(value) if name == "status" else _safe(value))
        self._console.print(table)

    def actions(self, actions: Sequence[AsyncAction]) -> None:
        table = Table()
        table.add_column("Action", no_wrap=True)
        for name in ("Type", "Status"):
            table.add_column(name)
        table.add_column("Progress", justify="right")
        table.add_column("Created")
        for action in actions:
            ident, kind, status, progress, created = list_cells(action)
            table.add_row(_safe(ident), _safe(kind), _status(status), progress, _safe(created))
        self._console.print(table)
