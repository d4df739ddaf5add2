"""Budget: many concurrent jobs under a 100 requests/minute plan, time-scaled.

*jobs* jobs of the seed's 0.1-1.3 s start at once against an emulator that enforces
*rpm* requests per ``60 / scale`` real seconds (its 429s carry ``Retry-After`` and the
``X-Rate-Limit-*`` headers). Three pollers wait for them:

* the fixed 1 s loop through handles, on a client WITHOUT a budget (``requests_per_minute=None``),
  the baseline: the client still obeys the server's headers,
* a naive 1 s loop on a bare aiohttp session that ignores every rate-limit header, as the
  official SDKs' hand-written loops do,
* our default ``PollPolicy()`` on a client with ``requests_per_minute=rpm,
  budget_window=60 / scale``.

Reported: 429 responses counted by the server, GETs sent, jobs detected within the horizon,
and the mean and max detection latency (finish -> handle resolving, unscaled seconds).
Each variant runs in a fresh process, one after another (``--quick``: side by side).

Usage: ``python benchmarks/budget.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import sys
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    APP_ID,
    APP_TOKEN,
    FIXED_1S,
    Table,
    in_parallel,
    mean,
    num,
    quiet_library,
    ratio,
    scale_policy,
    verdict,
)
from voucherify_async import PollPolicy, VoucherifyClient
from voucherify_async._actions import action_path
from voucherify_async.testing import ACTION_TYPES, VoucherifyEmulator

Variant = Literal["fixed", "naive", "ours"]
VARIANTS: Final[tuple[Variant, ...]] = ("fixed", "naive", "ours")
LABELS: Final[dict[Variant, str]] = {
    "fixed": "fixed 1 s loop, no client budget (baseline)",
    "naive": "naive 1 s loop, ignores rate headers",
    "ours": "PollPolicy() + requests_per_minute (ours)",
}


@attrs.frozen
class Config:
    """How many jobs, the plan's budget, the clock speed-up and how long to wait (unscaled)."""

    jobs: int = 200
    rpm: int = 100
    scale: float = 6.0
    horizon: float = 600.0
    duration_range: tuple[float, float] = (0.1, 1.3)
    variants: tuple[Variant, ...] = VARIANTS
    child: bool = True
    parallel: bool = False
    seed: int = 11


FULL: Final = Config()
QUICK: Final = Config(scale=20.0, horizon=360.0, parallel=True)
SMOKE: Final = Config(jobs=8, rpm=100, scale=60.0, horizon=60.0, child=False)


@attrs.frozen
class Result:
    """What the server counted and what the poller saw (latencies in unscaled seconds)."""

    too_many: int
    gets: int
    latencies: tuple[float, ...]
    jobs: int
    wall: float


async def _naive(
    session: aiohttp.ClientSession, base_url: str, action_id: str, speed: float
) -> None:
    """Poll every second until DONE or FAILED; a 429 is just a failed poll."""
    headers = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
    url = base_url + action_path(action_id)
    while True:
        try:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
            if response.status == 200 and json.loads(body)["status"] in ("DONE", "FAILED"):
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(1.0 / speed)


