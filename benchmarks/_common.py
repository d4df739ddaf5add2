"""Shared pieces of the benchmarks: tables, percentiles, time scaling, processes, memory.

Every benchmark module exposes ``run(config) -> list[Table]`` with ``QUICK``, ``FULL`` and
``SMOKE`` configurations; ``benchmarks/run.py`` prints the tables and can write them to
``docs/benchmarks.md``. Figures are ratios to a baseline measured in the same run, because the
machines that run them are small and shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

import attrs

from voucherify_async import PollPolicy

ROOT: Final = Path(__file__).resolve().parent.parent
APP_ID: Final = "benchmark-app"
APP_TOKEN: Final = "benchmark-token"

P = ParamSpec("P")
T = TypeVar("T")


@attrs.frozen
class Table:
    """One table of figures: a title, column names, rows of text, and notes under it."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        """Plain aligned text: the first column left-aligned, the others right-aligned."""
        widths = [
            max(len(row[i]) for row in (self.columns, *self.rows)) for i in range(len(self.columns))
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, "=" * len(self.title), line(self.columns)]
        out.append("  ".join("-" * width for width in widths))
        out += [line(row) for row in self.rows]
        out += [f"  * {note}" for note in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        """A MyST (CommonMark + pipe tables) section: a heading, the table, the notes."""

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        align = ["---"] + ["---:"] * (len(self.columns) - 1)
        out = [f"### {self.title}", "", line(self.columns), line(align)]
        out += [line(row) for row in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {note}" for note in self.notes]
        return "\n".join(out)


# -- figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0-100) of *values*, linearly interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; NaN when empty."""
    return sum(values) / len(values) if values else math.nan


def num(value: float, digits: int = 2) -> str:
    """*value* with *digits* decimals; ``-`` for NaN."""
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def ratio(value: float, baseline: float, digits: int = 2) -> str:
    """``value / baseline`` as ``1.23x``; ``-`` when either is missing or the baseline is 0."""
    if math.isnan(value) or math.isnan(baseline) or baseline == 0:
        return "-"
    return f"{value / baseline:.{digits}f}x"


def verdict(met: bool) -> str:
    """How a target reads in a table."""
    return "met" if met else "MISSED"


# -- time scaling ----------------------------------------------------------------------


def scale_policy(policy: PollPolicy, speed: float) -> PollPolicy:
    """*policy* for a job clock running *speed* times faster: every duration divided by it.

    Growth, jitter and the adaptive switch are unitless and stay; the adaptive mode measures
    the progress rate on the same (real) clock as its delays, so it needs no change.
    """

    def scaled(seconds: float | None) -> float | None:
        return None if seconds is None else seconds / speed

    return attrs.evolve(
        policy,
        first_poll_after=policy.first_poll_after / speed,
        initial_delay=policy.initial_delay / speed,
        max_delay=policy.max_delay / speed,
        min_delay=policy.min_delay / speed,
        timeout=scaled(policy.timeout),
        stall_timeout=scaled(policy.stall_timeout),
    )


#: The fixed 1-second loop every polling figure is compared with (OpenAI SDK, .NET tests).
FIXED_1S: Final = PollPolicy(initial_delay=1, multiplier=1, max_delay=1, jitter=0, adaptive=False)


# -- processes -------------------------------------------------------------------------


def isolated(child: bool, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a fresh spawned process when *child*, else right here.

    *fn* must be a module-level function and its arguments and result picklable.
    """
    if not child:
        return fn(*args, **kwargs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def in_parallel(child: bool, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call (each a picklable ``functools.partial``), side by side when *child*."""
    if not child:
        return [call() for call in calls]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(calls), mp_context=context) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


_SERVER = """
import asyncio, sys
from voucherify_async.testing import serve

def ready(emu):
    emu.add_action(sys.argv[1], duration=0, id="aa_benchmark")
    print(emu.base_url, flush=True)

asyncio.run(serve(ready=ready, seed=1))
"""


@contextlib.contextmanager
def emulator_process(action_type: str = "VOUCHERS.IMPORT") -> Iterator[tuple[str, str]]:
    """An emulator in another process with one finished action: ``(base_url, action_id)``."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, action_type],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the emulator process did not start")
        yield base_url, "aa_benchmark"
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def quiet_library() -> Iterator[None]:
    """Silence the library's retry warnings (429s are expected here); restore the level after."""
    logger = logging.getLogger("voucherify_async")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- memory and clocks -----------------------------------------------------------------


def rss_bytes() -> int:
    """The resident set size of this process now, from ``/proc/self/statm``."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def sleep_until(when: float) -> None:
    """Sleep until the loop clock reads *when* (seconds)."""
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far."""
    return time.process_time()
