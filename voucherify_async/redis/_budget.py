"""RedisBudget: one request budget for every process of an account, kept in Redis.

How it keeps the budget exact
-----------------------------
Redis holds a sorted set of slots, each scored with the last instant (Redis's clock, ``TIME``
inside the script) at which its request may reach the server; a slot counts until a window
after that. A request takes a slot before it is sent, scored ``admitted + unanswered_hold``.
When its response arrives the slot is re-scored with that instant; a request that ended
without a response with ``max(end, admitted + unanswered_hold)``, the rule of
:class:`~voucherify_async._pacing.LocalGate`. A request still unanswered near the end of its
hold (a timeout without a total, ``ClientTimeout(total=None)``) has its lease renewed while
it runs, so a slot never frees under a request in flight; a process that dies mid-request
renews nothing, and its slots free a window after their last lease.

One script call per request
---------------------------
A request's release rides on the next call its process makes to Redis (the next admission,
usually, or that of the contender sleeping for its turn); when none comes within three
quarters of the window (:data:`FOLD_DELAY`), the releases go alone, in one call. The
release says how long ago (by the process's clock, allowing it to run 0.1 % fast) the request
ended, so a late release frees its slot as early as a prompt one would.

Waiting
-------
Inside a process, callers queue first come, first served for the local concurrency cap and
then for the right to contend in Redis; one caller per process contends at a time. When no
slot is free the script answers how long until the earliest one frees; the contender sleeps
that long (at most a heartbeat, default 2 s), or until a notification on the budget's pub/sub
channel wakes it. No busy polling: a waiting process asks Redis once per heartbeat at most,
plus once per notification.

Fairness across processes
-------------------------
Contenders queue in Redis by the instant they first asked (a sorted set), and a free slot goes
to the first in that queue: a contender is admitted only when fewer contenders are ahead of it
than slots are free. A process's next contender joins at the back, so busy processes take
turns and none starves; a contender whose process died leaves the queue when it stops asking
(three heartbeats).

Processes that disagree
-----------------------
Processes sharing a key with different *limit*, *window* or hold (a rolling deploy that
changes them) are all held to the strictest configuration in use: the smallest limit, the
longest window, the longest hold; each logs one WARNING naming what applies. A configuration
stops counting a lease after its process's last call.

When Redis is unreachable or refuses writes
-------------------------------------------
Fail safe: nothing is sent without a slot. A caller keeps trying (a refused write, such as
``READONLY`` after a failover or ``OOM`` under ``maxmemory``, is an outage like a lost
connection), logs one WARNING per outage, and gets :class:`BudgetUnavailableError` once
*unavailable_timeout* seconds (default 30; or one *operation_timeout*, if longer, when Redis
hangs rather than refuses) pass without Redis since it asked, whether it was the one asking
Redis or waited behind it. A slot already taken keeps its
lease, so it is never counted short. When Redis comes back, callers carry on.

When Redis loses state
----------------------
The state is named by a member of the slot set that records the server's ``run_id``. A
restart (from an RDB snapshot or an AOF, which may miss the last writes) or a failover (to a
replica that may lag) changes the run id; a flush or an eviction removes the name. Whoever
calls first after either, newcomer or not, holds the whole budget for one lease (the longest
hold in use plus the window) before admitting again, since requests admitted before may
still count on the server. One case is invisible to a process new to the budget: a server
that lost every key of the budget (a restart without persistence); there the first process
that had used the budget before holds it at its next call. A restart that lost nothing
(``appendfsync always``) still holds the budget once: the script cannot tell.
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
from redis.exceptions import RedisClusterException, RedisError

from voucherify_async import instrumentation
from voucherify_async._errors import ClientClosedError, InvalidArgumentTypeError, TransportError
from voucherify_async._pacing import Admission, LocalGate, RequestGate, ServerPause, gate_work
from voucherify_async.instrumentation import BudgetUsage

from ._scripts import Scripts, as_int, as_text, key_base

__all__ = ["BudgetUnavailableError", "RedisBudget"]

logger: Final = logging.getLogger("voucherify_async")

#: Failures that mean "Redis cannot serve the budget now": retried until the caller's bound.
#: Every error Redis answers counts (READONLY, OOM, NOREPLICAS, CLUSTERDOWN, LOADING...), not
#: only a lost connection: none of them may reach the caller raw.
UNREACHABLE: Final = (RedisError, RedisClusterException, OSError, TimeoutError)

#: The longest a release waits for the next Redis call of its process before it is sent
#: alone, as a fraction of the window (the call of a contender sleeping for its turn carries
#: it when that turn comes before the slot would free). A late release frees its slot as early
#: as a prompt one (it says when its request ended), so it costs no capacity while it arrives
#: before that slot would free, a window after the request's end; three quarters leave a
#: quarter window for it to get there. What it trades: a process sending a request at least
#: this often sends no call for releases; other processes compute their turns from the slot's
#: lease until it arrives (so they ask again a heartbeat later at worst). Chosen on the
#: saturated setup of benchmarks/redis_budget.py (in-sample, 4 gates x 30 requests): 0.1, 0.25
#: and 0.5 of the window sent 15-20 % of the releases alone, 0.75 with the turn rule 8 %.
FOLD_DELAY: Final = 0.75

#: A request still unanswered this far into its hold (a fraction of it) renews its lease,
#: leaving a third of the hold for the renewal to reach Redis.
RENEW_AT: Final = 2 / 3


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

    :param r: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` client (Redis or
        Valkey 5 or later). Every key of one budget shares a hash slot.
    :param limit: Requests per *window* for the whole account (default 100). Processes that
        share a key with different limits or windows all keep to the strictest.
    :param window: The window in seconds (default 60; shorten it only to time-scale tests).
    :param key: Names the budget in Redis. Default: the client's account, ``host:app_id``
        (never a token). With an OAuth token there is no such name: pass one.
    :param prefix: The start of every Redis key and channel (default ``"voucherify-async"``).
    :param unavailable_timeout: Seconds a caller keeps trying an unreachable Redis (or one
        refusing writes) before :class:`BudgetUnavailableError` (default 30), counted from the
        later of its own call and the outage's start; a call to a hanging Redis ends no sooner
        than *operation_timeout*.
    :param heartbeat: The longest a waiting process sleeps before asking Redis again, in
        seconds (default 2); a process that stops asking for three heartbeats leaves the queue.
    :param operation_timeout: Seconds one Redis call may take before it counts as a failure
        (default 5).
    :param hold_after_restart: When the budget has no state in Redis and the server shows it
        may have lost it, hold the budget for one lease (the longest request timeout in use
        plus the window; default ``True``): a process new to the budget cannot tell a lost
        state from a new budget, but the server can say that it has been up for less than a
        lease (an empty restart: held until a lease after it started) or that it evicted or
        flushed keys since it started (held a lease from now). So a brand-new budget on such a
        server also waits one lease. ``False`` trusts a missing state (tests that start or flush
        their own ``redis-server``); a loss is then caught only by processes that knew the
        state.
    """

    def __init__(
        self,
        r: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        limit: int = 100,
        window: float = 60.0,
        key: str | None = None,
        *,
        prefix: str = "voucherify-async",
        unavailable_timeout: float = 30.0,
        heartbeat: float = 2.0,
        operation_timeout: float = 5.0,
        hold_after_restart: bool = True,
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
        if not isinstance(hold_after_restart, bool):
            raise InvalidArgumentTypeError(
                f"hold_after_restart must be a bool, got {hold_after_restart!r}"
            )
        self.hold_after_restart = hold_after_restart
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
    __slots__ = ("admitted_ms", "local", "member", "renew_at")

    def __init__(self, member: str, admitted_ms: int, local: Admission, renew_at: float) -> None:
        self.member = member
        self.admitted_ms = admitted_ms
        self.local = local
        self.renew_at = renew_at  # local clock: when its lease is renewed if still in flight


_PROCESS_IDS = itertools.count()


class RedisGate(RequestGate):
    """One client's gate onto a :class:`RedisBudget` (built by ``make_gate``)."""

    def __init__(
        self, budget: RedisBudget, name: str, *, concurrency: int, unanswered_hold: float
    ) -> None:
        self._budget = budget
        self._redis = budget.redis
        self._clock = budget._clock
        # The concurrency cap, local pauses, the server's allowance and local FIFO order: the
        # in-process gate without a budget of its own.
        self._local = LocalGate(
            concurrency=concurrency, limit=None, unanswered_hold=unanswered_hold, clock=self._clock
        )
        base = key_base(budget.prefix, "budget", name)
        self._keys = [f"{base}:{part}" for part in ("slots", "queue", "alive", "pause", "confs")]
        self._channel = f"{base}:freed"
        self._scripts = Scripts(self._redis, "budget", "budget_leave", "budget_pause")
        self._window_ms = round(budget.window * 1000)
        self._hold = unanswered_hold
        self._hold_ms = math.ceil(unanswered_hold * 1000)
        self._heartbeat_ms = max(1, round(budget.heartbeat * 1000))
        self._alive_ms = 3 * self._heartbeat_ms
        self._fold_delay = FOLD_DELAY * budget.window
        self._me = f"{os.getpid()}-{secrets.token_hex(6)}-{next(_PROCESS_IDS)}"
        self._serial = itertools.count()
        self._epoch = ""
        # Releases not yet in Redis: (slot, answered, when it ended by the local clock).
        self._ended: list[tuple[_Slot, bool, float]] = []
        self._in_flight: dict[str, _Slot] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._contend: asyncio.Lock | None = None
        self._contenders = 0  # callers contending or waiting to, in this process
        # The next contender's id, queued in Redis by the previous call, and its turn (local
        # clock); unclaimed at its turn, it leaves the queue (_unclaimed).
        self._queued: tuple[str, float] | None = None
        self._queued_timer: asyncio.TimerHandle | None = None
        self._turn_at: float | None = None  # when the contender sleeping for its turn wakes
        self._wake: asyncio.Future[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outage_logged = False
        self._mismatch_logged = False
        # When the current outage began (the send of the first call that failed), for every
        # caller of this process: each gives up unavailable_timeout after the later of that
        # and its own arrival, whether it is the contender or waits behind it.
        self._failing_since: float | None = None
        self._closed = False
        # Slots of the whole fleet in use as of this gate's last acquire (None before it).
        self._fleet_used: int | None = None
        #: Redis round trips made by this gate (script calls and pub/sub subscriptions).
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

    def observe_allowance(self, remaining: int, limit: int | None) -> None:
        # The server's X-Rate-Limit-Remaining paces this process as it does LocalGate's.
        self._local.observe_allowance(remaining, limit)

    async def acquire(self, *, max_wait: float | None = None) -> Admission:
        if self._closed:
            raise ClientClosedError("this VoucherifyClient is closed")
        deadline = None if max_wait is None else self._clock() + max_wait
        if instrumentation.on_request:
            gate_work.set(0.0)  # this admission's round trips only
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
        self._in_flight.pop(slot.member, None)
        self._ended.append((slot, answered, self._clock()))
        self._schedule()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._local.close()
        self._notify()
        if self._listener is not None:
            self._listener.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queued_timer is not None:
            self._queued_timer.cancel()
            self._unclaimed()
        if self._ended:
            self._spawn(self._bookkeep())  # the releases go now, not a fold delay later

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
        return (BudgetUsage("fleet", self._fleet_used, self._budget.limit, self._local.client_id),)

    # -- taking a slot ------------------------------------------------------------------

    async def _take_slot(self, local: Admission, deadline: float | None) -> _Slot:
        if self._contend is None:
            self._contend = asyncio.Lock()
        entered = self._clock()
        self._contenders += 1
        try:
            await self._wait_turn(self._contend, entered)
            try:  # one contender per process; the rest wait in _wait_turn, FIFO
                # The previous contender may have queued this one in Redis already, and said
                # when its turn comes.
                member, turn = self._queued or (f"{self._me}:{next(self._serial)}", None)
                self._queued = None
                if self._queued_timer is not None:
                    self._queued_timer.cancel()
                    self._queued_timer = None
                try:
                    return await self._contend_for(member, local, deadline, turn, entered)
                except BaseException:
                    # Leave the queue (and give back a slot the script may have granted as
                    # the call was cancelled): nothing was sent.
                    self._spawn(self._leave(member))
                    raise
            finally:
                self._contend.release()
        finally:
            self._contenders -= 1

    async def _wait_turn(self, lock: asyncio.Lock, entered: float) -> None:
        """Take *lock* (the contender's place), or raise :class:`BudgetUnavailableError` once
        Redis has been unavailable for ``unavailable_timeout`` since this caller came: callers
        waiting behind a contender that cannot reach Redis end on time too, not one timeout
        after another."""
        while True:
            timeout = self._budget.unavailable_timeout
            if self._failing_since is not None:
                left = max(self._failing_since, entered) + timeout - self._clock()
                if left <= 0:
                    raise BudgetUnavailableError(
                        f"the shared request budget in Redis was unavailable for {timeout:.1f} s "
                        "while this request waited; the request was not sent, as it could "
                        "not be counted"
                    )
                timeout = left
            try:
                await asyncio.wait_for(lock.acquire(), timeout)
                return
            except TimeoutError:
                continue  # look at the outage again

    def _unclaimed(self) -> None:
        """The queued next contender's turn came and no caller took it: leave the queue
        (blocking nobody with a place no one uses)."""
        self._queued_timer = None
        if self._queued is not None:
            self._spawn(self._leave(self._queued[0]))
            self._queued = None
            self._schedule()  # the releases it would have carried

    async def _contend_for(
        self,
        member: str,
        local: Admission,
        deadline: float | None,
        turn: float | None,
        entered: float,
    ) -> _Slot:
        backoff = 0.05
        if turn is not None and turn > self._clock():
            # Queued by the previous contender, whose call said when this one's turn comes:
            # sleep until then (or a notification) rather than ask now and be told to wait.
            self._ensure_listener()
            self._turn_at = turn
            try:
                await self._sleep(self._wake_future(), turn - self._clock())
            finally:
                self._turn_at = None
        while True:
            if self._closed:
                raise ClientClosedError("the VoucherifyClient was closed")
            self._ensure_listener()
            wake = self._wake_future()  # taken before asking, so no notification slips by
            paused = self._local.paused_for
            if paused > 0:
                # A pause the server demanded (seen here, or by another process): Redis would
                # only say to wait it out.
                until = self._clock() + paused
                if deadline is not None and until > deadline:
                    raise ServerPause(until)
                await self._sleep(wake, paused)
                continue
            # A caller waits behind this one (for it, or for a request in flight here to end):
            # queue it in the same call.
            waiting = self._contenders > 1 or self._local.waiting > 0
            follower = f"{self._me}:{next(self._serial)}" if waiting else ""
            measured = time.monotonic() if instrumentation.on_request else 0.0
            asked = self._clock()
            try:
                reply = await self._script_call(member, follower)
            except UNREACHABLE as exc:
                now = self._clock()
                if self._failing_since is None:
                    self._failing_since = asked  # unavailable since this call was sent
                waited = now - max(self._failing_since, entered)
                if not self._outage_logged:
                    self._outage_logged = True
                    logger.warning(
                        "the shared request budget in Redis is unreachable or refuses writes "
                        "(%s: %s); requests wait for it, up to %.0f s each",
                        type(exc).__name__, exc, self._budget.unavailable_timeout,
                    )  # fmt: skip
                if waited >= self._budget.unavailable_timeout:
                    raise BudgetUnavailableError(
                        f"the shared request budget in Redis was unavailable for {waited:.1f} s "
                        f"({type(exc).__name__}: {exc}); the request was not sent, as it could "
                        "not be counted"
                    ) from exc
                await self._sleep(wake, backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if self._outage_logged:
                self._outage_logged = False
                logger.warning("the shared request budget in Redis is reachable again")
            self._failing_since, backoff = None, 0.05
            if measured:  # the round trip is the gate's work, not a wait for a slot
                gate_work.set(gate_work.get() + time.monotonic() - measured)
            admitted, wait_ms, now_ms = as_int(reply[0]), as_int(reply[1]), as_int(reply[2])
            pause_until_ms = as_int(reply[4])
            if len(reply) > 9:
                self._fleet_used = as_int(reply[9])
            if admitted:
                slot = _Slot(member, now_ms, local, self._clock() + RENEW_AT * self._hold)
                next_wait = as_int(reply[8])
                if follower and next_wait >= 0:
                    turn_at = self._clock() + next_wait / 1000
                    self._queued = (follower, turn_at)
                    self._queued_timer = asyncio.get_running_loop().call_later(
                        next_wait / 1000 + self._budget.heartbeat, self._unclaimed
                    )
                if self._closed:  # closed during the call: give the slot back, send nothing
                    raise ClientClosedError("the VoucherifyClient was closed")
                self._in_flight[member] = slot
                self._schedule()
                return slot
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

    # -- the script call ----------------------------------------------------------------

    async def _script_call(self, member: str, follower: str = "") -> Any:
        """One call of the budget script: the releases and renewals due, and an admission
        for *member* ('' for none), queueing *follower* (this process's next contender, ''
        for none) if it is admitted. Releases that could not be sent are kept for the next."""
        now = self._clock()
        ended, self._ended = self._ended, []
        renew = [s for s in self._in_flight.values() if s.renew_at <= now + self._hold / 3]
        budget = self._budget
        args: list[Any] = [
            budget.limit, self._window_ms, self._hold_ms, member, self._alive_ms, self._epoch,
            secrets.token_hex(8), self._channel, self._heartbeat_ms, follower,
            "1" if budget.hold_after_restart else "0", len(ended),
        ]  # fmt: skip
        for slot, answered, at in ended:
            ago_ms = max(0, math.floor((now - at) * 1000))
            args += [slot.member, "1" if answered else "0", ago_ms, slot.admitted_ms]
        args += [len(renew), *(s.member for s in renew)]
        try:
            reply = await self._call("budget", args)
        except BaseException:
            self._ended[:0] = ended  # they keep their leases meanwhile, which is safe
            raise
        for slot in renew:
            slot.renew_at = self._clock() + RENEW_AT * self._hold
        self._epoch = as_text(reply[3])
        self._note_reply(as_int(reply[5]), as_int(reply[6]), as_int(reply[7]))
        return reply

    def _note_reply(self, limit: int, window_ms: int, lost: int) -> None:
        if lost:
            logger.warning(
                "the shared request budget's state in Redis was lost or rolled back (a restart, "
                "a failover or a flush): no request of the account is admitted for one lease "
                "(the longest hold in use plus the window)"
            )
        if (limit, window_ms) != (self._budget.limit, self._window_ms):
            if not self._mismatch_logged:
                self._mismatch_logged = True
                logger.warning(
                    "processes share this Redis budget with different limits or windows: the "
                    "strictest in use applies to all (%d requests per %.3g s; this process "
                    "was given %d per %.3g s)",
                    limit, window_ms / 1000, self._budget.limit, self._budget.window,
                )  # fmt: skip
        else:
            self._mismatch_logged = False

    async def _call(self, script: str, args: list[Any]) -> Any:
        self.round_trips += 1
        async with asyncio.timeout(self._budget.operation_timeout):
            return await self._scripts[script](keys=self._keys, args=args)

    async def flush_releases(self) -> None:
        """Send the releases not yet in Redis now, rather than with the next call (one
        round trip; an unreachable Redis leaves them for later, their slots on lease)."""
        if self._ended:
            await self._bookkeep()

    async def _bookkeep(self) -> None:
        """Send the releases and renewals due, alone (no admission)."""
        if not self._ended and not self._in_flight:
            return
        with contextlib.suppress(*UNREACHABLE):
            await self._script_call("")
        if not self._closed:
            self._schedule()

    def _release_due(self) -> float | None:
        """When the pending releases must go alone (local clock), or None: none pending, or
        this process's queued next contender will carry them, as its turn comes before the
        first of their slots would free."""
        if not self._ended:
            return None
        first = self._ended[0][2]
        next_call = self._queued[1] if self._queued is not None else self._turn_at
        if next_call is not None and next_call <= first + self._budget.window:
            return None  # if it is never claimed, _unclaimed reschedules
        return first + self._fold_delay

    def _schedule(self) -> None:
        """Set the timer for the next releases to send alone, or the next lease renewal."""
        if self._closed:
            return
        due: list[float] = [s.renew_at for s in self._in_flight.values()]
        release = self._release_due()
        if release is not None:
            due.append(release)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the slots keep their leases, which is safe
        delay = max(0.0, min(due) - self._clock())
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._clock()
        release = self._release_due()
        if (release is not None and release <= now) or any(
            s.renew_at <= now for s in self._in_flight.values()
        ):
            self._spawn(self._bookkeep())
        else:
            self._schedule()

    async def _leave(self, member: str) -> None:
        with contextlib.suppress(*UNREACHABLE):
            await self._call("budget_leave", [member, self._channel])

    async def _push_pause(self, seconds: float) -> None:
        with contextlib.suppress(*UNREACHABLE):
            await self._call("budget_pause", [math.ceil(seconds * 1000)])

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
