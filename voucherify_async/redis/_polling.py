"""RedisPolling: one poll per action id across processes; the others follow a Redis Stream.

How it works
------------
A handle fetches each snapshot through its client's poller. For an id, one process leads: it
holds a lease in Redis (``SET NX PX``, renewed by a background task while its handle lives,
released when it ends; renewal and release compare the token first, like redis-py's lock),
performs the GET, and appends the body to the id's Stream (``XADD ... MAXLEN ~``) through a
script that checks the lease atomically and stamps the entry with the leader's fencing token
(a counter that grows with each new leader). A leader paused past its lease can therefore never
publish: its script finds another token. Followers never GET: a fetch returns the newest entry
after the last one they returned, waiting for the next one with ``XREAD BLOCK`` (one blocking
read per process for all the ids it follows). When no entry comes for a lease's length, the
follower asks for the lease; once a dead leader's lease has run out it gets it: a follower
takes over within about two leases (plus its handle's own delay between polls).

``await handle``, ``updates()`` and ``result(timeout)`` behave as without sharing: the handle's
schedule, deadlines and errors are its own; only where snapshots come from changes.

Keys expire: an id's keys live *ttl* seconds after its last snapshot (default one hour) and
*linger* seconds (default 60) after its terminal one. If Redis is unreachable, a fetch falls
back to a plain GET of its own (still through the client's budget) and logs one WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis.asyncio

from voucherify_async._converter import decode_async_action
from voucherify_async._models import AsyncAction
from voucherify_async._shared import SharedPoller

from ._budget import UNREACHABLE
from ._scripts import Scripts, as_int, as_text

__all__ = ["RedisPolling"]

logger: Final = logging.getLogger("voucherify_async")

#: Redis calls one poller makes at once: thousands of handles must not take a connection each
#: (redis-py's pool holds 100 by default; the budget and the blocking read need some too).
MAX_CALLS: Final = 32


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisPolling:
    """Polls shared by every process using the same Redis: one GET per action id per poll.

    Pass it as ``VoucherifyClient(shared_polling=RedisPolling(r))``.

    :param r: A ``redis.asyncio.Redis`` client (Redis or Valkey 5 or later).
    :param lease: Seconds a leader's lease lasts without renewal (default 10; renewed every
        third of it): a follower takes over a dead leader's polls within about two leases.
    :param key: Names the account in Redis keys. Default: the client's ``host:app_id``
        (never a token); with an OAuth token, pass one.
    :param prefix: The start of every Redis key (default ``"voucherify-async"``).
    :param ttl: Seconds an id's keys live after its last snapshot (default 3600).
    :param linger: Seconds they live after its terminal snapshot (default 60), for late
        followers.
    :param max_entries: Snapshots kept per id (approximately; default 16).
    :param block: Seconds one blocking read waits when nothing comes (default 2, at most
        half the connection's socket timeout): how often an idle process that follows ids
        asks Redis.
    :param operation_timeout: Seconds one Redis call may take (default 5).
    """

    def __init__(
        self,
        r: redis.asyncio.Redis,
        *,
        lease: float = 10.0,
        key: str | None = None,
        prefix: str = "voucherify-async",
        ttl: float = 3600.0,
        linger: float = 60.0,
        max_entries: int = 16,
        block: float = 2.0,
        operation_timeout: float = 5.0,
    ) -> None:
        for name, value in (
            ("lease", lease), ("ttl", ttl), ("linger", linger), ("block", block),
            ("operation_timeout", operation_timeout),
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an integer >= 1, got {max_entries!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("key must be a non-empty str")
        self.redis = r
        self.lease = float(lease)
        self.key = key
        self.prefix = prefix
        self.ttl = float(ttl)
        self.linger = float(linger)
        self.max_entries = max_entries
        self.block = float(block)
        self.operation_timeout = float(operation_timeout)
        #: GETs performed as leader, and snapshots taken from another process, by all pollers.
        self.led = 0
        self.followed = 0
        #: Redis round trips made by all pollers (scripts, reads): for benchmarks.
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"<RedisPolling lease={self.lease:g} key={self.key!r}>"

    def poller(
        self, *, get: Callable[[str], Awaitable[tuple[AsyncAction, bytes]]], account: str | None
    ) -> SharedPoller:
        """The poller of one client (called by :class:`~voucherify_async.VoucherifyClient`)."""
        name = self.key if self.key is not None else account
        if name is None:
            raise ValueError(
                "RedisPolling needs key= with an OAuth token: there is no app id to name the "
                "account by (and a token is never used as a name)"
            )
        return RedisPoller(self, name, get)


class _Id:
    """What one poller knows of one action id."""

    __slots__ = ("fence", "last", "renewed", "renewer", "token")

    def __init__(self) -> None:
        self.last: str | None = None  # the newest stream entry returned or published here
        self.fence = 0  # the highest fencing token seen: older leaders' entries are ignored
        self.token: str | None = None  # set while this process (believes it) leads the id
        self.renewer: asyncio.Task[None] | None = None
        self.renewed = 0.0  # when the lease was last extended (loop time)


class RedisPoller:
    """One client's shared polls (built by :meth:`RedisPolling.poller`)."""

    def __init__(
        self,
        polling: RedisPolling,
        name: str,
        get: Callable[[str], Awaitable[tuple[AsyncAction, bytes]]],
    ) -> None:
        self._polling = polling
        self._redis = polling.redis
        self._get = get
        self._base = f"{polling.prefix}:poll:{name}"
        self._scripts = Scripts(self._redis, "poll_lead", "poll_publish", "poll_release")
        self._lease_ms = round(polling.lease * 1000)
        self._ttl_ms = round(polling.ttl * 1000)
        self._ids: dict[str, _Id] = {}
        # A blocking read must end before the connection's own socket timeout (redis-py's
        # default is 5 s), or it would count as a failure of Redis.
        block = polling.block
        socket_timeout = self._redis.connection_pool.connection_kwargs.get("socket_timeout")
        if isinstance(socket_timeout, int | float) and socket_timeout > 0:
            block = min(block, socket_timeout / 2)
        self._reader = _Reader(
            polling,
            max(1, round(block * 1000)),
            f"{self._base}:wake:{secrets.token_hex(8)}",
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outage_logged = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the client's, set on first fetch
        self._calls = asyncio.Semaphore(MAX_CALLS)

    def _keys(self, action_id: str) -> tuple[str, str, str]:
        base = f"{self._base}:{{{action_id}}}"  # one hash slot per id (Redis Cluster)
        return f"{base}:lease", f"{base}:fence", f"{base}:stream"

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        async with self._calls:
            self._polling.round_trips += 1
            async with asyncio.timeout(self._polling.operation_timeout):
                return await self._scripts[script](keys=keys, args=args)

    # -- SharedPoller -------------------------------------------------------------------

    async def fetch(self, action_id: str) -> AsyncAction:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            action = await self._fetch(action_id)
        except UNREACHABLE as exc:
            if not self._outage_logged:
                self._outage_logged = True
                logger.warning(
                    "shared polling: Redis is unreachable (%s); this process polls for itself "
                    "until it is back",
                    type(exc).__name__,
                )
            action, _ = await self._get(action_id)
            return action
        if self._outage_logged:
            self._outage_logged = False
            logger.warning("shared polling: Redis is reachable again")
        return action

    def done(self, action_id: str) -> None:
        state = self._ids.pop(action_id, None)
        if state is None:
            return
        self._reader.forget(self._keys(action_id)[2])
        if state.renewer is not None:
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                state.renewer.cancel()
        if state.token is not None and not self._closed:
            self._spawn(self._release(action_id, state.token))

    async def aclose(self) -> None:
        self._closed = True
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._ids.clear()  # another loop: nothing of the client's loop can run here
            return
        for action_id in list(self._ids):
            state = self._ids.pop(action_id)
            if state.renewer is not None:
                state.renewer.cancel()
            if state.token is not None:
                self._spawn(self._release(action_id, state.token))
        await self._reader.aclose()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self._polling.operation_timeout + 1)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    # -- leading and following ----------------------------------------------------------

    async def _fetch(self, action_id: str) -> AsyncAction:
        state = self._ids.setdefault(action_id, _Id())
        lease, fence, stream = self._keys(action_id)
        reader = self._reader
        quiet = False  # no snapshot came for a whole lease: the leader may be gone
        while True:
            if state.token is not None:
                return await self._lead(action_id, state)  # its publish checks the lease
            try_lead = True
            # A snapshot newer than the last one returned here comes first: the reader's (no
            # round trip) while it follows the id, else the stream's newest.
            if reader.follows(stream):
                entry = reader.latest(stream)
                if entry is not None and not self._accept(state, entry):
                    entry = None
                try_lead = quiet  # a leader that publishes is alive: do not ask
            else:
                entry = await self._newest(stream, state)
            if entry is not None:
                return self._follow(entry)
            token = secrets.token_hex(16)
            if try_lead:
                granted = as_int(
                    await self._call(
                        "poll_lead", [lease, fence], [token, self._lease_ms, self._ttl_ms]
                    )
                )
                if granted != 0:
                    if granted > 0:  # a new leadership, with a new fencing token
                        state.token, state.fence = token, granted
                        state.renewed = asyncio.get_running_loop().time()
                        self._start_renewer(action_id, state)
                        reader.forget(stream)
                    return await self._lead(action_id, state)
                state.token = None
            entry = await reader.wait(stream, state.last or "0-0", self._polling.lease)
            quiet = entry is None
            if entry is not None and self._accept(state, entry):
                return self._follow(entry)

    async def _lead(self, action_id: str, state: _Id) -> AsyncAction:
        action, body = await self._get(action_id)
        self._polling.led += 1
        token = state.token
        if token is None:  # the handle ended while the GET was in flight
            return action
        lease, fence, stream = self._keys(action_id)
        entry_id = await self._call(
            "poll_publish",
            [lease, fence, stream],
            [
                token,
                state.fence,
                body,
                self._polling.max_entries,
                self._ttl_ms,
                "1" if action.is_terminal else "0",
                round(self._polling.linger * 1000),
                self._lease_ms,
            ],
        )
        if entry_id:
            state.last = as_text(entry_id)
            state.renewed = asyncio.get_running_loop().time()
        else:
            # Our lease expired (a pause, a slow GET): another process leads now. The snapshot
            # is still good for our own handle; it just was not published.
            state.token = None
        return action

    def _follow(self, entry: tuple[str, dict[Any, Any]]) -> AsyncAction:
        self._polling.followed += 1
        return decode_async_action(_field(entry[1], "body"), status=200)

    def _accept(self, state: _Id, entry: tuple[str, dict[Any, Any]]) -> bool:
        """Keep *entry* unless an older leader (a lower fencing token) wrote it."""
        entry_id, fields = entry
        fence = int(_field(fields, "fence"))
        if state.last is not None and _entry_key(entry_id) <= _entry_key(state.last):
            return False
        state.last = entry_id
        if fence < state.fence:
            return False
        state.fence = fence
        return True

    async def _newest(self, stream: str, state: _Id) -> tuple[str, dict[Any, Any]] | None:
        low = "-" if state.last is None else f"({state.last}"
        async with self._calls:
            self._polling.round_trips += 1
            async with asyncio.timeout(self._polling.operation_timeout):
                entries: Any = await self._redis.xrevrange(stream, "+", low, count=1)
        if not entries:
            if state.last is None:
                state.last = "0-0"
            return None
        entry_id, fields = entries[0]
        entry = (as_text(entry_id), fields)
        return entry if self._accept(state, entry) else None

    # -- the lease ----------------------------------------------------------------------

    def _start_renewer(self, action_id: str, state: _Id) -> None:
        if state.renewer is None or state.renewer.done():
            state.renewer = asyncio.get_running_loop().create_task(
                self._renew(action_id, state), name=f"voucherify-async lease {action_id}"
            )

    async def _renew(self, action_id: str, state: _Id) -> None:
        """Extend the lease a third of it after it was last extended (each publish extends it
        too), while this process leads the id."""
        lease, fence, _ = self._keys(action_id)
        loop = asyncio.get_running_loop()
        while True:
            delay = state.renewed + self._polling.lease / 3 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            state.renewed = loop.time()
            token = state.token
            if token is None:
                return
            try:
                still = as_int(
                    await self._call(
                        "poll_lead", [lease, fence], [token, self._lease_ms, self._ttl_ms]
                    )
                )
            except UNREACHABLE:
                continue  # the publish script will tell whether we still lead
            if still == 0:
                state.token = None
            elif still > 0:
                state.fence = still  # it had expired and we took it again: a new leadership

    async def _release(self, action_id: str, token: str) -> None:
        with contextlib.suppress(*UNREACHABLE):
            await self._call("poll_release", [self._keys(action_id)[0]], [token])

    def _spawn(self, work: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or loop is not self._loop:
            # Closed from another loop (or none): the Redis connections belong to the client's
            # loop. The lease expires by itself within `lease` seconds.
            work.close()
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _field(fields: dict[Any, Any], name: str) -> Any:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        raise KeyError(name)
    return value


class _Reader:
    """One blocking ``XREAD`` for every id a poller follows; keeps each id's newest entry.

    Once a stream is followed it stays in the read until :meth:`forget` (its handle ended, or
    this process leads it), so a handle that comes back for the next snapshot finds it
    buffered, or waits on the read already in progress. A stream that the read in progress
    does not cover yet is added by appending to this reader's own wake stream, which every
    read also covers. (Many streams in one read: a single Redis, not a Cluster.)
    """

    def __init__(self, polling: RedisPolling, block_ms: int, wake_key: str) -> None:
        self._polling = polling
        self._redis = polling.redis
        self._block_ms = block_ms
        self._wake_key = wake_key
        self._follow: dict[str, str] = {}  # stream -> the last entry id read
        self._latest: dict[str, tuple[str, dict[Any, Any]]] = {}  # stream -> newest entry
        self._waiting: dict[str, asyncio.Future[tuple[str, dict[Any, Any]]]] = {}
        self._reading: dict[str, str] | None = None  # the streams of the read in progress
        self._task: asyncio.Task[None] | None = None
        self._wakes: set[asyncio.Task[None]] = set()

    def follows(self, stream: str) -> bool:
        return stream in self._follow

    def latest(self, stream: str) -> tuple[str, dict[Any, Any]] | None:
        return self._latest.get(stream)

    def forget(self, stream: str) -> None:
        self._follow.pop(stream, None)
        self._latest.pop(stream, None)

    async def wait(
        self, stream: str, last: str, timeout: float
    ) -> tuple[str, dict[Any, Any]] | None:
        """The newest entry of *stream* after *last*, or None after *timeout* seconds."""
        entry = self._latest.get(stream)
        if entry is not None and _entry_key(entry[0]) > _entry_key(last):
            return entry
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[str, dict[Any, Any]]] = loop.create_future()
        self._waiting[stream] = future
        self._follow.setdefault(stream, last)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="voucherify-async stream reader")
        elif self._reading is not None and stream not in self._reading:
            wake = loop.create_task(self._wake())
            self._wakes.add(wake)
            wake.add_done_callback(self._wakes.discard)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None
        finally:
            if self._waiting.get(stream) is future:
                del self._waiting[stream]

    async def _wake(self) -> None:
        self._polling.round_trips += 1
        with contextlib.suppress(*UNREACHABLE):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1)
                pipe.pexpire(self._wake_key, 60_000)
                await pipe.execute()

    async def _run(self) -> None:
        failures = 0
        try:
            while self._follow:
                streams = dict(self._follow)
                self._reading = streams
                self._polling.round_trips += 1
                try:
                    reply: Any = await self._redis.xread(
                        {**streams, self._wake_key: "$"},  # type: ignore[dict-item]
                        count=16,
                        block=self._block_ms,
                    )
                except UNREACHABLE as exc:
                    failures += 1
                    if failures < 2:  # one slow read is not an outage: read again
                        continue
                    for future in list(self._waiting.values()):
                        if not future.done():
                            future.set_exception(exc)
                    return
                finally:
                    self._reading = None
                failures = 0
                for raw_stream, entries in reply or []:
                    stream = as_text(raw_stream)
                    if not entries or stream not in self._follow:
                        continue
                    entry_id, fields = entries[-1]
                    entry = (as_text(entry_id), fields)
                    self._follow[stream] = entry[0]
                    self._latest[stream] = entry
                    waiter = self._waiting.get(stream)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(entry)
        finally:
            self._reading = None

    async def aclose(self) -> None:
        self._follow.clear()
        task, self._task = self._task, None
        for work in (*self._wakes, task):
            if work is not None and not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
