"""Client-wide pacing: requests in flight, the request budget, and pauses the server demands.

Every HTTP attempt of a client passes one :class:`RequestGate`. The gate is first come,
first served: the caller that has waited longest goes first, so no poll starves.

The budget is exact, not approximate: a request takes a slot when it is sent and the slot is
freed ``window`` seconds after its response *arrived*. The server saw the request somewhere
between those two instants, so no window of ``window`` seconds on the server can hold more
than ``limit`` of our requests, whatever the network latency. (A token bucket of capacity
``limit`` lets ``2 * limit`` through in one window; a counter reset each minute does too.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable

__all__ = ["RequestGate"]


class RequestGate:
    """Admits requests under a concurrency cap, an optional sliding-window budget and pauses.

    *limit* requests per *window* seconds (``None``: no budget of our own); at most
    *concurrency* requests in flight.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        limit: int | None = None,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {concurrency!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"requests_per_minute must be >= 1 or None, got {limit!r}")
        if window <= 0:
            raise ValueError(f"the budget window must be > 0 seconds, got {window!r}")
        self._clock = clock
        self._concurrency = concurrency
        self._limit = limit
        self._window = window
        self._in_flight = 0
        # Arrival times of finished requests still inside the window, oldest first.
        self._finished: collections.deque[float] = collections.deque()
        self._pending = 0  # budget slots taken by requests still in flight
        self._pause_until = 0.0
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def paused_for(self) -> float:
        """Seconds left of the current server-demanded pause (0 when none)."""
        return max(0.0, self._pause_until - self._clock())

    @property
    def waiting(self) -> int:
        """Callers waiting for admission."""
        return len(self._queue)

    def pause(self, seconds: float) -> None:
        """Admit nothing for *seconds* from now (extends, never shortens, a pause)."""
        until = self._clock() + seconds
        if until > self._pause_until:
            self._pause_until = until
            self._reschedule()

    async def acquire(self) -> None:
        """Wait for one admission; pair every successful call with :meth:`release`."""
        if not self._queue and self._admissible():
            self._admit()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        self._reschedule()
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Admitted, then cancelled before we could use it: give the admission back.
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(waiter)
                self._reschedule()
            raise

    def release(self) -> None:
        """Give back an admission: the request has its whole response (or failed)."""
        self._in_flight -= 1
        if self._limit is not None:
            self._pending -= 1
            self._finished.append(self._clock())
        self._reschedule()

    def _admit(self) -> None:
        self._in_flight += 1
        if self._limit is not None:
            self._pending += 1

    def _admissible(self) -> bool:
        return self._next_admission_in() == 0.0

    def _next_admission_in(self) -> float | None:
        """0 when a request may start now; seconds until one may; None until a release."""
        now = self._clock()
        if self._pause_until > now:
            return self._pause_until - now
        if self._in_flight >= self._concurrency:
            return None
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

    def _reschedule(self) -> None:
        """Admit whoever can go now, in order; set a timer for when the next one can."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            waiter = self._queue[0]
            if waiter.done():  # cancelled while queued
                self._queue.popleft()
                continue
            delay = self._next_admission_in()
            if delay is None:
                return
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(delay, self._reschedule)
                return
            self._queue.popleft()
            self._admit()
            waiter.set_result(None)

    def close(self) -> None:
        """Stop the timer; queued callers are cancelled by their own tasks' cancellation."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
