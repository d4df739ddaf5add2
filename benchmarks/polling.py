"""Polling efficiency: GETs per job and detection latency, ours against two classic pollers.

Short jobs (the seed's 0.1-1.3 s) arrive spread over a window; long jobs (30-300 s, linear
progress) start near the beginning. Each is waited on by one of:

* the fixed 1 s loop, ``PollPolicy(initial_delay=1, multiplier=1, max_delay=1, jitter=0,
  adaptive=False)`` through handles (the baseline),
* an exponential loop like google-api-core's (1 s, x2, cap 60 s, full jitter), written as a
  plain loop over ``client.async_actions.get`` with ``backoff.expo`` and ``backoff.full_jitter``
  (our PollPolicy's jitter is proportional, so no PollPolicy matches it exactly),
* our default ``PollPolicy()``, through handles.

The emulator runs in the same event loop, with its job clock ``speed`` times faster; every
policy is divided by the same factor (``scale_policy``). Latency runs from the emulator's
``finished_at`` to the handle resolving, both on the loop's clock, and is multiplied back by
the speed: figures are in unscaled seconds. Short and long jobs run separately, each variant
in a fresh process (``--quick``: the long-job variants side by side).

Then the engine's harder cases (issue #13): the progress-shape zoo (``benchmarks/zoo.py``:
every shape from 0.1 s to 30 min, on a simulated clock, against the same two baselines and
an oracle), and a saturated budget (``benchmarks/saturated.py``: 200 short jobs at once
under 60 requests per 12 s, against an oracle). A last table checks every target of the
issue, met or not.

Usage: ``python benchmarks/polling.py [--quick] [--plot FILE.svg]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import random
import sys
from pathlib import Path
from typing import Final, Literal

import attrs
import backoff

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import saturated, zoo
from benchmarks._common import (
    APP_ID,
    APP_TOKEN,
    FIXED_1S,
    Table,
    in_parallel,
    mean,
    num,
    percentile,
    quiet_library,
    ratio,
    scale_policy,
    sleep_until,
    verdict,
)
from voucherify_async import (
    AsyncActionHandle,
    PollPolicy,
    RateLimitError,
    ServerError,
    TransportError,
    VoucherifyClient,
)
from voucherify_async.testing import ACTION_TYPES, VoucherifyEmulator

Kind = Literal["short", "long"]
Variant = Literal["fixed", "expo", "ours"]
VARIANTS: Final[tuple[Variant, ...]] = ("fixed", "expo", "ours")
LABELS: Final[dict[Variant, str]] = {
    "fixed": "fixed 1 s loop (baseline)",
    "expo": "exponential 1 s x2 <= 60 s, full jitter",
    "ours": "PollPolicy() (ours)",
}


@attrs.frozen
class Config:
    """Jobs, their durations (unscaled seconds), and the clock speed of each half."""

    short_jobs: int
    long_jobs: int
    short_speed: float
    long_speed: float
    #: Short jobs arrive uniformly over this many (unscaled) seconds; long ones over the other.
    short_arrivals: float
    long_arrivals: float
    short_range: tuple[float, float] = (0.1, 1.3)
    long_range: tuple[float, float] = (30.0, 300.0)
    #: The zoo: jobs per shape for 15-45 s and for 2-30 min jobs (simulated clock).
    zoo_jobs: int = 300
    zoo_long_jobs: int = 300
    #: The saturated-budget scenario.
    saturated: saturated.Config = saturated.FULL
    #: Run each variant in a spawned process (else here, in a fresh event loop).
    child: bool = True
    #: Run the long-job variants side by side (only with child): their latencies are seconds,
    #: so they tolerate sharing the machine better than the short jobs' do.
    parallel_long: bool = False
    seed: int = 7


# Short jobs run on a real-time job clock: durations learned from processing_time are on the
# job clock, so a faster clock would make the first polls wait too long.
FULL: Final = Config(1000, 50, 1.0, 10.0, short_arrivals=60.0, long_arrivals=10.0)
QUICK: Final = Config(
    100,
    10,
    1.0,
    50.0,
    short_arrivals=5.0,
    long_arrivals=5.0,
    parallel_long=True,
    zoo_jobs=40,
    zoo_long_jobs=15,
    saturated=saturated.QUICK,
)
SMOKE: Final = Config(
    12,
    2,
    20.0,
    300.0,
    short_arrivals=1.0,
    long_arrivals=0.0,
    long_range=(30.0, 45.0),
    child=False,
    zoo_jobs=3,
    zoo_long_jobs=2,
    saturated=saturated.SMOKE,
)


@attrs.frozen
class Result:
    """Per job: GETs seen by the server, detection latency and duration (unscaled s)."""

    gets: tuple[int, ...]
    latencies: tuple[float, ...]
    durations: tuple[float, ...]
    unresolved: int
    wall: float


async def _expo_wait(
    client: VoucherifyClient, action_id: str, speed: float, resolved: dict[str, float]
) -> None:
    """google-api-core's poller: at once, then full-jitter waits of 1, 2, 4 ... 60 s."""
    loop = asyncio.get_running_loop()
    delays = backoff.expo(base=2, factor=1.0, max_value=60.0)
    next(delays)  # prime
    while True:
        try:
            action = await client.async_actions.get(action_id)
        except (TransportError, ServerError, RateLimitError):
            action = None
        if action is not None and action.is_terminal:
            resolved[action_id] = loop.time()
            return
        await asyncio.sleep(backoff.full_jitter(next(delays)) / speed)


