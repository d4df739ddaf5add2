"""Client-wide pacing: requests in flight, the request budget, and pauses the server demands.

Every HTTP attempt of a client passes one :class:`RequestGate`. The transport and the handles
see only that interface; :class:`LocalGate` is the in-process implementation (the default) and
``voucherify_async.redis`` has one shared by many processes.

The guarantees every implementation keeps:

- **The budget is exact.** A request takes a slot before it is sent. When its response
  arrives the slot is freed ``window`` seconds later: the server saw the request somewhere
  between those two instants, so no window of ``window`` seconds on the server holds more than
  ``limit`` of our requests, whatever the latency. A request whose connection the server
  closed (before answering, or by a reset) counts as answered: the server cannot count it
  after that. A request that ends *without* a response because the client gave up on it
  (cancelled, timed out) may still reach the server later, up to the moment
  its response would have been given up on: its slot is held until ``window`` seconds after
  ``admitted + unanswered_hold`` (the client passes ``max(timeout, ABANDONED_HOLD)``), or
  after its end if that is later.
- **Closing ends every wait.** After :meth:`RequestGate.close`, every caller still waiting
  and every later one gets :class:`ClientClosedError`.
- **The server's allowance is respected** (``LocalGate``, with or without a budget of its
  own, and the Redis gate through a ``LocalGate`` of its own): after a response saying
  ``X-Rate-Limit-Remaining: R``, no more than ``R`` requests are in flight or sent until the
  next response says otherwise (requests in flight when it came are counted against it, as
  the server may not have counted them yet; the transport passes on no ``R`` from the answer
  to a request sent before the one that set it); ``R = 0``
  pauses until ``X-Rate-Limit-Retry``, after which one request goes alone and its answer
  says how many may follow. Before the first answer nothing is known of the server's
  allowance: with ``probe_first`` (the client's gate when it has no budget of its own) the
  first request goes alone; without, only ``max_concurrency`` (and the client's budget)
  apply. The server's ``X-Rate-Limit-Limit`` is kept (:attr:`LocalGate.server_limit`).
- **Server pauses are bounded per call.** A caller that says how long it may wait
  (``max_wait``) gets :class:`ServerPause` at once, instead of waiting, when a pause the
  server demanded outlasts it.

:class:`LocalGate` serves waiting callers in order of due time (``_admission``): a poll whose
action may well have ended goes before one just polled; without due times, first come, first
served.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import collections
import contextlib
import contextvars
import itertools
import math
import time
from collections.abc import Callable
from typing import Final, Protocol

from ._errors import ClientClosedError, ConfigurationError
from ._polling.admission import HOLD_WHEN_FREE_BELOW, admission_key, deferrable, due
from .instrumentation import BudgetUsage

__all__ = [
    "ABANDONED_HOLD",
    "Admission",
    "Budget",
    "GateFactory",
    "LocalGate",
    "RequestGate",
    "ServerPause",
]


class ServerPause(Exception):
    """A server-demanded pause outlasts what the caller may wait; ``until`` is monotonic."""

    def __init__(self, until: float) -> None:
        self.until = until
        super().__init__(f"paused until monotonic {until:.3f}")


class Admission:
    """One admitted request: give it back with :meth:`RequestGate.release`, exactly once."""

    __slots__ = ("admitted_at", "token")

    def __init__(self, admitted_at: float, token: object = None) -> None:
        #: The gate's clock when the request was admitted (monotonic seconds).
        self.admitted_at = admitted_at
        #: Whatever the implementation needs to free the slot (a Redis slot id...).
        self.token = token


class RequestGate(abc.ABC):
    """The interface every request of a client passes: admit, release, pause, close."""

    @abc.abstractmethod
    async def acquire(self, *, max_wait: float | None = None) -> Admission:
        """Wait for one admission.

        *max_wait* (seconds, None: no bound) is how long the caller may wait for a pause the
        server demanded: a longer pause raises ``ServerPause`` (an internal exception the
        transport turns into :class:`~voucherify_async.RateLimitError`) at once. Raises
        :class:`ClientClosedError` when the gate is closed, before or while waiting.
        """

    @abc.abstractmethod
    def release(self, admission: Admission, *, answered: bool) -> None:
        """Give back *admission*: *answered* is True when a response (its headers) arrived, or
        when the server closed the connection (it cannot count the request after that)."""

    @abc.abstractmethod
    def pause(self, seconds: float) -> None:
        """Admit nothing for *seconds* from now (extends, never shortens, a pause)."""

    @property
    @abc.abstractmethod
    def paused_for(self) -> float:
        """Seconds left of the current server-demanded pause (0 when none)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Fail every waiting caller, and every later one, with :class:`ClientClosedError`."""

    def observe_allowance(self, remaining: int, limit: int | None) -> None:  # noqa: B027
        """A response said ``X-Rate-Limit-Remaining: remaining`` (and ``-Limit: limit``).

        Called while that response's admission is still held. The default ignores it (the
        transport's pauses still apply); ``LocalGate`` paces by it.
        """

    async def aclose(self) -> None:
        """Close, and wait for any background work of the implementation to end."""
        self.close()

    def usage(self) -> tuple[BudgetUsage, ...]:
        """How full the budgets this gate knows are, now (for instrumentation; default none)."""
        return ()

    def has_room(self) -> bool:
        """True when a request nobody asked for (the client's warm-start ``list()``) may go
        now: it would be admitted at once, behind nobody, and the budget is not short. The
        default: no server pause is in force."""
        return self.paused_for <= 0


#: The least time (seconds) after its admission that a request the client abandoned (its
#: timeout, a cancel) is counted as possibly reaching the server: its budget slot is held
#: until a window after ``admitted + max(timeout, ABANDONED_HOLD)``. A request can sit unread
#: in a stalled server's socket buffer, or in a load balancer, after a short client timeout
#: gave up on it. 30 s equals the default request timeout, so a default client is unchanged;
#: 180 s (the API's load balancers' timeout) would cover more, but after a storm of timeouts
#: it would stop a budgeted client for 3 minutes plus a window. A request read later than
#: this can still land in a later window: the budget's bound is only as good as this hold.
ABANDONED_HOLD: Final = 30.0


class Budget(Protocol):
    """What ``VoucherifyClient(budget=...)`` takes: a request budget that builds the client's
    :class:`RequestGate` (``voucherify_async.redis.RedisBudget`` is one, shared by processes)."""

    def make_gate(
        self, *, concurrency: int, unanswered_hold: float, account: str | None
    ) -> RequestGate:
        """The gate for one client: *concurrency* requests in flight at most; a request
        without an answer may reach the server up to *unanswered_hold* seconds after its
        admission; *account* names the account (``host:app_id``; None with an OAuth token)."""
        ...


#: The name the gate's implementations use for :class:`Budget`.
GateFactory = Budget


class _Waiter:
    __slots__ = ("future", "held", "key", "max_wait_until")

    def __init__(
        self,
        future: asyncio.Future[Admission],
        max_wait_until: float | None,
        key: tuple[float, int],
        held: bool = False,
    ) -> None:
        self.future = future
        self.max_wait_until = max_wait_until
        self.key = key  # (due, arrival number): the admission order
        self.held = held  # not admitted before its due time, even with room


#: Seconds of this task's latest admission that were the gate's own work rather than a wait
#: (a ``RedisBudget``'s round trips to Redis): the OpenTelemetry budget wait leaves them out.
#: Set only while request hooks are on; whoever reads it sets it back to 0.
gate_work: contextvars.ContextVar[float] = contextvars.ContextVar(
    "voucherify_async gate work", default=0.0
)

#: The numbers of the gates this process made (1, 2...): BudgetUsage.client.
_CLIENT_IDS = itertools.count(1)


class LocalGate(RequestGate):
    """The in-process gate: a concurrency cap, an optional sliding-window budget and pauses.

    *limit* requests per *window* seconds (``None``: no budget of our own); at most
    *concurrency* requests in flight. *unanswered_hold* (seconds, default 30: the request
    timeout) is how long after its admission a request without a response may still reach
    the server. With *probe_first* (default False) the first request goes alone until its
    answer says what the server allows.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        limit: int | None = None,
        window: float = 60.0,
        unanswered_hold: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        probe_first: bool = False,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be an int >= 1, got {concurrency!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigurationError(f"requests_per_minute must be an int or None, got {limit!r}")
        if limit is not None and limit < 1:
            raise ConfigurationError(f"requests_per_minute must be >= 1 or None, got {limit!r}")
        if not _finite_positive(window):
            raise ConfigurationError(f"the budget window must be finite and > 0, got {window!r}")
        if not _finite_positive(unanswered_hold):
            raise ConfigurationError(
                f"unanswered_hold must be a finite number > 0, got {unanswered_hold!r}"
            )
        self._clock = clock
        #: This gate's number (one gate per client), for the budget gauges' series.
        self.client_id = next(_CLIENT_IDS)
        self._concurrency = concurrency
        self._limit = limit
        self._window = window
        self._unanswered_hold = unanswered_hold
        self._in_flight = 0
        # When each finished request's slot frees, minus the window: sorted, oldest first.
        self._finished: collections.deque[float] = collections.deque()
        self._pending = 0  # budget slots taken by requests still in flight
        self._pause_until = 0.0
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._arrivals = 0
        # Requests the server still allows, as of its last response, less those sent since;
        # None: no limit known. With probe_first it starts at 1: the first request goes
        # alone, and its response says how many may follow (no headers: no limit).
        self._allowance: int | None = 1 if probe_first else None
        self._seen_allowance = False
        self._server_limit: int | None = None
        self._server_remaining: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def paused_for(self) -> float:
        return max(0.0, self._pause_until - self._clock())

    @property
    def server_limit(self) -> int | None:
        """The server's ``X-Rate-Limit-Limit`` as last seen, or None."""
        return self._server_limit

    def observe_allowance(self, remaining: int, limit: int | None) -> None:
        self._seen_allowance = True
        self._server_remaining = remaining
        if limit is not None and limit > 0:
            self._server_limit = limit
        # The requests in flight besides this one may not be counted in `remaining` yet.
        self._allowance = max(0, remaining) - (self._in_flight - 1)
        if self._queue or self._timer is not None:  # else there is nothing to reschedule
            self._reschedule()

    def usage(self) -> tuple[BudgetUsage, ...]:
        """This client's own budget (``requests_per_minute``) and the server's, as known now."""
        found: list[BudgetUsage] = []
        if self._limit is not None:
            cutoff = self._clock() - self._window
            finished = self._finished  # sorted: the slots still held are after the cutoff
            used = self._pending + len(finished) - bisect.bisect_right(finished, cutoff)
            found.append(BudgetUsage("client", used, self._limit, self.client_id))
        limit, remaining = self._server_limit, self._server_remaining
        if limit is not None and remaining is not None:
            found.append(BudgetUsage("server", max(0, limit - remaining), limit, self.client_id))
        return tuple(found)

    @property
    def waiting(self) -> int:
        """Callers waiting for admission."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Admitted requests not yet released."""
        return self._in_flight

    def pause(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return
        until = self._clock() + seconds
        if until > self._pause_until:
            self._pause_until = until
            # The server's window renews by the end of its pause: one request, then its answer.
            self._allowance = 1 if self._seen_allowance else None
            # Callers that may not wait that long learn it now, not when they would be admitted.
            for waiter in list(self._queue):
                limit = waiter.max_wait_until
                if limit is not None and until > limit and not waiter.future.done():
                    waiter.future.set_exception(ServerPause(until))
            self._reschedule()

    async def acquire(self, *, max_wait: float | None = None) -> Admission:
        if self._closed:
            raise ClientClosedError("this VoucherifyClient is closed")
        now = self._clock()
        limit = None if max_wait is None else now + max_wait
        if limit is not None and self._pause_until > limit:
            raise ServerPause(self._pause_until)
        when = due()
        key = now if when is None else admission_key(now, when)
        # A deferrable poll (a first poll) waits for its due time while the budget is short.
        held = key > now and deferrable() and self._budget_short(now)
        if not held and not self._queue and self._next_admission_in(now) == 0.0:
            return self._admit(now)
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        waiter = _Waiter(future, limit, (key, self._arrivals), held)
        # Ordered by due time, then arrival (FIFO when nobody sets a due time).
        bisect.insort(self._queue, waiter, key=_order)
        self._reschedule()
        try:
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                # Admitted, then cancelled before we could use it: nothing was sent.
                self._give_back(future.result())
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(waiter)
                self._reschedule()
            raise

    def release(self, admission: Admission, *, answered: bool) -> None:
        self._in_flight -= 1
        if self._limit is not None:
            self._pending -= 1
            now = self._clock()
            frees = now if answered else max(now, admission.admitted_at + self._unanswered_hold)
            self._insert_finished(frees)
        if self._queue or self._timer is not None:  # else there is nothing to reschedule
            self._reschedule()

    def _give_back(self, admission: Admission) -> None:
        """Undo an admission whose request was never sent: the slot is free at once."""
        self._in_flight -= 1
        if self._limit is not None:
            self._pending -= 1
        self._reschedule()

    def _insert_finished(self, frees: float) -> None:
        finished = self._finished
        if not finished or finished[-1] <= frees:
            finished.append(frees)
            return
        # Rare: an unanswered request's slot outlives later ones; keep the deque sorted.
        items = sorted([*finished, frees])
        finished.clear()
        finished.extend(items)

    def _admit(self, now: float) -> Admission:
        if self._allowance is not None:
            self._allowance -= 1
        self._in_flight += 1
        if self._limit is not None:
            self._pending += 1
        return Admission(now)

    def _next_admission_in(self, now: float) -> float | None:
        """0 when a request may start now; seconds until one may; None until a release."""
        if self._pause_until > now:
            return self._pause_until - now
        if self._in_flight >= self._concurrency:
            return None
        if self._allowance is not None and self._allowance <= 0:
            if self._in_flight:
                return None  # their responses will say what the server allows now
            # Nothing in flight will tell us: one request asks (no limit if none ever said).
            self._allowance = 1 if self._seen_allowance else None
        if self._limit is None:
            return 0.0
        finished = self._finished
        while finished and finished[0] <= now - self._window:
            finished.popleft()
        if self._pending + len(finished) < self._limit:
            return 0.0
        if not finished:
            return None  # every slot is held by a request in flight
        return finished[0] + self._window - now

    def has_room(self) -> bool:
        """Not closed, nobody waiting, a request admitted at once, and the budget (if any)
        not short by the admission's measure (:data:`HOLD_WHEN_FREE_BELOW` of its slots free)."""
        now = self._clock()
        if self._closed or self._queue or self._next_admission_in(now) != 0.0:
            return False
        return not self._budget_short(now)

    def _budget_short(self, now: float) -> bool:
        """True when the budget has fewer free slots than HOLD_WHEN_FREE_BELOW of its limit."""
        if self._limit is None:
            return False
        finished = self._finished
        while finished and finished[0] <= now - self._window:
            finished.popleft()
        free = self._limit - self._pending - len(finished)
        return free < HOLD_WHEN_FREE_BELOW * self._limit

    def _reschedule(self) -> None:
        """Admit whoever can go now, in order; set a timer for when the next one can."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed:
            return
        queue = self._queue
        while queue:
            if queue[0].future.done():  # cancelled or failed while queued
                queue.popleft()
                continue
            now = self._clock()
            delay = self._next_admission_in(now)
            if delay is None:
                return
            if delay > 0:
                self._timer = asyncio.get_running_loop().call_later(delay, self._reschedule)
                return
            # The first waiter in order that may go now: held ones wait for their due time.
            chosen: _Waiter | None = None
            wake: float | None = None
            for waiter in queue:
                if waiter.future.done():
                    continue
                if waiter.held and waiter.key[0] > now:
                    wake = waiter.key[0] if wake is None else min(wake, waiter.key[0])
                    continue
                chosen = waiter
                break
            if chosen is None:
                if wake is not None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(wake - now, self._reschedule)
                return
            queue.remove(chosen)
            chosen.future.set_result(self._admit(now))

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue, self._queue = self._queue, collections.deque()
        for waiter in queue:
            if not waiter.future.done() and not waiter.future.get_loop().is_closed():
                waiter.future.set_exception(ClientClosedError("the VoucherifyClient was closed"))


def _order(waiter: _Waiter) -> tuple[float, int]:
    return waiter.key


def _finite_positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
