"""The soak: many handles at a steady rate while the emulator injects 10 % random faults.

Every handle must end in its job's outcome (DONE ones resolve, FAILED ones raise
AsyncActionFailed), none may hang, the process's RSS must stay flat after warm-up, no task or
timer of ours may be left and nothing may warn. The CI version runs 300 handles in about 10 s;
``VOUCHERIFY_SOAK=1`` runs the full one, 2,000 handles over about a minute.
``tests/reliability/report.py`` runs :func:`run_soak` too and writes its summary into
``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import random
import time
import warnings
from typing import Any

import attrs
import pytest
from _support import full_soak

from voucherify_async import (
    AsyncActionFailed,
    AsyncActionStatus,
    PollPolicy,
    PollTimeout,
    VoucherifyClient,
)
from voucherify_async.testing import (
    ACTION_TYPES,
    Delay,
    Drop,
    DropMidBody,
    Fault,
    Status,
    VoucherifyEmulator,
)

APP_ID = "soak-app-id"
APP_TOKEN = "soak-app-token"

#: The share of requests a fault hits.
FAULT_RATE = 0.1
#: The faults, each equally likely; together they hit FAULT_RATE of the requests.
FAULTS: dict[str, Fault] = {
    "500": Status(500),
    "502": Status(502),
    "503": Status(503),
    # No X-Rate-Limit-* headers: their "Remaining: 0" would pause the whole client until the
    # next whole second, for a 429 that one request in seventy gets.
    "429": Status(429, headers={"Retry-After": "0.05"}, rate_limit_headers=False),
    "Drop": Drop(),
    "DropMidBody": DropMidBody(),
    "Delay": Delay(1.5),  # longer than the client's timeout: a read timeout
}
#: The client's per-request timeout (seconds).
TIMEOUT = 1.0
#: How often handles poll: quick, but a real schedule (no fast_polling()).
POLICY = PollPolicy(initial_delay=0.1, multiplier=1.5, max_delay=1.0, min_delay=0.05, jitter=0.2)
#: A handle that has not ended this long (seconds) after its job did is a hang.
HANG_AFTER = 30.0
#: Warm-up: the RSS baseline is taken once this share of the handles has started.
WARM_UP = 0.25
#: The most the RSS may grow after warm-up, in MiB.
RSS_SLACK_MB = 8.0

#: The client's budget: at most BUDGET requests in any BUDGET_WINDOW seconds (time-scaled:
#: 150 per second is 9,000 a minute). The run checks it against the emulator's arrivals.
BUDGET, BUDGET_WINDOW = 150, 1.0
#: The share of jobs whose handle has a policy deadline shorter than the job: PollTimeout.
DEADLINE_SHARE = 0.05
#: The share of jobs that also get a plain get() cancelled 0-20 ms after it starts.
CANCEL_SHARE = 0.05
#: Calls left waiting or in flight when the client closes: each must end ClientClosedError.
AT_CLOSE = 20

CI_HANDLES, CI_SECONDS = 300, 6.0
FULL_HANDLES, FULL_SECONDS = 2_000, 60.0


def our_tasks() -> list[asyncio.Task[Any]]:
    """The tasks of voucherify-async still alive."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("voucherify-async")]


def our_timers() -> int:
    """Timers of voucherify-async still scheduled (handles wait between polls on a timer).

    Reads the loop's timer heap, a CPython detail (``BaseEventLoop._scheduled``): 0 elsewhere.
    """
    scheduled = getattr(asyncio.get_running_loop(), "_scheduled", [])
    return sum(
        1
        for timer in scheduled
        if not timer.cancelled()
        and type(getattr(timer._callback, "__self__", None)).__module__.startswith(
            "voucherify_async"
        )
    )


