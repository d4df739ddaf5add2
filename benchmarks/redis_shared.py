"""Shared polls through Redis: their cost, how late followers see snapshots, and a warm fleet.

Called by benchmarks/redis_budget.py (``python benchmarks/run.py --only redis_budget``), whose
multi-process run provides the inputs of the first table; the second is measured here.

* **Cost and lag** (from redis_budget's "RedisBudget + RedisPolling" variant, every process
  awaiting the same jobs): Redis round trips of the shared polls per GET a leader sent
  (publish scripts, lease scripts, stream reads and wakes, of every process); the lag from a
  snapshot's publication (its stream entry id, Redis's clock) to a following handle taking it;
  and the p95 detection latency (finish -> handle resolving, over every process's handles)
  against one process awaiting the same jobs alone.
* **A warm fleet** (in one process: a client is what a new worker starts with): a fleet of
  two clients awaits jobs of four types with ``RedisLearning`` and closes; then two fresh
  clients await the same number of new jobs of the same types and durations at once, one
  with the fleet's learning, one with an empty store. Reported: GETs per job and mean
  detection latency of each. Every job's duration is drawn per type (log-normal around the
  type's median), so a learned type foretells its next jobs; the figures are in-sample for
  this one seed.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any, Final

import attrs

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

__all__ = ["Inputs", "tables"]

#: The targets of issue 25.
MAX_TRIPS_PER_GET: Final = 3.0
MAX_LAG_P95: Final = 0.1  # seconds
MAX_P95_OVER_ONE: Final = 0.3  # seconds

#: The warm-fleet run: four types with medians of 8, 16, 32 and 64 s (unscaled), spread
#: log-normally (sigma 0.3); the fleet learns from 8 jobs per type, each new worker awaits 4.
TYPES: Final = 4
WARM_PER_TYPE: Final = 8
NEW_PER_TYPE: Final = 4
SIGMA: Final = 0.3


@attrs.frozen
class Inputs:
    """What redis_budget's shared and baseline variants measured."""

    one_latencies: tuple[float, ...]
    shared_latencies: tuple[float, ...]
    lags: tuple[float, ...]
    led: int
    poll_trips: int
    gets: int
    kinds: dict[str, int] = attrs.field(factory=dict)


def cost_table(data: Inputs) -> Table:
    trips = data.poll_trips / data.led if data.led else math.nan
    lag50 = percentile(data.lags, 50)
    lag95 = percentile(data.lags, 95)
    p95_one = percentile(data.one_latencies, 95)
    p95_shared = percentile(data.shared_latencies, 95)
    over = p95_shared - p95_one
    rows = (
        (
            "Redis round trips per shared GET",
            num(trips, 2),
            f"<= {MAX_TRIPS_PER_GET:g}",
            verdict(trips <= MAX_TRIPS_PER_GET),
        ),
        (
            "follower lag p50 / p95, ms",
            f"{num(lag50 * 1000, 1)} / {num(lag95 * 1000, 1)} ({len(data.lags):,} snapshots)",
            f"p95 <= {MAX_LAG_P95 * 1000:g}",
            verdict(lag95 <= MAX_LAG_P95),
        ),
        (
            "p95 detection: shared - one process alone, s",
            f"{num(p95_shared, 2)} - {num(p95_one, 2)} = {num(over, 2)}",
            f"<= {MAX_P95_OVER_ONE:g}",
            verdict(over <= MAX_P95_OVER_ONE),
        ),
    )
    notes = (
        f"{data.led:,} GETs by leaders of {data.gets:,} the server saw; round trips count "
        "every process's publish, lease and release scripts, stream reads and wakes ("
        + ", ".join(f"{kind} {count / data.led:.2f}" for kind, count in sorted(data.kinds.items()))
        + " per GET).",
        "Lag: a snapshot's stream entry id (Redis's clock, ms) to the follower's handle "
        "taking it (the process's clock; one machine), for snapshots that arrived while the "
        "handle followed the id. Detection latencies in unscaled seconds.",
    )
    return Table(
        "Shared polls: cost and followers' lag", ("measure", "value", "target", "verdict"),
        rows, notes,
    )  # fmt: skip


