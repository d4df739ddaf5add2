"""Planning cost: the CPU of ``PollSchedule.next_delay`` and the memory of a pending handle.

Measured (issue #29, item 4):

- **next_delay**: every call's CPU time (``time.thread_time_ns`` around it) while a client
  that has learned 64 types polls jobs of every shape to their end on a simulated clock
  (``benchmarks/zoo.py``'s :func:`~benchmarks.zoo.poll`): the zoo's shapes (tuned and
  held out, 15-45 s and 2-30 min pooled; the client knows the zoo's type too) and the
  random shapes' cells (``benchmarks/shapes_random.py``, tuning seeds). The 64 types are
  the random shapes' (48 of 15-45 s and 2-30 min families, 16 short), each learned from
  :attr:`Config.warm_jobs` earlier jobs. Median and p99 per shape, in microseconds.
- **A pending handle's memory**: ``tracemalloc``'s traced memory grows by this much per
  handle while :attr:`Config.handles` handles are created (``client.async_actions.handle``
  on a real emulator, ``PollPolicy(first_poll_after=3600)``: none has sent a request or
  seen a reading), against as many bare ``asyncio.sleep(3600)`` tasks; each in a fresh
  process.
- **Planning 10,000 pending handles' next polls**: :attr:`Config.planned` schedules of
  the learned client (jobs of the 48 longer types), each fed its first snapshot and asked
  for the next delay, all in one timed loop; then their second snapshot, again.
- Beside them, a ``get()``'s client CPU as ``benchmarks/client_cpu.py`` measures it
  (process time per request against an emulator in another process).

Usage: ``python benchmarks/planning.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Final, Literal

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import client_cpu, outofsample, zoo
from benchmarks import shapes_random as sr
from benchmarks._common import APP_ID, APP_TOKEN, Table, isolated, num, percentile, verdict
from voucherify_async import PollPolicy, VoucherifyClient
from voucherify_async._durations import DurationStats
from voucherify_async._schedule import PollSchedule
from voucherify_async.testing import VoucherifyEmulator
from voucherify_async.testing._jobs import Job

#: Targets from issue #29.
MEDIAN_US: Final = 50.0
P99_US: Final = 250.0
HANDLE_BYTES: Final = 1024.0
#: The first poll of a measured pending handle waits this long (seconds): none is sent.
FIRST_POLL_AFTER: Final = 3600.0
#: The learned types: (family, range, type blocks), 64 types in all.
TYPES: Final[tuple[tuple[sr.Family, str, int], ...]] = (
    ("moving", "medium", 8),
    ("moving", "long", 8),
    ("silent", "medium", 8),
    ("silent", "long", 8),
    ("unseen", "medium", 8),
    ("unseen", "long", 8),
    ("short", "short", 16),
)

Kind = Literal["task", "handle"]


@attrs.frozen
class Config:
    """Jobs timed per shape, earlier jobs learned per type, handles measured, schedules
    planned, and the client CPU run."""

    jobs: int
    warm_jobs: int = 16
    handles: int = 20_000
    planned: int = 10_000
    cpu: client_cpu.Config = client_cpu.QUICK
    child: bool = True
    #: The zoo shapes timed (None: every one, tuned and held out).
    zoo_shapes: tuple[str, ...] | None = None


FULL: Final = Config(16, cpu=client_cpu.Config(requests=8_000, rounds=4))
QUICK: Final = Config(8, warm_jobs=8, cpu=client_cpu.QUICK)
SMOKE: Final = Config(
    1,
    warm_jobs=5,
    handles=200,
    planned=100,
    cpu=client_cpu.SMOKE,
    child=False,
    zoo_shapes=("coarse", "noisy"),
)


def learned_client(config: Config) -> tuple[DurationStats, list[sr.Shape]]:
    """A client that learned the 64 types of :data:`TYPES` (``warm_jobs`` earlier jobs
    each), and one job of each type (the first of its block)."""
    stats = DurationStats()
    shapes = []
    for family, range_name, blocks in TYPES:
        durations = sr.DURATIONS[range_name]
        for block in range(blocks):
            shape = sr.draw(sr.TUNING[block * sr.BLOCK], family, durations)
            shapes.append(shape)
            for i, earlier in enumerate(sr.history(shape, config.warm_jobs, durations)):
                outofsample.poll_shape("warm", earlier, random.Random(f"plan:{i}"), stats)
    return stats, shapes


def _zoo_timings(config: Config, stats: DurationStats, spec: str, enqueued: float) -> list[int]:
    """next_delay's nanoseconds over the zoo shape's jobs at 15-45 s and 2-30 min."""
    timings: list[int] = []
    for zoo_config in (zoo.Config(config.jobs), zoo.Config(config.jobs, durations=(120, 1800))):
        known = zoo.warm_stats(zoo_config, spec, enqueued, into=copy.deepcopy(stats))
        for i, duration in enumerate(zoo.durations(zoo_config, random.Random(zoo_config.seed))):
            job = zoo._job(spec, enqueued, duration, random.Random(f"{zoo_config.seed}:job:{i}"))

            def state(t: float, job: Job = job) -> tuple[str, int]:
                status, progress, _ = job.state(t * 1000)
                return status, progress

            rng = random.Random(f"{zoo_config.seed}:jitter:{i}")
            zoo.poll("ours", state, duration, rng, stats=known, timings=timings)
    return timings


def _cell_timings(
    config: Config, stats: DurationStats, family: sr.Family, range_name: str
) -> list[int]:
    """next_delay's nanoseconds over the random cell's jobs (their types learned)."""
    timings: list[int] = []
    durations = sr.DURATIONS[range_name]
    known = copy.deepcopy(stats)
    for seed in sr.TUNING[: max(config.jobs, sr.BLOCK)]:
        shape = sr.draw(seed, family, durations)
        if shape.index == 0:  # a new type: the client learned its earlier jobs
            for i, earlier in enumerate(sr.history(shape, config.warm_jobs, durations)):
                outofsample.poll_shape("warm", earlier, random.Random(f"plan:{i}"), known)
        outofsample.poll_shape("warm", shape, random.Random(f"{seed}:jitter"), known, timings)
    return timings


def next_delay_rows(config: Config, stats: DurationStats) -> list[tuple[str, int, float, float]]:
    """(shape, calls, median us, p99 us) for every zoo shape and every random cell."""
    rows = []
    for name, (spec, enqueued) in {**zoo.SHAPES, **zoo.HELD_OUT}.items():
        if config.zoo_shapes is not None and name not in config.zoo_shapes:
            continue
        timings = _zoo_timings(config, stats, spec, enqueued)
        rows.append((f"zoo: {name}", *_summary(timings)))
    for label, family, range_name in outofsample.CELLS:
        timings = _cell_timings(config, stats, family, range_name)
        rows.append((f"random: {label}", *_summary(timings)))
    return rows


def _summary(timings: list[int]) -> tuple[int, float, float]:
    us = [t / 1000 for t in timings]
    return len(us), percentile(us, 50), percentile(us, 99)


def plan_batch(config: Config, stats: DurationStats, shapes: list[sr.Shape]) -> tuple[float, float]:
    """Seconds to plan :attr:`Config.planned` pending handles' next polls after their first
    snapshot, and (those still running) after their second: one loop each, the snapshots
    read before it; this thread's CPU time."""
    longer = [s for s in shapes if s.family != "short"]
    pending = []
    for i in range(config.planned):
        shape = longer[i % len(longer)]
        schedule = PollSchedule(
            PollPolicy(), random.Random(i), started=shape.first_seen, stats=stats
        )
        hint = None if shape.family == "unseen" else shape.type
        pending.append((schedule, shape, shape.first_seen + schedule.first_delay(hint)))
    totals = []
    for _ in range(2):
        calls = []
        for schedule, shape, t in pending:
            status, progress = shape.state(t + zoo.LATENCY / 2)
            if status == "DONE":
                continue
            running = status == "IN_PROGRESS"
            calls.append(
                (
                    schedule,
                    shape,
                    t + zoo.LATENCY,
                    running,
                    progress if running else None,
                    status == "ENQUEUED",
                )
            )
        began = time.thread_time()
        delays = [
            schedule.next_delay(
                now,
                running,
                progress,
                created=zoo.CREATED_SLACK,
                action_type=shape.type,
                enqueued=enqueued,
            )[0]
            for schedule, shape, now, running, progress, enqueued in calls
        ]
        totals.append(time.thread_time() - began)
        pending = [
            (schedule, shape, now + delay)
            for (schedule, shape, now, *_), delay in zip(calls, delays, strict=True)
        ]
    return totals[0], totals[1]


