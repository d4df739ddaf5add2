"""Many processes, one account: the budget and the polls shared through Redis, time-scaled.

*processes* worker processes each await the same *handles* jobs (4 web workers waiting on the
same imports) against an emulator that enforces the account's *rpm* requests per
``60 / scale`` real seconds. Variants, each in fresh processes, one after another:

* one process awaiting the jobs with the whole budget (``requests_per_minute=rpm``): the
  baseline for GETs and latency,
* *processes* processes with the budget split between them (``rpm / processes`` each), the
  only safe setup without shared state,
* *processes* processes on one ``RedisBudget(limit=rpm)``, each polling for itself,
* the same plus ``RedisPolling``: one poll per id across the processes.

Reported: 429s the server counted, the most requests any window held, GETs, handles resolved,
the mean and p95 detection latency (finish -> handle resolving, unscaled seconds, over every
process's handles), and Redis round trips per request sent (budget scripts; shared polls'
scripts and reads on top). Needs ``redis-server`` on the PATH (or ``REDIS_URL``).

Usage: ``python benchmarks/redis_budget.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import redis_shared
from benchmarks._common import (
    APP_ID,
    APP_TOKEN,
    Table,
    mean,
    num,
    percentile,
    quiet_library,
    ratio,
    scale_policy,
    verdict,
)
from voucherify_async import PollPolicy, VoucherifyClient
from voucherify_async.testing import ACTION_TYPES, VoucherifyEmulator

Variant = Literal["one", "split", "redis", "shared"]
VARIANTS: Final[tuple[Variant, ...]] = ("one", "split", "redis", "shared")


@attrs.frozen
class Config:
    """Processes, handles per process, the account's budget, the clock speed-up, the horizon."""

    processes: int = 4
    handles: int = 40
    rpm: int = 100
    scale: float = 10.0
    horizon: float = 900.0
    duration_range: tuple[float, float] = (5.0, 60.0)
    seed: int = 5


FULL: Final = Config()
QUICK: Final = Config(handles=20, scale=20.0, horizon=600.0)
SMOKE: Final = Config(processes=2, handles=3, scale=60.0, horizon=120.0, duration_range=(1, 5))


def labels(config: Config) -> dict[Variant, str]:
    n = config.processes
    return {
        "one": f"1 process, whole budget (baseline, {config.handles} handles)",
        "split": f"{n} processes, budget split {config.rpm // n}/min each",
        "redis": f"{n} processes, RedisBudget, own polls",
        "shared": f"{n} processes, RedisBudget + RedisPolling",
    }


@attrs.frozen
class Child:
    """What one worker process measured."""

    resolved: dict[str, float]
    budget_trips: int
    poll_trips: int
    led: int
    followed: int
    lags: tuple[float, ...] = ()  # shared polls: publication -> a follower's handle, seconds
    poll_kinds: tuple[tuple[str, int], ...] = ()  # shared polls' round trips by kind


@attrs.frozen
class Result:
    too_many: int
    worst_window: int
    gets: int
    latencies: tuple[float, ...]
    resolved: int
    expected: int
    budget_trips: int
    poll_trips: int
    led: int
    lags: tuple[float, ...] = ()
    poll_kinds: tuple[tuple[str, int], ...] = ()


# -- a redis-server of the benchmark's own ----------------------------------------------


