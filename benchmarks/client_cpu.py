"""Client CPU per request: VoucherifyClient against a bare aiohttp loop, same server, same load.

The emulator runs in another process and serves one finished action (a VOUCHERS.IMPORT with
its result). This process sends *requests* GETs at *concurrency* through each variant:

* ``raw aiohttp + json.loads``: ``ClientSession.get``, ``read()``, ``json.loads`` (the baseline),
* ``raw aiohttp, bytes only``: the same without parsing,
* ``client transport only``: the client's gate, retries, headers and error mapping, without
  decoding (``client._transport.get``, a private call used here to split the cost),
* ``client.async_actions.get``: everything, down to a typed ``AsyncAction``.

Each variant runs in a fresh event loop with its own session (connector limit = concurrency)
after a warm-up; the figure is ``time.process_time()`` of this process (user + system CPU,
the client side only: the server's CPU is not counted) per request. The *requests* are split
into *rounds* rounds; each round runs every variant once, back to back, in an order that
rotates from round to round. A variant's ratio is *paired*: its CPU over the baseline's in
the same round, so a machine that slows down between rounds slows both sides of each ratio.
The table shows the median of those per-round ratios and their range (lowest-highest over
the rounds), so the spread is in sight next to the headline.

``--instructions`` counts instructions per GET instead, with valgrind (callgrind): the
baseline and the full get, each as a run of 2,200 GETs minus one of 200. Slow (minutes), but
a machine's load barely moves it, where CPU time varies by tens of percent between runs.

Usage: ``python benchmarks/client_cpu.py [--quick | --instructions]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import aiohttp
import attrs
from yarl import URL

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import APP_ID, APP_TOKEN, Table, emulator_process, num
from voucherify_async import VoucherifyClient
from voucherify_async._actions import action_path
from voucherify_async._converter import decode_async_action


@attrs.frozen
class Config:
    """GETs per variant (split into *rounds* interleaved rounds), how many at once."""

    requests: int
    concurrency: int = 100
    rounds: int = 4
    warmup: int = 300

    @property
    def per_round(self) -> int:
        return self.requests // self.rounds


FULL: Final = Config(requests=20_000, rounds=8)
QUICK: Final = Config(requests=2_000, rounds=2, warmup=100)
SMOKE: Final = Config(requests=200, concurrency=20, rounds=1, warmup=20)

VARIANTS: Final = (
    "raw aiohttp + json.loads",
    "raw aiohttp, bytes only",
    "client transport only (no decode)",
    "client.async_actions.get",
)

Call = Callable[[], Awaitable[object]]


@attrs.frozen
class Sample:
    """One variant's round: CPU microseconds per request and requests per wall second."""

    cpu_us: float
    rate: float


