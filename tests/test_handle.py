"""AsyncActionHandle and the polling engine, against scripted jobs on the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

import pytest
from _support import APP_ID, APP_TOKEN

from voucherify_async import (
    AsyncAction,
    AsyncActionFailed,
    AsyncActionHandle,
    AsyncActionStatus,
    ClientClosedError,
    NotFoundError,
    PollPolicy,
    PollTimeout,
    ResponseDecodeError,
    VoucherifyClient,
    instrumentation,
)
from voucherify_async.testing import Body, Status, VoucherifyEmulator, fast_polling

MakeClient = Callable[..., VoucherifyClient]

#: A deterministic, quick schedule: every 20 ms.
QUICK = PollPolicy(initial_delay=0.02, multiplier=1.0, max_delay=0.02, min_delay=0.02, jitter=0.0)


def our_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("voucherify-async")]


async def test_job_resolves_to_typed_result(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """ENQUEUED -> IN_PROGRESS -> DONE resolves to the terminal action with its typed result."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(type="VOUCHERS.IMPORT", duration=0.3, enqueued=0.05)
    handle = client.async_actions.handle(action_id)
    seen = [snapshot.status async for snapshot in handle.updates()]
    action = await handle
    assert action.status is AsyncActionStatus.DONE
    assert type(action.result).__name__.startswith("VouchersImport")
    assert seen[0] == "ENQUEUED" and "IN_PROGRESS" in seen and seen[-1] == "DONE"
    assert handle.done() and handle.status == "DONE" and handle.progress == 100


@pytest.mark.parametrize(
    ("action_type", "status", "operation_status"),
    [("VOUCHERS.IMPORT", "FAILED", None), ("VOUCHERS.BULK_UPDATE", "DONE", "FAILED")],
)
async def test_failures_raise_with_snapshot(
    emulator: VoucherifyEmulator,
    make_client: MakeClient,
    action_type: str,
    status: str,
    operation_status: str | None,
) -> None:
    """FAILED, and DONE with operation_status FAILED, raise AsyncActionFailed with the snapshot."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(
        type=action_type, duration=0.05, status=status, operation_status=operation_status
    )
    with pytest.raises(AsyncActionFailed) as info:
        await client.async_actions.wait(action_id)
    assert info.value.action.id == action_id
    assert info.value.action.status == status


async def test_partial_failure_is_a_result(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """DONE with failed rows is a result, not an error."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(
        type="VOUCHERS.IMPORT",
        duration=0.02,
        result={"message": "1 ok, 1 failed", "done_count": 1, "failed_count": 1,
                "failed": [{"code": "X", "reason": "bad"}]},
    )  # fmt: skip
    action = await client.async_actions.wait(action_id)
    assert action.result is not None and action.result.failed_count == 1  # type: ignore[union-attr]


