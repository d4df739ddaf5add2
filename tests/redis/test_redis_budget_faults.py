"""The fault matrix: worker processes on one RedisBudget while Redis fails in each real way.

For every failure mode (tests/_redis_server.py, tests/redis/_faults.py): the emulator, which
enforces the account's budget, never sees a window over the limit (no 429), and every call of
every worker ends with a result or a library error. The same workers also run on a
three-master Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _faults import TcpProxy, lagging_replica
from _redis_server import RedisCluster, RedisServer, Worker, max_in_window, redis_server_binary
from _support import APP_ID, APP_TOKEN

from voucherify_async.testing import VoucherifyEmulator

pytest.importorskip("redis.asyncio")

WINDOW = 2.0
LIMIT = 6
REQUESTS = 12
#: What a call may end with besides a result: the library's own errors, never a raw one.
LIBRARY_ERRORS = ("BudgetUnavailableError", "TransportError", "RateLimitError")


@pytest.fixture
async def counting_emulator() -> Any:
    """The emulator enforcing the account's budget: any excess is a 429 it counts."""
    async with VoucherifyEmulator(
        app_id=APP_ID, app_token=APP_TOKEN, requests_per_minute=LIMIT, rate_limit_window=WINDOW
    ) as emu:
        yield emu


def config(redis_url: str, emu: VoucherifyEmulator, action_id: str, **extra: Any) -> Any:
    return {
        "mode": "budget",
        "redis_url": redis_url,
        "base_url": emu.base_url,
        "app_id": APP_ID,
        "app_token": APP_TOKEN,
        "action_id": action_id,
        "limit": LIMIT,
        "window": WINDOW,
        "requests": REQUESTS,
        "timeout": 2.0,
        "abandoned_hold": 2.0,  # the emulator reads every request at once: the timeout will do
        "operation_timeout": 1.0,
        **extra,
    }


def assert_kept(emu: VoucherifyEmulator, results: list[dict[str, Any]]) -> None:
    """The server's count never exceeded the budget, and every call ended."""
    assert [req.status for req in emu.requests if req.status == 429] == []
    assert max_in_window([req.time for req in emu.requests], WINDOW) <= LIMIT
    for result in results:
        assert result["done"] + len(result["errors"]) == REQUESTS
        assert all(error.startswith(LIBRARY_ERRORS) for error in result["errors"]), result
    assert sum(result["done"] for result in results) == len(emu.requests)


async def outage_seen(workers: list[Worker]) -> None:
    """Every worker has logged that the budget is unavailable."""
    for w in workers:
        event = await w.event("log")
        while "unreachable" not in event["message"]:
            event = await w.event("log")


async def progress(workers: list[Worker]) -> None:
    """Every worker has had one more request answered."""
    for w in workers:
        await w.event("done")


async def admitted_since(emu: VoucherifyEmulator, seen: int, more: int = 2) -> None:
    """The server has seen *more* requests after its first *seen*: admissions Redis made
    after the moment *seen* was taken."""
    async with asyncio.timeout(60):
        while len(emu.requests) < seen + more:  # noqa: ASYNC110 (the emulator has no event)
            await asyncio.sleep(0.01)


async def run_through(
    url: str,
    emu: VoucherifyEmulator,
    fault: Callable[[list[Worker]], Awaitable[None]],
    *,
    workers: int = 2,
    **extra: Any,
) -> list[dict[str, Any]]:
    """Start *workers* workers, let each have a request answered, apply *fault*, and collect
    the results of the workers still alive."""
    action_id = emu.add_action(duration=0.0)
    spawned = [await Worker.spawn(**config(url, emu, action_id, **extra)) for _ in range(workers)]
    try:
        for w in spawned:
            await w.event("first")
        await fault(spawned)
        return [await w.result() for w in spawned if w.process.returncode in (None, 0)]
    finally:
        for w in spawned:
            await w.reap()


def own_server(tmp_path: Path, **options: Any) -> RedisServer:
    server = RedisServer(redis_server_binary(), tmp_path, **options)
    server.start()
    return server


