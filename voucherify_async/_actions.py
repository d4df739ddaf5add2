"""``client.async_actions``: get, list, iterate, and the waiting helpers over handles."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Final, Literal, overload

from yarl import URL

from ._config import PollPolicy
from ._converter import decode_async_action, decode_async_action_list
from ._endpoints import StartActions
from ._errors import (
    ClientClosedError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PollTimeout,
    ResponseDecodeError,
    VoucherifyError,
)
from ._handle import AsyncActionHandle
from ._learning import Learning, LearningSession
from ._models import AsyncAction, AsyncActionList
from ._polling.durations import DurationStats
from ._shared import SharedPoller, SharedPolling
from ._transport import Transport
from ._validate import check_ids, check_timeout, path_segment, shown

__all__ = ["AsyncActions"]

logger: Final = logging.getLogger("voucherify_async")

_COLLECTION: Final = "/v1/async-actions"
_MILLISECOND: Final = dt.timedelta(milliseconds=1)
#: Items of the warm-start page (``PollPolicy.warm_start``): the API's largest, so one
#: request teaches as many types' durations as it can.
WARM_START_PAGE: Final = 100

#: How many ids' request targets (path, URL) a client keeps: a poll asks the same id again
#: and again, and building a URL costs more than the rest of a GET's own work. Past this
#: many ids the oldest is dropped (a few hundred bytes each).
TARGETS_KEPT: Final = 1024
#: Pages in a row that bring no new action before :meth:`AsyncActions.iterate` gives up.
#: An honest server needs at most two (re-asking a millisecond, then stepping past it).
MAX_STALE_PAGES: Final = 3


def action_path(action_id: str) -> str:
    """``/v1/async-actions/<id>`` with the id percent-encoded as exactly one path segment."""
    return f"{_COLLECTION}/{path_segment(action_id, 'an async action id')}"


def format_end_date(end_date: dt.datetime | dt.date | str) -> str:
    """``end_date`` as the API takes it: ISO-8601 UTC with milliseconds and ``Z``, or a date."""
    if isinstance(end_date, dt.datetime):
        if end_date.tzinfo is None:
            raise InvalidArgumentError(
                "end_date must be timezone-aware (a naive datetime is ambiguous)"
            )
        try:
            utc = end_date.astimezone(dt.UTC)
        except OverflowError:
            raise InvalidArgumentError(
                f"end_date {shown(end_date)} is past the years 1-9999 in UTC"
            ) from None
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(end_date, dt.date):
        return end_date.isoformat()
    if isinstance(end_date, str) and end_date:
        try:
            end_date.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                "end_date must be valid text (it holds a lone surrogate)"
            ) from None
        return end_date
    raise InvalidArgumentTypeError(
        "end_date must be a datetime, a date or a non-empty ISO-8601 string"
    )


class AsyncActions(StartActions):
    """The async actions API of one client. Reach it as ``client.async_actions``.

    Read actions (:meth:`get`, :meth:`list`, :meth:`iterate`), wait for them (:meth:`handle`,
    :meth:`wait`, :meth:`wait_all`, :meth:`as_completed`), and start them (:meth:`start` and
    one ``start_...`` or ``delete_...`` helper per endpoint).
    """

    def __init__(
        self,
        transport: Transport,
        default_policy: PollPolicy,
        *,
        shared: SharedPolling | None = None,
        account: str | None = None,
        learning: Learning | None = None,
    ) -> None:
        self._transport = transport
        self._default_policy = default_policy
        self._handles: dict[str, AsyncActionHandle] = {}
        self._closing = False
        # Polls shared with other processes (opt-in): handles fetch through it instead.
        self._shared: SharedPoller | None = (
            None
            if shared is None
            else shared.poller(get=self._poll_raw, account=account, wake=self._wake)
        )
        self._durations = DurationStats()
        # Made once and shared by every handle (a bound method or closure per handle would
        # cost a pending handle about 330 bytes more).
        self._offset: Callable[[], float | None] = lambda: self._transport.server_offset
        self._on_finish: Callable[[AsyncActionHandle], None] = self._forget
        self._poll_fetch: Callable[[str], Awaitable[AsyncAction]] = (
            self._poll if self._shared is None else self._shared.fetch
        )
        # The warm start's list() (PollPolicy.warm_start): at most one per client.
        self._warming: asyncio.Task[None] | None = None
        self._warm: Callable[[], Awaitable[None] | None] = self._warm_start
        # Learned durations shared with other processes (opt-in): loaded once, merged as learned.
        self._learning: LearningSession | None = (
            None if learning is None else learning.session(self._durations, account=account)
        )
        self._loading: asyncio.Task[None] | None = None
        self._targets: dict[str, tuple[str, URL]] = {}  # action id -> (path, URL)

    @property
    def durations(self) -> DurationStats:
        """What this client learned of how long each type of action takes.

        Every terminal snapshot a ``get()``, a handle or a ``list()`` sees is counted (bounded
        memory). Start warm with ``durations.learn_from_list(page.async_actions)`` or
        ``durations.update(saved)`` where *saved* came from ``durations.to_dict()``.
        """
        return self._durations

    def _warm_start(self) -> Awaitable[None] | None:
        """The client's warm start, for a handle whose schedule wants one: the one
        ``list()`` page it fetches (made now unless made before), to await; None when there
        is none to wait for (made and over, state given by the user, closing, or the gate
        has no room for a request nobody asked for)."""
        task = self._warming
        if task is None:
            if self._closing or self._durations.given or not self._transport.gate.has_room():
                return None
            task = self._warming = asyncio.get_running_loop().create_task(
                self._warm_page(), name="voucherify-async warm start"
            )
        return None if task.done() else asyncio.shield(task)

    async def _warm_page(self) -> None:
        """One ``list()`` page, for the durations it teaches; a failure only logs."""
        try:
            page = await self.list(limit=WARM_START_PAGE)
        except (VoucherifyError, ValueError) as exc:  # ClientClosedError too: nothing to learn
            logger.info("warm start: the list() page failed (%s); polling without it", exc)
        else:
            logger.debug("warm start: learned from %d listed actions", len(page.async_actions))

    # -- plain requests -----------------------------------------------------------------

    async def get(self, action_id: str) -> AsyncAction:
        """One ``GET /v1/async-actions/{id}``: the action as it is now, with its typed result.

        Raises :class:`InvalidArgumentError` (a ``ValueError``) for an empty id, before any
        request; :class:`NotFoundError` for an unknown one; and the other documented errors
        after retries. When the server has paused the client for longer than a call waits
        (two minutes), it raises :class:`RateLimitError` with ``retry_at`` at once.
        """
        path, url = self._target(action_id)
        status, body = await self._transport.get(url, path=path)
        return self._decoded(action_id, status, body)

    async def _poll(self, action_id: str) -> AsyncAction:
        """A handle's GET: it waits out server pauses (the handle has deadlines of its own)."""
        path, url = self._target(action_id)
        status, body = await self._transport.get(url, path=path, patient=True)
        return self._decoded(action_id, status, body)

    async def _poll_raw(self, action_id: str) -> tuple[AsyncAction, bytes]:
        """A handle's GET with the body it came from (shared polls publish it)."""
        path, url = self._target(action_id)
        status, body = await self._transport.get(url, path=path, patient=True)
        return self._decoded(action_id, status, body), body

    def _target(self, action_id: str) -> tuple[str, URL]:
        """The path and URL of *action_id* (checked, encoded); a typed error for a bad id."""
        targets = self._targets
        if type(action_id) is str:  # a plain str hashes and compares as itself: cacheable
            target = targets.get(action_id)
            if target is not None:
                return target
        path = action_path(action_id)
        target = (path, URL(self._transport.root + path, encoded=True))
        if type(action_id) is str:
            if len(targets) >= TARGETS_KEPT:
                del targets[next(iter(targets))]  # the oldest added
            targets[action_id] = target
        return target

    def _decoded(self, action_id: str, status: int, body: bytes) -> AsyncAction:
        """The action in *body*, which must be *action_id*'s; learned from when terminal."""
        action = decode_async_action(body, status=status)
        if action.id != action_id:
            raise ResponseDecodeError(
                f"asked for async action {action_id!r}, the response holds {action.id!r}",
                status=status,
                body=body,
                path="$.id",
            )
        if self._durations.learn(action) and self._learning is not None:
            self._learning.learned()
        return action

    async def list(
        self, limit: int = 50, end_date: dt.datetime | dt.date | str | None = None
    ) -> AsyncActionList:
        """One ``GET /v1/async-actions``: up to *limit* (1-100, default 50) actions, newest first.

        *end_date* (a timezone-aware datetime, a date, or the API's own string) keeps only the
        actions scheduled before it. Items carry no ``result``. A bad *limit* or *end_date* is
        :class:`InvalidArgumentError` (also a ``ValueError``) before any request.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidArgumentError(f"limit must be an integer from 1 to 100, got {limit!r}")
        query = {"limit": str(limit)}
        if end_date is not None:
            query["end_date"] = format_end_date(end_date)
        transport = self._transport
        url = URL(transport.root + _COLLECTION, encoded=True).with_query(query)
        status, body = await transport.get(url, path=_COLLECTION)
        page = decode_async_action_list(body, status=status)
        self._durations.learn_from_list(page.async_actions)
        return page

    async def iterate(
        self, end_date: dt.datetime | dt.date | str | None = None, *, page_size: int = 100
    ) -> AsyncIterator[AsyncAction]:
        """Every action scheduled before *end_date* (default: all), newest first, page by page.

        The API has no cursor: each next page is asked with ``end_date`` one millisecond after
        the oldest ``created_at`` of the page before, and ids already yielded are dropped, so
        nothing is repeated, and nothing is skipped unless more than *page_size* actions share
        one millisecond (then a WARNING is logged). *page_size* is 1-100 (default 100).

        Every request moves forward: a page that brings nothing new moves ``end_date`` strictly
        back. A server whose pages do not move at all (one that ignores ``end_date``) ends the
        iteration with :class:`ResponseDecodeError` after
        ``MAX_STALE_PAGES`` (3) such pages in a row, instead of asking the same page forever.
        """
        seen: set[str] = set()
        cursor: dt.datetime | dt.date | str | None = end_date
        previous: dt.datetime | None = None  # the cursor of the last request, when we chose it
        stale = 0
        warned: set[dt.datetime] = set()
        while True:
            page = await self.list(limit=page_size, end_date=cursor)
            fresh = 0
            for item in page.async_actions:
                if item.id not in seen:  # also drops an id repeated within one page
                    seen.add(item.id)
                    fresh += 1
                    yield item
            if not page.has_more or not page.async_actions:
                return
            dated = [item.created_at for item in page.async_actions if item.created_at is not None]
            if not dated:
                logger.warning("async actions list page without created_at; cannot page further")
                return
            oldest = min(dated)
            if fresh:
                stale = 0
                # Ask the oldest millisecond again (inclusive): its other actions come next.
                nxt = _shifted(oldest, _MILLISECOND) or oldest  # 9999-12-31: no later one
                if previous is not None:
                    nxt = min(nxt, previous)
            else:
                stale += 1
                if stale >= MAX_STALE_PAGES:
                    raise ResponseDecodeError(
                        f"async actions list: {stale} pages in a row brought no new action "
                        f"(end_date {format_end_date(previous or oldest)}); the server does not "
                        "page by end_date, so iterate() stops here",
                        status=200,
                        path="$.async_actions",
                    )
                # Nothing new: every action of the oldest millisecond we can reach is seen.
                # Step strictly back, so the next request is never the same one again.
                back = None if previous is None else _shifted(previous, -_MILLISECOND)
                if previous is not None and back is None:
                    return  # past the year 1: nothing can be older
                nxt = oldest if back is None else min(oldest, back)
                crowded = len(page.async_actions) >= page_size and max(dated) == oldest
                if crowded and oldest not in warned:  # a full page of one millisecond
                    warned.add(oldest)
                    logger.warning(
                        "more than %d async actions share created_at %s; iterate() moves past "
                        "that millisecond and may skip some of them (use a larger page_size)",
                        page_size,
                        format_end_date(oldest),
                    )
            previous = cursor = nxt

    # -- handles ------------------------------------------------------------------------

    def handle(self, action_id: str, policy: PollPolicy | None = None) -> AsyncActionHandle:
        """The live handle for *action_id*, starting one (and its polling) if there is none.

        *policy* applies only when a handle is started (default: the client's poll_policy).
        Must be called with an event loop running.
        """
        handle = self._handle(action_id, policy)
        handle._helper_owned = False  # the user holds it now: helpers must not cancel it
        return handle

    def _handle(self, action_id: str, policy: PollPolicy | None) -> AsyncActionHandle:
        action_path(action_id)  # validate before any work
        if self._closing:
            raise ClientClosedError("this VoucherifyClient is closed")
        self._transport.check_loop()
        self._start_loading()
        handle = self._handles.get(action_id)
        if handle is None or handle.done():
            handle = AsyncActionHandle(
                action_id,
                fetch=self._poll_fetch,
                policy=policy if policy is not None else self._default_policy,
                on_finish=self._on_finish,
                stats=self._durations,
                server_offset=self._offset,
                warm=self._warm,
            )
            self._handles[action_id] = handle
            handle._helper_owned = True
        return handle

    def _adopt(
        self,
        action_id: str,
        policy: PollPolicy | None,
        started_at: float,
        action_type: str | None = None,
    ) -> AsyncActionHandle:
        """The user's handle for an action this client just started (at loop time
        *started_at*), of *action_type* if known."""
        if self._closing:
            raise ClientClosedError(
                f"async action {action_id} was started, but the client was closed before its "
                "handle was made: follow it with another client"
            )
        self._start_loading()
        handle = self._handles.get(action_id)
        if handle is None or handle.done():
            handle = AsyncActionHandle(
                action_id,
                # The same patient poll as handle()'s: it waits out server pauses.
                fetch=self._poll_fetch,
                policy=policy if policy is not None else self._default_policy,
                on_finish=self._on_finish,
                started_at=started_at,
                stats=self._durations,
                server_offset=self._offset,
                action_type=action_type,
                warm=self._warm,
            )
            self._handles[action_id] = handle
        handle._helper_owned = False
        return handle

    async def _load_learned(self) -> None:
        """Load what the fleet learned (once; ``async with`` the client waits for it)."""
        if self._learning is None:
            return
        self._start_loading()
        assert self._loading is not None
        await asyncio.shield(self._loading)

    def _start_loading(self) -> None:
        """A client used without ``async with`` loads in the background at its first handle
        (that handle may start cold)."""
        if self._learning is not None and self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(
                self._learning.load(), name="voucherify-async load learned"
            )

    def _wake(self, action_id: str) -> None:
        """Shared polls: another process's snapshot of *action_id* arrived; fetch it now."""
        handle = self._handles.get(action_id)
        if handle is not None and not handle.done():
            handle._hurry(0.0)

    def _forget(self, handle: AsyncActionHandle) -> None:
        if self._learning is not None:
            self._learning.learned()  # its end taught the schedule something
        if self._handles.get(handle.id) is handle:
            del self._handles[handle.id]
            if self._shared is not None:
                self._shared.done(handle.id)

    def _helper_handles(
        self, ids_or_handles: Iterable[str | AsyncActionHandle], policy: PollPolicy | None
    ) -> builtins.list[AsyncActionHandle]:
        handles: builtins.list[AsyncActionHandle] = []
        try:
            for item in ids_or_handles:
                handles.append(
                    item if isinstance(item, AsyncActionHandle) else self._handle(item, policy)
                )
        except BaseException:
            for handle in handles:
                handle._abandon()
            raise
        return handles

    async def wait(
        self, action_id: str, timeout: float | None = None, *, policy: PollPolicy | None = None
    ) -> AsyncAction:
        """Wait for *action_id* to end and return the terminal action: ``handle`` + ``await``.

        Raises :class:`PollTimeout` after *timeout* seconds (None: no limit; 0: do not wait;
        NaN, infinite or negative: :class:`InvalidArgumentError`),
        :class:`AsyncActionFailed` when the action failed. A handle this call started is
        cancelled when it returns or raises and nobody else waits on it.
        """
        check_timeout(timeout)
        handles = self._helper_handles([action_id], policy)
        try:
            return await handles[0].result(timeout)
        finally:
            await _release(handles)

    @overload
    async def wait_all(
        self,
        ids: Iterable[str | AsyncActionHandle],
        timeout: float | None = ...,
        return_exceptions: Literal[False] = ...,
        *,
        policy: PollPolicy | None = ...,
    ) -> builtins.list[AsyncAction]: ...

    @overload
    async def wait_all(
        self,
        ids: Iterable[str | AsyncActionHandle],
        timeout: float | None = ...,
        return_exceptions: bool = ...,
        *,
        policy: PollPolicy | None = ...,
    ) -> builtins.list[AsyncAction | BaseException]: ...

    async def wait_all(
        self,
        ids: Iterable[str | AsyncActionHandle],
        timeout: float | None = None,
        return_exceptions: bool = False,
        *,
        policy: PollPolicy | None = None,
    ) -> builtins.list[AsyncAction] | builtins.list[AsyncAction | BaseException]:
        """Wait for every action (ids or handles) and return their terminal actions, in order.

        The first failure raises (like :func:`asyncio.gather`) unless *return_exceptions*, which
        puts each exception, a :class:`PollTimeout` included, in the list in its place.
        *timeout* (seconds, None: no limit) bounds the whole wait. *ids* must be an iterable
        of ids or handles: a bare ``str`` is :class:`InvalidArgumentTypeError` (a ``TypeError``).
        """
        check_timeout(timeout)
        handles = self._helper_handles(check_ids(ids), policy)
        try:
            futures = [h._future for h in handles]
            for h in handles:
                h._waiters += 1
            try:
                pending = {f for f in futures if not f.done()}
                when: Literal["FIRST_EXCEPTION", "ALL_COMPLETED"] = (
                    "ALL_COMPLETED" if return_exceptions else "FIRST_EXCEPTION"
                )
                if pending:
                    _, pending = await asyncio.wait(pending, timeout=timeout, return_when=when)
                if not return_exceptions:
                    for f in futures:
                        if f.done() and (f.cancelled() or f.exception() is not None):
                            return [f.result()]  # raises it
                    if pending:
                        raise _timeout(handles, timeout)
                    return [f.result() for f in futures]
                results: builtins.list[AsyncAction | BaseException] = []
                for h, f in zip(handles, futures, strict=True):
                    if not f.done():
                        results.append(_timeout([h], timeout))
                    elif f.cancelled():
                        results.append(asyncio.CancelledError())
                    else:
                        error = f.exception()
                        results.append(error if error is not None else f.result())
                return results
            finally:
                for h in handles:
                    h._waiters -= 1
        finally:
            await _release(handles)

    async def as_completed(
        self,
        ids_or_handles: Iterable[str | AsyncActionHandle],
        timeout: float | None = None,
        *,
        policy: PollPolicy | None = None,
    ) -> AsyncIterator[AsyncActionHandle]:
        """Yield each handle as it gets its outcome; await the handle for its action or error.

        Raises :class:`PollTimeout` when *timeout* seconds (None: no limit) pass first; a bare
        ``str`` for *ids_or_handles* is :class:`InvalidArgumentTypeError`. Handles
        this call started are cancelled when the loop ends early, unless someone else waits on
        them; wrap it in :func:`contextlib.aclosing` to have that happen at once on ``break``.
        """
        check_timeout(timeout)
        handles = self._helper_handles(check_ids(ids_or_handles, "ids_or_handles"), policy)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        ready: asyncio.Queue[AsyncActionHandle] = asyncio.Queue()
        callbacks: builtins.list[Callable[[asyncio.Future[AsyncAction]], None]] = []
        for h in handles:
            h._waiters += 1
            callback = _enqueue_on_done(ready, h)
            h._future.add_done_callback(callback)
            callbacks.append(callback)
        try:
            for _ in range(len(handles)):
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    async with asyncio.timeout(remaining):
                        handle = await ready.get()
                except TimeoutError:
                    left = [h for h in handles if not h.done()]
                    raise _timeout(left, timeout) from None
                yield handle
        finally:
            for h, callback in zip(handles, callbacks, strict=True):
                h._future.remove_done_callback(callback)
                h._waiters -= 1
            await _release(handles)

    async def _close(self) -> None:
        self._closing = True
        handles = builtins.list(self._handles.values())
        for handle in handles:
            handle._close()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for handle in handles:
            if handle._loop is running:
                await handle._stopped()
        self._handles.clear()
        warming = self._warming
        if warming is not None and not warming.done() and not warming.get_loop().is_closed():
            warming.cancel()
            if warming.get_loop() is running:
                await asyncio.wait([warming])
        if self._shared is not None and running is not None:
            await self._shared.aclose()
        if self._learning is not None and running is not None:
            if self._loading is not None and not self._loading.done():
                self._loading.cancel()
            await self._learning.aclose()


def _enqueue_on_done(
    queue: asyncio.Queue[AsyncActionHandle], handle: AsyncActionHandle
) -> Callable[[asyncio.Future[AsyncAction]], None]:
    def callback(_: object) -> None:
        queue.put_nowait(handle)

    return callback


async def _release(handles: Sequence[AsyncActionHandle]) -> None:
    """Cancel the handles a helper started that nobody waits on any more, and let them stop."""
    cancelled = [handle for handle in handles if handle._abandon()]
    for handle in cancelled:
        await handle._stopped()


def _timeout(handles: Sequence[AsyncActionHandle], timeout: float | None) -> PollTimeout:
    first = handles[0] if handles else None
    ids = ", ".join(h.id for h in handles[:5]) + (" ..." if len(handles) > 5 else "")
    return PollTimeout(
        f"{len(handles)} async action(s) did not end within {timeout} s: {ids}",
        handle=first,
        latest=first.latest if first is not None else None,
    )


def _shifted(when: dt.datetime, delta: dt.timedelta) -> dt.datetime | None:
    """*when* + *delta*, or None past the years 1-9999 that a datetime holds."""
    try:
        return when + delta
    except OverflowError:
        return None
