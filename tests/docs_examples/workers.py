"""Recipe: several worker processes on one account, sharing the budget and the polls in Redis.

Voucherify's limit is per account, so every process that talks to it must count against one
budget. Each process builds its own client (clients and Redis connections never cross a
process boundary) on the same Redis: the budget and the polls are shared there.

Two shapes:

- :func:`lifespan`: a web app served by several uvicorn or gunicorn workers;
- :func:`main`: a pipeline that splits its ids over a pool of processes.

Run the pipeline with ``REDIS_URL=redis://127.0.0.1:6379/0 python workers.py ids.txt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from voucherify_async import AsyncActionFailed, VoucherifyClient, VoucherifyError
from voucherify_async.redis import RedisBudget, RedisPolling

#: The account's budget, for all the processes together (a Business plan: 100 a minute).
REQUESTS_PER_MINUTE = 100

#: Every process of the account points at the same Redis (or Valkey).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

#: A Redis up for less than a lease may have restarted empty, forgetting requests that still
#: count: the budget then waits them out (True, the default). Tests that start a fresh
#: redis-server pass False.
HOLD_AFTER_RESTART = True


def make_client(
    r: redis.Redis, *, window: float = 60.0, hold_after_restart: bool = HOLD_AFTER_RESTART
) -> VoucherifyClient:
    """The client of one process: credentials from the environment, budget and polls shared."""
    budget = RedisBudget(
        r, limit=REQUESTS_PER_MINUTE, window=window, hold_after_restart=hold_after_restart
    )
    return VoucherifyClient(
        budget=budget,
        shared_polling=RedisPolling(r),
    )


# -- a web app with several workers (uvicorn app:app --workers 4) -----------------------


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """One client per worker process, built when the worker starts and closed when it stops.

    With FastAPI: ``app = FastAPI(lifespan=lifespan)``; handlers use
    ``request.app.state.voucherify``.
    """
    r = redis.Redis.from_url(REDIS_URL)
    try:
        async with make_client(r, hold_after_restart=HOLD_AFTER_RESTART) as client:
            app.state.voucherify = client
            yield
    finally:
        await r.aclose()


# -- a pipeline over a pool of processes ------------------------------------------------


async def wait_for(
    ids: list[str], redis_url: str, window: float = 60.0, hold: bool = HOLD_AFTER_RESTART
) -> dict[str, str]:
    """Wait for *ids* in this process; each id's outcome as text (a status or an error)."""
    r = redis.Redis.from_url(redis_url)
    try:
        async with make_client(r, window=window, hold_after_restart=hold) as client:
            outcomes = await client.async_actions.wait_all(ids, return_exceptions=True)
    finally:
        await r.aclose()
    report: dict[str, str] = {}
    for action_id, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, AsyncActionFailed):
            report[action_id] = "FAILED"
        elif isinstance(outcome, VoucherifyError):
            report[action_id] = type(outcome).__name__
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            report[action_id] = str(outcome.status)
    return report


def run_worker(ids: list[str], redis_url: str, window: float, hold: bool) -> dict[str, str]:
    """The body of one worker process: its own event loop, client and Redis connection."""
    return asyncio.run(wait_for(ids, redis_url, window, hold))


def main(
    ids: list[str],
    *,
    workers: int = 4,
    redis_url: str = REDIS_URL,
    window: float = 60.0,
    hold_after_restart: bool = HOLD_AFTER_RESTART,
) -> dict[str, str]:
    """Split *ids* over *workers* processes and merge their reports."""
    chunks = [ids[k::workers] for k in range(workers)]
    # "spawn": a fresh interpreter per worker, as with uvicorn or gunicorn workers.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        work = [(chunk, redis_url, window, hold_after_restart) for chunk in chunks]
        reports = pool.starmap(run_worker, work)
    merged: dict[str, str] = {}
    for report in reports:
        merged.update(report)
    return merged


if __name__ == "__main__":
    ids = Path(sys.argv[1]).read_text(encoding="utf-8").split()
    for action_id, outcome in main(ids).items():
        print(action_id, outcome)