async def _measure(variant: Variant, kind: Kind, config: Config) -> Result:
    short = kind == "short"
    speed = config.short_speed if short else config.long_speed
    count = config.short_jobs if short else config.long_jobs
    window = config.short_arrivals if short else config.long_arrivals
    low, high = config.short_range if short else config.long_range
    rng = random.Random(config.seed)  # the same jobs for every variant
    random.seed(config.seed)  # the handles' jitter
    plan = sorted((rng.uniform(0, window), rng.uniform(low, high)) for _ in range(count))
    policy = scale_policy(FIXED_1S if variant == "fixed" else PollPolicy(), speed)
    cap = (window + 3 * high + 30.0) / speed  # real seconds before giving up on the rest
    loop = asyncio.get_running_loop()
    resolved: dict[str, float] = {}
    ids: list[str] = []
    waits: list[asyncio.Future[object]] = []

    def on_done(handle: AsyncActionHandle) -> None:
        if handle.latest is not None and handle.latest.is_terminal:  # not cancelled at the cap
            resolved.setdefault(handle.id, loop.time())

    async with VoucherifyEmulator(speed=speed, seed=config.seed) as emu:
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emu.base_url, poll_policy=policy)
        start = loop.time()
        try:
            for i, (arrival, duration) in enumerate(plan):
                await sleep_until(start + arrival / speed)
                action_id = emu.add_action(ACTION_TYPES[i % len(ACTION_TYPES)], duration=duration)
                ids.append(action_id)
                if variant == "expo":
                    waits.append(loop.create_task(_expo_wait(client, action_id, speed, resolved)))
                else:
                    handle = client.async_actions.handle(action_id)
                    handle.add_done_callback(on_done)
                    waits.append(asyncio.ensure_future(handle.result()))
            await asyncio.wait(waits, timeout=max(0.0, start + cap - loop.time()))
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            await client.close()
        wall = loop.time() - start
        per_id = collections.Counter(r.action_id for r in emu.requests)
        gets, latencies, durations = [], [], []
        for action_id, (_, duration) in zip(ids, plan, strict=True):
            finished = emu.finished_at(action_id)
            if action_id in resolved and finished is not None:
                gets.append(per_id[action_id])
                latencies.append((resolved[action_id] - finished) * speed)
                durations.append(duration)
    return Result(tuple(gets), tuple(latencies), tuple(durations), count - len(gets), wall)


