"""RedisPolling: one poll per action id across processes; the others follow a Redis Stream.

How it works
------------
A handle fetches each snapshot through its client's poller. For an id, one process leads: it
holds a lease in Redis (``SET NX PX``, renewed by a background task while its handle lives,
released when it ends; renewal and release compare the token first, like redis-py's lock),
performs the GET, and appends the body to the id's Stream (``XADD ... MAXLEN ~``) through a
script that checks the lease atomically and stamps the entry with the leader's fencing token
(Redis's clock in microseconds, so it grows with each new leader even across a Redis restarted
empty). A leader paused past its lease can therefore never publish: its script finds another
token. The same script pushes the snapshot on the account's Pub/Sub channel, to which every
process subscribes once. Followers never GET: a fetch returns the newest snapshot after the
last one they returned (its first look at an id reads the Stream, later ones wait for pushes);
a snapshot that arrives while a follower's handle sleeps wakes that handle at once, so
followers see a snapshot within milliseconds of its publication. A snapshot pushed while a
process's subscription was down is read back from the Streams when it is up. When no entry
comes for a lease's length, the follower asks for the lease; once a dead leader's lease has run
out it gets it: a follower takes over within about two leases (plus its handle's own delay
between polls).
A leader whose own GETs fail (HANDOVER_AFTER polls in a row) steps down and tells the
followers, so a healthy process takes over at once. A follower that sees a fencing token lower
than one it took (Redis lost state) follows the new leader instead of ignoring it.

Redis round trips: a leader's GET costs one script (the publish, which also extends its lease
and pushes the snapshot); a process's first look at an id one more (it leads, or takes the
newest snapshot); followers receive pushes without asking; the leases of ids polled less often
than every third of a lease are renewed all together, one script per process.

``await handle``, ``updates()`` and ``result(timeout)`` behave as without sharing: the handle's
schedule, deadlines and errors are its own; only where snapshots come from changes.

Every key of an account shares one hash tag (Redis Cluster: one slot, so a script or a
pipeline may name several keys). Keys expire: an id's keys live *ttl* seconds after its
last snapshot (default one hour) and *linger* seconds (default 60) after its terminal one. If
Redis is unreachable, a fetch falls back to a plain GET of its own (still through the client's
budget) and logs one WARNING; a leader whose publish fails keeps its snapshot (one GET per
poll).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis.asyncio

from voucherify_async._converter import decode_async_action
from voucherify_async._errors import ResponseDecodeError
from voucherify_async._models import AsyncAction
from voucherify_async._shared import SharedPoller

from ._budget import UNREACHABLE
from ._scripts import Scripts, as_int, as_text, key_base
from ._stream import Entry, Reader, entry_key, field, is_handover

__all__ = ["RedisPolling"]

logger: Final = logging.getLogger("voucherify_async")

#: Redis calls one poller makes at once: thousands of handles must not take a connection each
#: (redis-py's pool holds 100 by default; the budget and the subscriptions need some too).
MAX_CALLS: Final = 32


#: A leader's own GETs of an id that may fail in a row before it hands the poll over. Each
#: failed poll already spent the client's retries; one is enough to suspect this process
#: (a 503 only it gets, broken egress), and stepping down costs nothing when every process
#: fails alike: one leader at a time still polls. Chosen on the sick-leader test (a leader
#: that gets only 503s), where a second failed poll only delays the fleet by one poll.
HANDOVER_AFTER: Final = 1


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
    :param block: Unused since snapshots are pushed (Pub/Sub) rather than read with a
        blocking ``XREAD``; still accepted (and checked) so that existing code runs.
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
        #: Redis round trips made by all pollers, by kind (each script's name, ``read``,
        #: ``wake``, ``newest``): for benchmarks.
        self.trips: collections.Counter[str] = collections.Counter()
        #: Seconds from a snapshot's publication (its stream entry id: Redis's clock) to a
        #: following handle taking it, for the newest 10,000 snapshots that arrived while
        #: their handle followed the id: for benchmarks (meaningful where Redis and this
        #: process share a clock, as on one machine).
        self.lags: collections.deque[float] = collections.deque(maxlen=10_000)

    @property
    def round_trips(self) -> int:
        """Redis round trips made by all pollers (scripts, reads): for benchmarks."""
        return self.trips.total()

    def __repr__(self) -> str:
        return f"<RedisPolling lease={self.lease:g} key={self.key!r}>"

    def poller(
        self,
        *,
        get: Callable[[str], Awaitable[tuple[AsyncAction, bytes]]],
        account: str | None,
        wake: Callable[[str], None] | None = None,
    ) -> SharedPoller:
        """The poller of one client (called by :class:`~voucherify_async.VoucherifyClient`)."""
        name = self.key if self.key is not None else account
        if name is None:
            raise ValueError(
                "RedisPolling needs key= with an OAuth token: there is no app id to name the "
                "account by (and a token is never used as a name)"
            )
        return RedisPoller(self, name, get, wake)


class _Id:
    """What one poller knows of one action id."""

    __slots__ = ("ended", "failures", "fence", "last", "renewed", "token", "yielded")

    def __init__(self) -> None:
        self.last: str | None = None  # the newest stream entry returned or published here
        self.fence = 0  # the fencing token of the newest snapshot returned or published here
        self.token: str | None = None  # set while this process (believes it) leads the id
        self.renewed = 0.0  # when the lease was last extended (loop time)
        self.failures = 0  # this process's GETs of the id that failed in a row, as leader
        self.yielded = -math.inf  # when this process last handed the id over (loop time)
        # This process published the terminal snapshot: its lease now lasts as long as the
        # keys (late followers read the end instead of polling again); nothing to release.
        self.ended = False


class _OwnGetFailed(Exception):
    """This process's own GET failed (not Redis): raise its error, never GET again."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class RedisPoller:
    """One client's shared polls (built by :meth:`RedisPolling.poller`)."""

    def __init__(
        self,
        polling: RedisPolling,
        name: str,
        get: Callable[[str], Awaitable[tuple[AsyncAction, bytes]]],
        wake: Callable[[str], None] | None = None,
    ) -> None:
        self._polling = polling
        self._redis = polling.redis
        self._get = get
        # Every key of the account shares one hash tag: one slot on a Redis Cluster, so that
        # one script renews every lease and one pipeline reads back every followed id.
        self._base = key_base(polling.prefix, "poll", name)
        self._scripts = Scripts(
            self._redis, "poll_join", "poll_lead", "poll_publish", "poll_release", "poll_renew"
        )
        self._lease_ms = round(polling.lease * 1000)
        self._ttl_ms = round(polling.ttl * 1000)
        self._ids: dict[str, _Id] = {}
        self._channel = f"{self._base}:snapshots"
        self._reader = Reader(polling, self._channel, wake)
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outage_logged = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the client's, set on first fetch
        self._calls = asyncio.Semaphore(MAX_CALLS)

    def _keys(self, action_id: str) -> tuple[str, str, str]:
        base = f"{self._base}:{action_id}"
        return f"{base}:lease", f"{base}:fence", f"{base}:stream"

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        async with self._calls:
            self._polling.trips[script] += 1
            async with asyncio.timeout(self._polling.operation_timeout):
                return await self._scripts[script](keys=keys, args=args)

    # -- SharedPoller -------------------------------------------------------------------

    async def fetch(self, action_id: str) -> AsyncAction:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        try:
            action = await self._fetch(action_id)
        except _OwnGetFailed as failed:
            raise failed.error from None
        except UNREACHABLE as exc:
            # Redis failed before this process's GET: poll for ourselves this time.
            self._unreachable(exc)
            action, _ = await self._get(action_id)
            return action
        if self._outage_logged:
            self._outage_logged = False
            logger.warning("shared polling: Redis is reachable again")
        return action

    def _unreachable(self, exc: BaseException) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            logger.warning(
                "shared polling: Redis is unreachable (%s); this process polls for itself "
                "until it is back",
                type(exc).__name__,
            )

    def done(self, action_id: str) -> None:
        state = self._ids.pop(action_id, None)
        if state is None:
            return
        self._reader.drop(self._keys(action_id)[2])
        if state.token is not None and not state.ended and not self._closed:
            self._spawn(self._release(action_id, state.token, handover=False))

    async def aclose(self) -> None:
        self._closed = True
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._ids.clear()  # another loop: nothing of the client's loop can run here
            return
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for action_id in list(self._ids):
            state = self._ids.pop(action_id)
            if state.token is not None and not state.ended:
                self._spawn(self._release(action_id, state.token, handover=False))
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
        reader.expect(stream, action_id)  # a snapshot pushed from now on is kept
        loop = asyncio.get_running_loop()
        quiet = False  # no snapshot came for a whole lease (or a handover): the leader is gone
        while True:
            if state.token is not None:
                return await self._lead(action_id, state)  # its publish checks the lease
            # This process just stepped down: a healthy one goes first.
            may_lead = loop.time() - state.yielded >= self._polling.lease
            token = secrets.token_hex(16)
            if reader.follows(stream):
                # A snapshot newer than the last one returned here comes first (no round trip).
                entry = reader.latest(stream)
                if entry is not None and self._accept(state, entry):
                    if not is_handover(entry):
                        return self._follow(entry, live=True)
                    quiet = True  # the leader stepped down: take it now
                if quiet and may_lead:  # a leader that publishes is alive: do not ask
                    granted = as_int(
                        await self._call(
                            "poll_lead", [lease, fence], [token, self._lease_ms, self._ttl_ms]
                        )
                    )
                    if granted > 0:
                        return await self._take(action_id, state, token, granted)
            else:
                # First look: lead if nobody does, else take the newest snapshot (one call),
                # once subscribed: every later snapshot is pushed.
                await reader.ready()
                low = "-" if state.last is None else f"({state.last}"
                reply = await self._call(
                    "poll_join",
                    [lease, fence, stream],
                    [token, self._lease_ms, self._ttl_ms, low, "1" if may_lead else "0"],
                )
                granted = as_int(reply[0])
                if granted > 0:
                    return await self._take(action_id, state, token, granted)
                entry = _entry(reply)
                if entry is not None and self._accept(state, entry) and not is_handover(entry):
                    # Follow the id from here on: the next snapshot wakes its handle.
                    reader.watch(stream, action_id)
                    return self._follow(entry)
                state.last = state.last or "0-0"
            entry = await reader.wait(stream, action_id, state.last or "0-0", self._polling.lease)
            # Quiet: neither a snapshot nor a renewal of the leader's lease for a lease's time.
            quiet = entry is None and not reader.alive(stream, self._polling.lease)
            if entry is not None and self._accept(state, entry):
                if not is_handover(entry):
                    return self._follow(entry, live=True)
                quiet = True

    async def _take(self, action_id: str, state: _Id, token: str, fence: int) -> AsyncAction:
        """This process leads *action_id* now, with fencing token *fence*: poll it."""
        state.token, state.fence = token, fence
        state.renewed = asyncio.get_running_loop().time()
        state.failures = 0
        self._start_renewer()
        self._reader.forget(self._keys(action_id)[2])
        return await self._lead(action_id, state)

    async def _lead(self, action_id: str, state: _Id) -> AsyncAction:
        try:
            action, body = await self._get(action_id)
        except Exception as exc:
            # A leader whose GETs fail (a 503 only it gets, broken egress) must not starve
            # the others: after HANDOVER_AFTER failed polls in a row it steps down.
            state.failures += 1
            if state.failures >= HANDOVER_AFTER and state.token is not None:
                self._step_down(action_id, state)
            raise _OwnGetFailed(exc) from None
        state.failures = 0
        self._polling.led += 1
        token = state.token
        if token is None:  # the handle ended (or stepped down) while the GET was in flight
            return action
        lease, fence, stream = self._keys(action_id)
        try:
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
                    self._channel,
                ],
            )
        except UNREACHABLE as exc:
            # The snapshot is good for our own handle: one GET per poll, even without Redis.
            self._unreachable(exc)
            return action
        if entry_id:
            state.last = as_text(entry_id)
            state.renewed = asyncio.get_running_loop().time()
            state.ended = action.is_terminal
        else:
            # Our lease expired (a pause, a slow GET, a Redis that lost it): another process
            # leads now, or will. The snapshot is still good for our own handle.
            state.token = None
        return action

    def _step_down(self, action_id: str, state: _Id) -> None:
        token, state.token = state.token, None
        state.yielded = asyncio.get_running_loop().time()
        state.failures = 0
        logger.warning(
            "shared polling: this process's polls of async action %s failed %d times in a "
            "row; it hands the poll over to another process",
            action_id,
            HANDOVER_AFTER,
        )
        if token is not None:
            self._spawn(self._release(action_id, token, handover=True))

    def _follow(self, entry: Entry, *, live: bool = False) -> AsyncAction:
        self._polling.followed += 1
        if live:
            self._polling.lags.append(max(0.0, time.time() - entry_key(entry[0])[0] / 1000))
        body = field(entry[1], "body")
        if body is None:
            raise ResponseDecodeError(
                "a shared-poll stream entry holds no snapshot", status=200, body=b"", path="$"
            )
        return decode_async_action(body, status=200)

    def _accept(self, state: _Id, entry: Entry) -> bool:
        """Take *entry* if it is newer in the stream than the last one taken here.

        A fencing token lower than one taken before cannot come from a paused ex-leader
        (publishing checks the lease atomically): it means Redis lost state (an empty
        restart, a failover to a lagging replica with a slower clock). The stream's order is
        then the truth: resync to the new leader's token instead of dropping its snapshots.
        """
        entry_id, fields = entry
        if state.last is not None and entry_key(entry_id) <= entry_key(state.last):
            return False
        state.last = entry_id
        if is_handover(entry):
            return True
        fence = int(field(fields, "fence") or 0)
        if fence < state.fence:
            logger.info(
                "shared polling: async action %s's leader has a lower fencing token than one "
                "seen before (Redis lost state); following it",
                entry_id,
            )
        state.fence = fence
        return True

    # -- the leases ---------------------------------------------------------------------

    def _start_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew(), name="voucherify-async leases"
            )

    async def _renew(self) -> None:
        """Extend the leases this process holds, all in one script call: each a third of a
        lease after it was last extended (a publish extends it too, so an id polled more
        often than that needs no renewal); the leases due within the next sixth go along."""
        loop = asyncio.get_running_loop()
        third = self._polling.lease / 3
        while True:
            led = [(i, s) for i, s in self._ids.items() if s.token is not None and not s.ended]
            if not led:
                return
            due = min(s.renewed for _, s in led) + third
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
                continue
            now = loop.time()
            batch = [(i, s) for i, s in led if s.renewed + third <= now + third / 2]
            tokens = [s.token for _, s in batch]
            for _, s in batch:
                s.renewed = now
            try:
                pairs = [
                    x
                    for (i, _), t in zip(batch, tokens, strict=True)
                    for x in (t, self._keys(i)[2])
                ]
                kept = await self._call(
                    "poll_renew",
                    [self._keys(i)[0] for i, _ in batch],
                    [self._lease_ms, self._channel, *pairs],
                )
            except UNREACHABLE:
                continue  # the publish script will tell whether we still lead
            for (_, s), token, still in zip(batch, tokens, kept, strict=True):
                if not as_int(still) and s.token == token:
                    s.token = None  # it expired: the next poll asks again

    async def _release(self, action_id: str, token: str, *, handover: bool) -> None:
        lease, _, stream = self._keys(action_id)
        with contextlib.suppress(*UNREACHABLE):
            await self._call(
                "poll_release",
                [lease, stream],
                [token, "1" if handover else "0", self._ttl_ms, self._channel],
            )

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


def _entry(reply: Any) -> Entry | None:
    """The entry in a poll_join reply (``[0, id, [field, value, ...]]``), or None."""
    if len(reply) < 3:
        return None
    flat = reply[2]
    return as_text(reply[1]), {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