async def _pending(kind: Kind, n: int) -> tuple[float, int]:
    """Traced bytes per pending item, and the requests the emulator saw."""
    loop = asyncio.get_running_loop()
    async with VoucherifyEmulator() as emu:
        policy = PollPolicy(first_poll_after=FIRST_POLL_AFTER)
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emu.base_url, poll_policy=policy)
        ids = [f"aa_{i:018x}" for i in range(n)]
        kept: list[object] = []
        try:
            client.async_actions.handle("aa_warmup").cancel()  # the first one's lazy setup
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            if kind == "handle":
                kept = [client.async_actions.handle(action_id) for action_id in ids]
            else:
                kept = [loop.create_task(asyncio.sleep(FIRST_POLL_AFTER)) for _ in ids]
            for _ in range(3):  # let every task start and park
                await asyncio.sleep(0)
            gc.collect()
            per_item = (tracemalloc.get_traced_memory()[0] - before) / n
            tracemalloc.stop()
        finally:
            for item in kept:
                if isinstance(item, asyncio.Task):
                    item.cancel()
            await asyncio.gather(
                *(t for t in kept if isinstance(t, asyncio.Task)), return_exceptions=True
            )
            await client.close()
        return per_item, emu.count()


def pending_bytes(kind: Kind, n: int) -> tuple[float, int]:
    return asyncio.run(_pending(kind, n))


