"""Run the fault matrix and the soak, and write what happened to ``docs/reliability.md``.

Usage, from the repository's root::

    python tests/reliability/report.py            # the matrix, the CI soak and the full soak
    python tests/reliability/report.py --quick    # the matrix and the CI soak only
    python tests/reliability/report.py --output - # print the page instead of writing it

The rows, the expectations and the soak are those of ``test_fault_matrix.py`` and
``test_soak.py``: this script runs the same code, so the page shows what the tests check.
It exits 1 when a row or the soak does not end in its documented outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import aiohttp  # noqa: E402
import test_fault_matrix as matrix  # noqa: E402
import test_soak as soak  # noqa: E402

from voucherify_async import _json  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "reliability.md"


# --- the matrix ---------------------------------------------------------------------------


async def _cell(run: Callable[[matrix.Case], Awaitable[matrix.Outcome]], case: matrix.Case):
    """One cell of the table: the outcome's text and seconds, or what went wrong."""
    try:
        outcome = await run(case)
    except Exception as error:  # a mismatch: shown in the table
        text = f"{type(error).__name__}: {error}"
        text = text if len(text) <= 140 else text[:140] + "..."
        label = "**known bug**" if case.bug else "**MISMATCH**"
        return f"{label}: {text}".replace("|", "\\|").replace("\n", " "), 0.0, False
    return outcome.text, outcome.seconds, True


async def run_matrix() -> tuple[list[list[str]], list[str], bool]:
    """Every row of the matrix as table cells, the known bugs' notes, and whether all held.

    A row with a known bug holds when it still misses its documented outcome (like a strict
    xfail); once it matches everywhere, the run fails so that the mark gets removed.
    """
    rows, bugs, ok = [], [], True
    for case in matrix.CASES:
        name = case.name
        if case.bug:
            bugs.append(case.bug)
            name += f" (bug {len(bugs)})"
        cells, total, matched_all = [name, case.kind], 0.0, True
        runs = (
            (matrix.run_get_once, case.fault is not None),
            (matrix.run_get_persistent, case.kind == "transient"),
            (matrix.run_handle, True),
        )
        for run, applies in runs:
            if not applies:
                cells.append("—")
                continue
            text, seconds, matched = await _cell(run, case)
            cells.append(text)
            total += seconds
            matched_all = matched_all and matched
        ok = ok and (not matched_all if case.bug else matched_all)
        cells.append(f"{total:.2f}")
        rows.append(cells)
        print(" | ".join(cells), file=sys.stderr)
    return rows, bugs, ok


