"""A real redis-server for the tests, started on 127.0.0.1 and a free port (no fakes).

Import from here, never from a conftest. ``redis-server`` comes from Debian's package
(``apt-get install redis-server``); ``.ci/run`` installs it when it is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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


class RedisServer:
    """One redis-server process without persistence: a restart loses every key."""

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it answers PING."""
        assert self.process is None, "already running"
        # fmt: off
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--loglevel", "warning",
        ]
        # fmt: on
        self.process = subprocess.Popen(
            command,
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
            process.kill()
            process.wait(timeout=10)


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
