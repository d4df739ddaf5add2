"""Redis's real failure modes for the tests, no mocks: what tests/_redis_server.py cannot do alone.

- :class:`TcpProxy`: a loopback TCP relay the test steers. Clients (or a replica's link to
  its master) connect through it; :meth:`TcpProxy.retarget` moves every later connection to
  another server and drops the current ones (what a Sentinel-aware client does after a
  failover); :meth:`TcpProxy.hold` stops relaying, so a replica behind it falls behind
  (a lagging replica, deterministically), and :meth:`TcpProxy.release` lets it catch up.
- :func:`lagging_replica`: a master, and a replica linked through a proxy that the test can
  hold.

The servers themselves (RDB snapshots and restarts from them, kill -9, SIGSTOP/SIGCONT,
restarts on the same port, READONLY after a demotion, OOM under ``maxmemory``, ``CLIENT
PAUSE``, a three-master cluster) are :class:`~_redis_server.RedisServer` and
:class:`~_redis_server.RedisCluster`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from _redis_server import RedisServer, free_port

__all__ = ["TcpProxy", "lagging_replica"]


class TcpProxy:
    """Relay connections from ``127.0.0.1:port`` to ``127.0.0.1:target`` (in this event loop)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
                self._pipes.discard(pipe)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await self._flowing.wait()  # held: the bytes wait here, nothing is lost
                writer.write(data)
                await writer.drain()

    def hold(self) -> None:
        """Stop relaying (connections stay open; what arrives waits in the proxy)."""
        self._flowing.clear()

    def release(self) -> None:
        """Relay again, the held bytes first."""
        self._flowing.set()

    def drop(self) -> None:
        """Close every current connection (clients reconnect through the proxy)."""
        for writer in list(self._writers):
            writer.close()

    def retarget(self, target: int) -> None:
        """Send every later connection to *target*, and drop the current ones."""
        self.target = target
        self.drop()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        self.release()
        for pipe in list(self._pipes):
            pipe.cancel()
        if self._pipes:
            await asyncio.wait(list(self._pipes))
        if self._server is not None:
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def lagging_replica(
    binary: str, directory: Path
) -> AsyncIterator[tuple[RedisServer, RedisServer, TcpProxy]]:
    """A master with RDB off, and a replica of it linked through a proxy the test can hold:
    ``(master, replica, link)``. The replica is in sync when this yields."""
    (directory / "master").mkdir(parents=True)
    (directory / "replica").mkdir(parents=True)
    master = RedisServer(binary, directory / "master")
    master.start()
    link = TcpProxy(master.port)
    replica: RedisServer | None = None
    try:
        await link.start()
        replica = RedisServer(binary, directory / "replica", replicaof=link.port)
        await asyncio.to_thread(replica.start)
        await asyncio.to_thread(replica.wait_synced, master)
        yield master, replica, link
    finally:
        await link.aclose()
        if replica is not None:
            replica.stop()
        master.stop()
