"""A real redis-server for the tests, started on 127.0.0.1 and a free port (no fakes).

Import from here, never from a conftest. ``redis-server`` comes from Debian's package
(``apt-get install redis-server``); ``.ci/run`` installs it when it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

#: Where CI runs (.ci/run sets CI=true): there a missing redis-server is a failure, not a skip.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def redis_server_binary() -> str:
    """The redis-server executable; skips the test (fails it in CI) when there is none."""
    found = shutil.which("redis-server")
    if found is None:
        reason = (
            "redis-server is not installed (apt-get install redis-server, or brew install "
            "redis): the Redis tests need a real server"
        )
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        reason = 'the redis package is not installed (pip install -e ".[test]")'
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too."""
    for _ in range(1000):
        port = random.randrange(20000, 55000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    """One redis-server process on 127.0.0.1.

    By default without persistence: a restart loses every key. With *rdb*, the server keeps
    ``dump.rdb`` in *directory* (no ``save`` lines: :meth:`snapshot` takes one when the test
    says), and a restart loads the last snapshot, losing what came after it, as a server
    restarted from its stock ``save`` lines does. With *appendonly*, an AOF
    (``appendfsync always``: nothing acknowledged is lost). *replicaof* makes it a replica
    of the server on that port. *extra* are more ``--name value`` arguments.
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        port: int | None = None,
        *,
        rdb: bool = False,
        appendonly: bool = False,
        replicaof: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.rdb = rdb
        self.appendonly = appendonly
        self.replicaof = replicaof
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command_line(self) -> list[str]:
        # fmt: off
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--dir", str(self.directory),
            "--dbfilename", "dump.rdb" if self.rdb else "unused.rdb",
            "--loglevel", "warning",
            *self.extra,
        ]
        # fmt: on
        if self.replicaof is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        return command

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (on the same port as before, if it ran) and return once it
        answers PING."""
        assert self.process is None, "already running"
        if not self.rdb:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / "unused.rdb").unlink()  # never loaded: a restart is empty
        self.process = subprocess.Popen(
            self.command_line(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer PING in time")
            time.sleep(0.02)  # readiness probe of an external process, bounded above

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGKILL: no chance to save anything) and wait for it."""
        process, self.process = self.process, None
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)  # a stopped process dies on KILL too
            process.kill()
            process.wait(timeout=10)

    #: kill -9 (the same as :meth:`stop`).
    kill = stop

    def restart(self) -> None:
        """kill -9, then start again on the same port (loading the snapshot, with *rdb*)."""
        self.stop()
        self.start()

    def sigstop(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def sigcont(self) -> None:
        """Thaw a frozen server (SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def call(self, *args: Any) -> Any:
        """One command, synchronously, on a connection of its own (the test's control line)."""
        import redis

        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30) as client:
            return client.execute_command(*args)

    def snapshot(self) -> None:
        """Write ``dump.rdb`` now (SAVE): a later :meth:`restart` comes back to this state."""
        assert self.rdb, "a snapshot needs RedisServer(rdb=True)"
        self.call("SAVE")

    def info(self, section: str = "replication") -> dict[str, str]:
        """``INFO section``, as text fields."""
        return _fields(self.call("INFO", section))

    def cluster_info(self) -> dict[str, str]:
        """``CLUSTER INFO``, as text fields."""
        return _fields(self.call("CLUSTER", "INFO"))

    def wait_synced(self, master: RedisServer, timeout: float = 20.0) -> None:
        """Return once this replica is linked to *master* and has its whole stream."""
        deadline = time.monotonic() + timeout
        while True:
            mine = self.info()
            if mine.get("master_link_status") == "up":
                offset = int(master.info().get("master_repl_offset", "0"))
                if int(mine.get("slave_repl_offset", "-1")) >= offset:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica did not sync in time: {mine}")
            time.sleep(0.02)  # readiness probe of an external process, bounded above

    def promote(self) -> None:
        """``REPLICAOF NO ONE``: this replica becomes a master (with what it had)."""
        self.call("REPLICAOF", "NO", "ONE")

    def demote(self, master: RedisServer) -> None:
        """``REPLICAOF`` *master*: from now on writes get READONLY here."""
        self.call("REPLICAOF", "127.0.0.1", str(master.port))

    def out_of_memory(self) -> None:
        """``maxmemory`` below what is used, no eviction: every write that may grow memory
        gets OOM."""
        self.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.call("CONFIG", "SET", "maxmemory", "1")

    def memory_back(self) -> None:
        self.call("CONFIG", "SET", "maxmemory", "0")

    def client_pause(self, seconds: float, mode: str = "ALL") -> None:
        """``CLIENT PAUSE``: clients get no answer (``WRITE``: to writes) for *seconds*."""
        self.call("CLIENT", "PAUSE", str(round(seconds * 1000)), mode)


def _fields(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    raw = reply.decode() if isinstance(reply, bytes) else str(reply)
    return dict(
        line.strip().split(":", 1) for line in raw.splitlines() if ":" in line and line[0] != "#"
    )


class RedisCluster:
    """Three masters with ``--cluster-enabled yes`` on loopback, joined by
    ``redis-cli --cluster create`` (no replicas): every hash slot is served."""

    def __init__(self, binary: str, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        for i in range(masters):
            node_dir = directory / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            extra = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", "5000",
            )  # fmt: skip
            self.nodes.append(RedisServer(binary, node_dir, cluster_port(), extra=extra))

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 60.0) -> None:
        """Start the nodes and join them; on any failure, stop them all and raise."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or str(Path(self.nodes[0].binary).with_name("redis-cli"))
        subprocess.run(
            [
                cli, "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not all(node.cluster_info().get("cluster_state") == "ok" for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up in time")
            time.sleep(0.05)  # readiness probe of external processes, bounded above
        # Every node must know every other's slots before a client asks any of them.
        while any(
            int(node.cluster_info().get("cluster_known_nodes", "0")) < len(self.nodes)
            for node in self.nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster nodes did not meet in time")
            time.sleep(0.05)  # readiness probe of external processes, bounded above

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node_of(self, key: str) -> RedisServer:
        """The master serving *key*'s hash slot."""
        slot = int(self.nodes[0].call("CLUSTER", "KEYSLOT", key))
        for node in self.nodes:
            for entry in node.call("CLUSTER", "SLOTS"):
                low, high, master = int(entry[0]), int(entry[1]), entry[2]
                if low <= slot <= high and int(master[1]) == node.port:
                    return node
        raise RuntimeError(f"no node serves slot {slot}")


WORKER = Path(__file__).resolve().parent / "redis" / "_worker.py"


class Worker:
    """A client process running ``tests/redis/_worker.py``: read its events, await its result."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def spawn(cls, **config: Any) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def send(self, line: str) -> None:
        """Write *line* to the worker's standard input (a worker waiting for a go reads it)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def _line(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            return None
        item: dict[str, Any] = json.loads(line)
        if "event" in item:
            self.events.append(item)
        return item

    async def event(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """The next event called *name* (earlier ones already read count too)."""
        for seen in self.events:
            if seen["event"] == name and not seen.get("_taken"):
                seen["_taken"] = True
                return seen
        async with asyncio.timeout(timeout):
            while True:
                item = await self._line()
                if item is None:
                    raise AssertionError(f"worker exited before {name}: {await self._stderr()}")
                if item.get("event") == name:
                    item["_taken"] = True
                    return item

    async def result(self, timeout: float = 120.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                item = await self._line()
                if item is None:
                    raise AssertionError(f"worker ended without a result: {await self._stderr()}")
                if "result" in item:
                    await self.process.wait()
                    result: dict[str, Any] = item["result"]
                    return result

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        await self.process.wait()
        return (await self.process.stderr.read()).decode("utf-8", "replace")[-3000:]

    def kill(self) -> None:
        """kill -9: no cleanup of any kind runs in the worker."""
        if self.process.returncode is None:
            self.process.kill()

    async def reap(self) -> None:
        self.kill()
        await self.process.wait()


def max_in_window(times: list[float], window: float) -> int:
    """The most arrivals any window of *window* seconds holds (the server's sliding count)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