def measure(variant: Variant, kind: Kind, config: Config) -> Result:
    """One variant on one kind of job, in a fresh event loop."""
    state = random.getstate()
    try:
        with quiet_library():
            return asyncio.run(_measure(variant, kind, config))
    finally:
        random.setstate(state)


def _rows(results: dict[Variant, Result]) -> tuple[tuple[str, ...], ...]:
    base = results["fixed"]
    rows = []
    for variant in VARIANTS:
        r = results[variant]
        relative = [lat / d * 100 for lat, d in zip(r.latencies, r.durations, strict=True)]
        rows.append(
            (
                LABELS[variant],
                num(mean(r.gets)),
                str(max(r.gets, default=0)),
                num(percentile(r.latencies, 50)),
                num(percentile(r.latencies, 95)),
                num(max(r.latencies, default=float("nan"))),
                num(percentile(relative, 95), 1),
                ratio(mean(r.gets), mean(base.gets)),
                ratio(percentile(r.latencies, 95), percentile(base.latencies, 95)),
                str(r.unresolved),
            )
        )
    return tuple(rows)


COLUMNS: Final = (
    "policy",
    "GETs/job",
    "max GETs",
    "p50 s",
    "p95 s",
    "max s",
    "p95 % of duration",
    "GETs x fixed",
    "p95 x fixed",
    "unresolved",
)


def _targets(short: dict[Variant, Result], long: dict[Variant, Result]) -> Table:
    ours_s, fixed_s, ours_l, fixed_l = short["ours"], short["fixed"], long["ours"], long["fixed"]
    max_gets = max(ours_s.gets, default=0)
    within = sum(g <= 3 for g in ours_s.gets) / max(1, len(ours_s.gets)) * 100
    p95_s, p95_fixed = percentile(ours_s.latencies, 95), percentile(fixed_s.latencies, 95)
    fewer = mean(fixed_l.gets) / mean(ours_l.gets) if ours_l.gets else float("nan")
    relative = [lat / d * 100 for lat, d in zip(ours_l.latencies, ours_l.durations, strict=True)]
    p95_rel = percentile(relative, 95)
    unresolved = ours_s.unresolved + ours_l.unresolved
    rows = (
        (
            "short: <= 3 GETs each",
            f"max {max_gets}, {within:.1f} % of jobs <= 3",
            verdict(max_gets <= 3),
        ),
        (
            "short: p95 latency <= fixed loop's",
            f"{num(p95_s)} s vs {num(p95_fixed)} s",
            verdict(p95_s <= p95_fixed),
        ),
        ("long: >= 5x fewer GETs than fixed", f"{num(fewer, 1)}x fewer", verdict(fewer >= 5)),
        ("long: p95 latency <= 5 % of duration", f"{num(p95_rel, 2)} %", verdict(p95_rel <= 5)),
        ("every job detected", f"{unresolved} unresolved", verdict(unresolved == 0)),
    )
    return Table("Polling targets (PollPolicy() defaults)", ("target", "figure", "status"), rows)


def _call(variant: Variant, kind: Kind, config: Config) -> functools.partial[Result]:
    return functools.partial(measure, variant, kind, config)


def _issue_targets(
    short: dict[Variant, Result],
    zoo_results: zoo.Results,
    long_zoo: zoo.Results,
    sat: dict[str, saturated.Result],
) -> Table:
    """Every target of issue #13, met or not: for a client that has learned the type's
    durations (the steady state), then for a fresh one."""
    rows: list[tuple[str, str, str]] = []
    for poller, who in (("ours", "learned"), ("fresh", "fresh client")):
        for label, results in (("15-45 s", zoo_results), ("2-30 min", long_zoo)):
            for target, figure, status in zoo.target_rows(results, poller=poller):
                rows.append((f"{label}, {who}, {target}", figure, status))
    ours = short["ours"]
    gets, p95 = mean(ours.gets), percentile(ours.latencies, 95)
    rows.append(
        (
            "short jobs: <= 2.0 GETs per job at p95 <= 0.8 s",
            f"{num(gets)} GETs, p95 {num(p95)} s",
            verdict(gets <= 2.0 and p95 <= 0.8),
        )
    )
    o, base = sat["ours"], mean(sat["oracle"].latencies)
    times = mean(o.latencies) / base if base else float("nan")
    rows.append(
        (
            "saturated: mean latency <= 1.3x oracle, <= 1.3 GETs/job, 0 x 429",
            f"{num(times)}x, {num(o.gets_per_job)} GETs, {o.too_many} x 429",
            verdict(times <= 1.3 and o.gets_per_job <= 1.3 and o.too_many == 0),
        )
    )
    return Table("Issue #13 targets", ("target", "figure", "status"), tuple(rows))