def matrix_table(rows: list[list[str]], bugs: list[str]) -> str:
    """The matrix as a Markdown table, with the known bugs as footnotes."""
    header = ["Case", "Kind", "`get`, fault once", "`get`, fault persists", "Handle", "Time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if bugs:
        lines += ["", "Known bugs, each pinned by strict xfails until it is fixed:", ""]
        lines += [f"{i}. {bug}." for i, bug in enumerate(bugs, 1)]
    return "\n".join(lines)


# --- the soak -----------------------------------------------------------------------------


def soak_ok(summary: soak.SoakSummary) -> bool:
    """Whether a soak run met every claim test_soak checks."""
    growth = summary.rss_growth
    return (
        not summary.wrong
        and summary.hangs == 0
        and sum(summary.outcomes.values()) == summary.handles
        and summary.tasks_left == summary.tasks_after_close == 0
        and summary.timers_left == summary.timers_after_close == 0
        and not summary.warnings
        and not summary.loop_errors
        and (growth is None or growth < soak.RSS_SLACK_MB)
        and summary.busiest_window <= soak.BUDGET
        and summary.closed_calls == {"ClientClosedError": 2 * soak.AT_CLOSE}
    )


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def soak_table(runs: list[tuple[str, soak.SoakSummary]]) -> str:
    """The soak runs side by side, as a Markdown table."""

    def row(label: str, cell: Callable[[soak.SoakSummary], str]) -> str:
        return f"| {label} | " + " | ".join(cell(s) for _, s in runs) + " |"

    def faults(s: soak.SoakSummary) -> str:
        share = s.faults_injected / s.requests if s.requests else 0.0
        kinds = ", ".join(f"{name} {hits}" for name, hits in s.faults.items())
        return f"{s.faults_injected:,} ({share:.1%}): {kinds}"

    def outcomes(s: soak.SoakSummary) -> str:
        return ", ".join(f"{name} {count:,}" for name, count in sorted(s.outcomes.items()))

    lines = [
        "| | " + " | ".join(label for label, _ in runs) + " |",
        "|---|" + "---|" * len(runs),
        row("Handles", lambda s: f"{s.handles:,}"),
        row("Started over", lambda s: f"{s.seconds:.0f} s"),
        row("Wall time", lambda s: f"{s.wall:.1f} s"),
        row("Requests", lambda s: f"{s.requests:,}"),
        row("Faults injected", faults),
        row("Outcomes", outcomes),
        row("Wrong outcomes", lambda s: str(len(s.wrong))),
        row("Plain gets cancelled mid-way", lambda s: f"{s.cancelled_gets:,}"),
        row(
            f"Busiest {soak.BUDGET_WINDOW:.0f} s window at the server (budget {soak.BUDGET})",
            lambda s: str(s.busiest_window),
        ),
        row(
            f"Calls pending at close() ({2 * soak.AT_CLOSE}: handles + gets in flight)",
            lambda s: ", ".join(f"{k} {v}" for k, v in sorted(s.closed_calls.items())),
        ),
        row("Hangs", lambda s: str(s.hangs)),
        row("Time per handle, max / mean", lambda s: f"{s.max_time:.2f} s / {s.mean_time:.2f} s"),
        row(
            "RSS start / after warm-up / end",
            lambda s: f"{_mb(s.rss_start)} / {_mb(s.rss_warm)} / {_mb(s.rss_end)} MiB",
        ),
        row("RSS growth after warm-up", lambda s: f"{_mb(s.rss_growth)} MiB"),
        row(
            "Our tasks left (before / after close)",
            lambda s: f"{s.tasks_left} / {s.tasks_after_close}",
        ),
        row(
            "Our timers left (before / after close)",
            lambda s: f"{s.timers_left} / {s.timers_after_close}",
        ),
        row("Warnings / loop errors", lambda s: f"{len(s.warnings)} / {len(s.loop_errors)}"),
        row("Verdict", lambda s: "pass" if soak_ok(s) else "**FAIL**"),
    ]
    return "\n".join(lines)


# --- the lifecycle tests -------------------------------------------------------------------

#: The files whose tests make the lifecycle table: close, deadlines, pauses, resends, loops.
LIFECYCLE_FILES = ("test_lifecycle.py",)


def run_lifecycle() -> tuple[str, bool]:
    """Run the lifecycle tests with pytest; one table row per test: its docstring, outcome."""
    import importlib
    import subprocess
    import tempfile
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "",
             f"--junitxml={report}", *(str(HERE / name) for name in LIFECYCLE_FILES)],
            cwd=ROOT, check=False, capture_output=True,
        )  # fmt: skip
        cases = ET.parse(report).getroot().iter("testcase")
        lines = ["| Case | Outcome | Time (s) |", "|---|---|---|"]
        ok = True
        for case in cases:
            name = case.get("name", "")
            module = importlib.import_module(case.get("classname", "").rsplit(".", 1)[-1])
            function = getattr(module, name.split("[", 1)[0], None)
            doc = " ".join((getattr(function, "__doc__", None) or name).split())
            params = f" [{name.split('[', 1)[1]}" if "[" in name else ""
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            ok = ok and not failed
            outcome = "**FAIL**" if failed else "skipped" if skipped else "holds"
            text = (doc + params).replace("|", "\\|")
            lines.append(f"| {text} | {outcome} | {float(case.get('time', 0)):.2f} |")
    return "\n".join(lines), ok


# --- the page -----------------------------------------------------------------------------

_INTRO = """\
# Reliability

This page is generated by `python tests/reliability/report.py` from the same code the tests in
`tests/reliability/` run: the fault matrix of `test_fault_matrix.py` and the soak of
`test_soak.py`. Everything talks HTTP to the real emulator on 127.0.0.1; nothing is mocked.

Generated {when} on Python {python}, aiohttp {aiohttp}, JSON backend `{backend}`, {cpus} CPUs.
"""

_MATRIX = """\
## Fault matrix

Each row injects one fault with the emulator and checks the outcome that the
{{doc}}`API reference <api>` documents, for one `client.async_actions.get(id)` and for a handle
(`await client.async_actions.handle(id)`).
The client runs with `max_retries={retries}`, under `fast_polling()`, with a 10 ms poll policy;
every run is bounded by `asyncio.timeout({budget:.0f})`.

- **`get`, fault once**: the fault hits the first GET only. A transient fault is retried and
  the get returns the action; a permanent one raises at once, after one GET.
- **`get`, fault persists**: a transient fault hits every GET: the get raises its documented
  error once the retries are spent. Every attempt passes the request gate: aiohttp's own
  silent resend after a dropped connection is refused, so the budget sees every request.
- **Handle**: a transient fault lasts until {polls} whole polls have failed (each after its
  retries), then ends: the handle survives the outage and resolves. A permanent error ends the
  handle with that exception. "Connection refused" starts the emulator on the handle's port
  only after the failed polls.
- A row marked "known bug" does not reach its documented outcome today: the cell shows what
  happens instead, and its tests are strict xfails until the bug is fixed.
- **Time**: the seconds the row's runs took together. The 429 rows honour the server's wait
  (0.2-0.3 s, fractional to keep the matrix quick); the read timeout uses a 0.2 s client timeout.

{table}
"""

