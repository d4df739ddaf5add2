"""The follower's side of RedisPolling: one blocking ``XREAD`` for every id a poller follows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._budget import UNREACHABLE
from ._scripts import as_text

if TYPE_CHECKING:
    from ._polling import RedisPolling

__all__ = ["Entry", "Reader", "entry_key", "field", "is_handover"]

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


class Reader:
    """One blocking ``XREAD`` for every id a poller follows; keeps each id's newest entry.

    Once a stream is followed it stays in the read until :meth:`forget` (its handle ended, or
    this process leads it), so a handle that comes back for the next snapshot finds it
    buffered, or waits on the read already in progress. When an entry arrives for a stream
    nobody is waiting on, *on_entry* is called with the stream's action id, so its handle can
    take it at once instead of at its next poll. A stream that the read in progress does not
    cover yet is added by appending to this reader's own wake stream, which every read also
    covers. (Many streams in one read: every key of an account shares one hash tag, so this
    works on Redis Cluster too.)
    """

    def __init__(
        self,
        polling: RedisPolling,
        block_ms: int,
        wake_key: str,
        on_entry: Callable[[str], None] | None = None,
    ) -> None:
        self._polling = polling
        self._redis = polling.redis
        self._block_ms = block_ms
        self._wake_key = wake_key
        self._on_entry = on_entry
        self._follow: dict[str, str] = {}  # stream -> the last entry id read
        self._ids: dict[str, str] = {}  # stream -> action id
        self._latest: dict[str, Entry] = {}  # stream -> newest entry
        self._waiting: dict[str, asyncio.Future[Entry]] = {}
        self._reading: dict[str, str] | None = None  # the streams of the read in progress
        self._task: asyncio.Task[None] | None = None
        self._wakes: set[asyncio.Task[None]] = set()

    def follows(self, stream: str) -> bool:
        return stream in self._follow

    def latest(self, stream: str) -> Entry | None:
        return self._latest.get(stream)

    def forget(self, stream: str) -> None:
        self._follow.pop(stream, None)
        self._latest.pop(stream, None)
        self._ids.pop(stream, None)

    def watch(self, stream: str, action_id: str, last: str) -> None:
        """Follow *stream* from entry *last* on: its entries come in with the others'."""
        self._follow.setdefault(stream, last)
        self._ids[stream] = action_id
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():  # first use, or it stopped on an outage
            self._task = loop.create_task(self._run(), name="voucherify-async stream reader")
        elif self._reading is not None and stream not in self._reading:
            wake = loop.create_task(self._wake())
            self._wakes.add(wake)
            wake.add_done_callback(self._wakes.discard)

    async def wait(self, stream: str, action_id: str, last: str, timeout: float) -> Entry | None:
        """The newest entry of *stream* after *last*, or None after *timeout* seconds."""
        entry = self._latest.get(stream)
        if entry is not None and entry_key(entry[0]) > entry_key(last):
            return entry
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._waiting[stream] = future
        self.watch(stream, action_id, last)
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
                    self._deliver(as_text(raw_stream), entries)
        finally:
            self._reading = None

    def _deliver(self, stream: str, entries: list[Any]) -> None:
        if not entries or stream not in self._follow:
            return
        entry_id, fields = entries[-1]
        entry = (as_text(entry_id), fields)
        self._follow[stream] = entry[0]
        self._latest[stream] = entry
        waiter = self._waiting.get(stream)
        if waiter is not None and not waiter.done():
            waiter.set_result(entry)
        elif self._on_entry is not None and stream in self._ids:
            self._on_entry(self._ids[stream])  # its handle sleeps: let it take the entry now

    async def aclose(self) -> None:
        self._follow.clear()
        task, self._task = self._task, None
        for work in (*self._wakes, task):
            if work is not None and not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
