"""Run the benchmarks of voucherify-async and print one table per benchmark.

Usage::

    python benchmarks/run.py [--quick] [--only NAME ...] [--write-docs] [--sdk-site DIR]

Benchmarks: ``decode`` (benchmarks/decode.py's measurements), ``client_cpu``, ``polling``,
``budget``, ``scale``, ``redis_budget`` (needs redis-server or ``REDIS_URL``),
``yardstick`` (needs numpy: the noisy shape's informed poller), ``otel_overhead`` (needs
the ``[otel]`` extra and opentelemetry-sdk: CPU per get() with the integration on and off),
``outofsample`` (random progress shapes, tuning and held-out seeds, and the saturated
budget) and ``planning`` (next_delay's CPU, a pending handle's memory, a get()'s CPU): those
two reproduce every
figure of issue #29's targets. Every figure is a ratio to a baseline measured in the same
run, or a target from the issue.
``--quick`` finishes in under a minute; the full run takes several minutes on two cores.
``--write-docs`` rewrites docs/benchmarks.md with the same figures (with ``--only``, just the
sections of those benchmarks). ``--sdk-site`` adds a
site-packages directory holding the official ``voucherify`` SDK, for the decode comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Final

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs

from benchmarks import (
    budget,
    client_cpu,
    decode,
    otel_overhead,
    outofsample,
    planning,
    polling,
    redis_budget,
    scale,
    yardstick,
)
from benchmarks._common import ROOT, Table, num
from voucherify_async import _json

DOCS: Final = ROOT / "docs" / "benchmarks.md"

#: (number, repeat) of decode.py's timeit loops.
DECODE_LOOPS: Final = {"full": (1000, 15), "quick": (200, 3), "smoke": (3, 1)}


def decode_tables(number: int, repeat: int, sdk_site: Path | None = None) -> list[Table]:
    """benchmarks/decode.py's measurements (its seed, its timing helper) as a table."""
    if sdk_site is not None and str(sdk_site) not in sys.path:
        sys.path.append(str(sdk_site))
    rows = decode.rows()
    bodies = rows[0][2]
    # decode.py's helper times the rows in turns, so a noisy machine slows them all alike.
    times = decode._measure(rows, number, repeat)
    best = {name: min(runs) for name, runs in times.items()}
    base = best[rows[0][0]]
    lines = tuple(
        (name, num(best[name]), num(statistics.median(runs)), f"{best[name] / base:.2f}x")
        for name, runs in times.items()
    )
    ours = best[f"decode_async_action ({_json.BACKEND})"]
    notes = [
        f"{len(bodies)} seed examples, {sum(map(len, bodies)) // len(bodies)} bytes on average; "
        f"best and median of {repeat} x {number} loops (benchmarks/decode.py's helpers).",
    ]
    medians = {name: statistics.median(runs) for name, runs in times.items()}
    notes.append(decode.hooks_vs_cattrs({name: (best[name], medians[name]) for name in best}) + ".")
    if decode.SDK_ROW in best:
        ratio = ours / best[decode.SDK_ROW]
        notes.append(
            f"decode_async_action / SDK from_json = {ratio:.2f}x (its result stays a dict)."
        )
    else:
        notes.append("The official voucherify SDK is not importable here (see --sdk-site).")
    columns = ("decoder", "best us/payload", "median us", "x json.loads")
    return [Table("Decode: bytes -> AsyncAction", columns, lines, tuple(notes))]


def _registry(
    quick: bool, sdk_site: Path | None, plots: bool = False
) -> dict[str, Callable[[], list[Table]]]:
    """What each benchmark name runs; *plots*: the out-of-sample benchmark writes its plot."""
    mode = "quick" if quick else "full"
    return {
        "decode": lambda: decode_tables(*DECODE_LOOPS[mode], sdk_site=sdk_site),
        "client_cpu": lambda: client_cpu.run(client_cpu.QUICK if quick else client_cpu.FULL),
        "polling": lambda: polling.run(polling.QUICK if quick else polling.FULL),
        "budget": lambda: budget.run(budget.QUICK if quick else budget.FULL),
        "scale": lambda: scale.run(scale.QUICK if quick else scale.FULL),
        "redis_budget": lambda: [
            *redis_budget.run(redis_budget.QUICK if quick else redis_budget.FULL),
            *redis_budget.run_trips(redis_budget.TRIPS_QUICK if quick else redis_budget.TRIPS_FULL),
        ],
        "yardstick": lambda: yardstick.run(yardstick.QUICK if quick else yardstick.FULL),
        "outofsample": lambda: outofsample.run(
            outofsample.QUICK if quick else outofsample.FULL, outofsample.PLOT if plots else None
        ),
        "planning": lambda: planning.run(planning.QUICK if quick else planning.FULL),
        "otel_overhead": lambda: otel_overhead.run(
            otel_overhead.QUICK if quick else otel_overhead.FULL
        ),
    }


