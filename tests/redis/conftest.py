"""Fixtures of the Redis tests: one real redis-server per session, a clean database per test.

The server is started by the suite itself on 127.0.0.1 and a free port; the tests skip with a
clear reason when ``redis-server`` or the ``redis`` package is missing locally, and fail in CI.
Helpers live in ``tests/_redis_server.py`` and ``tests/redis/_worker.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _redis_server import RedisCluster, RedisServer, redis_server_binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session."""
    server = RedisServer(redis_server_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and restart."""
    server = RedisServer(redis_server_binary(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[object]:
    """An asyncio Redis client on an emptied database."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-master Redis Cluster on loopback for the whole session."""
    cluster = RedisCluster(redis_server_binary(), tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def rc(redis_cluster: RedisCluster) -> AsyncIterator[object]:
    """An asyncio RedisCluster client on emptied masters."""
    import redis.asyncio as aioredis

    for node in redis_cluster.nodes:
        node.call("FLUSHALL")
    client = aioredis.RedisCluster.from_url(redis_cluster.url)
    await client.initialize()
    yield client
    await client.aclose()
