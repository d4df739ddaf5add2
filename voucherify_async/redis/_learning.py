"""RedisLearning: what every process learned of how long actions take, kept in Redis.

A client learns per action type how long actions ran and how long they ran on after each
progress reading (``client.async_actions.durations`` and its ``time_left``); its schedule plans
the polls of the next actions of that type from them. Per process, every worker (and every
worker after a deploy) starts knowing nothing. With ``VoucherifyClient(learning=
RedisLearning(r))`` a client loads the fleet's figures when it starts and merges its own as it
learns, so a fleet learns once.

How it works: two hashes per account (``type -> JSON list``), bounded (*max_samples* newest
per type, *max_types* types; the oldest go first). A client reads both at start (one round
trip) and adds them with the statistics' public ``update()`` methods. As it learns (a handle
ended, a terminal snapshot was read) it waits *flush_every* seconds to gather more, then sends
what is new since its last merge (a diff of ``to_dict()``) in one script call, which appends
atomically: every process's samples end up in the store, none overwrites another's. Closing the
client merges what is left. Redis unreachable: the client starts cold or keeps its figures to
itself, with one WARNING; nothing raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from typing import Any, Final

import redis.asyncio

from voucherify_async._durations import DurationStats

from ._budget import UNREACHABLE
from ._scripts import Scripts, as_text, key_base

__all__ = ["RedisLearning", "RedisLearningSession"]

logger: Final = logging.getLogger("voucherify_async")

_Dict = dict[str, list[Any]]


class RedisLearning:
    """Learned durations and time left shared by every process using the same Redis.

    Pass it as ``VoucherifyClient(learning=RedisLearning(r))``.

    :param r: A ``redis.asyncio.Redis`` (or ``RedisCluster``) client, Redis or Valkey 5 or later.
    :param key: Names the account in Redis keys. Default: the client's ``host:app_id``
        (never a token); with an OAuth token, pass one.
    :param prefix: The start of every Redis key (default ``"voucherify-async"``).
    :param max_samples: Samples kept per action type in Redis, newest (default 256; the
        in-process statistics keep up to 512, so a loaded client still learns).
    :param max_types: Action types kept (default 64; 22 exist today).
    :param ttl: Seconds the figures live after the last merge (default 30 days).
    :param flush_every: Seconds a client gathers what it learned before merging it (default
        5): fewer round trips, against figures that reach the fleet that much later.
    :param operation_timeout: Seconds one Redis call may take (default 5).
    """

    def __init__(
        self,
        r: redis.asyncio.Redis | Any,
        *,
        key: str | None = None,
        prefix: str = "voucherify-async",
        max_samples: int = 256,
        max_types: int = 64,
        ttl: float = 30 * 86400.0,
        flush_every: float = 5.0,
        operation_timeout: float = 5.0,
    ) -> None:
        for name, count in (("max_samples", max_samples), ("max_types", max_types)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
        for name, value in (
            ("ttl", ttl), ("flush_every", flush_every), ("operation_timeout", operation_timeout),
        ):  # fmt: skip
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not value > 0
            ):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("key must be a non-empty str")
        self.redis = r
        self.key = key
        self.prefix = prefix
        self.max_samples = max_samples
        self.max_types = max_types
        self.ttl = float(ttl)
        self.flush_every = float(flush_every)
        self.operation_timeout = float(operation_timeout)
        #: Redis round trips made by all sessions (loads and merges): for benchmarks.
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"<RedisLearning key={self.key!r} max_samples={self.max_samples}>"

    def session(self, stats: DurationStats, *, account: str | None) -> RedisLearningSession:
        """The session of one client (called by :class:`~voucherify_async.VoucherifyClient`)."""
        name = self.key if self.key is not None else account
        if name is None:
            raise ValueError(
                "RedisLearning needs key= with an OAuth token: there is no app id to name the "
                "account by (and a token is never used as a name)"
            )
        return RedisLearningSession(self, name, stats)


class RedisLearningSession:
    """One client's link to the fleet's figures (built by :meth:`RedisLearning.session`)."""

    def __init__(self, learning: RedisLearning, name: str, stats: DurationStats) -> None:
        self._learning = learning
        self._redis = learning.redis
        self._stats = stats
        base = key_base(learning.prefix, "learn", name)  # one hash tag: one slot on a Cluster
        self._keys = [f"{base}:durations", f"{base}:time-left"]
        self._scripts = Scripts(self._redis, "learn_merge")
        # What the store already has of these statistics: a merge sends only what is newer.
        self._sent: tuple[_Dict, _Dict] = ({}, {})
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Learned before the load (kept apart, as loading added the store's figures after it).
        self._before: tuple[_Dict, _Dict] = ({}, {})
        self._warned = False
        self._closed = False

    # -- LearningSession ---------------------------------------------------------------

    async def load(self) -> None:
        stats = self._stats
        before = self._figures()  # learned before the load: still to be merged
        try:
            async with asyncio.timeout(self._learning.operation_timeout):
                self._learning.round_trips += 1
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in self._keys:
                        pipe.hgetall(key)
                    durations, time_left = await pipe.execute()
        except UNREACHABLE as exc:
            self._warn(exc)
            return
        stats.update(_decode(durations, _is_seconds))
        stats.time_left.update(_decode(time_left, _is_pair))
        # Everything now in the statistics counts as sent, but what this process had learned
        # before: that goes with the next merge.
        self._sent = self._figures()
        self._before = before
        if any(before):
            self.learned()

    def learned(self) -> None:
        if self._closed or self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a close from elsewhere): aclose merges it
        self._flush = loop.call_later(self._learning.flush_every, self._spawn_merge)

    async def aclose(self) -> None:
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self.merge()

    # -- merging ----------------------------------------------------------------------

    def _spawn_merge(self) -> None:
        self._flush = None
        task = asyncio.get_running_loop().create_task(self.merge())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def merge(self) -> int:
        """Send what was learned since the last merge; returns how many samples were sent."""
        now = self._figures()
        new = (
            _joined(self._before[0], _new_since(self._sent[0], now[0])),
            _joined(self._before[1], _new_since(self._sent[1], now[1])),
        )
        count = sum(len(v) for part in new for v in part.values())
        if not count:
            return 0
        learning = self._learning
        try:
            async with asyncio.timeout(learning.operation_timeout):
                learning.round_trips += 1
                await self._scripts["learn_merge"](
                    keys=self._keys,
                    args=[
                        json.dumps(new[0]),
                        json.dumps(new[1]),
                        learning.max_samples,
                        learning.max_types,
                        round(learning.ttl * 1000),
                    ],
                )
        except UNREACHABLE as exc:
            self._warn(exc)
            return 0  # kept: the next merge sends it
        self._sent, self._before = now, ({}, {})
        return count

    def _figures(self) -> tuple[_Dict, _Dict]:
        return self._stats.to_dict(), self._stats.time_left.to_dict()

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "learned durations: Redis is unreachable (%s); this process keeps what it "
                "learns to itself until it is back",
                type(exc).__name__,
            )


def _new_since(sent: _Dict, now: _Dict) -> _Dict:
    """Per type, the samples of *now* that came after those of *sent*: each list only grows at
    its end and loses its oldest when full, so *now* is a tail of *sent* plus new ones."""
    new: _Dict = {}
    for kind, values in now.items():
        old = sent.get(kind, [])
        for drop in range(len(old) + 1):
            overlap = len(old) - drop
            if overlap <= len(values) and old[drop:] == values[:overlap]:
                break
        if values[overlap:]:
            new[kind] = values[overlap:]
    return new


def _joined(first: _Dict, then: _Dict) -> _Dict:
    return {kind: first.get(kind, []) + then.get(kind, []) for kind in {*first, *then}}


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_seconds(x) for x in value)
        and 0 < value[0] < 100
        and value[1] > 0
    )


def _decode(raw: dict[Any, Any], valid: Any) -> _Dict:
    """A hash read from Redis as ``type -> samples``; damaged fields and values are skipped."""
    out: _Dict = {}
    for kind, payload in (raw or {}).items():
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            values = json.loads(as_text(payload))
            if isinstance(values, list):
                kept = [v for v in values if valid(v)]
                if kept:
                    out[as_text(kind)] = kept
    return out
