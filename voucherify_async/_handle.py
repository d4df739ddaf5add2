"""AsyncActionHandle: an awaitable that resolves when a background poll sees a terminal status."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final

from . import instrumentation
from ._config import PollPolicy
from ._errors import (
    AsyncActionFailed,
    ClientClosedError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PollTimeout,
    RateLimitError,
    ServerError,
    TransportError,
    WrongEventLoopError,
)
from ._models import AsyncAction, AsyncActionStatus
from ._polling.admission import polling_due
from ._polling.durations import duration_of
from ._polling.schedule import PollSchedule
from ._validate import check_timeout, finite, shown
from .instrumentation import PollEvent, StatusChangeEvent, emit_poll, emit_status_change

if TYPE_CHECKING:
    from ._polling.durations import DurationStats

__all__ = ["AsyncActionHandle"]

logger: Final = logging.getLogger("voucherify_async")

#: Errors a poll survives: the handle logs them and polls again on its schedule.
TRANSIENT_ERRORS: Final = (TransportError, ServerError, RateLimitError)

_END: Final = object()  # marks the end of an updates() stream


class _Subscriber:
    """One updates() iterator: its queue, the event that wakes it, and its pace."""

    __slots__ = ("every", "queue", "wakeup")

    def __init__(self, every: float | None) -> None:
        self.queue: collections.deque[object] = collections.deque()
        self.wakeup = asyncio.Event()
        self.every = every


class AsyncActionHandle:
    """A live view of one async action, polled in the background until it ends.

    Await it for the terminal :class:`AsyncAction` (``action = await handle``). Get one from
    ``client.async_actions.handle(id)``: every waiter of an id shares one handle and one poll.
    """

    __slots__ = (
        "__weakref__",
        "_attempt",
        "_context",
        "_deadline_timer",
        "_fetch",
        "_future",
        "_helper_owned",
        "_id",
        "_last_change",
        "_last_error",
        "_last_poll_at",
        "_latest",
        "_loop",
        "_on_finish",
        "_policy",
        "_schedule",
        "_server_offset",
        "_stall_timer",
        "_started_at",
        "_subscribers",
        "_task",
        "_timer",
        "_type_hint",
        "_waiters",
        "_warm",
    )

    def __init__(
        self,
        action_id: str,
        *,
        fetch: Callable[[str], Awaitable[AsyncAction]],
        policy: PollPolicy,
        on_finish: Callable[[AsyncActionHandle], object] | None = None,
        started_at: float | None = None,
        stats: DurationStats | None = None,
        server_offset: Callable[[], float | None] | None = None,
        action_type: str | None = None,
        warm: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        # The client's warm start (PollPolicy.warm_start): one list() page it fetches once.
        self._warm = warm
        # The type the action is expected to have (a start helper knows it): its learned
        # durations plan the first poll; the first snapshot's type replaces it.
        self._type_hint = action_type
        # When the action was started (loop time), if this client started it: its age is known.
        self._started_at = started_at
        self._loop = loop
        self._id = action_id
        self._fetch = fetch
        self._policy = policy
        self._on_finish = on_finish
        self._future: asyncio.Future[AsyncAction] = loop.create_future()
        self._latest: AsyncAction | None = None
        # updates() subscribers: each a queue of snapshots, an event that wakes it, a pace.
        # (An empty tuple until the first subscriber: a pending handle holds no list.)
        self._subscribers: list[_Subscriber] | tuple[()] = ()
        self._waiters = 0
        self._helper_owned = False  # started by wait()/wait_all()/as_completed(), not by the user
        # Between polls the handle holds only a timer; a task exists while a GET is in flight,
        # so a pending handle costs little memory however long it waits.
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        started = loop.time()
        # The handle starts after its action exists (start() notes when its answer came).
        origin = started if started_at is None else min(started, started_at)
        self._schedule = PollSchedule(
            policy, started=origin, stats=stats, known_start=started_at is not None
        )
        # A lower bound of (server Unix time - time.monotonic()), from the Date headers.
        self._server_offset = server_offset
        self._last_poll_at: float | None = None
        self._attempt = 0
        self._last_error: BaseException | None = None
        self._last_change = started
        # The policy's deadlines are timers of their own: they end the handle on time,
        # whatever is in flight or queued at that moment.
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        if policy.timeout is not None:
            self._deadline_timer = loop.call_at(
                started + policy.timeout, self._expire, "the polling policy's timeout passed"
            )
        self._arm_stall_timer(started)
        # The context the polls run in: with handle hooks (tracing), the handle's own copy of
        # the creator's, in which the hooks ran; without, each timer copies the current one.
        self._context: contextvars.Context | None = None
        if instrumentation.on_handle:
            self._context = contextvars.copy_context()
            self._context.run(instrumentation.emit_handle, self)
        first = self._schedule.first_delay(action_type)
        if first > 0:
            # An action this client started is polled first_poll_after its start.
            origin = started if started_at is None else started_at
            self._timer = loop.call_at(origin + first, self._spawn, context=self._context)
        else:
            self._spawn()

    # -- the state a user reads ---------------------------------------------------------

    @property
    def id(self) -> str:
        """The async action's id."""
        return self._id

    @property
    def policy(self) -> PollPolicy:
        """The polling policy this handle runs under."""
        return self._policy

    @property
    def started_at(self) -> float | None:
        """When this client started the action (event loop time, seconds), or ``None``.

        Set for handles from ``client.async_actions.start()`` and the ``start_...`` helpers;
        ``None`` for an action started elsewhere, whose age is unknown.
        """
        return self._started_at

    @property
    def latest(self) -> AsyncAction | None:
        """The newest snapshot seen, or ``None`` before the first answer."""
        return self._latest

    @property
    def status(self) -> AsyncActionStatus | str | None:
        """The newest status seen (an unknown one stays a plain ``str``), or ``None``."""
        return self._latest.status if self._latest is not None else None

    @property
    def progress(self) -> int | None:
        """The newest progress seen, 0-100, or ``None``."""
        return self._latest.progress if self._latest is not None else None

    def done(self) -> bool:
        """True once the handle has an outcome: terminal snapshot, error, deadline or cancel."""
        return self._future.done()

    def __repr__(self) -> str:
        state = "done" if self.done() else "polling"
        return (
            f"<AsyncActionHandle {self._id!r} {state} "
            f"status={self.status} progress={self.progress}>"
        )

    # -- waiting ------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, AsyncAction]:
        return self.result().__await__()

    async def result(self, timeout: float | None = None) -> AsyncAction:
        """The terminal :class:`AsyncAction`, waiting at most *timeout* seconds (None: no limit).

        *timeout* is a finite number of seconds >= 0 (0: do not wait, answer from what the
        handle has); NaN, infinity or a negative value raise :class:`InvalidArgumentError`.

        Raises :class:`AsyncActionFailed` for a failed action, :class:`PollTimeout` when
        *timeout* passes (the handle keeps polling), the permanent error that ended the handle,
        or :class:`asyncio.CancelledError` when the handle was cancelled. Cancelling the task
        that waits cancels this wait only.
        """
        check_timeout(timeout, "timeout")
        self._check_loop()
        future = self._future
        if future.done():
            return future.result()
        self._waiters += 1
        try:
            if timeout is None:
                return await asyncio.shield(future)
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(future)
            except TimeoutError:
                if future.done():
                    return future.result()
                raise PollTimeout(
                    f"async action {self._id} did not end within {timeout} s "
                    f"(latest status {self.status}, progress {self.progress})",
                    handle=self,
                    latest=self._latest,
                ) from None
        finally:
            self._waiters -= 1

    def cancel(self) -> bool:
        """Stop polling; pending awaiters get :class:`asyncio.CancelledError`.

        Returns False when the handle already had an outcome, True otherwise.
        """
        if self._future.done():
            return False
        self._stop_polling()
        self._future.cancel()
        self._finish()
        return True

    def _check_loop(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise WrongEventLoopError(
                f"the handle for {self._id} belongs to another event loop; await it in the "
                "loop of the client that made it"
            )

    def _stop_polling(self) -> None:
        """Cancel the timers and the poll in flight (its request is dropped at once)."""
        for timer in (self._timer, self._deadline_timer, self._stall_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._deadline_timer = self._stall_timer = None
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _close(self) -> None:
        """The client is closing: end with :class:`ClientClosedError` (not a cancel)."""
        if self._future.done():
            return
        if self._loop.is_closed():
            # Its loop is gone: nothing of it can run again, and nothing can be told.
            self._task = self._timer = self._deadline_timer = self._stall_timer = None
            return
        self._stop_polling()
        self._settle(
            exception=ClientClosedError(
                f"the VoucherifyClient was closed while async action {self._id} was polled"
            )
        )

    def _abandon(self) -> bool:
        """Cancel the handle if a helper started it and nobody waits on it; True if cancelled."""
        return self._helper_owned and self._waiters == 0 and self.cancel()

    def add_done_callback(self, fn: Callable[[AsyncActionHandle], object]) -> None:
        """Call ``fn(handle)`` once, on the event loop, when the handle gets its outcome."""
        self._future.add_done_callback(lambda _: fn(self))

    async def updates(self, every: float | None = None) -> AsyncIterator[AsyncAction]:
        """Each snapshot whose status or progress changed, the newest one seen first.

        *every* (seconds, > 0; default None) is the watcher's pace: while this iterator runs,
        the handle polls at least every *every* seconds (each poll still passes the client's
        budget and concurrency cap), so a progress bar moves smoothly; None keeps the
        policy's schedule. When no watcher with a pace is left, the efficient schedule
        resumes at the next poll.

        Ends after the terminal snapshot (FAILED included: the verdict comes from awaiting
        the handle), or quietly when the handle is cancelled. A permanent error, or the
        policy's deadline, raises here.
        """
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int | float):
                raise InvalidArgumentTypeError(
                    f"every must be a number of seconds or None, got {type(every).__name__}"
                )
            if not finite(every) or every <= 0:
                raise InvalidArgumentError(f"every must be a finite number > 0, got {shown(every)}")
        subscriber = _Subscriber(every)
        queue, wakeup = subscriber.queue, subscriber.wakeup
        if self._latest is not None:
            queue.append(self._latest)
        if self._future.done():
            queue.append(_END)
        if not self._subscribers:
            self._subscribers = []
        assert isinstance(self._subscribers, list)
        self._subscribers.append(subscriber)
        self._waiters += 1
        if every is not None:
            self._hurry(every)
        try:
            while True:
                while not queue:
                    wakeup.clear()
                    await wakeup.wait()
                item = queue.popleft()
                if item is _END:
                    break
                assert isinstance(item, AsyncAction)
                yield item
        finally:
            self._waiters -= 1
            assert isinstance(self._subscribers, list)
            self._subscribers.remove(subscriber)
        future = self._future
        if not future.cancelled() and future.exception() is not None:
            error = future.exception()
            if not isinstance(error, AsyncActionFailed):
                assert error is not None
                raise error

    def _watch_pace(self) -> float | None:
        """The shortest pace of the current updates(every=...) subscribers, or None."""
        paces = [s.every for s in self._subscribers if s.every is not None]
        return min(paces) if paces else None

    def _hurry(self, every: float) -> None:
        """A watcher wants a poll at least every *every* s: bring a later timer forward."""
        timer = self._timer
        if timer is None or self._future.done():
            return  # a poll is in flight (it plans with the new pace) or has not started
        due = (self._last_poll_at if self._last_poll_at is not None else self._loop.time()) + every
        if timer.when() > due:
            timer.cancel()
            self._timer = self._loop.call_at(due, self._spawn, context=self._context)

    # -- the poll -----------------------------------------------------------------------

    def _spawn(self) -> None:
        """Start one poll (a short-lived task) unless the handle already has its outcome."""
        self._timer = None
        if not self._future.done():
            self._task = self._loop.create_task(
                self._poll_once(), name=f"voucherify-async poll {self._id}", context=self._context
            )

    async def _poll_once(self) -> None:
        """One GET, its verdict, and the timer for the next one."""
        answered = False  # False while an exception can only be the GET's own
        try:
            self._attempt += 1
            error: BaseException | None = None
            try:
                # Under a saturated budget the gate admits polls in order of this due time.
                due, young = self._schedule.due(self._loop.time())
                with polling_due(due, defer=young):
                    snapshot: AsyncAction | None = await self._fetch(self._id)
            except TRANSIENT_ERRORS as exc:
                if isinstance(exc, TransportError) and exc.permanent:
                    raise
                snapshot, error = None, exc
                self._last_error = exc
                text = str(exc)  # name the action once: a TransportError's text holds its path
                if self._id not in text:
                    text = f"polling async action {self._id}: {text}"
                logger.warning("%s; will poll again", text)
            answered = True
            now = self._loop.time()
            if snapshot is not None and self._observe(snapshot):
                self._last_change = now
                self._arm_stall_timer(now)
            if snapshot is not None and snapshot.is_terminal:
                event = PollEvent(
                    self._id, self._attempt, snapshot.status, snapshot.progress, 0.0, "done"
                )
                emit_poll(event)
                duration = duration_of(snapshot)
                if duration is not None and not snapshot.is_failed:
                    # What its progress foretold, for the next actions of its type.
                    self._schedule.ended(
                        now, duration, snapshot.type, self._created_on_loop_clock()
                    )
                if snapshot.is_failed:
                    self._settle(exception=AsyncActionFailed(snapshot))
                else:
                    self._settle(result=snapshot)
                return
            if (
                snapshot is not None
                and self._warm is not None
                and self._schedule.wants_warm_start(now, snapshot.type)
            ):
                # Unfinished past a short job's time, nothing learned of its type: the
                # client's one warm-start list() teaches it before the next plan.
                pending = self._warm()
                if pending is not None:
                    # At most min_delay, the shortest gap any plan makes: the next poll's
                    # time counts from this poll, so a slow or failing page never lengthens
                    # it (a page that comes later teaches the plans after).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(pending, self._policy.min_delay)
            self._plan_next(now, snapshot, error)
        except asyncio.CancelledError:
            if not self._future.done():
                self._future.cancel()
                self._finish()
            raise
        except Exception as exc:
            # Permanent: 401/403/404/other 4xx, an undecodable body, or a bug of ours.
            if not answered:  # the poll that ended the handle is a poll event too
                emit_poll(PollEvent(self._id, self._attempt, None, None, 0.0, "done", exc))
            self._settle(exception=exc)
        finally:
            self._task = None

    def _plan_next(
        self, now: float, snapshot: AsyncAction | None, error: BaseException | None
    ) -> None:
        self._last_poll_at = now
        in_progress = snapshot is not None and snapshot.status == AsyncActionStatus.IN_PROGRESS
        progress = snapshot.progress if snapshot is not None else None
        delay, reason = self._schedule.next_delay(
            now,
            in_progress,
            progress,
            every=self._watch_pace(),
            action_type=self._latest.type if self._latest is not None else self._type_hint,
            enqueued=snapshot is not None and snapshot.status == AsyncActionStatus.ENQUEUED,
        )
        deadline = self._deadline_timer.when() if self._deadline_timer is not None else None
        if deadline is not None and now + delay >= deadline:
            reason = "deadline"  # the deadline timer ends the handle before this poll
        status = snapshot.status if snapshot is not None else None
        emit_poll(PollEvent(self._id, self._attempt, status, progress, delay, reason, error))
        # From the poll's answer (a warm start may have run since).
        self._timer = self._loop.call_at(now + delay, self._spawn)

    def _created_on_loop_clock(self) -> float | None:
        """The action's ``created_at`` on the loop's clock (through the transport's robust
        server offset), for what the schedule learns when the action ends; None when
        unknown. Plans never use it."""
        latest = self._latest
        offset = self._server_offset() if self._server_offset is not None else None
        if latest is None or latest.created_at is None or offset is None:
            return None
        created_monotonic = latest.created_at.timestamp() - offset
        return created_monotonic + (self._loop.time() - time.monotonic())

    def _arm_stall_timer(self, last_change: float) -> None:
        stall = self._policy.stall_timeout
        if stall is None:
            return
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        self._stall_timer = self._loop.call_at(
            last_change + stall, self._expire, f"no change in status or progress for {stall} s"
        )

    def _expire(self, why: str) -> None:
        """The policy's deadline or stall deadline passed: end with PollTimeout, at once."""
        if self._future.done():
            return
        self._stop_polling()
        error = PollTimeout(
            f"async action {self._id}: {why} "
            f"(latest status {self.status}, progress {self.progress})",
            handle=self,
            latest=self._latest,
        )
        error.__cause__ = self._last_error
        self._settle(exception=error)

    def _observe(self, snapshot: AsyncAction) -> bool:
        """Keep *snapshot*; tell subscribers and hooks when status or progress changed."""
        previous = self._latest
        self._latest = snapshot
        if (
            previous is not None
            and previous.status == snapshot.status
            and previous.progress == snapshot.progress
        ):
            return False
        for subscriber in self._subscribers:
            subscriber.queue.append(snapshot)
            subscriber.wakeup.set()
        emit_status_change(StatusChangeEvent(self._id, previous, snapshot))
        return True

    def _settle(
        self, *, result: AsyncAction | None = None, exception: BaseException | None = None
    ) -> None:
        future = self._future
        if not future.done():
            if exception is not None:
                future.set_exception(exception)
                # A handle nobody awaits must not log "exception was never retrieved".
                future.exception()
            else:
                assert result is not None
                future.set_result(result)
        self._finish()

    def _finish(self) -> None:
        for timer in (self._deadline_timer, self._stall_timer):
            if timer is not None:
                timer.cancel()
        self._deadline_timer = self._stall_timer = None
        for subscriber in self._subscribers:
            subscriber.queue.append(_END)
            subscriber.wakeup.set()
        on_finish, self._on_finish = self._on_finish, None
        if on_finish is not None:
            on_finish(self)

    async def _stopped(self) -> None:
        """Wait until a poll in flight has really ended (used by ``client.close()``)."""
        task = self._task
        if task is not None and not task.done() and not self._loop.is_closed():
            await asyncio.wait([task])
