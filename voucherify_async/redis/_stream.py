"""The follower's side of RedisPolling: snapshots pushed over one Pub/Sub channel per account.

The leader's publish script appends a snapshot to its id's Stream (the durable copy, for
processes that join later) and publishes it on the account's channel in the same call. Each
process subscribes once and receives every snapshot as it is published, without a round trip
of its own; a snapshot published while its subscription was down is read back from the
Streams when it is up again (one pipelined read for every id it follows).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError

from ._budget import UNREACHABLE
from ._scripts import as_text

if TYPE_CHECKING:
    from ._polling import RedisPolling

__all__ = ["Entry", "Reader", "entry_key", "field", "is_handover", "parse_message"]

#: One stream entry: its id and its fields (bytes or text keys, as the client decodes).
Entry = tuple[str, dict[Any, Any]]


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as a pair that sorts like Redis sorts them."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def field(fields: dict[Any, Any], name: str) -> Any:
    """The value of *name* in an entry's fields, or None."""
    return fields.get(name.encode(), fields.get(name))


def is_handover(entry: Entry) -> bool:
    """True for a leader's "take it" entry (no snapshot): it handed the poll over."""
    return field(entry[1], "handover") is not None


def parse_message(data: Any) -> tuple[str, Entry | None] | None:
    """A channel message (``len(stream) \\n stream entry-id \\n fence \\n body``, as
    poll_publish.lua writes it) as its stream and entry; ``(stream, None)`` for a lease
    renewal (``len(stream) \\n stream alive``, poll_renew.lua); None when it is not one."""
    raw = data if isinstance(data, bytes) else str(data).encode("utf-8")
    try:
        size, _, rest = raw.partition(b"\n")
        n = int(size)
        stream, rest = rest[:n].decode("utf-8"), rest[n:]
        if rest == b"alive":
            return stream, None
        entry_id, fence, body = rest.split(b"\n", 2)
        if fence == b"handover":
            return stream, (entry_id.decode("ascii"), {b"fence": b"0", b"handover": b"1"})
        return stream, (entry_id.decode("ascii"), {b"fence": fence, b"body": body})
    except (ValueError, UnicodeDecodeError):
        return None


