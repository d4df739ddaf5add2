"""Warm start: what a new process gains from learning durations before its first handle.

A fresh client knows nothing: before five actions of a type have ended, its lateness bound
counts from the handle's start, and a 15-45 s job pays the bound's whole ladder of polls.
Three ways a new process can start warm, each compared on the same jobs
(``benchmarks/shapes_random.py``'s cells, simulated clock, ``benchmarks/zoo.py``'s poll):

- **nothing**: a fresh client;
- **one list()**: the durations of the account's recent actions (a ``list()`` page's items
  carry ``processing_time`` per type; here: the durations of the last *listed* jobs of the
  cell's type), learned with ``durations.learn_from_list(page)``; it costs one request;
- **saved statistics**: ``durations.update(saved)`` with what an earlier process saved with
  ``durations.to_dict()`` (here: the same durations; the schedule reads nothing else, so
  saved time left adds nothing), at no request.

It reports GETs per job and p95 lateness for each, and for a process that runs *k* jobs of
the type, the GETs per job with the list request spread over them.

Usage: ``python benchmarks/warm_start.py [--seeds tuning|held-out] [--jobs N] [--listed N]``
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import outofsample as oos
from benchmarks import shapes_random as sr
from benchmarks._common import Table, percentile
from voucherify_async._polling.durations import DurationStats

CELLS = (
    ("moving 15-45 s", "moving", "medium"),
    ("moving 2-30 min", "moving", "long"),
    ("silent 15-45 s", "silent", "medium"),
    ("short 0.1-1.3 s", "short", "short"),
)


def learned_from(
    shapes: list[sr.Shape], durations: tuple[float, float], listed: int
) -> DurationStats:
    """Durations of the *listed* jobs before each type's first (what a list page shows)."""
    stats = DurationStats()
    for shape in {s.type: s for s in shapes}.values():
        for earlier in sr.history(shape, listed, durations):
            stats.add(earlier.type, earlier.end)
    return stats


def run(seeds: range, jobs: int, listed: int) -> Table:
    rows: list[tuple[str, ...]] = []
    for label, family, range_name in CELLS:
        durations = sr.DURATIONS[range_name]
        shapes = sr.draw_many(seeds[:jobs], family, durations)  # type: ignore[arg-type]
        short = family == "short"
        for start in ("nothing", "one list()", "saved statistics"):
            outcomes = []
            for i, shape in enumerate(shapes):
                # A new process per job: what it knows at start, nothing learned since.
                stats = None if start == "nothing" else learned_from([shape], durations, listed)
                outcomes.append(oos.poll_shape("ours", shape, random.Random(i), stats))
            gets = sum(o.gets for o in outcomes) / len(outcomes)
            late = [o.lateness if short else o.lateness / o.running * 100 for o in outcomes]
            cost = 1 if start == "one list()" else 0
            rows.append(
                (
                    label,
                    start,
                    f"{gets:.1f}",
                    f"{percentile(late, 95):.2f}{' s' if short else ' %'}",
                    *(f"{gets + cost / k:.1f}" for k in (1, 3, 10)),
                )
            )
    which = "tuning" if seeds == sr.TUNING else "held-out"
    return Table(
        f"Warm start ({which} seeds, {jobs} jobs per cell, {listed} listed per type)",
        ("cell", "start", "GETs/job", "p95 late", "k=1", "k=3", "k=10"),
        tuple(rows),
        (
            "k=n: GETs per job for a process that runs n jobs of the type, the list request "
            "spread over them. Each job is polled by a new process (nothing learned since).",
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", choices=["tuning", "held-out"], default="tuning")
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--listed", type=int, default=10)
    args = parser.parse_args(argv)
    seeds = sr.TUNING if args.seeds == "tuning" else sr.HELD_OUT
    print(run(seeds, args.jobs, args.listed).text())


if __name__ == "__main__":
    main()