async def test_thousand_handles_resolve(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """1,000 handles gathered at once all resolve."""
    client = make_client(poll_policy=PollPolicy(initial_delay=0.2, jitter=0.2), max_concurrency=32)
    ids = [emulator.add_action(duration=0.1, enqueued=0.0) for _ in range(1000)]
    actions = await asyncio.gather(*(client.async_actions.handle(i) for i in ids))
    assert [a.id for a in actions] == ids
    assert all(a.status == "DONE" for a in actions)
    assert our_tasks() == []


async def test_one_poll_per_id_however_many_wait(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """Two handles and three waiters on one id cost what a lone job of the same length costs."""
    client = make_client(poll_policy=QUICK)
    shared = emulator.add_action(duration=0.3, enqueued=0.0)
    lone = emulator.add_action(duration=0.3, enqueued=0.0)
    first = client.async_actions.handle(shared)
    second = client.async_actions.handle(shared)
    assert first is second
    results = await asyncio.gather(
        first, second.result(), client.async_actions.wait(shared), client.async_actions.wait(lone)
    )
    assert {a.id for a in results} == {shared, lone}
    assert emulator.count(shared) <= emulator.count(lone) + 1
    print(f"\nshared id: {emulator.count(shared)} GETs; lone job: {emulator.count(lone)} GETs")


async def test_updates_strictly_change_and_end(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """updates() yields only changed snapshots and ends after the terminal one."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(duration=0.4, enqueued=0.05)
    handle = client.async_actions.handle(action_id)
    snapshots = [s async for s in handle.updates()]
    pairs = [(s.status, s.progress) for s in snapshots]
    assert all(a != b for a, b in itertools.pairwise(pairs))
    progress = [s.progress or 0 for s in snapshots]
    assert progress == sorted(progress)
    assert snapshots[-1].status == "DONE"
    # A late subscriber gets the terminal snapshot and ends.
    assert [s.status async for s in handle.updates()] == ["DONE"]


async def test_updates_yield_failed_terminal_then_end(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """updates() ends quietly after a FAILED snapshot; awaiting gives the verdict."""
    client = make_client(poll_policy=QUICK)
    handle = client.async_actions.handle(emulator.add_action(duration=0.05, status="FAILED"))
    last = [s async for s in handle.updates()][-1]
    assert last.status == "FAILED"
    with pytest.raises(AsyncActionFailed):
        await handle


async def test_result_timeout(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """result(timeout=0.2) on a never-ending job raises PollTimeout (a TimeoutError) with latest."""
    client = make_client(poll_policy=QUICK)
    handle = client.async_actions.handle(emulator.add_action(duration=None))
    # The first snapshot first, so `latest` does not depend on how busy the machine is.
    async with contextlib.aclosing(handle.updates()) as updates:
        async for snapshot in updates:
            if snapshot.status == "IN_PROGRESS":
                break
    with pytest.raises(PollTimeout) as info:
        await handle.result(timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert info.value.latest is not None and info.value.latest.status == "IN_PROGRESS"
    assert info.value.handle is handle
    assert not handle.done()  # a wait's timeout does not stop the poll


async def test_cancel_stops_polling(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """After cancel(), no GET for the id reaches the server and awaiters get CancelledError."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(duration=None)
    handle = client.async_actions.handle(action_id)
    waiter = asyncio.ensure_future(handle.result())
    await emulator.wait_for_requests(3)
    assert handle.cancel() is True
    assert handle.cancel() is False
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await handle._stopped()
    count = emulator.count(action_id)
    other = emulator.add_action(duration=None)  # keep the loop busy for several poll periods
    with pytest.raises(PollTimeout):
        await client.async_actions.wait(other, timeout=0.15)
    assert emulator.count(action_id) == count
    assert handle.done()


async def test_cancelling_a_waiter_leaves_others(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """Cancelling one task that awaits a handle cancels that wait only."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(duration=None)
    handle = client.async_actions.handle(action_id)
    first = asyncio.ensure_future(handle.result())
    second = asyncio.ensure_future(handle.result())
    await emulator.wait_for_requests(1)
    first.cancel()
    emulator.finish(action_id)
    assert (await second).status == "DONE"
    assert first.cancelled()


async def test_close_leaves_no_task(emulator: VoucherifyEmulator) -> None:
    """After client.close(), no task of ours is left and waiters get ClientClosedError."""
    client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url, poll_policy=QUICK)
    handles = [client.async_actions.handle(emulator.add_action(duration=None)) for _ in range(5)]
    waiter = asyncio.ensure_future(asyncio.gather(*handles))
    await emulator.wait_for_requests(5)
    await client.close()
    assert our_tasks() == []
    with pytest.raises(ClientClosedError):
        await waiter
    with pytest.raises(ClientClosedError, match="closed"):
        client.async_actions.handle("aa_x")


async def test_transient_errors_do_not_end_a_handle(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A poll that exhausts its retries is survived: the handle polls again and resolves."""
    client = make_client(poll_policy=QUICK, max_retries=1)
    errors: list[BaseException] = []
    instrumentation.set_on_poll_hooks([lambda e: errors.append(e.error) if e.error else None])
    action_id = emulator.add_action(duration=0.02)
    emulator.inject(Status(503), times=4, action_id=action_id)  # two whole polls fail
    with fast_polling(0.01):
        action = await client.async_actions.wait(action_id)
    assert action.status == "DONE"
    assert len(errors) == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Status(404), NotFoundError), (Body(b'{"id": 1}'), ResponseDecodeError)],
    ids=["404", "undecodable"],
)
async def test_permanent_errors_end_the_handle(
    emulator: VoucherifyEmulator, make_client: MakeClient, fault: object, error: type[Exception]
) -> None:
    """404 and an undecodable 2xx body end the handle with that error, and updates() raises it."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(duration=None)
    handle = client.async_actions.handle(action_id)
    await emulator.wait_for_requests(1)
    emulator.inject(fault, action_id=action_id)  # type: ignore[arg-type]
    with pytest.raises(error):
        await handle
    with pytest.raises(error):
        [s async for s in handle.updates()]


async def test_policy_deadline_and_stall(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """The policy's timeout and stall_timeout end the handle with PollTimeout."""
    client = make_client()
    stuck = emulator.add_action(duration=None)
    emulator.set_progress(stuck, 40)
    stalled = client.async_actions.handle(
        stuck, policy=QUICK.__class__(initial_delay=0.02, stall_timeout=0.1)
    )
    with pytest.raises(PollTimeout, match="no change"):
        await stalled
    late = client.async_actions.handle(
        emulator.add_action(duration=None), policy=PollPolicy(timeout=0.1)
    )
    with pytest.raises(PollTimeout, match="timeout"):
        await late
    assert late.done() and late.latest is not None


async def test_deadline_chains_last_error(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A deadline reached during an outage is chained to the last transient error."""
    client = make_client(max_retries=0)
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(503), times=1000, action_id=action_id)
    with fast_polling(0.01), pytest.raises(PollTimeout) as info:
        await client.async_actions.wait(action_id, policy=PollPolicy(timeout=0.1))
    assert info.value.__cause__ is not None


async def test_unknown_status_is_not_terminal(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A status the library does not know keeps the handle polling."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(duration=None)
    body = emulator.action(action_id) | {"status": "PAUSED"}
    emulator.inject(Body(body), times=2, action_id=action_id)
    handle = client.async_actions.handle(action_id)
    await emulator.wait_for_requests(3)
    assert not handle.done()
    emulator.finish(action_id)
    assert (await handle).status == "DONE"


async def test_wait_cancels_only_what_it_started(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """wait() cancels a handle it started when it times out, but never a handle the user holds."""
    client = make_client(poll_policy=QUICK)
    started_by_wait = emulator.add_action(duration=None)
    with pytest.raises(PollTimeout):
        await client.async_actions.wait(started_by_wait, timeout=0.05)
    assert our_tasks() == []
    held = client.async_actions.handle(emulator.add_action(duration=None))
    with pytest.raises(PollTimeout):
        await client.async_actions.wait(held.id, timeout=0.05)
    assert not held.done()


async def test_wait_keeps_handle_for_other_waiters(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A helper whose wait ends does not cut off another helper's wait on the same id."""
    client = make_client(poll_policy=QUICK)
    action_id = emulator.add_action(duration=None)
    long_wait = asyncio.ensure_future(client.async_actions.wait(action_id))
    await emulator.wait_for_requests(1)
    with pytest.raises(PollTimeout):
        await client.async_actions.wait(action_id, timeout=0.05)
    emulator.finish(action_id)
    assert (await long_wait).status == "DONE"


async def test_wait_all(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """wait_all returns in order, raises the first failure, or lists exceptions when asked."""
    client = make_client(poll_policy=QUICK)
    ok = [emulator.add_action(duration=0.05 * i) for i in range(3)]
    assert [a.id for a in await client.async_actions.wait_all(ok)] == ok
    bad = emulator.add_action(duration=0.02, status="FAILED")
    never = emulator.add_action(duration=None)
    with pytest.raises(AsyncActionFailed):
        await client.async_actions.wait_all([ok[0], bad, never])
    results = await client.async_actions.wait_all(
        [ok[1], bad, never], timeout=0.2, return_exceptions=True
    )
    assert isinstance(results[0], AsyncAction)
    assert isinstance(results[1], AsyncActionFailed)
    assert isinstance(results[2], PollTimeout)
    assert our_tasks() == []


async def test_as_completed(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """as_completed yields handles in completion order and raises PollTimeout for the rest."""
    client = make_client(poll_policy=QUICK)
    slow = emulator.add_action(duration=0.3)
    fast = emulator.add_action(duration=0.02)
    order = [h.id async for h in client.async_actions.as_completed([slow, fast])]
    assert order == [fast, slow]
    never = emulator.add_action(duration=None)
    got: list[str] = []

    async def consume() -> None:
        async for h in client.async_actions.as_completed([fast, never], timeout=0.2):
            got.append((await h).id)

    with pytest.raises(PollTimeout):
        await consume()
    assert got == [fast]
    assert our_tasks() == []


async def test_as_completed_break_cleans_up(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """Leaving as_completed early (aclosing) cancels the handles it started."""
    import contextlib

    client = make_client(poll_policy=QUICK)
    ids = [emulator.add_action(duration=0.02), emulator.add_action(duration=None)]
    async with contextlib.aclosing(client.async_actions.as_completed(ids)) as stream:
        async for _ in stream:
            break
    assert our_tasks() == []


async def test_done_callback_and_hooks(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A done callback runs once with the handle; hooks see every poll and status change."""
    client = make_client(poll_policy=QUICK)
    polls: list[instrumentation.PollEvent] = []
    changes: list[instrumentation.StatusChangeEvent] = []
    instrumentation.set_on_poll_hooks([polls.append])
    instrumentation.set_on_status_change_hooks([changes.append, lambda e: 1 / 0])  # a broken hook
    called: list[AsyncActionHandle] = []
    handle = client.async_actions.handle(emulator.add_action(duration=0.1, enqueued=0.02))
    handle.add_done_callback(called.append)
    await handle
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert called == [handle]
    assert polls[-1].reason == "done" and polls[-1].delay == 0.0
    assert [p.attempt for p in polls] == list(range(1, len(polls) + 1))
    assert changes[0].previous is None and changes[-1].current.status == "DONE"


async def test_fast_polling(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """Under fast_polling() a default-policy handle notices the end at once."""
    client = make_client()  # the default policy would wait 0.6 s, then 0.9 s...
    action_id = emulator.add_action(duration=None)
    handle = client.async_actions.handle(action_id)
    await emulator.wait_for_requests(1)
    emulator.finish(action_id)
    with fast_polling():
        # The first delay was chosen before fast_polling began; the next ones are near zero.
        action = await handle.result(timeout=5)
    assert action.status == "DONE"


async def test_budget_shared_fairly(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """50 long jobs under a scaled budget: the window holds, all resolve, no handle starves."""
    window, limit = 1.0, 40
    client = make_client(requests_per_minute=limit, budget_window=window, max_concurrency=50)
    ids = [emulator.add_action(duration=1.0 + 0.02 * i, enqueued=0.0) for i in range(50)]
    policy = PollPolicy(initial_delay=0.05, max_delay=0.3, min_delay=0.02)
    handles = [client.async_actions.handle(i, policy=policy) for i in ids]
    actions = await asyncio.gather(*handles)
    assert all(a.status == "DONE" for a in actions)
    times = sorted(r.time for r in emulator.requests)
    worst = max(sum(1 for t in times if s <= t < s + window) for s in times)
    assert worst <= limit
    delays = []
    for i in ids:
        finished = emulator.finished_at(i)
        assert finished is not None
        last_get = max(r.time for r in emulator.requests if r.action_id == i)
        delays.append(last_get - finished)
    spread = max(delays) - min(delays)
    print(f"\n{len(times)} GETs for 50 jobs; busiest window {worst}/{limit}; "
          f"detection delay min {min(delays):.3f} s, max {max(delays):.3f} s")  # fmt: skip
    assert max(delays) < 5 * window  # nobody starves
    assert spread < 5 * window