def zoo_runs(config: Config) -> tuple[zoo.Results, zoo.Results]:
    """The zoo on 15-45 s jobs and on 2-30 min jobs."""
    medium = zoo.run_shapes(zoo.Config(config.zoo_jobs))
    long = zoo.run_shapes(zoo.Config(config.zoo_long_jobs, durations=(120.0, 1800.0)))
    return medium, long


def write_plot(path: Path, config: Config) -> None:
    """The zoo's plot (GETs per job against p95 lateness) as an SVG; needs matplotlib."""
    zoo.plot(zoo.run_shapes(zoo.Config(config.zoo_jobs)), path)


def run(config: Config) -> list[Table]:
    """Every variant on short and on long jobs; one table each, and the targets; then the
    zoo, the saturated budget and the issue's targets."""
    short_runs = [in_parallel(config.child, [_call(v, "short", config)])[0] for v in VARIANTS]
    long_calls = [_call(variant, "long", config) for variant in VARIANTS]
    if config.parallel_long and config.child:
        long_runs = in_parallel(True, long_calls)
    else:
        long_runs = [in_parallel(config.child, [call])[0] for call in long_calls]
    short = dict(zip(VARIANTS, short_runs, strict=True))
    long = dict(zip(VARIANTS, long_runs, strict=True))
    how = "side by side" if config.parallel_long and config.child else "one after another"
    short_notes = (
        f"{config.short_jobs:,} jobs of {config.short_range[0]}-{config.short_range[1]} s arriving "
        f"over {config.short_arrivals:g} s; job clock x{config.short_speed:g}, latencies in "
        "unscaled seconds; variants run one after another, each in a fresh event loop.",
    )
    long_notes = (
        f"{config.long_jobs:,} jobs of {config.long_range[0]:g}-{config.long_range[1]:g} s "
        f"(linear progress) starting over {config.long_arrivals:g} s; job clock "
        f"x{config.long_speed:g}, latencies in unscaled seconds; variants run {how}.",
    )
    medium_zoo, long_zoo = zoo_runs(config)
    sat_table, sat = saturated.run(config.saturated)
    return [
        Table(f"Polling: {config.short_jobs:,} short jobs", COLUMNS, _rows(short), short_notes),
        Table(f"Polling: {config.long_jobs:,} long jobs", COLUMNS, _rows(long), long_notes),
        _targets(short, long),
        zoo.shape_table(zoo.Config(config.zoo_jobs), medium_zoo),
        zoo.shape_table(zoo.Config(config.zoo_long_jobs, durations=(120.0, 1800.0)), long_zoo),
        zoo.held_out_table(zoo.Config(config.zoo_jobs)),
        zoo.held_out_table(zoo.Config(config.zoo_long_jobs, durations=(120.0, 1800.0))),
        sat_table,
        _issue_targets(short, medium_zoo, long_zoo, sat),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="polling efficiency")
    parser.add_argument("--quick", action="store_true", help="fewer jobs, a faster clock")
    parser.add_argument("--plot", type=Path, help="also write the zoo's plot (SVG) here")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    for table in run(config):
        print(table.text(), end="\n\n")
    if args.plot is not None:
        write_plot(args.plot, config)


if __name__ == "__main__":
    main()
