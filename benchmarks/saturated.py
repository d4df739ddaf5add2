"""A saturated budget: 200 short jobs start at once under 60 requests per 12 s.

The budget, not the jobs, decides when each end can be seen. The oracle knows every job's
end and polls each once, as soon as both the end and a budget slot allow (greedy in order
of ends, which minimises the mean latency); its figures are computed from the same jobs.
The pollers run for real against the emulator, which enforces the same budget and counts
429s: the fixed 1 s loop and ``PollPolicy()``, each on a client whose own budget is
``requests_per_minute=60, budget_window=12`` (time-scaled like the jobs).

Usage: ``python benchmarks/saturated.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
from pathlib import Path
from typing import Final

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    APP_ID,
    APP_TOKEN,
    FIXED_1S,
    Table,
    mean,
    num,
    percentile,
    quiet_library,
    ratio,
    scale_policy,
)
from voucherify_async import AsyncActionHandle, PollPolicy, VoucherifyClient
from voucherify_async.testing import ACTION_TYPES, VoucherifyEmulator

VARIANTS: Final = ("fixed", "ours")
LABELS: Final = {"fixed": "fixed 1 s loop", "ours": "PollPolicy() (ours)", "oracle": "oracle"}


@attrs.frozen
class Config:
    jobs: int = 200
    limit: int = 60
    window: float = 12.0  # unscaled seconds
    durations: tuple[float, float] = (0.1, 1.3)
    speed: float = 1.0
    seed: int = 5


FULL: Final = Config()
QUICK: Final = Config(speed=4.0)
SMOKE: Final = Config(jobs=20, limit=6, speed=8.0)


@attrs.frozen
class Result:
    gets_per_job: float
    latencies: tuple[float, ...]  # unscaled seconds
    too_many: int
    unresolved: int


def plan(config: Config) -> list[float]:
    rng = random.Random(config.seed)
    return [rng.uniform(*config.durations) for _ in range(config.jobs)]


def oracle(config: Config, durations: list[float]) -> Result:
    """One GET per job at max(its end, the moment the budget has a slot), ends in order."""
    polls: list[float] = []
    latencies = []
    for end in sorted(durations):
        at = end
        if len(polls) >= config.limit:
            at = max(at, polls[-config.limit] + config.window)
        polls.append(at)
        latencies.append(at - end)
    return Result(1.0, tuple(latencies), 0, 0)


async def _measure(variant: str, config: Config) -> Result:
    speed = config.speed
    durations = plan(config)
    policy = scale_policy(FIXED_1S if variant == "fixed" else PollPolicy(), speed)
    loop = asyncio.get_running_loop()
    resolved: dict[str, float] = {}

    def on_done(handle: AsyncActionHandle) -> None:
        if handle.latest is not None and handle.latest.is_terminal:
            resolved.setdefault(handle.id, loop.time())

    window = config.window / speed
    async with VoucherifyEmulator(
        speed=speed, seed=config.seed, requests_per_minute=config.limit, rate_limit_window=window
    ) as emu:
        client = VoucherifyClient(
            APP_ID,
            APP_TOKEN,
            base_url=emu.base_url,
            poll_policy=policy,
            requests_per_minute=config.limit,
            budget_window=window,
        )
        ids = [
            emu.add_action(ACTION_TYPES[i % len(ACTION_TYPES)], duration=d)
            for i, d in enumerate(durations)
        ]
        handles = [client.async_actions.handle(action_id) for action_id in ids]
        for handle in handles:
            handle.add_done_callback(on_done)
        # A cap only (the wait ends when every handle has): generous for a busy machine.
        horizon = (config.jobs / config.limit + 3) * window + 30.0
        try:
            await asyncio.wait(
                [asyncio.ensure_future(h.result()) for h in handles], timeout=horizon
            )
        finally:
            await client.close()
        per_id = collections.Counter(r.action_id for r in emu.requests)
        too_many = sum(1 for r in emu.requests if r.status == 429)
        latencies = []
        for action_id in ids:
            finished = emu.finished_at(action_id)
            if action_id in resolved and finished is not None:
                latencies.append((resolved[action_id] - finished) * speed)
    gets = sum(per_id[i] for i in ids) / len(ids)
    return Result(gets, tuple(latencies), too_many, len(ids) - len(latencies))


def measure(variant: str, config: Config) -> Result:
    with quiet_library():
        return asyncio.run(_measure(variant, config))


def run(config: Config) -> tuple[Table, dict[str, Result]]:
    durations = plan(config)
    results = {"oracle": oracle(config, durations)}
    for variant in VARIANTS:
        results[variant] = measure(variant, config)
    base = mean(results["oracle"].latencies)
    rows = tuple(
        (
            LABELS[name],
            num(r.gets_per_job),
            num(mean(r.latencies)),
            num(percentile(r.latencies, 95)),
            ratio(mean(r.latencies), base),
            str(r.too_many),
            str(r.unresolved),
        )
        for name, r in results.items()
    )
    notes = (
        f"{config.jobs} jobs of {config.durations[0]}-{config.durations[1]} s start at once; "
        f"budget {config.limit} requests per {config.window:g} s on the client and on the "
        f"emulator; job clock x{config.speed:g}, latencies in unscaled seconds.",
    )
    table = Table(
        f"Saturated budget: {config.jobs} short jobs, {config.limit} per {config.window:g} s",
        ("poller", "GETs/job", "mean latency s", "p95 s", "x oracle", "429s", "unresolved"),
        rows,
        notes,
    )
    return table, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a saturated budget against an oracle")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    table, _ = run(QUICK if args.quick else FULL)
    print(table.text())


if __name__ == "__main__":
    main()