NAMES: Final = (
    "decode", "client_cpu", "polling", "budget", "scale", "redis_budget", "yardstick",
    "outofsample", "planning",
    "otel_overhead",
)  # fmt: skip


def machine() -> str:
    """Cores, CPU model, OS and the versions that matter to the figures."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, aiohttp {version('aiohttp')}, "
        f"JSON backend {_json.BACKEND}"
    )


#: The zoo's plot, written next to the page by --write-docs when matplotlib is installed.
PLOT: Final = ROOT / "docs" / "_static" / "polling-zoo.svg"


def write_docs(
    path: Path,
    tables: Sequence[Table],
    command: str,
    elapsed: float,
    figures: dict[str, str] | None = None,
) -> None:
    """Rewrite the benchmarks page (MyST Markdown) with *tables*; *figures* maps a table's
    title to Markdown (an image) shown after it."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# Benchmarks",
        "",
        "This page is written by `benchmarks/run.py --write-docs`; do not edit it by hand.",
        "Every figure is measured against a baseline in the same run (the machines that run",
        "them are small and shared, so only ratios travel). Job durations and latencies are",
        "in unscaled seconds: the polling and budget benchmarks run the emulator's job clock",
        "faster and divide every policy by the same factor.",
        "",
        f"- Date: {now}",
        f"- Machine: {machine()}",
        f"- Command: `{command}` ({elapsed:.0f} s)",
        "",
        "## Results",
        "",
        "",
    ]
    figures = figures or {}
    body = "\n\n".join(
        table.markdown() + (f"\n\n{figures[table.title]}" if table.title in figures else "")
        for table in tables
    )
    path.write_text("\n".join(header) + body + "\n", encoding="utf-8")


def update_docs(
    path: Path,
    tables: Sequence[Table],
    command: str,
    elapsed: float,
    figures: dict[str, str] | None = None,
) -> None:
    """Replace (or append) only *tables*' sections of the page, each saying when and how it
    was measured; the other sections and the page's header stay as the last full run wrote
    them (``--only`` with ``--write-docs``). *figures* as for :func:`write_docs`."""
    figures = figures or {}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = path.read_text(encoding="utf-8").rstrip("\n")
    head, *sections = text.split("\n### ")
    # Each section ends with a blank line, the last one too (a section appended after it).
    by_title = {section.split("\n", 1)[0]: section.rstrip("\n") + "\n" for section in sections}
    for table in tables:
        stamped = attrs.evolve(
            table,
            notes=(
                *table.notes,
                f"Measured {now} on {machine()} with `{command}` ({elapsed:.0f} s).",
            ),
        )
        section = stamped.markdown().removeprefix("### ")
        if table.title in figures:
            section += f"\n\n{figures[table.title]}\n"
        by_title[table.title] = section.rstrip("\n") + "\n"
    text = "\n### ".join([head, *by_title.values()])
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the voucherify-async benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smaller runs: under a minute")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"among {', '.join(NAMES)}")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite {DOCS.name}")
    parser.add_argument("--sdk-site", type=Path, help="a site-packages dir holding voucherify")
    args = parser.parse_args(argv)
    names = [name.replace("-", "_") for name in args.only] if args.only else list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose among {', '.join(NAMES)}")
    registry = _registry(args.quick, args.sdk_site, plots=args.write_docs)
    print(f"{machine()}\n", flush=True)
    started = time.perf_counter()
    tables: list[Table] = []
    for name in names:
        began = time.perf_counter()
        produced = registry[name]()
        tables += produced
        for table in produced:
            print(table.text(), end="\n\n")
        print(f"({name}: {time.perf_counter() - began:.1f} s)\n", flush=True)
    elapsed = time.perf_counter() - started
    print(f"total: {elapsed:.1f} s")
    if args.write_docs:
        shown = ["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]
        figures = {}
        if "polling" in names:
            try:
                polling.write_plot(PLOT, polling.QUICK if args.quick else polling.FULL)
            except ImportError:
                print("matplotlib is not installed (pip install -e '.[bench]'): no plot")
            else:
                zoo_title = next(t.title for t in tables if t.title.startswith("Progress shapes"))
                figures[zoo_title] = (
                    f"![GETs per job against p95 lateness, per poller and shape]"
                    f"({PLOT.relative_to(DOCS.parent).as_posix()})"
                )
        if "outofsample" in names and outofsample.PLOT.exists():
            figures[outofsample.TITLE] = (
                "![GETs per job against p95 lateness, per poller, cell and seed range]"
                f"({outofsample.PLOT.relative_to(DOCS.parent).as_posix()})"
            )
        if args.only:
            update_docs(DOCS, tables, " ".join(shown), elapsed, figures)
        else:
            write_docs(DOCS, tables, " ".join(shown), elapsed, figures)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