_LIFECYCLE = """\
## Lifecycle: every call ends, nothing outlives close()

The tests of `test_lifecycle.py`, run by pytest for this page: each talks HTTP to a server of its
own on 127.0.0.1 (aiohttp, or raw asyncio streams for faults below HTTP), synchronises on events
the server sets, and is bounded by `asyncio.timeout`. They cover close() while calls wait in the
gate (spent budget, server pause), are in flight or sleep between retries; policy deadlines
while a poll is in flight, queued, or behind a pause; pauses longer than a call may wait;
cancelled requests and server-side lateness against the budget; aiohttp's hidden resend;
corrupt and bomb bodies; parser failures and redirects; and a client or handle used from another
event loop.

{table}
"""

_SOAK = """\
## Soak

Handles started at a steady rate against the emulator, which injects faults into 10 % of all
requests ({kinds}, equally likely; the 429 carries `Retry-After: 0.05` and the delay outlasts the
client's {timeout:.0f} s timeout). The client has a budget of {budget} requests per
{window:.0f} s (time-scaled), checked against the emulator's arrivals; {deadline:.0%} of the
handles have a policy deadline shorter than their job (they must end `PollTimeout`),
{cancel:.0%} of the jobs also get a plain `get()` cancelled 0-20 ms in, and at the end the
client closes with {close} handles polling and {close} gets in flight, every one of which must
end `ClientClosedError`. Jobs last 0.1-1.3 s; about 10 % end FAILED and 5 % end DONE
with `operation_status` FAILED (both must raise `AsyncActionFailed`); the poll policy is a real
schedule (first delay {delay} s, x{growth}, at most {cap} s), without `fast_polling()`.
A handle is a hang if it has not ended {hang:.0f} s after its job. RSS is read from
`/proc/self/statm` after `gc.collect()`; the warm-up baseline is taken when a quarter of the
handles have started. The emulator forgets each finished job and its request log as the run goes,
so that the RSS measures the client, not the emulator's records.

The CI run is what `pytest -m slow` runs (the soak is marked `slow`, so the default `pytest`
leaves it out; `.ci/run` runs both); the full one runs with `VOUCHERIFY_SOAK=1 pytest -m slow
tests/reliability/test_soak.py` (or `nox -s soak`).

{table}
"""


def render(
    matrix_rows: list[list[str]],
    bugs: list[str],
    soaks: list[tuple[str, soak.SoakSummary]],
    lifecycle: str,
) -> str:
    """The whole page."""
    parts = [
        _INTRO.format(
            when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            python=platform.python_version(),
            aiohttp=aiohttp.__version__,
            backend=_json.BACKEND,
            cpus=os.cpu_count(),
        ),
        _MATRIX.format(
            retries=matrix.MAX_RETRIES,
            budget=matrix.RUN_BUDGET,
            polls=matrix.FAILED_POLLS,
            table=matrix_table(matrix_rows, bugs),
        ),
        _LIFECYCLE.format(table=lifecycle),
        _SOAK.format(
            kinds=", ".join(soak.FAULTS),
            timeout=soak.TIMEOUT,
            delay=soak.POLICY.initial_delay,
            growth=soak.POLICY.multiplier,
            cap=soak.POLICY.max_delay,
            hang=soak.HANG_AFTER,
            budget=soak.BUDGET,
            window=soak.BUDGET_WINDOW,
            deadline=soak.DEADLINE_SHARE,
            cancel=soak.CANCEL_SHARE,
            close=soak.AT_CLOSE,
            table=soak_table(soaks),
        ),
    ]
    return "\n".join(parts)


async def main_async(quick: bool) -> tuple[str, bool]:
    """Run everything; return the page and whether every claim held."""
    # The soaks first, so that their RSS figures start from a process the matrix's 10-33 MB
    # bodies have not already grown.
    runs = [("CI", soak.CI_HANDLES, soak.CI_SECONDS)]
    if not quick:
        runs.append(("Full", soak.FULL_HANDLES, soak.FULL_SECONDS))
    soaks = []
    for label, handles, seconds in runs:
        summary = await soak.run_soak(handles, seconds)
        print(f"soak {label}: {summary}", file=sys.stderr)
        soaks.append((label, summary))
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows, bugs, matrix_ok = await run_matrix()
    matrix_ok = matrix_ok and not caught
    for warning in caught:
        print(f"warning during the matrix: {warning.message}", file=sys.stderr)
    print(f"matrix: {time.monotonic() - started:.1f} s", file=sys.stderr)
    lifecycle, lifecycle_ok = run_lifecycle()
    ok = matrix_ok and lifecycle_ok and all(soak_ok(s) for _, s in soaks)
    return render(rows, bugs, soaks, lifecycle), ok


def main(argv: list[str] | None = None) -> int:
    """Parse *argv*, run, write the page; 0 when every claim held, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the full soak")
    parser.add_argument(
        "--output", default=str(DEFAULT_OUTPUT), help="where to write the page ('-': stdout)"
    )
    args = parser.parse_args(argv)
    # The retries log warnings by design; keep them off the console (no lastResort handler).
    logging.getLogger("voucherify_async").addHandler(logging.NullHandler())
    page, ok = asyncio.run(main_async(args.quick))
    if args.output == "-":
        sys.stdout.write(page)
    else:
        Path(args.output).write_text(page, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
