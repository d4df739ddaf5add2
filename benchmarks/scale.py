"""Scale: the cost of many pending handles, against bare sleeping tasks.

For each size *n*, in a fresh process each:

* the baseline: *n* ``asyncio.sleep(3600)`` tasks, the least any background poll can cost;
* ours: *n* handles, ``client.async_actions.handle(id)``, on never-ending emulator jobs
  (``duration=None``) under ``PollPolicy(first_poll_after=3600)``, so no request is sent.

Reported: RSS growth per item (``/proc/self/statm``, after ``gc.collect()``), the time to
create them, the process's CPU per wall second while the loop idles, the time
``client.close()`` (or cancelling the tasks) takes, the tasks left behind after it, and the
requests the emulator saw.

Usage: ``python benchmarks/scale.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import sys
import time
from pathlib import Path
from typing import Final, Literal

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import APP_ID, APP_TOKEN, Table, in_parallel, num, ratio, rss_bytes, verdict
from voucherify_async import AsyncActionHandle, PollPolicy, VoucherifyClient
from voucherify_async.testing import VoucherifyEmulator

Kind = Literal["task", "handle"]
LABELS: Final[dict[Kind, str]] = {
    "task": "bare sleeping task (baseline)",
    "handle": "pending AsyncActionHandle (ours)",
}
#: The first poll waits this long (seconds): no handle sends a request during the run.
FIRST_POLL_AFTER: Final = 3600.0


@attrs.frozen
class Config:
    """How many handles, and how long (wall seconds) to watch the idle loop."""

    sizes: tuple[int, ...]
    idle: float = 2.0
    child: bool = True


FULL: Final = Config((10_000, 100_000))
QUICK: Final = Config((10_000,), idle=1.0)
SMOKE: Final = Config((500,), idle=0.05, child=False)


@attrs.frozen
class Result:
    """One kind at one size."""

    rss_per_item: float
    create_s: float
    idle_cpu_us_per_s: float
    close_s: float
    tasks_left: int
    requests: int


async def _measure(kind: Kind, n: int, idle: float) -> Result:
    loop = asyncio.get_running_loop()
    emu: VoucherifyEmulator | None = None
    client: VoucherifyClient | None = None
    if kind == "handle":
        emu = VoucherifyEmulator()
        await emu.start()
        ids = [emu.add_action(duration=None) for _ in range(n)]
        policy = PollPolicy(first_poll_after=FIRST_POLL_AFTER)
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emu.base_url, poll_policy=policy)
    else:
        ids = [f"aa_{i:018x}" for i in range(n)]
    try:
        existing = asyncio.all_tasks()
        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        handles: list[AsyncActionHandle] = []
        tasks: list[asyncio.Task[None]] = []
        if client is not None:
            handles = [client.async_actions.handle(action_id) for action_id in ids]
        else:
            tasks = [loop.create_task(asyncio.sleep(FIRST_POLL_AFTER)) for _ in ids]
        for _ in range(3):  # let every task start and park in its sleep
            await asyncio.sleep(0)
        create_s = time.perf_counter() - started
        gc.collect()
        per_item = (rss_bytes() - before) / n
        cpu = time.process_time()
        await asyncio.sleep(idle)
        idle_cpu = (time.process_time() - cpu) / idle * 1e6
        started = time.perf_counter()
        if client is not None:
            await client.close()
        else:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        close_s = time.perf_counter() - started
        left = len(asyncio.all_tasks() - existing)
        requests = emu.count() if emu is not None else 0
        del handles
    finally:
        if client is not None:
            await client.close()
        if emu is not None:
            await emu.close()
    return Result(per_item, create_s, idle_cpu, close_s, left, requests)


def measure(kind: Kind, n: int, idle: float) -> Result:
    """One kind at one size, in a fresh event loop."""
    return asyncio.run(_measure(kind, n, idle))


def run(config: Config) -> list[Table]:
    """Both kinds at every size, each in its own process (so RSS starts clean)."""
    rows = []
    targets = []
    kinds: tuple[Kind, Kind] = ("task", "handle")
    for n in config.sizes:
        base, ours = (
            in_parallel(config.child, [functools.partial(measure, kind, n, config.idle)])[0]
            for kind in kinds
        )
        for kind, r in zip(kinds, (base, ours), strict=True):
            rows.append(
                (
                    f"{n:,} x {LABELS[kind]}",
                    num(r.rss_per_item, 0),
                    ratio(r.rss_per_item, base.rss_per_item),
                    num(r.create_s * 1e6 / n, 1),
                    num(r.idle_cpu_us_per_s, 0),
                    num(r.close_s * 1e3, 1),
                    ratio(r.close_s, base.close_s),
                    str(r.tasks_left),
                    str(r.requests),
                )
            )
        targets.append(
            f"{n:,}: close() leaves {ours.tasks_left} task(s) and sent {ours.requests} request(s) "
            f"({verdict(ours.tasks_left == 0 and ours.requests == 0)})."
        )
    notes = (
        f"RSS growth per item after gc.collect(); idle CPU is process time per wall second "
        f"over {config.idle:g} s with everything parked; each row in a fresh process.",
        *targets,
    )
    columns = (
        "what",
        "bytes/item",
        "x baseline",
        "create us/item",
        "idle CPU us/s",
        "close ms",
        "close x baseline",
        "tasks left",
        "GETs",
    )
    return [Table("Scale: pending handles", columns, tuple(rows), notes)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="memory and idle CPU of pending handles")
    parser.add_argument("--quick", action="store_true", help="10,000 handles only")
    args = parser.parse_args(argv)
    for table in run(QUICK if args.quick else FULL):
        print(table.text())


if __name__ == "__main__":
    main()