@contextmanager
def redis_server() -> Iterator[str | None]:
    """``REDIS_URL``, or a redis-server started on a free port; None when there is none."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait()


# -- one worker process -----------------------------------------------------------------

#: Set in each worker by the pool's initializer: the start line shared with the parent.
_BARRIER: Any = None


def _init(barrier: Any) -> None:
    global _BARRIER
    _BARRIER = barrier


async def _child(
    variant: Variant, config: Config, base_url: str, ids: list[str], redis_url: str | None
) -> Child:
    from voucherify_async.redis import RedisBudget, RedisPolling

    speed = config.scale
    window = 60.0 / speed
    r: Any = None
    options: dict[str, Any] = {}
    polling = None
    if variant in ("redis", "shared"):
        import redis.asyncio as aioredis

        r = aioredis.Redis.from_url(redis_url)
        options["budget"] = RedisBudget(
            r, limit=config.rpm, window=window, key="bench", hold_after_restart=False
        )  # the benchmark's redis-server is new
        if variant == "shared":
            polling = RedisPolling(r, key="bench", lease=3.0)
            options["shared_polling"] = polling
    else:
        share = config.rpm if variant == "one" else config.rpm // config.processes
        options.update(requests_per_minute=share, budget_window=window)
    client = VoucherifyClient(
        APP_ID,
        APP_TOKEN,
        base_url=base_url,
        poll_policy=scale_policy(PollPolicy(), speed),
        **options,
    )
    resolved: dict[str, float] = {}
    try:
        handles = [client.async_actions.handle(action_id) for action_id in ids]

        def on_done(handle: Any) -> None:
            if handle.latest is not None and handle.latest.is_terminal:
                resolved.setdefault(handle.id, time.monotonic())

        for handle in handles:
            handle.add_done_callback(on_done)
        waits = [asyncio.ensure_future(handle.result()) for handle in handles]
        await asyncio.wait(waits, timeout=config.horizon / speed)
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        gate = client._gate
    finally:
        await client.close()
        if r is not None:
            await r.aclose()
    return Child(
        resolved,
        getattr(gate, "round_trips", 0),
        polling.round_trips if polling is not None else 0,
        polling.led if polling is not None else 0,
        polling.followed if polling is not None else 0,
        tuple(polling.lags) if polling is not None else (),
        tuple(polling.trips.items()) if polling is not None else (),
    )


def child(
    variant: Variant, config: Config, base_url: str, ids: list[str], redis_url: str | None
) -> Child:
    # Wait until every worker is up, then until the parent has created the jobs: starting a
    # process takes seconds of real time, minutes of the scaled job clock.
    _BARRIER.wait()
    _BARRIER.wait()
    with quiet_library():
        return asyncio.run(_child(variant, config, base_url, ids, redis_url))


# -- one variant ------------------------------------------------------------------------


def _worst_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _measure(variant: Variant, config: Config, redis_url: str | None) -> Result:
    speed = config.scale
    rng = random.Random(config.seed)
    durations = [rng.uniform(*config.duration_range) for _ in range(config.handles)]
    window = 60.0 / speed
    processes = 1 if variant == "one" else config.processes
    async with VoucherifyEmulator(
        speed=speed, requests_per_minute=config.rpm, rate_limit_window=window, seed=config.seed
    ) as emu:
        ids = [f"aa_bench_{i:04d}" for i in range(config.handles)]
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(processes + 1)
        with context.Pool(processes, initializer=_init, initargs=(barrier,)) as pool:
            work = asyncio.ensure_future(
                asyncio.to_thread(
                    pool.starmap,
                    child,
                    [(variant, config, emu.base_url, ids, redis_url)] * processes,
                )
            )
            await asyncio.to_thread(barrier.wait)  # every worker is up
            for i, (action_id, d) in enumerate(zip(ids, durations, strict=True)):
                emu.add_action(ACTION_TYPES[i % len(ACTION_TYPES)], duration=d, id=action_id)
            await asyncio.to_thread(barrier.wait)  # the jobs exist: go
            children: list[Child] = await work
        latencies = []
        for kid in children:
            for action_id, when in kid.resolved.items():
                finished = emu.finished_at(action_id)
                if finished is not None:
                    latencies.append(max(0.0, when - finished) * speed)
        requests = emu.requests
        return Result(
            too_many=sum(1 for req in requests if req.status == 429),
            worst_window=_worst_window([req.time for req in requests], window),
            gets=len(requests),
            latencies=tuple(latencies),
            resolved=sum(len(kid.resolved) for kid in children),
            expected=processes * config.handles,
            budget_trips=sum(kid.budget_trips for kid in children),
            poll_trips=sum(kid.poll_trips for kid in children),
            led=sum(kid.led for kid in children),
            lags=tuple(lag for kid in children for lag in kid.lags),
            poll_kinds=_sum_kinds(kid.poll_kinds for kid in children),
        )


def _sum_kinds(
    kinds: Iterable[tuple[tuple[str, int], ...]],
) -> tuple[tuple[str, int], ...]:
    total: collections.Counter[str] = collections.Counter()
    for pairs in kinds:
        total.update(dict(pairs))
    return tuple(sorted(total.items()))


def measure(variant: Variant, config: Config, redis_url: str | None) -> Result:
    return asyncio.run(_measure(variant, config, redis_url))


def run(config: Config) -> list[Table]:
    """Every variant in turn; one table."""
    title = (
        f"Redis: {config.processes} processes x {config.handles} handles under "
        f"{config.rpm} requests/minute"
    )
    columns = (
        "setup", "429s", "max/window", "GETs", "resolved", "mean latency s", "p95 latency s",
        "GETs x one", "mean latency x one", "Redis trips/request",
    )  # fmt: skip
    with redis_server() as redis_url:
        if redis_url is None:
            note = "redis-server is not installed (apt-get install redis-server): not measured."
            return [Table(title, columns, (), (note,))]
        results = {variant: measure(variant, config, redis_url) for variant in VARIANTS}
        # The shared polls' own tables (benchmarks/redis_shared.py): cost, followers' lag,
        # and what a new worker gains from a warm fleet's learning.
        shared_tables = redis_shared.tables(
            redis_shared.Inputs(
                one_latencies=results["one"].latencies,
                shared_latencies=results["shared"].latencies,
                lags=results["shared"].lags,
                led=results["shared"].led,
                poll_trips=results["shared"].poll_trips,
                gets=results["shared"].gets,
                kinds=dict(results["shared"].poll_kinds),
            ),
            config.scale,
            redis_url,
        )
    base = results["one"]
    names = labels(config)
    rows = []
    for variant, res in results.items():
        trips = "-"
        if variant in ("redis", "shared") and res.gets:
            trips = num(res.budget_trips / res.gets, 2)
            if res.poll_trips:
                trips += f" + {num(res.poll_trips / res.gets, 2)} polls"
        rows.append(
            (
                names[variant],
                f"{res.too_many:,}",
                f"{res.worst_window}",
                f"{res.gets:,}",
                f"{res.resolved}/{res.expected}",
                num(mean(res.latencies), 1),
                num(percentile(res.latencies, 95), 1) if res.latencies else "-",
                ratio(res.gets, base.gets),
                ratio(mean(res.latencies), mean(base.latencies)),
                trips,
            )
        )
    shared, redis_only = results["shared"], results["redis"]
    kept = all(r.too_many == 0 and r.worst_window <= config.rpm for r in results.values())
    notes = (
        f"Each process awaits the same {config.handles} jobs of {config.duration_range[0]:g}-"
        f"{config.duration_range[1]:g} s; the emulator admits {config.rpm} requests per sliding "
        f"window of {60 / config.scale:g} s real (a minute at x{config.scale:g}); latencies in "
        "unscaled seconds; default PollPolicy() scaled; processes are spawned fresh per variant.",
        f"Budget kept in every setup (0 x 429, no window over {config.rpm}): {verdict(kept)}.",
        f"Shared polls: {shared.gets:,} GETs = {ratio(shared.gets, base.gets)} one process's "
        f"({ratio(shared.gets, redis_only.gets)} of the unshared Redis setup); "
        f"{shared.led:,} of them by a leader (any other: a process polling for itself while "
        "Redis did not answer in time).",
        "Redis trips/request: budget scripts (acquire, release, waits, subscriptions) per "
        "request the server saw; '+ polls' adds the shared polls' (benchmarks/redis_shared.py): "
        "one publish per GET (which also extends the lease and pushes the snapshot), one first "
        "look per id per process, lease renewals batched per process; followers receive the "
        "pushes without asking (the lease is 3 s here, 10 s by default).",
    )
    return [Table(title, columns, tuple(rows), notes), *shared_tables]


# -- the budget's own cost: Redis round trips per request under a saturated budget ------
#
# Separate from the polling table above: worker processes send GETs as fast as the shared
# budget admits them (every request goes through RedisBudget; no polling), and each variant
# counts the budget's Redis round trips (script calls and pub/sub subscriptions) per request
# the server saw. The baseline, in the same run, sends every release alone at once (one call
# to acquire, one to release, as before #25; the rest of the design as now). The budget as it
# was before #25 (da98f0a) measured 3.02 trips per request on this table's full setup,
# in a separate run of the same code with that commit's package on the path.

BudgetVariant = Literal["alone", "folded"]


@attrs.frozen
class TripsConfig:
    """Processes, GETs per process, the limit per window, the window (real seconds), and
    requests in flight per process."""

    processes: int = 4
    requests: int = 60
    limit: int = 20
    window: float = 2.0
    concurrency: int = 4


TRIPS_FULL: Final = TripsConfig()
TRIPS_QUICK: Final = TripsConfig(requests=30)


@attrs.frozen
class TripsChild:
    sent: int
    trips: int
    errors: int


async def _trips_child(
    variant: BudgetVariant, config: TripsConfig, base_url: str, action_id: str, redis_url: str
) -> TripsChild:
    import redis.asyncio as aioredis

    from voucherify_async.redis import RedisBudget

    r: Any = aioredis.Redis.from_url(redis_url)
    budget = RedisBudget(  # the benchmark's redis-server is new, not restarted
        r, limit=config.limit, window=config.window, key="trips", hold_after_restart=False
    )
    client = VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=base_url, budget=budget, max_concurrency=config.concurrency
    )
    gate: Any = client._gate
    if variant == "alone":
        gate._fold_delay = 0.0  # every release in a call of its own, at once
    errors = 0

    async def one() -> None:
        nonlocal errors
        try:
            await client.async_actions.get(action_id)
        except Exception:
            errors += 1

    try:
        await asyncio.gather(*(one() for _ in range(config.requests)))
    finally:
        await client.close()
        await r.aclose()
    return TripsChild(config.requests - errors, gate.round_trips, errors)


def trips_child(
    variant: BudgetVariant, config: TripsConfig, base_url: str, action_id: str, redis_url: str
) -> TripsChild:
    _BARRIER.wait()
    with quiet_library():
        return asyncio.run(_trips_child(variant, config, base_url, action_id, redis_url))


async def _measure_trips(
    variant: BudgetVariant, config: TripsConfig, redis_url: str
) -> tuple[float, int, int, float, int]:
    """(trips per request, 429s, most requests in a window, utilisation, errors)."""
    async with VoucherifyEmulator(
        requests_per_minute=config.limit, rate_limit_window=config.window
    ) as emu:
        action_id = emu.add_action(duration=0.0)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(config.processes + 1)
        with context.Pool(config.processes, initializer=_init, initargs=(barrier,)) as pool:
            work = asyncio.ensure_future(
                asyncio.to_thread(
                    pool.starmap,
                    trips_child,
                    [(variant, config, emu.base_url, action_id, redis_url)] * config.processes,
                )
            )
            await asyncio.to_thread(barrier.wait)
            children: list[TripsChild] = await work
        times = sorted(req.time for req in emu.requests)
        sent = len(times)
        span = times[-1] - times[0] if sent > 1 else 0.0
        # Requests per full window the run lasted, as a share of the limit.
        windows = max(1.0, span / config.window + 1)
        return (
            sum(kid.trips for kid in children) / max(1, sent),
            sum(1 for req in emu.requests if req.status == 429),
            _worst_window(times, config.window),
            sent / (windows * config.limit),
            sum(kid.errors for kid in children),
        )


def run_trips(config: TripsConfig) -> list[Table]:
    """The budget's Redis round trips per request: releases alone vs riding on the next call."""
    title = (
        f"RedisBudget round trips: {config.processes} processes x {config.requests} GETs, "
        f"{config.limit} per {config.window:g} s"
    )
    columns = (
        "releases", "Redis trips/request", "x alone", "429s", "max/window", "utilisation",
        "errors",
    )  # fmt: skip
    with redis_server() as redis_url:
        if redis_url is None:
            note = "redis-server is not installed (apt-get install redis-server): not measured."
            return [Table(title, columns, (), (note,))]
        results = {
            variant: asyncio.run(_measure_trips(variant, config, redis_url))
            for variant in ("alone", "folded")
        }
    names = {
        "alone": "each sent alone at once (baseline)",
        "folded": "riding on the next call (at most 3/4 window late)",
    }
    base = results["alone"][0]
    rows = tuple(
        (
            names[variant],
            num(trips, 2),
            ratio(trips, base),
            f"{too_many}",
            f"{worst}",
            f"{util:.0%}",
            f"{errors}",
        )
        for variant, (trips, too_many, worst, util, errors) in results.items()
    )
    folded = results["folded"][0]
    notes = (
        f"Every process sends {config.requests} GETs, {config.concurrency} in flight, as fast "
        f"as the shared budget admits them; the emulator answers at once and enforces "
        f"{config.limit} per sliding {config.window:g} s.",
        "Trips: the budget's script calls and pub/sub subscriptions, per request the server "
        "saw (waiting contenders' calls included). Most of those above one are the emulator's "
        "X-Rate-Limit-Remaining: 0 at each full window, whose retry time (whole seconds) "
        "outlasts the window: each waiting process learns of that pause with one call.",
        f"Target <= 1.2 trips per request: {verdict(folded <= 1.2)} ({num(folded, 2)}). "
        "Before #25 (da98f0a), the budget took 3.02 on the full setup (a separate run).",
    )
    return [Table(title, columns, rows, notes)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the budget and the polls shared via Redis")
    parser.add_argument("--quick", action="store_true", help="fewer handles, a faster clock")
    args = parser.parse_args(argv)
    for table in run(QUICK if args.quick else FULL):
        print(table.text())
    for table in run_trips(TRIPS_QUICK if args.quick else TRIPS_FULL):
        print(table.text())


if __name__ == "__main__":
    main()