async def _drive(call: Call, n: int, concurrency: int) -> None:
    """Send *n* requests through *call* from *concurrency* workers."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    share, extra = divmod(n, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))


async def _measure(call: Call, config: Config) -> Sample:
    await _drive(call, config.warmup, config.concurrency)
    n = config.per_round
    cpu, wall = time.process_time(), time.perf_counter()
    await _drive(call, n, config.concurrency)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Sample(cpu / n * 1e6, n / wall)


async def _raw(base_url: str, action_id: str, config: Config, *, parse: bool) -> Sample:
    url = URL(base_url + action_path(action_id), encoded=True)
    headers = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN, "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=config.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> object:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"unexpected status {response.status}")
            return json.loads(body) if parse else body

        return await _measure(call, config)


async def _client(base_url: str, action_id: str, config: Config, *, decode: bool) -> Sample:
    async with VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=base_url, max_concurrency=config.concurrency
    ) as client:
        if decode:

            async def call() -> object:
                return await client.async_actions.get(action_id)

        else:
            transport = client._transport
            path = action_path(action_id)
            url = URL(transport.root + path, encoded=True)  # once, as the client caches it

            async def call() -> object:
                return await transport.get(url, path=path)

        return await _measure(call, config)


def _variant(name: str, base_url: str, action_id: str, config: Config) -> Sample:
    runs = {
        VARIANTS[0]: lambda: _raw(base_url, action_id, config, parse=True),
        VARIANTS[1]: lambda: _raw(base_url, action_id, config, parse=False),
        VARIANTS[2]: lambda: _client(base_url, action_id, config, decode=False),
        VARIANTS[3]: lambda: _client(base_url, action_id, config, decode=True),
    }
    return asyncio.run(runs[name]())


def paired_ratios(samples: dict[str, list[Sample]], name: str, base: str) -> list[float]:
    """*name*'s CPU per request over *base*'s, round by round (the rounds pair them)."""
    return [
        mine.cpu_us / theirs.cpu_us
        for mine, theirs in zip(samples[name], samples[base], strict=True)
    ]


def sample(config: Config) -> tuple[dict[str, list[Sample]], bytes]:
    """Every variant *config.rounds* times against one emulator process (rotating order within
    each round), and the body served."""
    samples: dict[str, list[Sample]] = {name: [] for name in VARIANTS}
    with emulator_process() as (base_url, action_id):
        body = asyncio.run(_fetch_body(base_url, action_id))
        for round_ in range(config.rounds):
            order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
            for name in order:
                samples[name].append(_variant(name, base_url, action_id, config))
    return samples, body


def measure(config: Config) -> tuple[dict[str, float], dict[str, float], bytes]:
    """The median CPU microseconds per request and requests per second of each variant, and
    the body served (for benchmarks/planning.py)."""
    samples, body = sample(config)
    cpu = {name: statistics.median(s.cpu_us for s in samples[name]) for name in VARIANTS}
    rate = {name: statistics.median(s.rate for s in samples[name]) for name in VARIANTS}
    return cpu, rate, body


def run(config: Config) -> list[Table]:
    """Measure every variant *config.rounds* times against one emulator process."""
    load_before = os.getloadavg()[0]
    samples, body = sample(config)
    load_after = os.getloadavg()[0]
    cpu = {name: statistics.median(s.cpu_us for s in samples[name]) for name in VARIANTS}
    rate = {name: statistics.median(s.rate for s in samples[name]) for name in VARIANTS}
    paired = {name: paired_ratios(samples, name, VARIANTS[0]) for name in VARIANTS}
    rows = tuple(
        (
            name + (" (baseline)" if name == VARIANTS[0] else ""),
            num(cpu[name], 1),
            f"{statistics.median(paired[name]):.2f}x",
            f"{min(paired[name]):.2f}-{max(paired[name]):.2f}x",
            num(rate[name], 0),
        )
        for name in VARIANTS
    )
    headline = paired[VARIANTS[3]]
    no_decode = paired_ratios(samples, VARIANTS[2], VARIANTS[1])
    decode_us = cpu[VARIANTS[3]] - cpu[VARIANTS[2]]
    alone = min(timeit.repeat(lambda: decode_async_action(body), number=200, repeat=5)) / 200 * 1e6
    notes = (
        f"{config.requests:,} GETs per variant at concurrency {config.concurrency}, in "
        f"{config.rounds} round(s) of {config.per_round:,}; each round runs every variant once "
        "(rotating order), and a ratio is taken within its round (paired): the median and the "
        "range over the rounds are shown. CPU is this process's (the client side only); "
        f"a {len(body)}-byte VOUCHERS.IMPORT body; the emulator in another process.",
        "Every GET asks for the same id, as a handle's polls do: the baseline builds its URL "
        "once, and the client builds an id's URL once too (it keeps its last 1,024 ids), so a "
        "first get() of an id costs one URL more than shown.",
        "Decoding excluded: client transport / raw bytes-only = "
        f"{statistics.median(no_decode):.2f}x (paired median, "
        f"{min(no_decode):.2f}-{max(no_decode):.2f}x; "
        f"{cpu[VARIANTS[2]] - cpu[VARIANTS[1]]:+,.1f} us per request in the medians).",
        f"Decoding (JSON + structuring): {num(decode_us, 1)} us per request as full get minus "
        f"transport only (noisy: a difference of two figures); decode_async_action alone on this "
        f"body takes {num(alone, 1)} us (timeit, best of 5), "
        f"{alone / cpu[VARIANTS[3]] * 100:.0f} % of a full get.",
        f"Headline: client.async_actions.get / raw aiohttp + json.loads, client CPU per request "
        f"= {statistics.median(headline):.2f}x (median of {len(headline)} paired round(s); "
        f"lowest {min(headline):.2f}x, highest {max(headline):.2f}x); the machine's 1-minute "
        f"load average was {load_before:.1f} before and {load_after:.1f} after (on a busy "
        "machine, compare several runs: their headlines differ more than their rounds say).",
    )
    title = f"Client CPU per request ({config.requests:,} GETs, concurrency {config.concurrency})"
    columns = ("variant", "CPU us/request", "x baseline", "range over rounds", "requests/s")
    return [Table(title, columns, rows, notes)]


async def _fetch_body(base_url: str, action_id: str) -> bytes:
    headers = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url + action_path(action_id), headers=headers) as response,
    ):
        return await response.read()


#: ``--instructions``: GETs per measured run; the difference of two runs is the figure.
INSTRUCTION_RUNS: Final = (200, 2200)


def instructions(base_url: str, action_id: str, name: str) -> float:
    """Instructions this process executes per GET through *name*, counted by valgrind
    (callgrind): a run of 2,200 GETs minus one of 200 (start-up, imports and the warm-up
    cancel out), over 2,000. Deterministic to about 1 %, whatever else the machine runs."""
    counts = []
    for n in INSTRUCTION_RUNS:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, "--one", name, base_url, action_id, str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", result.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count from valgrind: {result.stderr[-300:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (INSTRUCTION_RUNS[1] - INSTRUCTION_RUNS[0])


def instruction_ratios() -> str:
    """The baseline's and the full get's instructions per GET, and their ratio."""
    with emulator_process() as (base_url, action_id), ThreadPoolExecutor(2) as pool:
        # The two variants side by side (valgrind runs one thread at a time).
        base, full = pool.map(
            lambda name: instructions(base_url, action_id, name), (VARIANTS[0], VARIANTS[3])
        )
    return (
        f"instructions per GET (valgrind callgrind, concurrency 20): {VARIANTS[0]} {base:,.0f}; "
        f"{VARIANTS[3]} {full:,.0f}; ratio {full / base:.3f}x"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="client CPU per request")
    parser.add_argument("--quick", action="store_true", help="2,000 GETs in two rounds")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per GET with valgrind instead (minutes; a busy machine's "
        "noise does not reach them)",
    )
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # one variant, for valgrind
    args = parser.parse_args(argv)
    if args.one:
        name, base_url, action_id, n = args.one
        config = Config(requests=int(n), concurrency=20, rounds=1, warmup=INSTRUCTION_RUNS[0])
        _variant(name, base_url, action_id, config)
        return
    if args.instructions:
        print(instruction_ratios())
        return
    for table in run(QUICK if args.quick else FULL):
        print(table.text())


if __name__ == "__main__":
    main()
