"""Warm start: what a new process gains from ``PollPolicy.warm_start`` (its default), and
from learned state it is given.

A fresh client knows nothing: before five actions of a type have ended, its lateness bound
counts from the handle's start, and a 15-45 s job pays the bound's whole ladder of polls.
By default the client fetches one ``list()`` page the first time a handle of a type it has
learned nothing of is still unfinished ``2 * initial_delay`` after it started (at most once
per client). Each way of starting is run on the same jobs as ``benchmarks/outofsample.py``
(its cells, tuning and held-out seeds, simulated clock, ``benchmarks/zoo.py``'s poll), a
new process per job:

- **fresh, no warm start**: ``PollPolicy(warm_start=False)``, nothing learned (what
  ``outofsample.py``'s *fresh* column measures);
- **fresh, warm start**: ``PollPolicy()``; its one ``list()`` page (counted as a GET) shows
  the type's *listed* latest jobs (``shapes_random.history``: the types drift, so they are
  off), learned as ``durations.learn_from_list(page)`` does;
- **fresh, warm start, type not on the page**: the same request, and the page shows no job
  of the type (a new or rare type): pure cost;
- **given state**: ``durations.update(saved)`` with those same durations at start (saved by
  an earlier process, or a shared store), no request.

Also, for reference, the fixed 1 s loop and exponential backoff (the targets' baselines),
and ``outofsample.py``'s warm client (one long-lived client of the cell's types).

Usage: ``python benchmarks/warm_start.py [--quick] [--listed N]``
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import outofsample as oos
from benchmarks import shapes_random as sr
from benchmarks import zoo
from benchmarks._common import Table
from voucherify_async import PollPolicy
from voucherify_async._polling.durations import DurationStats

STARTS: Final = ("fixed", "expo", "no warm start", "warm start", "not on page", "given", "warm")
OFF: Final = oos.NO_WARM_START


def poll(
    start: str,
    shape: sr.Shape,
    durations: tuple[float, float],
    listed: int,
    rng: random.Random,
    warm: DurationStats | None = None,
) -> oos.Outcome:
    """One job polled by a new process that starts as *start* says (see the module)."""
    stats: DurationStats | None = DurationStats()
    policy: PollPolicy | None = None
    warm_up: Callable[[DurationStats], None] | None = None
    poller = "ours"
    if start in ("fixed", "expo"):
        poller, stats = start, None
    elif start == "no warm start":
        policy = OFF
    elif start == "warm start":
        warm_up = oos.warm_up(oos.listed(shape, durations, listed))
    elif start == "not on page":
        warm_up = oos.warm_up({})
    elif start == "given":
        assert stats is not None
        stats.update(oos.listed(shape, durations, listed))
    else:
        stats = warm
    gets, answered, _ = zoo.poll(
        poller,
        shape.state,
        shape.end,
        rng,
        policy,
        stats,
        shape.type,
        started=shape.first_seen,
        hint=shape.family != "unseen",
        warm_up=warm_up,
    )
    return oos.Outcome(gets, answered - shape.end, shape.running, shape.features)


def run(config: oos.Config, listed: int) -> tuple[Table, Table]:
    results: oos.Results = {}
    rows = []
    for label, family, range_name in oos.CELLS:
        durations = sr.DURATIONS[range_name]
        for name, seeds in oos.RANGES.items():
            chosen = seeds[: oos._count(config, family, range_name)]
            shapes = sr.draw_many(chosen, family, durations)
            cells: dict[str, oos.Cell] = {}
            for start in STARTS:
                warm = None
                if start == "warm":
                    warm = oos.warm_client(shapes, durations, config.warm_jobs)
                outcomes = [
                    poll(start, shape, durations, listed, random.Random(f"{seed}:jitter"), warm)
                    for seed, shape in zip(chosen, shapes, strict=True)
                ]
                cells[start] = oos.Cell(tuple(outcomes))
            results[label, name] = cells
            short = family == "short"
            rows.append(
                (label, name, *[oos._pair(cells[s], short) for s in STARTS]),
            )
    table = Table(
        f"Warm start on the out-of-sample shapes ({listed} listed per type)",
        ("cell", "seeds", *[f"{s}: GETs / p95" for s in STARTS]),
        tuple(rows),
        (
            f"Jobs per cell and seed range: {config.jobs} (15-45 s), {config.long_jobs} "
            f"(2-30 min), {config.short_jobs} (short); a new process per job (the 'warm' "
            f"column: outofsample.py's long-lived client, {config.warm_jobs} earlier jobs per "
            "type). The warm start's list request counts as a GET. p95 lateness in % of the "
            "running time (seconds for short jobs).",
        ),
    )
    # The targets with 'fresh' = the default (warm start on).
    renamed: oos.Results = {
        key: {
            "fixed": per["fixed"],
            "expo": per["expo"],
            "fresh": per["warm start"],
            "warm": per["warm"],
        }
        for key, per in results.items()
    }
    targets = Table(
        "Issue #29 targets with the default fresh client (warm start on)",
        ("target", "seeds", "client", "figure", "status"),
        tuple(oos.target_rows(renamed)),
    )
    return table, targets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--listed", type=int, default=oos.LISTED, help="jobs of the type on the page"
    )
    args = parser.parse_args(argv)
    for table in run(oos.QUICK if args.quick else oos.FULL, args.listed):
        print(table.text(), end="\n\n")


if __name__ == "__main__":
    main()