def run(config: Config) -> list[Table]:
    stats, shapes = learned_client(config)
    rows = next_delay_rows(config, stats)
    first, second = plan_batch(config, stats, shapes)
    task_bytes, _ = isolated(config.child, pending_bytes, "task", config.handles)
    handle_bytes, sent = isolated(config.child, pending_bytes, "handle", config.handles)
    cpu, _, _ = client_cpu.measure(config.cpu)
    get_us = cpu[client_cpu.VARIANTS[3]]
    shape_table = Table(
        "Planning: next_delay per shape",
        ("shape", "calls", "median us", "p99 us"),
        tuple((name, f"{calls:,}", num(med, 1), num(p99, 1)) for name, calls, med, p99 in rows),
        (
            f"A client that learned 64 types ({config.warm_jobs} earlier jobs each) polls "
            f"{config.jobs} jobs per zoo shape and range (15-45 s and 2-30 min pooled) and "
            f"{max(config.jobs, sr.BLOCK)} per random cell, on a simulated clock; every "
            "next_delay call's CPU time (thread_time_ns: a shared machine's preemptions "
            "left out).",
        ),
    )
    worst_median = max(r[2] for r in rows)
    worst_p99 = max(r[3] for r in rows)
    worst_median_at = max(rows, key=lambda r: r[2])[0]
    worst_p99_at = max(rows, key=lambda r: r[3])[0]
    n = config.planned
    targets = (
        (
            f"next_delay: <= {MEDIAN_US:g} us median on every shape",
            f"worst {num(worst_median, 1)} us ({worst_median_at})",
            verdict(worst_median <= MEDIAN_US),
        ),
        (
            f"next_delay: <= {P99_US:g} us p99 on every shape",
            f"worst {num(worst_p99, 1)} us ({worst_p99_at})",
            verdict(worst_p99 <= P99_US),
        ),
        (
            f"a pending handle: <= {HANDLE_BYTES:g} bytes until its first reading",
            f"{num(handle_bytes, 0)} bytes (a bare sleeping task: {num(task_bytes, 0)}); "
            f"{sent} request(s) sent",
            verdict(handle_bytes <= HANDLE_BYTES and sent == 0),
        ),
        (
            f"plan {n:,} pending handles' next polls",
            f"{num(first * 1e3, 1)} ms after their first snapshot, "
            f"{num(second * 1e3, 1)} ms after their second",
            "-",
        ),
        (
            "beside it: a get()'s client CPU (client_cpu.py)",
            f"{num(get_us, 1)} us per request; planning one poll = "
            f"{num(worst_median / get_us * 100, 0)} % of it (worst shape's median)",
            "-",
        ),
    )
    notes = (
        f"Bytes per item: tracemalloc's traced memory over {config.handles:,} items created "
        "(handles on a real emulator, first poll after 3600 s), each kind in a fresh process.",
        f"get(): {config.cpu.requests:,} GETs at concurrency {config.cpu.concurrency}, median "
        f"of {config.cpu.rounds} rounds, process time per request.",
    )
    return [
        shape_table,
        Table("Issue #29 targets: planning cost", ("target", "figure", "status"), targets, notes),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="planning cost and pending-handle memory")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for table in run(QUICK if args.quick else FULL):
        print(table.text(), end="\n\n")


if __name__ == "__main__":
    main()
