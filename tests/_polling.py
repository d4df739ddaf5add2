"""A PollSchedule driven against an emulator job on a fake clock (no sleeps): what the
schedule tests share."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import attrs
from hypothesis import HealthCheck, settings

from voucherify_async import PollPolicy
from voucherify_async._polling.durations import DurationStats
from voucherify_async._polling.schedule import PollSchedule
from voucherify_async.testing._jobs import Job
from voucherify_async.testing._shapes import make_shape

#: Reproducible in CI: the same examples every run, no example database.
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@attrs.frozen
class Run:
    gets: int
    lateness: float  # seconds from the job's end to the answer of the poll that saw it
    gaps: tuple[tuple[float, float, float], ...]  # (answered at, gap, bound at that moment)
    #: The guarantee's reference for the gap that covered the end: the handle's start, or
    #: the last poll that saw the job ENQUEUED once a later poll saw it past that.
    reference: float = 0.0


def _job(curve: str | Callable[[float], int], duration: float, enqueued: float = 0.0) -> Job:
    shape = curve if curve in ("linear", "steps") else make_shape(curve, random.Random(5))
    return Job.planned(
        id="aa_test",
        type="VOUCHERS.IMPORT",
        seq=0,
        now_ms=0.0,
        created_ms=0,
        enqueued=enqueued,
        duration=duration,
        curve=shape,  # type: ignore[arg-type]
        status="DONE",
        operation_status=None,
        result=None,
        request_id="v-test",
        extra=None,
    )


def poll(
    job: Job,
    duration: float,
    policy: PollPolicy,
    *,
    latency: float = 0.05,
    start: float = 0.01,
    every: float | None = None,
    rng: random.Random | None = None,
    stats: DurationStats | None = None,
    told_type: bool = False,
    learn: bool = False,
    known_start: bool = False,
    created: float | None = 0.0,
) -> Run:
    """Drive a PollSchedule against *job* (created at 0) until a poll sees it end; with
    *told_type* the handle knows the type before its first GET (a start helper's); with
    *learn*, *stats* learns the job's duration and what its progress foretold at the end,
    as a handle's client does; with *known_start*, the handle's start is the action's
    creation as far as it knows (this client started it). *created* is what the schedule
    is told of the creation (it must not matter)."""
    schedule = PollSchedule(
        policy, rng or random.Random(1), started=start, stats=stats, known_start=known_start
    )
    t = start + schedule.first_delay(job.type if told_type else None)
    gaps = []
    reference, queued = start, None
    for gets in range(1, 100_000):
        status, progress, _ = job.state((t + latency / 2) * 1000)
        answered = t + latency
        if status == "DONE":
            if learn and stats is not None:
                stats.add(job.type, duration)
                schedule.ended(answered, duration, job.type)
            return Run(gets, answered - duration, tuple(gaps), reference)
        in_progress = status == "IN_PROGRESS"
        if status == "ENQUEUED":
            queued, reference = answered, start
        elif queued is not None:
            reference = queued
        delay, _ = schedule.next_delay(
            answered,
            in_progress,
            progress if in_progress else None,
            created=created,
            every=every,
            action_type=job.type,
            enqueued=status == "ENQUEUED",
        )
        gaps.append((answered, delay, schedule.bound(answered, 0.0, job.type) or math.inf))
        t = answered + delay
    raise AssertionError("the job was never seen to end")