async def _measure(variant: Variant, config: Config) -> Result:
    speed = config.scale
    rng = random.Random(config.seed)
    random.seed(config.seed)
    durations = [rng.uniform(*config.duration_range) for _ in range(config.jobs)]
    loop = asyncio.get_running_loop()
    resolved: dict[str, float] = {}
    waits: list[asyncio.Future[Any]] = []
    window = 60.0 / speed
    emulator = VoucherifyEmulator(
        speed=speed, requests_per_minute=config.rpm, rate_limit_window=window, seed=config.seed
    )
    async with emulator as emu:
        ours = variant == "ours"
        client = VoucherifyClient(
            APP_ID,
            APP_TOKEN,
            base_url=emu.base_url,
            poll_policy=scale_policy(PollPolicy() if ours else FIXED_1S, speed),
            requests_per_minute=config.rpm if ours else None,
            budget_window=window,
        )
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))
        ids = [
            emu.add_action(ACTION_TYPES[i % len(ACTION_TYPES)], duration=d)
            for i, d in enumerate(durations)
        ]
        start = loop.time()

        def on_done(done: asyncio.Future[Any], action_id: str) -> None:
            if not done.cancelled():  # cancelled at the horizon: not detected
                resolved.setdefault(action_id, loop.time())

        try:
            for action_id in ids:
                wait: asyncio.Future[Any]
                if variant == "naive":
                    wait = loop.create_task(_naive(session, emu.base_url, action_id, speed))
                else:
                    wait = asyncio.ensure_future(client.async_actions.handle(action_id).result())
                wait.add_done_callback(functools.partial(on_done, action_id=action_id))
                waits.append(wait)
            await asyncio.wait(waits, timeout=config.horizon / speed)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            await client.close()
            await session.close()
        wall = loop.time() - start
        latencies = []
        for action_id in ids:
            finished = emu.finished_at(action_id)
            if action_id in resolved and finished is not None:
                latencies.append((resolved[action_id] - finished) * speed)
        too_many = sum(1 for r in emu.requests if r.status == 429)
        return Result(too_many, len(emu.requests), tuple(latencies), config.jobs, wall)


def measure(variant: Variant, config: Config) -> Result:
    """One poller, in a fresh event loop."""
    state = random.getstate()
    try:
        with quiet_library():
            return asyncio.run(_measure(variant, config))
    finally:
        random.setstate(state)


def run(config: Config) -> list[Table]:
    """Every poller under the same budget; one table."""
    calls = [functools.partial(measure, variant, config) for variant in config.variants]
    if config.parallel and config.child:
        outcomes = in_parallel(True, calls)
    else:
        outcomes = [in_parallel(config.child, [call])[0] for call in calls]
    results = dict(zip(config.variants, outcomes, strict=True))
    base = results.get("fixed")
    rows = []
    for variant, r in results.items():
        lat_mean, lat_max = mean(r.latencies), max(r.latencies, default=float("nan"))
        rows.append(
            (
                LABELS[variant],
                f"{r.too_many:,}",
                f"{r.gets:,}",
                f"{len(r.latencies)}/{r.jobs}",
                num(lat_mean, 1),
                num(lat_max, 1),
                ratio(r.gets, base.gets) if base else "-",
                ratio(lat_mean, mean(base.latencies)) if base else "-",
            )
        )
    ours = results.get("ours")
    notes = [
        f"{config.jobs} jobs of {config.duration_range[0]}-{config.duration_range[1]} s started "
        f"at once; the server admits {config.rpm} requests per sliding minute; clock x"
        f"{config.scale:g} (window {60 / config.scale:g} s real), horizon {config.horizon:g} s; "
        "latencies in unscaled seconds.",
        f"Floor: {config.jobs} jobs need at least {config.jobs} GETs, i.e. "
        f"{config.jobs / config.rpm:g} minutes of budget.",
        "The server's rate headers carry whole seconds (X-Rate-Limit-Retry, Retry-After >= 1), "
        f"which at x{config.scale:g} can stretch a pause by up to {config.scale:g} unscaled s.",
    ]
    if ours is not None:
        notes.append(f"Target: ours sees no 429: {ours.too_many} ({verdict(ours.too_many == 0)}).")
    columns = (
        "poller",
        "429s",
        "GETs",
        "detected",
        "mean latency s",
        "max latency s",
        "GETs x fixed",
        "mean latency x fixed",
    )
    title = f"Budget: {config.jobs} concurrent jobs under {config.rpm} requests/minute"
    return [Table(title, columns, tuple(rows), tuple(notes))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="polling under a request budget")
    parser.add_argument("--quick", action="store_true", help="a faster clock, pollers side by side")
    args = parser.parse_args(argv)
    for table in run(QUICK if args.quick else FULL):
        print(table.text())


if __name__ == "__main__":
    main()
