"""Many processes, one account: the request budget (and the polls) shared through Redis.

Install with ``pip install "voucherify-async[redis]"``; it uses the official ``redis``
package's asyncio client, with Redis or Valkey 5 or later::

    import redis.asyncio as redis
    from voucherify_async.redis import RedisBudget, RedisLearning, RedisPolling

    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    client = VoucherifyClient(
        budget=RedisBudget(r, limit=100, window=60.0),  # one budget for every process
        shared_polling=RedisPolling(r),                  # one poll per action id (opt-in)
        learning=RedisLearning(r),                       # learned durations, fleet-wide
    )

Nothing in the rest of the library imports this package.
"""

from __future__ import annotations

from ._budget import BudgetUnavailableError, RedisBudget
from ._learning import RedisLearning
from ._polling import RedisPolling

__all__ = ["BudgetUnavailableError", "RedisBudget", "RedisLearning", "RedisPolling"]
