"""The client's warm start (``PollPolicy.warm_start``): one ``list()`` page, against the
emulator over HTTP, counted request by request (no sleeps: the handles' own polls, seen
through the poll hook, move the tests on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import attrs
import pytest

from voucherify_async import (
    AsyncActionHandle,
    ClientClosedError,
    PollPolicy,
    VoucherifyClient,
    instrumentation,
)
from voucherify_async.testing import Delay, VoucherifyEmulator

MakeClient = Callable[..., VoucherifyClient]

#: Quick polls without jitter: a handle met by id polls at 0, 0.02, 0.05 s..., so its third
#: poll is past the warm start's horizon (2 * initial_delay = 0.04 s).
QUICK = PollPolicy(initial_delay=0.02, min_delay=0.02, multiplier=1.5, jitter=0.0)
TYPE = "VOUCHERS.IMPORT"
#: The durations (s) of the finished actions a list page shows.
LISTED = (40.0, 50.0, 60.0, 70.0, 80.0, 90.0)


def _finished_actions(emulator: VoucherifyEmulator) -> None:
    """Six finished actions of TYPE, 40-90 s long, for a list page to show."""
    for duration in LISTED:
        emulator.add_action(TYPE, duration=duration)
    emulator.advance(100.0)


async def _started(client: VoucherifyClient, policy: PollPolicy | None = None) -> AsyncActionHandle:
    """The handle of a VOUCHERS.IMPORT this client starts (the emulator's runs an hour)."""
    return await client.async_actions.start(
        "POST", "/v1/vouchers/import", json=[{"code": "A"}], policy=policy
    )


@pytest.fixture(autouse=True)
def _hour_long_jobs(emulator: VoucherifyEmulator) -> None:
    """Jobs started through the API run for an hour (none ends during a test)."""
    emulator.start_seconds = 3600.0


def _lists(emulator: VoucherifyEmulator) -> list[dict[str, str]]:
    """The queries of the list requests the emulator received."""
    return [r.query for r in emulator.requests if r.path == "/v1/async-actions"]


class _Polls:
    """The poll events of the handles, and a way to wait for the n-th one."""

    def __init__(self) -> None:
        self.events: list[instrumentation.PollEvent] = []
        self._changed = asyncio.Event()
        instrumentation.set_on_poll_hooks([self._hook])

    def _hook(self, event: instrumentation.PollEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait(self, n: int, action_id: str) -> list[instrumentation.PollEvent]:
        """The action's events once it has *n*."""
        return await self.wait_for(lambda _: True, action_id, n)

    async def wait_for(
        self,
        matches: Callable[[instrumentation.PollEvent], bool],
        action_id: str,
        n: int = 1,
    ) -> list[instrumentation.PollEvent]:
        """The action's events up to the *n*-th that *matches*."""
        async with asyncio.timeout(10):
            while True:
                mine = [e for e in self.events if e.action_id == action_id]
                hits = [i for i, e in enumerate(mine) if matches(e)]
                if len(hits) >= n:
                    return mine[: hits[n - 1] + 1]
                self._changed.clear()
                await self._changed.wait()


async def test_a_fresh_client_learns_from_one_list_page_once(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A handle of an action this client started, still unfinished past 2 * initial_delay,
    makes the client fetch one list page (100 items), whose durations plan its very next
    gap; a second handle sends none."""
    _finished_actions(emulator)
    client = make_client(poll_policy=QUICK)
    polls = _Polls()
    handle = await _started(client)
    first = handle.id
    events = await polls.wait_for(lambda e: e.reason == "learned", first)
    assert _lists(emulator) == [{"limit": "100"}]
    stats = client.async_actions.durations
    assert stats.knows(TYPE) and stats.given
    # Before it, nothing learned: gaps of initial_delay or so. After it, the type's learned
    # floor (the 5th percentile of 40-90 s: 40 s) makes the silent gap a quarter of that.
    assert all(e.delay <= 0.03 for e in events[:-1])
    assert events[-1].delay == pytest.approx(0.25 * 40.0)
    # Once per client: another handle, of a type the page did not show, sends no second.
    emulator.add_action("OTHER.TYPE", duration=0.0)
    second = await client.async_actions.start(
        "POST", "/v1/vouchers/metadata/async", json={"codes": ["A"], "metadata": {"k": 1}}
    )
    await polls.wait(5, second.id)
    assert len(_lists(emulator)) == 1
    handle.cancel()
    second.cancel()


async def test_short_jobs_handles_by_id_and_switched_off_clients_send_no_list(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """An action over by its first poll sends no list request; nor does a handle met by id
    (learned durations run from the creation, which it does not know), nor a handle past
    the horizon with warm_start=False, or with learn_durations=False."""
    client = make_client(poll_policy=QUICK)
    emulator.start_seconds = 0.0
    await (await _started(client))  # over by its first poll
    assert _lists(emulator) == []
    emulator.start_seconds = 3600.0
    polls = _Polls()
    by_id = client.async_actions.handle(emulator.add_action(TYPE, duration=None))
    handles = [by_id]
    for policy in (
        attrs.evolve(QUICK, warm_start=False),
        attrs.evolve(QUICK, learn_durations=False),
    ):
        handles.append(await _started(client, policy))
    for handle in handles:
        await polls.wait(5, handle.id)
    assert _lists(emulator) == []
    assert not client.async_actions.durations.given
    for handle in handles:
        handle.cancel()


async def test_no_list_once_the_user_gave_learned_state(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """durations.update(saved), or a list() of the user's own, means the client sends no
    warm-start list of its own, even for a type the state does not cover."""
    polls = _Polls()
    saved = make_client(poll_policy=QUICK)
    saved.async_actions.durations.update({"OTHER.TYPE": [1.0] * 5})
    listed = make_client(poll_policy=QUICK)
    await listed.async_actions.list(limit=5)
    assert len(_lists(emulator)) == 1
    handles = [await _started(c) for c in (saved, listed)]
    for handle in handles:
        await polls.wait(5, handle.id)
    assert len(_lists(emulator)) == 1
    for handle in handles:
        handle.cancel()


async def test_no_list_while_the_budget_is_short(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """With a budget of its own that has spent more than 3 % of its slots (the admission's
    'short'), the client sends no warm-start list."""
    client = make_client(poll_policy=QUICK, requests_per_minute=1000)
    polls = _Polls()
    for _ in range(40):  # 4 % of the budget (another type: TYPE stays unlearned)
        await client.async_actions.get(emulator.add_action("OTHER.TYPE", duration=0.0))
    handle = await _started(client)
    await polls.wait(5, handle.id)
    assert _lists(emulator) == []
    handle.cancel()


async def test_close_cancels_a_warm_start_in_flight_and_no_list_follows(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """close() ends the warm start's list request in flight (its handle ends with
    ClientClosedError), nothing runs after close() returns, and no list is sent after it."""
    client = make_client(poll_policy=QUICK)
    actions = client.async_actions
    handle = await _started(client)
    # The action's polls are answered at once (the first fault that matches answers); every
    # other request, the list, hangs.
    emulator.inject(Delay(0.0), times=None, action_id=handle.id)
    emulator.inject(Delay(60.0), times=None)
    # The polls up to the one past the horizon, then the list: the handle waits for it.
    requests = await emulator.wait_for_requests(2, timeout=10)
    while requests[-1].path != "/v1/async-actions":
        requests = await emulator.wait_for_requests(len(requests) + 1, timeout=10)
    warming = actions._warming
    assert warming is not None and not warming.done()
    await client.close()
    assert warming.done()
    with pytest.raises(ClientClosedError):
        await handle
    assert actions._warm() is None
    assert len(_lists(emulator)) == 1


def test_the_benchmark_counts_the_warm_start_request_and_nothing_else() -> None:
    """benchmarks/warm_start.py: a page that shows nothing of the type costs each job of an
    action the client started that outlives the horizon one GET more than no warm start,
    and changes no poll's timing (the schedule learned nothing from it)."""
    import random

    from benchmarks import shapes_random as sr
    from benchmarks import warm_start as ws

    durations = sr.DURATIONS["medium"]
    extra = []
    for seed in sr.TUNING[:16]:
        shape = sr.draw(seed, "moving", durations)
        off = ws.poll("no warm start", shape, durations, 10, random.Random(seed))
        empty = ws.poll("not on page", shape, durations, 10, random.Random(seed))
        listed = ws.poll("warm start", shape, durations, 10, random.Random(seed))
        assert empty.lateness == off.lateness
        extra.append(empty.gets - off.gets)
        assert listed.gets <= off.gets + 1
    assert set(extra) == {1}  # 15-45 s jobs all outlive 1.2 s