@pytest.mark.slow
async def test_restart_from_a_snapshot_taken_mid_run(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """RDB snapshot mid-run, more admissions, kill -9, restart from the snapshot."""
    server = own_server(tmp_path, rdb=True)

    async def fault(workers: list[Worker]) -> None:
        seen = len(counting_emulator.requests)
        await asyncio.to_thread(server.snapshot)
        # Admitted after the snapshot: the restart forgets them.
        await admitted_since(counting_emulator, seen)
        await asyncio.to_thread(server.restart)

    try:
        results = await run_through(server.url, counting_emulator, fault)
    finally:
        server.stop()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_restart_empty_on_the_same_port(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """kill -9 of Redis, then a restart on the same port without persistence."""
    server = own_server(tmp_path)

    async def fault(workers: list[Worker]) -> None:
        server.kill()
        await outage_seen(workers)
        await asyncio.to_thread(server.start)

    try:
        results = await run_through(server.url, counting_emulator, fault)
    finally:
        server.stop()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_failover_to_a_lagging_replica(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """The replica falls behind, is promoted (REPLICAOF NO ONE) and the workers move to it;
    the old master lives on, demoted to a replica of the new one (READONLY to any straggler)."""
    async with lagging_replica(redis_server_binary(), tmp_path) as (master, replica, link):
        front = TcpProxy(master.port)
        await front.start()

        async def fault(workers: list[Worker]) -> None:
            seen = len(counting_emulator.requests)
            link.hold()
            await admitted_since(counting_emulator, seen)  # admitted on the master only
            replica.promote()
            front.retarget(replica.port)
            master.demote(replica)

        try:
            results = await run_through(front.url, counting_emulator, fault)
        finally:
            await front.aclose()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_readonly_then_writable_again(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """Redis is demoted to a replica of an empty server (READONLY; it also loses its keys in
    the resync), then promoted back."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    server, other = own_server(tmp_path / "a"), own_server(tmp_path / "b")

    async def fault(workers: list[Worker]) -> None:
        server.demote(other)
        await outage_seen(workers)
        server.promote()

    try:
        results = await run_through(server.url, counting_emulator, fault)
    finally:
        server.stop()
        other.stop()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_out_of_memory_then_memory_back(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """``maxmemory`` below what Redis uses, no eviction: every script call gets OOM."""
    server = own_server(tmp_path)

    async def fault(workers: list[Worker]) -> None:
        server.out_of_memory()
        await outage_seen(workers)
        server.memory_back()

    try:
        results = await run_through(server.url, counting_emulator, fault)
    finally:
        server.stop()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_client_pause(tmp_path: Path, counting_emulator: VoucherifyEmulator) -> None:
    """``CLIENT PAUSE`` for 1.5 s: calls wait for it (longer than a worker's operation
    timeout, so some count as failures), then go on."""
    server = own_server(tmp_path)

    async def fault(workers: list[Worker]) -> None:
        server.client_pause(1.5)

    try:
        results = await run_through(server.url, counting_emulator, fault)
    finally:
        server.stop()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_sigstop_then_sigcont(tmp_path: Path, counting_emulator: VoucherifyEmulator) -> None:
    """Redis frozen (SIGSTOP) until every worker reports an outage, then thawed: the calls it
    received meanwhile run late, after the workers gave up on them."""
    server = own_server(tmp_path)

    async def fault(workers: list[Worker]) -> None:
        server.sigstop()
        try:
            await outage_seen(workers)
        finally:
            server.sigcont()

    try:
        results = await run_through(server.url, counting_emulator, fault)
    finally:
        server.stop()
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_kill_9_of_a_worker_mid_run(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """One of three workers is killed mid-run with slots on lease: the others finish."""
    server = own_server(tmp_path)

    async def fault(workers: list[Worker]) -> None:
        await progress(workers[:1])
        workers[0].kill()
        await workers[0].process.wait()

    try:
        results = await run_through(server.url, counting_emulator, fault, workers=3)
    finally:
        server.stop()
    assert len(results) == 2
    assert [req.status for req in counting_emulator.requests if req.status == 429] == []
    assert max_in_window([req.time for req in counting_emulator.requests], WINDOW) <= LIMIT
    for result in results:
        assert result["done"] == REQUESTS and result["errors"] == []


# -- Redis Cluster ----------------------------------------------------------------------


@pytest.mark.slow
async def test_processes_share_one_budget_on_a_cluster(
    redis_cluster: RedisCluster, counting_emulator: VoucherifyEmulator
) -> None:
    """Three worker processes with ``RedisCluster`` clients keep one budget."""
    for node in redis_cluster.nodes:
        node.call("FLUSHALL")

    async def fault(workers: list[Worker]) -> None:
        return None

    results = await run_through(
        redis_cluster.url, counting_emulator, fault, workers=3, cluster=True
    )
    assert [(res["done"], res["errors"]) for res in results] == [(REQUESTS, [])] * 3
    assert_kept(counting_emulator, results)


@pytest.mark.slow
async def test_cluster_node_killed_and_restarted(
    tmp_path: Path, counting_emulator: VoucherifyEmulator
) -> None:
    """The master serving the budget's hash slot is killed (kill -9) and restarted empty on
    its port: the workers wait through CLUSTERDOWN and lost connections, then go on."""
    cluster = RedisCluster(redis_server_binary(), tmp_path)
    cluster.start()
    node = cluster.node_of("voucherify-async:budget:{faults}:slots")

    async def fault(workers: list[Worker]) -> None:
        node.kill()
        await outage_seen(workers)
        await asyncio.to_thread(node.start)

    try:
        results = await run_through(
            cluster.url, counting_emulator, fault, cluster=True, key="faults"
        )
    finally:
        cluster.stop()
    assert_kept(counting_emulator, results)