async def _await_all(client: VoucherifyClient, ids: list[str], horizon: float) -> dict[str, float]:
    """Await *ids* on *client*; when each resolved (loop time)."""
    loop = asyncio.get_running_loop()
    resolved: dict[str, float] = {}

    async def one(action_id: str) -> None:
        await client.async_actions.handle(action_id).result()
        resolved[action_id] = loop.time()

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in ids)), horizon)
    return resolved


async def _warm_fleet(scale: float, redis_url: str, seed: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from voucherify_async.redis import RedisLearning

    rng = random.Random(seed)
    types = ACTION_TYPES[:TYPES]
    medians = [8.0 * 2**k for k in range(TYPES)]

    def jobs(per_type: int) -> list[tuple[str, float]]:
        return [
            (types[k], rng.lognormvariate(math.log(medians[k]), SIGMA))
            for _ in range(per_type)
            for k in range(TYPES)
        ]

    policy = scale_policy(PollPolicy(), scale)
    horizon = 10 * max(medians) / scale
    r = aioredis.Redis.from_url(redis_url)
    try:
        for key in await r.keys("voucherify-async:learn:*bench-*"):
            await r.delete(key)
        async with VoucherifyEmulator(speed=scale, seed=seed) as emu:

            def client(key: str) -> VoucherifyClient:
                return VoucherifyClient(
                    APP_ID, APP_TOKEN, base_url=emu.base_url, poll_policy=policy,
                    learning=RedisLearning(r, key=key),
                )  # fmt: skip

            def add(batch: list[tuple[str, float]]) -> list[str]:
                return [emu.add_action(kind, duration=d) for kind, d in batch]

            warm = add(jobs(WARM_PER_TYPE))
            async with client("bench-warm") as a, client("bench-warm") as b:
                await asyncio.gather(
                    _await_all(a, warm[::2], horizon), _await_all(b, warm[1::2], horizon)
                )
            new = jobs(NEW_PER_TYPE)
            ids = {"warm": add(new), "fresh": add(new)}
            keys = {"warm": "bench-warm", "fresh": "bench-fresh"}
            async with client(keys["warm"]) as warm_client, client(keys["fresh"]) as fresh:
                loaded = len(warm_client.async_actions.durations)
                done = await asyncio.gather(
                    _await_all(warm_client, ids["warm"], horizon),
                    _await_all(fresh, ids["fresh"], horizon),
                )
            out: dict[str, Any] = {"loaded": loaded, "jobs": len(new)}
            for (name, batch), resolved in zip(ids.items(), done, strict=True):
                gets = sum(emu.count(i) for i in batch)
                latencies = [
                    max(0.0, resolved[i] - (emu.finished_at(i) or resolved[i])) * scale
                    for i in batch
                ]
                out[name] = (gets / len(batch), mean(latencies))
            return out
    finally:
        for key in await r.keys("voucherify-async:learn:*bench-*"):
            await r.delete(key)
        await r.aclose()


def warm_fleet_table(scale: float, redis_url: str, seed: int = 5) -> Table:
    with quiet_library():
        data = asyncio.run(_warm_fleet(scale, redis_url, seed))
    warm_gets, warm_latency = data["warm"]
    fresh_gets, fresh_latency = data["fresh"]
    rows = (
        ("new worker, fresh fleet (empty store)", num(fresh_gets, 2), num(fresh_latency, 2),
         "1.00x"),
        (f"new worker, warm fleet ({data['loaded']} durations loaded)", num(warm_gets, 2),
         num(warm_latency, 2), ratio(warm_gets, fresh_gets)),
    )  # fmt: skip
    notes = (
        f"Each new worker awaits {data['jobs']} jobs ({NEW_PER_TYPE} of each of {TYPES} types, "
        f"medians {', '.join(f'{8 * 2**k:g}' for k in range(TYPES))} s, log-normal sigma "
        f"{SIGMA:g}); the warm fleet learned from {WARM_PER_TYPE} per type. Default PollPolicy() "
        f"at x{scale:g}; in-sample, one seed.",
    )
    return Table(
        "RedisLearning: a new worker's GETs per job",
        ("worker", "GETs per job", "mean latency s", "GETs x fresh"), rows, notes,
    )  # fmt: skip


def tables(data: Inputs, scale: float, redis_url: str) -> list[Table]:
    """The shared polls' tables (redis_budget.run calls this with its Redis running)."""
    return [cost_table(data), warm_fleet_table(scale, redis_url)]
