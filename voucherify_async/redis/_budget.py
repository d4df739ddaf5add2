"""RedisBudget: one request budget for every process of an account, kept in Redis.

How it keeps the budget exact
-----------------------------
Redis holds a sorted set of slots, each scored with the instant (Redis's clock, ``TIME``
inside the scripts; the hosts' clocks never enter the count) at which it frees. A request
takes a slot before it is sent, scored ``admitted + lease`` (``lease = unanswered_hold +
window``). When its response arrives the slot is re-scored to free ``window`` seconds later;
a request that ended without a response frees ``window`` after ``max(now, admitted +
unanswered_hold)``, the rule of :class:`~voucherify_async._pacing.LocalGate`. A process that
dies mid-request never re-scores its slot, and the lease frees it exactly when the unanswered
rule would have: the server cannot see that request after ``admitted + unanswered_hold``.

Waiting
-------
Inside a process, callers queue first come, first served for the local concurrency cap and
then for the right to contend in Redis; one caller per process contends at a time. When no
slot is free the script answers how long until the earliest one frees; the contender sleeps
that long (at most a heartbeat, default 2 s), or until a notification on the budget's pub/sub
channel (a release or an admission while someone waits) wakes it. No busy polling: a waiting
process asks Redis once per heartbeat at most, plus once per notification.

Fairness across processes
-------------------------
Contenders queue in Redis by the instant they first asked (a sorted set), and a free slot goes
to the first in that queue: a contender is admitted only when fewer contenders are ahead of it
than slots are free. A process's next contender joins at the back, so busy processes take
turns with the others and none starves: a contender waits at most for the ones ahead of it,
each of which is admitted at the next free slot or, if its process died, leaves the queue when
it stops asking (three heartbeats). It is not a strict FIFO of requests across processes:
inside a process requests are FIFO, and across processes the heads of the processes are.

When Redis is unreachable
-------------------------
Fail safe: nothing is sent without a slot. A caller keeps trying, logs one WARNING per outage,
and gets :class:`BudgetUnavailableError` once *unavailable_timeout* seconds (default 30) pass
without Redis. A slot already taken keeps its lease, so it is never counted short. When Redis
comes back, callers carry on. When its state is lost (a restart without persistence, a flush),
the first process that notices holds the whole budget for one lease before admitting again,
since requests admitted before the loss may still count on the server. A process that had
never called Redis before cannot tell a lost state from a new budget: if it is the first to
call after the loss, the requests it is admitted before a process that knew the old state
calls again are not held (that process's next call holds the budget from then on). Use
persistence (an AOF) where processes join while Redis may restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voucherify_async._errors import ClientClosedError, TransportError
from voucherify_async._pacing import Admission, LocalGate, RequestGate, ServerPause
from voucherify_async.instrumentation import BudgetUsage

from ._scripts import Scripts, as_int, as_text

__all__ = ["BudgetUnavailableError", "RedisBudget"]

logger: Final = logging.getLogger("voucherify_async")

#: Failures that mean "Redis cannot be reached now": retried until the caller's bound.
UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class BudgetUnavailableError(TransportError):
    """The shared budget in Redis could not be reached in time; the request was not sent."""


def _check_positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


class RedisBudget:
    """A request budget shared by every process and host using the same Redis and key.

    Pass it as ``VoucherifyClient(budget=RedisBudget(r, limit=100, window=60.0))``: at most
    *limit* requests of all those clients together reach the server in any *window* seconds,
    as the server sees them, and a pause the server demands of one pauses all.

    :param r: A ``redis.asyncio.Redis`` client (Redis or Valkey 5 or later).
    :param limit: Requests per *window* for the whole account (default 100).
    :param window: The window in seconds (default 60; shorten it only to time-scale tests).
    :param key: Names the budget in Redis. Default: the client's account, ``host:app_id``
        (never a token). With an OAuth token there is no such name: pass one.
    :param prefix: The start of every Redis key and channel (default ``"voucherify-async"``).
    :param unavailable_timeout: Seconds a caller keeps trying an unreachable Redis before
        :class:`BudgetUnavailableError` (default 30).
    :param heartbeat: The longest a waiting process sleeps before asking Redis again, in
        seconds (default 2); a process that stops asking for three heartbeats leaves the queue.
    :param operation_timeout: Seconds one Redis call may take before it counts as a failure
        (default 5).
    """

    def __init__(
        self,
        r: redis.asyncio.Redis,
        limit: int = 100,
        window: float = 60.0,
        key: str | None = None,
        *,
        prefix: str = "voucherify-async",
        unavailable_timeout: float = 30.0,
        heartbeat: float = 2.0,
        operation_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("key must be a non-empty str")
        self.redis = r
        self.limit = limit
        self.window = _check_positive("window", window)
        self.key = key
        self.prefix = prefix
        self.unavailable_timeout = _check_positive("unavailable_timeout", unavailable_timeout)
        self.heartbeat = _check_positive("heartbeat", heartbeat)
        self.operation_timeout = _check_positive("operation_timeout", operation_timeout)
        self._clock = clock

    def __repr__(self) -> str:
        return f"<RedisBudget limit={self.limit} window={self.window:g} key={self.key!r}>"

    def make_gate(
        self, *, concurrency: int, unanswered_hold: float, account: str | None
    ) -> RequestGate:
        """The gate of one client (called by :class:`~voucherify_async.VoucherifyClient`)."""
        name = self.key if self.key is not None else account
        if name is None:
            raise ValueError(
                "RedisBudget needs key= with an OAuth token: there is no app id to name the "
                "account's budget by (and a token is never used as a name)"
            )
        return RedisGate(self, name, concurrency=concurrency, unanswered_hold=unanswered_hold)


class _Slot:
    __slots__ = ("admitted_ms", "local", "member")

    def __init__(self, member: str, admitted_ms: int, local: Admission) -> None:
        self.member = member
        self.admitted_ms = admitted_ms
        self.local = local


_PROCESS_IDS = itertools.count()


class RedisGate(RequestGate):
    """One client's gate onto a :class:`RedisBudget` (built by ``make_gate``)."""

    def __init__(
        self, budget: RedisBudget, name: str, *, concurrency: int, unanswered_hold: float
    ) -> None:
        self._budget = budget
        self._redis = budget.redis
        self._clock = budget._clock
        # The concurrency cap, local pauses and local FIFO order: the in-process gate, unlimited.
        self._local = LocalGate(
            concurrency=concurrency, limit=None, unanswered_hold=unanswered_hold, clock=self._clock
        )
        base = f"{budget.prefix}:budget:{{{name}}}"
        self._keys = {
            part: f"{base}:{part}" for part in ("slots", "queue", "alive", "pause", "epoch")
        }
        self._channel = f"{base}:freed"
        self._scripts = Scripts(
            self._redis, "budget_acquire", "budget_release", "budget_leave", "budget_pause"
        )
        self._window_ms = round(budget.window * 1000)
        self._hold_ms = math.ceil(unanswered_hold * 1000)
        self._lease_ms = self._hold_ms + self._window_ms
        self._heartbeat_ms = max(1, round(budget.heartbeat * 1000))
        self._alive_ms = 3 * self._heartbeat_ms
        self._me = f"{os.getpid()}-{secrets.token_hex(6)}-{next(_PROCESS_IDS)}"
        self._serial = itertools.count()
        self._epoch = ""
        self._contend: asyncio.Lock | None = None
        self._wake: asyncio.Future[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outage_logged = False
        self._closed = False
        # Slots of the whole fleet in use as of this gate's last acquire (None before it).
        self._fleet_used: int | None = None
        #: Redis round trips made by this gate (scripts and pub/sub subscriptions): for benchmarks.
        self.round_trips = 0

    # -- the RequestGate interface ------------------------------------------------------

    @property
    def paused_for(self) -> float:
        return self._local.paused_for

    def pause(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self._local.pause(seconds)
        if not self._closed:
            self._spawn(self._push_pause(seconds))

    async def acquire(self, *, max_wait: float | None = None) -> Admission:
        if self._closed:
            raise ClientClosedError("this VoucherifyClient is closed")
        deadline = None if max_wait is None else self._clock() + max_wait
        local = await self._local.acquire(max_wait=max_wait)
        try:
            slot = await self._take_slot(local, deadline)
        except BaseException:
            self._local.release(local, answered=True)  # nothing sent: free the local place
            raise
        return Admission(local.admitted_at, slot)

    def release(self, admission: Admission, *, answered: bool) -> None:
        slot = admission.token
        assert isinstance(slot, _Slot)
        self._local.release(slot.local, answered=answered)
        self._spawn(self._release(slot, answered))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._local.close()
        self._notify()
        if self._listener is not None:
            self._listener.cancel()

    async def aclose(self) -> None:
        """Close; wait for the slots' releases to reach Redis (bounded) and the listener."""
        self.close()
        pending = [t for t in (self._listener, *self._tasks) if t is not None and not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._budget.operation_timeout + 1)
            for task in late:
                task.cancel()  # Redis is unreachable: the slots keep their leases
            if late:
                await asyncio.wait(late)

    def usage(self) -> tuple[BudgetUsage, ...]:
        """The fleet's budget as of this process's latest admission (or wait) in Redis."""
        if self._fleet_used is None:
            return ()
        return (BudgetUsage("fleet", self._fleet_used, self._budget.limit),)

    # -- taking a slot ------------------------------------------------------------------

    async def _take_slot(self, local: Admission, deadline: float | None) -> _Slot:
        if self._contend is None:
            self._contend = asyncio.Lock()
        async with self._contend:  # one contender per process; the rest wait here, FIFO
            member = f"{self._me}:{next(self._serial)}"
            try:
                return await self._contend_for(member, local, deadline)
            except BaseException:
                # Leave the queue (and give back a slot the script may have granted as the
                # call was cancelled): nothing was sent.
                self._spawn(self._leave(member))
                raise

    async def _contend_for(self, member: str, local: Admission, deadline: float | None) -> _Slot:
        failing_since: float | None = None
        backoff = 0.05
        keys = self._keys
        while True:
            if self._closed:
                raise ClientClosedError("the VoucherifyClient was closed")
            self._ensure_listener()
            wake = self._wake_future()  # taken before asking, so no notification slips by
            try:
                reply = await self._call(
                    "budget_acquire",
                    [keys["slots"], keys["queue"], keys["alive"], keys["pause"], keys["epoch"]],
                    [
                        self._budget.limit,
                        self._window_ms,
                        self._lease_ms,
                        member,
                        self._alive_ms,
                        self._epoch,
                        secrets.token_hex(8),
                        self._channel,
                        self._heartbeat_ms,
                    ],
                )
            except UNREACHABLE as exc:
                now = self._clock()
                if failing_since is None:
                    failing_since = now
                waited = now - failing_since
                if waited >= self._budget.unavailable_timeout:
                    raise BudgetUnavailableError(
                        f"the shared request budget in Redis was unreachable for {waited:.1f} s "
                        f"({type(exc).__name__}: {exc}); the request was not sent, as it could "
                        "not be counted"
                    ) from exc
                if not self._outage_logged:
                    self._outage_logged = True
                    logger.warning(
                        "the shared request budget in Redis is unreachable (%s); requests wait "
                        "for it, up to %.0f s each",
                        type(exc).__name__, self._budget.unavailable_timeout,
                    )  # fmt: skip
                await self._sleep(wake, backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if self._outage_logged:
                self._outage_logged = False
                logger.warning("the shared request budget in Redis is reachable again")
            failing_since, backoff = None, 0.05
            admitted, wait_ms, now_ms = as_int(reply[0]), as_int(reply[1]), as_int(reply[2])
            self._epoch = as_text(reply[3])
            pause_until_ms = as_int(reply[4])
            if len(reply) > 5:
                self._fleet_used = as_int(reply[5])
            if admitted:
                if self._closed:  # closed during the call: give the slot back, send nothing
                    raise ClientClosedError("the VoucherifyClient was closed")
                return _Slot(member, now_ms, local)
            if pause_until_ms > now_ms:
                # Another process was told to pause: so is this one (locally too, so that
                # paused_for and callers with a max_wait see it).
                remaining = (pause_until_ms - now_ms) / 1000
                self._local.pause(remaining)
                until = self._clock() + remaining
                if deadline is not None and until > deadline:
                    raise ServerPause(until)
            await self._sleep(wake, wait_ms / 1000)

    async def _sleep(self, wake: asyncio.Future[None], seconds: float) -> None:
        """Sleep *seconds*, or less if a notification (or close) comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.shield(wake)

    # -- Redis calls --------------------------------------------------------------------

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self.round_trips += 1
        async with asyncio.timeout(self._budget.operation_timeout):
            return await self._scripts[script](keys=keys, args=args)

    async def _release(self, slot: _Slot, answered: bool) -> None:
        keys = self._keys
        args = [
            slot.member,
            self._window_ms,
            "1" if answered else "0",
            slot.admitted_ms,
            self._hold_ms,
            self._budget.limit,
            self._channel,
            self._lease_ms,
        ]
        # Unreachable: the slot keeps its lease (admitted + hold + window), never shorter
        # than the release would have set, so giving up is safe.
        with contextlib.suppress(*UNREACHABLE):
            await self._call("budget_release", [keys["slots"]], args)

    async def _leave(self, member: str) -> None:
        keys = self._keys
        with contextlib.suppress(*UNREACHABLE):
            await self._call(
                "budget_leave",
                [keys["slots"], keys["queue"], keys["alive"]],
                [member, self._channel],
            )

    async def _push_pause(self, seconds: float) -> None:
        with contextlib.suppress(*UNREACHABLE):
            await self._call("budget_pause", [self._keys["pause"]], [math.ceil(seconds * 1000)])

    # -- notifications ------------------------------------------------------------------

    def _wake_future(self) -> asyncio.Future[None]:
        if self._wake is None or self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def _notify(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done() and not wake.get_loop().is_closed():
            wake.set_result(None)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="voucherify-async budget listener"
            )

    async def _listen(self) -> None:
        """Wake the waiting contender on every message of the budget's channel."""
        backoff = 0.05
        while not self._closed:
            pubsub = self._redis.pubsub()
            try:
                self.round_trips += 1
                await pubsub.subscribe(self._channel)
                backoff = 0.05
                self._notify()  # messages may have been missed while not subscribed
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._notify()
            except UNREACHABLE:
                self._notify()  # the contender finds out for itself, and reports it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                with contextlib.suppress(*UNREACHABLE, RuntimeError):
                    # redis < 8.2 leaves aclose untyped, 8.2 types it: a typed alias checks on both
                    close: Callable[[], Awaitable[None]] = pubsub.aclose
                    await close()

    # -- background work ----------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()  # no loop: the slot keeps its lease, which is safe
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