class Reader:
    """What one poller follows: each id's newest snapshot, pushed over the account's channel.

    :meth:`expect` registers an id before its first look at Redis, so a snapshot pushed
    while that look is in flight is kept; :meth:`watch` marks it followed, so that a snapshot
    arriving while its handle sleeps wakes it (*on_entry*, with the action id). :meth:`wait`
    waits for a snapshot newer than the one given.
    """

    def __init__(
        self,
        polling: RedisPolling,
        channel: str,
        on_entry: Callable[[str], None] | None = None,
    ) -> None:
        self._polling = polling
        self._redis = polling.redis
        self._channel = channel
        self._on_entry = on_entry
        self._expected: dict[str, str] = {}  # stream -> action id
        self._follow: set[str] = set()  # streams whose handles are woken by a new entry
        self._latest: dict[str, Entry] = {}  # stream -> newest entry
        self._renewed: dict[str, float] = {}  # stream -> when its lease was last renewed
        self._waiting: dict[str, asyncio.Future[Entry]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None  # why the last subscription attempt failed
        self._closed = False

    def follows(self, stream: str) -> bool:
        return stream in self._follow

    def latest(self, stream: str) -> Entry | None:
        return self._latest.get(stream)

    def expect(self, stream: str, action_id: str) -> None:
        self._expected[stream] = action_id

    def forget(self, stream: str) -> None:
        self._follow.discard(stream)
        self._latest.pop(stream, None)
        self._renewed.pop(stream, None)

    def alive(self, stream: str, within: float) -> bool:
        """True if the leader of *stream* renewed its lease in the last *within* seconds."""
        renewed = self._renewed.get(stream)
        return renewed is not None and asyncio.get_running_loop().time() - renewed < within

    def drop(self, stream: str) -> None:
        """The id's handle ended: nothing of it is kept."""
        self.forget(stream)
        self._expected.pop(stream, None)

    def watch(self, stream: str, action_id: str) -> None:
        """Follow *stream*: a snapshot that arrives while its handle sleeps wakes it."""
        self._expected[stream] = action_id
        self._follow.add(stream)

    async def ready(self) -> None:
        """Return once this process is subscribed (raise the error if Redis is unreachable)."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._subscribed = loop.create_future()
            self._task = loop.create_task(self._listen(), name="voucherify-async snapshots")
        elif self._failure is not None:
            # Redis is down and the listener retries: fail fast (the caller polls for itself).
            raise RedisConnectionError("not subscribed to the shared polls' channel") from (
                self._failure
            )
        assert self._subscribed is not None
        async with asyncio.timeout(self._polling.operation_timeout):
            await asyncio.shield(self._subscribed)

    async def wait(self, stream: str, action_id: str, last: str, timeout: float) -> Entry | None:
        """The newest entry of *stream* after *last*, or None after *timeout* seconds."""
        entry = self._latest.get(stream)
        if entry is not None and entry_key(entry[0]) > entry_key(last):
            return entry
        await self.ready()
        self.watch(stream, action_id)
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._waiting[stream] = future
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None
        finally:
            if self._waiting.get(stream) is future:
                del self._waiting[stream]

    def _deliver(self, stream: str, entry: Entry) -> None:
        if stream not in self._expected:
            return
        known = self._latest.get(stream)
        if known is not None and entry_key(known[0]) >= entry_key(entry[0]):
            return
        self._latest[stream] = entry
        waiter = self._waiting.get(stream)
        if waiter is not None and not waiter.done():
            waiter.set_result(entry)
        elif self._on_entry is not None and stream in self._follow:
            self._on_entry(self._expected[stream])  # its handle sleeps: take the entry now

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._closed:
            pubsub = self._redis.pubsub()
            try:
                self._polling.trips["subscribe"] += 1
                await pubsub.subscribe(self._channel)
                backoff = 0.05
                await self._catch_up()  # what was published while not subscribed
                self._failure = None
                if self._subscribed is not None and not self._subscribed.done():
                    self._subscribed.set_result(None)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        parsed = parse_message(message.get("data"))
                        if parsed is None:
                            continue
                        stream, entry = parsed
                        if entry is not None:
                            self._deliver(stream, entry)
                        elif stream in self._expected:
                            self._renewed[stream] = asyncio.get_running_loop().time()
            except UNREACHABLE as exc:
                self._failure = exc
                if self._subscribed is not None and not self._subscribed.done():
                    self._subscribed.set_exception(exc)
                    self._subscribed.exception()  # retrieved: ready() raises it, if called
                    loop = asyncio.get_running_loop()
                    self._subscribed = loop.create_future()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                with contextlib.suppress(*UNREACHABLE, RuntimeError):
                    close: Callable[[], Awaitable[None]] = pubsub.aclose
                    await close()

    async def _catch_up(self) -> None:
        """The newest entry of every expected stream after the one known here: one pipelined
        read (the keys share a hash slot, so it works on a Cluster too)."""
        streams = list(self._expected)
        if not streams:
            return
        self._polling.trips["catch-up"] += 1
        async with asyncio.timeout(self._polling.operation_timeout):
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in streams:
                    known = self._latest.get(stream)
                    pipe.xrevrange(stream, "+", "-" if known is None else f"({known[0]}", count=1)
                replies = await pipe.execute()
        for stream, entries in zip(streams, replies, strict=True):
            if entries:
                entry_id, fields = entries[0]
                self._deliver(stream, (as_text(entry_id), fields))

    async def aclose(self) -> None:
        self._closed = True
        self._follow.clear()
        self._expected.clear()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._subscribed is not None and not self._subscribed.done():
            self._subscribed.cancel()