def rss_mb() -> float | None:
    """This process's resident set size in MiB (from /proc/self/statm), None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@attrs.frozen
class Job:
    """A simulated action and the outcome its handle must reach."""

    action_id: str
    expected: str  # "DONE", "FAILED" or "TIMEOUT"
    duration: float
    deadline: float | None = None


@attrs.define
class SoakSummary:
    """What a soak run did, as report.py prints it."""

    handles: int
    seconds: float
    wall: float = 0.0
    requests: int = 0
    faults: dict[str, int] = attrs.Factory(dict)
    outcomes: dict[str, int] = attrs.Factory(dict)
    wrong: list[str] = attrs.Factory(list)
    hangs: int = 0
    max_time: float = 0.0
    mean_time: float = 0.0
    rss_start: float | None = None
    rss_warm: float | None = None
    rss_end: float | None = None
    busiest_window: int = 0
    cancelled_gets: int = 0
    closed_calls: dict[str, int] = attrs.Factory(dict)
    tasks_left: int = 0
    tasks_after_close: int = 0
    timers_left: int = 0
    timers_after_close: int = 0
    warnings: list[str] = attrs.Factory(list)
    loop_errors: list[str] = attrs.Factory(list)

    @property
    def faults_injected(self) -> int:
        """How many requests a fault hit."""
        return sum(self.faults.values())

    @property
    def rss_growth(self) -> float | None:
        """MiB the RSS grew from warm-up to the end (None where it cannot be read)."""
        if self.rss_warm is None or self.rss_end is None:
            return None
        return self.rss_end - self.rss_warm


def _plan(emulator: VoucherifyEmulator, rng: random.Random) -> Job:
    duration = round(rng.uniform(0.1, 1.3), 3)
    roll = rng.random()
    if roll < 0.1:
        action_type, status, operation_status = rng.choice(ACTION_TYPES), "FAILED", None
    elif roll < 0.15:  # DONE, but the bulk operation failed: still AsyncActionFailed
        action_type, status, operation_status = "VOUCHERS.BULK_UPDATE", "DONE", "FAILED"
    else:
        action_type, status, operation_status = rng.choice(ACTION_TYPES), "DONE", None
    action_id = emulator.add_action(
        action_type, duration=duration, status=status, operation_status=operation_status
    )
    expected = "FAILED" if status == "FAILED" or operation_status == "FAILED" else "DONE"
    if rng.random() < DEADLINE_SHARE:  # a deadline that passes while polls are under way
        return Job(action_id, "TIMEOUT", duration, deadline=duration * rng.uniform(0.2, 0.6))
    return Job(action_id, expected, duration)


async def _follow(client: VoucherifyClient, job: Job) -> tuple[str, float]:
    """Await one handle; return the outcome it reached and how long it took (seconds)."""
    started = time.monotonic()
    policy = None if job.deadline is None else attrs.evolve(POLICY, timeout=job.deadline)
    handle = client.async_actions.handle(job.action_id, policy)
    try:
        async with asyncio.timeout(job.duration + HANG_AFTER):
            action = await handle
    except PollTimeout:
        outcome = "TIMEOUT"
    except AsyncActionFailed as failed:
        outcome = "FAILED" if failed.action.id == job.action_id else "FAILED, wrong id"
    except TimeoutError as error:
        outcome = f"{type(error).__name__}: {error}" if str(error) else "hang"
        handle.cancel()
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    else:
        right = action.status is AsyncActionStatus.DONE and action.id == job.action_id
        outcome = "DONE" if right else f"DONE, wrong: {action.id} {action.status}"
    return outcome, time.monotonic() - started


def _settled_rss() -> float | None:
    gc.collect()
    return rss_mb()


class _Soak:
    """One soak run: launches handles at a steady rate and tallies them as they end.

    Nothing here grows with the number of handles (a tally, not a list of results), so the
    RSS measures the client. The emulator keeps every job and every request by design: the
    run drops its finished jobs and its request log as it goes (counting the requests first).
    """

    def __init__(self, summary: SoakSummary, emulator: VoucherifyEmulator, rng: random.Random):
        self.summary = summary
        self.emulator = emulator
        self.rng = rng
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.total_time = 0.0
        self.running: set[asyncio.Task[None]] = set()
        self.window: collections.deque[float] = collections.deque()  # arrivals in one window

    async def cancelled_get(self, client: VoucherifyClient, job: Job) -> None:
        """A plain get() cancelled 0-20 ms in: mid-queue, mid-flight or done, as it falls."""
        call = asyncio.ensure_future(client.async_actions.get(job.action_id))
        await asyncio.sleep(self.rng.uniform(0.0, 0.02))  # a random moment, not a sync point
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        self.summary.cancelled_gets += 1

    async def follow(self, client: VoucherifyClient, job: Job) -> None:
        outcome, took = await _follow(client, job)
        self.emulator._jobs.pop(job.action_id, None)  # the emulator has no public "forget"
        summary = self.summary
        self.outcomes[outcome] += 1
        self.total_time += took
        summary.max_time = max(summary.max_time, took)
        if outcome == "hang":
            summary.hangs += 1
        elif outcome != job.expected:
            summary.wrong.append(f"{job.action_id}: expected {job.expected}, got {outcome}")

    def drop_request_log(self) -> None:
        """Count the requests, track the busiest budget window, and forget them."""
        requests = self.emulator.requests
        self.summary.requests += len(requests)
        window = self.window
        for request in sorted(requests, key=lambda r: r.time):
            window.append(request.time)
            while window[0] <= request.time - BUDGET_WINDOW:
                window.popleft()
            self.summary.busiest_window = max(self.summary.busiest_window, len(window))
        requests.clear()

    async def launch(self, client: VoucherifyClient) -> None:
        summary = self.summary
        interval = summary.seconds / summary.handles
        warm_at = int(summary.handles * WARM_UP)
        start = time.monotonic()
        for i in range(summary.handles):
            if i % 100 == 0:
                self.drop_request_log()
            if i == warm_at:
                summary.rss_warm = _settled_rss()
            job = _plan(self.emulator, self.rng)
            task = asyncio.create_task(self.follow(client, job), name=f"soak handle {i}")
            self.running.add(task)
            task.add_done_callback(self.running.discard)
            if self.rng.random() < CANCEL_SHARE:
                extra = asyncio.create_task(self.cancelled_get(client, job), name=f"soak get {i}")
                self.running.add(extra)
                extra.add_done_callback(self.running.discard)
            # Pacing the arrivals (a steady rate of new handles), not waiting for anything.
            await asyncio.sleep(max(0.0, start + (i + 1) * interval - time.monotonic()))
        while self.running:
            await asyncio.wait(set(self.running))
        self.drop_request_log()
        summary.outcomes = dict(self.outcomes)
        summary.mean_time = self.total_time / summary.handles

    async def close_under_load(self, client: VoucherifyClient) -> None:
        """Close the client with handles polling and gets in flight: each ends ClientClosedError."""
        emulator = self.emulator
        ids = [emulator.add_action(duration=None) for _ in range(AT_CLOSE)]
        for action_id in ids:  # every request for them hangs: all are pending at close()
            emulator.inject(Delay(30.0), times=None, action_id=action_id)
        handles = [client.async_actions.handle(i) for i in ids]
        gets = [asyncio.ensure_future(client.async_actions.get(i)) for i in ids]
        waits = [asyncio.ensure_future(h.result()) for h in handles]
        # Every request for these ids hangs, so all 2 * AT_CLOSE calls are pending at close()
        # whatever the timing; wait only until some are in flight (max_concurrency caps them).
        await emulator.wait_for_requests(AT_CLOSE // 4, timeout=None)
        await client.close()
        outcomes: collections.Counter[str] = collections.Counter()
        for future in (*gets, *waits):
            if not future.done():
                outcomes["still running after close()"] += 1
                continue
            error = future.exception() if not future.cancelled() else None
            outcomes[type(error).__name__ if error else "no error"] += 1
        self.summary.closed_calls = dict(outcomes)


async def run_soak(handles: int, seconds: float, *, seed: int = 2026) -> SoakSummary:
    """Start *handles* handles evenly over *seconds* under random faults; summarize the run."""
    summary = SoakSummary(handles, seconds)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: summary.loop_errors.append(str(context)))
    # Each fault is tried in turn: the chance that none hits a request is 1 - FAULT_RATE.
    probability = 1 - (1 - FAULT_RATE) ** (1 / len(FAULTS))
    started = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary.rss_start = _settled_rss()
            async with VoucherifyEmulator(app_id=APP_ID, app_token=APP_TOKEN, seed=seed) as emu:
                injected = {
                    name: emu.inject(fault, times=None, probability=probability)
                    for name, fault in FAULTS.items()
                }
                client = VoucherifyClient(
                    APP_ID, APP_TOKEN, base_url=emu.base_url, timeout=TIMEOUT, poll_policy=POLICY,
                    requests_per_minute=BUDGET, budget_window=BUDGET_WINDOW,
                )  # fmt: skip
                async with client:
                    run = _Soak(summary, emu, random.Random(seed))
                    await run.launch(client)
                    summary.tasks_left, summary.timers_left = len(our_tasks()), our_timers()
                    await run.close_under_load(client)
                    run.drop_request_log()
                summary.tasks_after_close = len(our_tasks())
                summary.timers_after_close = our_timers()
                summary.faults = {name: fault.hits for name, fault in injected.items()}
            summary.rss_end = _settled_rss()
        summary.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    finally:
        loop.set_exception_handler(previous_handler)
    summary.wall = time.monotonic() - started
    return summary


@pytest.mark.slow
async def test_soak() -> None:
    """Handles under 10 % random faults all end in their job's outcome, leaving nothing behind."""
    handles, seconds = (FULL_HANDLES, FULL_SECONDS) if full_soak() else (CI_HANDLES, CI_SECONDS)
    summary = await run_soak(handles, seconds)
    print(f"\n{summary}")
    assert summary.wrong == []
    assert summary.hangs == 0
    assert sum(summary.outcomes.values()) == handles
    assert set(summary.outcomes) <= {"DONE", "FAILED", "TIMEOUT"}
    assert summary.outcomes.get("TIMEOUT", 0) > 0 and summary.cancelled_gets > 0
    assert summary.busiest_window <= BUDGET
    assert summary.closed_calls == {"ClientClosedError": 2 * AT_CLOSE}, summary.closed_calls
    assert summary.outcomes.get("FAILED", 0) > 0 and summary.outcomes.get("DONE", 0) > 0
    assert 0.05 < summary.faults_injected / summary.requests < 0.15
    assert all(hits > 0 for hits in summary.faults.values()), summary.faults
    assert summary.tasks_left == 0 and summary.tasks_after_close == 0
    assert summary.timers_left == 0 and summary.timers_after_close == 0
    assert summary.warnings == [] and summary.loop_errors == []
    if summary.rss_growth is not None:
        assert summary.rss_growth < RSS_SLACK_MB, summary
