"""A client process of the Redis tests: ``python _worker.py '<json>'``.

It prints one JSON object per line on stdout: events while it runs (``{"event": ...}``) and
its result last (``{"result": ...}``). Modes:

- ``budget``: *requests* GETs of *action_id* through a client on a shared RedisBudget.
- ``hold``: take *slots* slots of a RedisBudget's gate, say so, and wait to be killed.
- ``poll``: await handles of *ids* on a client with RedisPolling (and a shared budget). With
  *lead_first*, it first takes one snapshot of each of those ids alone, says ``leading``,
  and waits for a line on stdin before it asks for the others. With *learning*, the client
  has a RedisLearning too, and the result says how many durations it knew at start.

With *cluster*, ``redis_url`` names a node of a Redis Cluster (``RedisCluster``); with
``"budget": false`` the client has no shared budget (the server's headers still pace it).

With *cluster*, *redis_url* names a node of a Redis Cluster (``RedisCluster``).
*clock_offset* (seconds) shifts this process's monotonic clock, and *wall_offset* its wall
clock: the budget must not care, as it counts on Redis's clock alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

CONFIG: dict[str, Any] = json.loads(sys.argv[1])

if CONFIG.get("clock_offset"):
    _monotonic, _offset = time.monotonic, float(CONFIG["clock_offset"])
    time.monotonic = lambda: _monotonic() + _offset
if CONFIG.get("wall_offset"):
    _time, _wall = time.time, float(CONFIG["wall_offset"])
    time.time = lambda: _time() + _wall

import redis.asyncio as aioredis  # noqa: E402

from voucherify_async import PollPolicy, VoucherifyClient  # noqa: E402
from voucherify_async.redis import RedisBudget  # noqa: E402

if "abandoned_hold" in CONFIG:
    # The floor of an abandoned request's hold (30 s, for servers that read a request long
    # after the client gave up) is also the lease a lost budget is held for: a test whose
    # server never reads late may shorten it to its timeout, so a restart costs seconds.
    import voucherify_async._client

    voucherify_async._client.ABANDONED_HOLD = float(CONFIG["abandoned_hold"])


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class _Events(logging.Handler):
    """Report the library's warnings (an unreachable Redis...) as events."""

    def emit(self, record: logging.LogRecord) -> None:
        say(event="log", level=record.levelname, message=record.getMessage())


def budget(r: aioredis.Redis) -> RedisBudget:
    return RedisBudget(
        r,
        limit=CONFIG["limit"],
        window=CONFIG["window"],
        key=CONFIG.get("key"),
        heartbeat=CONFIG.get("heartbeat", 0.5),
        unavailable_timeout=CONFIG.get("unavailable_timeout", 60.0),
        operation_timeout=CONFIG.get("operation_timeout", 5.0),
        # The tests start their redis-servers fresh: new, not restarted, unless they say.
        hold_after_restart=CONFIG.get("hold_after_restart", False),
    )


def client(r: aioredis.Redis, **options: Any) -> VoucherifyClient:
    if CONFIG.get("budget", True):
        options["budget"] = budget(r)
    return VoucherifyClient(
        CONFIG["app_id"],
        CONFIG["app_token"],
        base_url=CONFIG["base_url"],
        timeout=CONFIG.get("timeout", 5.0),
        max_concurrency=CONFIG.get("concurrency", 4),
        **options,
    )


async def run_budget(r: aioredis.Redis) -> dict[str, Any]:
    errors: list[str] = []
    done = 0
    async with client(r) as c:

        async def one() -> None:
            nonlocal done
            try:
                await c.async_actions.get(CONFIG["action_id"])
                done += 1
                if done == 1:
                    say(event="first")  # this process has used the budget
                say(event="done", n=done)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one() for _ in range(CONFIG["requests"])))
        trips = c._gate.round_trips  # type: ignore[attr-defined]
    return {"done": done, "errors": errors, "round_trips": trips}


async def run_hold(r: aioredis.Redis) -> dict[str, Any]:
    gate = budget(r).make_gate(
        concurrency=CONFIG["slots"], unanswered_hold=CONFIG["hold"], account=None
    )
    admissions = [await gate.acquire() for _ in range(CONFIG["slots"])]
    say(event="held", slots=[a.token.member for a in admissions])  # type: ignore[union-attr]
    await asyncio.Event().wait()  # until killed
    return {}


async def run_poll(r: aioredis.Redis) -> dict[str, Any]:
    from voucherify_async.redis import RedisPolling

    polling = RedisPolling(r, lease=CONFIG.get("lease", 1.0))
    extra: dict[str, Any] = {}
    if CONFIG.get("learning"):
        from voucherify_async.redis import RedisLearning

        extra["learning"] = RedisLearning(r)
    policy = PollPolicy(
        first_poll_after=0.0, initial_delay=CONFIG.get("delay", 0.2),
        max_delay=CONFIG.get("delay", 0.2), min_delay=0.05, jitter=0.0, adaptive=False,
        timeout=60.0,
    )  # fmt: skip
    async with client(r, shared_polling=polling, poll_policy=policy, **extra) as c:
        known_at_start = len(c.async_actions.durations)
        first = CONFIG.get("lead_first", [])
        handles = {i: c.async_actions.handle(i) for i in first}
        for handle in handles.values():
            snapshots = handle.updates()
            await anext(snapshots)
            await snapshots.aclose()
        if first:
            say(event="leading", led=polling.led, followed=polling.followed)
            await asyncio.to_thread(sys.stdin.readline)  # the test's go
        for i in CONFIG["ids"]:
            if i not in handles:
                handles[i] = c.async_actions.handle(i)
        say(event="polling", ids=CONFIG["ids"])
        results = await asyncio.gather(*(handles[i] for i in CONFIG["ids"]), return_exceptions=True)
    return {
        "statuses": [
            str(x.status) if not isinstance(x, BaseException) else f"{type(x).__name__}: {x}"
            for x in results
        ],
        "led": polling.led,
        "followed": polling.followed,
        "known_at_start": known_at_start,
    }


async def main() -> None:
    logging.getLogger("voucherify_async").addHandler(_Events())
    logging.getLogger("voucherify_async").setLevel(logging.INFO)
    if CONFIG.get("cluster"):
        r: Any = aioredis.RedisCluster.from_url(CONFIG["redis_url"])
    else:
        r = aioredis.Redis.from_url(CONFIG["redis_url"])
    try:
        mode = CONFIG["mode"]
        work = {"budget": run_budget, "hold": run_hold, "poll": run_poll}[mode]
        say(result=await work(r))
    finally:
        await r.aclose()


if __name__ == "__main__":
    asyncio.run(main())
