"""The progress-shape zoo: every schedule against every shape, on a simulated clock.

Each job is the emulator's own timeline (``voucherify_async.testing._jobs.Job`` with a shape
from ``PROGRESS_SHAPES``), read at the moments a poller asks; the pollers are the real
schedule objects the handles use (``PollSchedule``), fed what a handle would see. Nothing
sleeps: a 30-minute job costs microseconds, so every shape runs at every duration from 0.1 s
to 30 min. What this leaves out (the event loop, HTTP) is measured by ``polling.py`` on the
real emulator; here every request takes ``LATENCY`` seconds (the server reads the job half way).

Pollers: the fixed 1 s loop, exponential 1 s x2 <= 60 s with full jitter (google-api-core's),
``PollPolicy()`` on a client that has learned the type's durations (ours: a client that polled
:data:`WARM_JOBS` jobs of the type to their end before, and learns from each job it sees end,
as every client does: their durations and what their progress foretold; and that started
each job with a start helper, which tells the handle its type), ``PollPolicy()`` on a fresh
client (nothing learned yet: the lateness bound counts from age 0), and the oracle (one GET
at the end). Lateness is the time from the job's end to the poll that sees it, as a fraction
of the job's duration.

Usage: ``python benchmarks/zoo.py [--quick] [--plot docs/_static/zoo.svg]``
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import attrs
import backoff

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import FIXED_1S, Table, mean, num, percentile, verdict
from voucherify_async import PollPolicy
from voucherify_async._durations import DurationStats
from voucherify_async._schedule import FIRST_POLL_CAP, PollSchedule
from voucherify_async.testing._jobs import Job
from voucherify_async.testing._shapes import make_shape

#: Seconds one request takes (the server reads the job half way through).
LATENCY: Final = 0.05
#: The handle starts this long after the action was created (start() then handle()).
HANDLE_START: Final = 0.01
#: created_at mapped with a Date header has up to this much slack (whole seconds + latency).
CREATED_SLACK: Final = 1.0

#: Shape name -> (progress spec, ENQUEUED fraction of the duration).
SHAPES: Final[dict[str, tuple[str, float]]] = {
    "linear": ("linear", 0.0),
    "fast-then-slow": ("fast-then-slow", 0.0),
    "slow-then-fast": ("slow-then-fast", 0.0),
    "coarse": ("coarse", 0.0),
    "noisy": ("noisy", 0.0),
    "stall": ("stall", 0.0),
    "enqueued 30 %": ("linear", 0.3),
    "none": ("none", 0.0),
}
#: Shapes the engine was not tuned on (no targets: a check that nothing breaks badly).
HELD_OUT: Final[dict[str, tuple[str, float]]] = {
    "s-curve": ("s-curve", 0.0),
    "jump-then-crawl": ("jump-then-crawl", 0.0),
    "late-stall": ("late-stall", 0.0),
    "cubic": ("cubic", 0.0),
    "tenths": ("tenths", 0.0),
    "noisy, enqueued 20 %": ("noisy", 0.2),
    "coarse, enqueued 30 %": ("coarse", 0.3),
    "stages": ("stages", 0.0),
    "mixed shapes": ("mixed", 0.0),
}
#: Where progress moves: ours must beat both baselines on both axes there.
MOVING: Final = ("linear", "fast-then-slow", "slow-then-fast", "coarse", "noisy")
#: Jobs of the type the learned client saw end before the run (durations from the same range).
WARM_JOBS: Final = 40
#: The type every simulated job has.
TYPE: Final = "VOUCHERS.IMPORT"

POLLERS: Final = ("fixed", "expo", "ours", "fresh", "oracle")
LABELS: Final = {
    "fixed": "fixed 1 s",
    "expo": "exponential 1 s x2 <= 60 s",
    "ours": "PollPolicy(), durations learned",
    "fresh": "PollPolicy(), fresh client",
    "oracle": "oracle",
}


@attrs.frozen
class Config:
    """How many jobs per shape, and their duration range (seconds, log-uniform)."""

    jobs: int
    durations: tuple[float, float] = (15.0, 45.0)
    seed: int = 11


QUICK: Final = Config(40)
FULL: Final = Config(300)
LONG: Final = Config(300, durations=(120.0, 1800.0))
SMOKE: Final = Config(4)


@attrs.frozen
class Outcome:
    gets: int
    lateness: float  # seconds
    duration: float
    floor: float = 0.0  # the learned floor of the lateness bound for this job (s)


#: shape -> poller -> one Outcome per job.
Results = dict[str, dict[str, list[Outcome]]]


def _expo_delays(rng: random.Random) -> Iterator[float]:
    gen = backoff.expo(base=2, factor=1.0, max_value=60.0)
    next(gen)
    for value in gen:
        yield rng.uniform(0, value)


def _job(spec: str, enqueued: float, duration: float, rng: random.Random) -> Job:
    curve = make_shape(spec, rng)
    return Job.planned(
        id="aa_sim",
        type=TYPE,
        seq=0,
        now_ms=0.0,
        created_ms=0,
        enqueued=enqueued * duration,
        duration=duration,
        curve=curve,
        status="DONE",
        operation_status=None,
        result=None,
        request_id="v-sim",
        extra=None,
    )


def simulate(
    poller: str,
    job: Job,
    duration: float,
    rng: random.Random,
    policy: PollPolicy | None = None,
    stats: DurationStats | None = None,
) -> Outcome:
    """Poll *job* (created at 0) with *poller* until a poll sees it end."""
    if poller == "oracle":
        return Outcome(1, LATENCY / 2, duration)

    def state(t: float) -> tuple[str, int]:
        status, progress, _ = job.state(t * 1000)
        return status, progress

    gets, answered, floor = poll(
        poller, state, duration, rng, policy, stats if poller == "ours" else None, job.type
    )
    return Outcome(gets, answered - duration, duration, floor)


def poll(
    poller: str,
    state: Callable[[float], tuple[str, int]],
    end: float,
    rng: random.Random,
    policy: PollPolicy | None = None,
    stats: DurationStats | None = None,
    action_type: str = TYPE,
    *,
    started: float = HANDLE_START,
    created: float = CREATED_SLACK,
    hint: bool = True,
    timings: list[int] | None = None,
    warm_up: Callable[[DurationStats], None] | None = None,
) -> tuple[int, float, float]:
    """Poll a job whose ``state(t)`` (seconds since its creation) is (status, progress) and
    that ends at *end*, with *poller* ("fixed", "expo", or "ours"/"fresh": ``PollPolicy()``
    or *policy*, learning into *stats* when given, as a client does from each job it sees
    end), from a handle started at *started*, with ``created_at`` mapped to *created*.
    *hint*: a start helper told the handle the type before its first GET. *timings*
    collects each ``next_delay`` call's CPU nanoseconds (this thread's: a busy machine's
    preemptions are not the schedule's cost). *warm_up*: the client's warm start
    (``PollPolicy.warm_start``), called with *stats* when the schedule wants one after a
    poll (what one ``list()`` page teaches); its request counts as a GET. Returns (GETs,
    the moment the poll that saw the end was answered, the learned floor of the lateness
    bound)."""
    t = started
    gets = 0
    expo = _expo_delays(rng)
    schedule: PollSchedule | None = None
    if poller in ("fixed", "ours", "fresh"):
        chosen = FIXED_1S if poller == "fixed" else (policy or PollPolicy())
        # A start helper's hint means this client started the action: its work had not
        # begun at the handle's start (the learned floor of the bound may apply from there).
        schedule = PollSchedule(chosen, rng, started=started, stats=stats, known_start=hint)
        t += schedule.first_delay(action_type if hint else None)
    clock = time.thread_time_ns
    while True:
        gets += 1
        status, progress = state(t + LATENCY / 2)  # the server reads half way through
        answered = t + LATENCY
        if status == "DONE":
            floor = schedule.floor(action_type) if schedule is not None else 0.0
            if stats is not None and schedule is not None:
                # What the client learns from the DONE snapshot: the duration, and (through
                # the handle's schedule) how long the job ran on after each reading.
                stats.add(action_type, end)
                schedule.ended(answered, end, action_type)
            return gets, answered, floor
        if schedule is None:
            delay = next(expo)
        else:
            in_progress = status == "IN_PROGRESS"
            if (
                warm_up is not None
                and stats is not None
                and schedule.wants_warm_start(answered, action_type)
            ):
                warm_up(stats)  # the list page, before the next plan (as the handle does)
                stats.update({})  # state given: at most once, whatever the page taught
                gets += 1
            began = clock()
            delay, _ = schedule.next_delay(
                answered,
                in_progress,
                progress if in_progress else None,
                created=created,
                action_type=action_type,
                enqueued=status == "ENQUEUED",
            )
            if timings is not None:
                timings.append(clock() - began)
        t = answered + delay
        if gets > 100_000:
            raise RuntimeError(f"{poller} never saw the job end")


def durations(config: Config, rng: random.Random) -> list[float]:
    low, high = config.durations
    return [math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(config.jobs)]


def warm_stats(
    config: Config,
    spec: str = "linear",
    enqueued: float = 0.0,
    policy: PollPolicy | None = None,
    into: DurationStats | None = None,
) -> DurationStats:
    """What a client knows after polling :data:`WARM_JOBS` jobs of the type (progress
    *spec*, *enqueued* share) from *config*'s range to their end (drawn with another seed
    than the run's): their durations, and how long they ran on after each reading; learned
    into *into* (a client that knows other types too) when given."""
    stats = DurationStats() if into is None else into
    warm = attrs.evolve(config, jobs=WARM_JOBS, seed=config.seed + 1000)
    for i, duration in enumerate(durations(warm, random.Random(warm.seed))):
        job = _job(spec, enqueued, duration, random.Random(f"{warm.seed}:job:{i}"))
        jitter = random.Random(f"{warm.seed}:jitter:{i}")
        simulate("ours", job, duration, jitter, policy, stats)
    return stats


def run_shapes(
    config: Config,
    pollers: tuple[str, ...] = POLLERS,
    policy: PollPolicy | None = None,
    shapes: dict[str, tuple[str, float]] = SHAPES,
) -> dict[str, dict[str, list[Outcome]]]:
    """shape -> poller -> one Outcome per job (the same jobs for every poller)."""
    results: dict[str, dict[str, list[Outcome]]] = {}
    for shape, (spec, enqueued) in shapes.items():
        per: dict[str, list[Outcome]] = {}
        for poller in pollers:
            stats = warm_stats(config, spec, enqueued, policy)
            outcomes = []
            for i, duration in enumerate(durations(config, random.Random(config.seed))):
                # Each job, and each job's jitter, from a seed of its own: every poller sees
                # the same jobs, and what one poll draws changes no other job.
                job = _job(spec, enqueued, duration, random.Random(f"{config.seed}:job:{i}"))
                jitter = random.Random(f"{config.seed}:jitter:{i}")
                outcomes.append(simulate(poller, job, duration, jitter, policy, stats))
            per[poller] = outcomes
        results[shape] = per
    return results


def p95_fraction(outcomes: list[Outcome]) -> float:
    """The 95th percentile of lateness as a fraction of duration, in percent."""
    return percentile([o.lateness / o.duration * 100 for o in outcomes], 95)


def gets_per_job(outcomes: list[Outcome]) -> float:
    return mean([o.gets for o in outcomes])


def shape_table(config: Config, results: dict[str, dict[str, list[Outcome]]]) -> Table:
    columns = ("shape", *[f"{LABELS[p]}: GETs / p95 %" for p in POLLERS if p != "oracle"])
    rows = []
    for shape, per in results.items():
        cells = [shape]
        for poller in POLLERS:
            if poller == "oracle" or poller not in per:
                continue
            cells.append(
                f"{num(gets_per_job(per[poller]), 1)} / {num(p95_fraction(per[poller]), 1)}"
            )
        rows.append(tuple(cells))
    low, high = config.durations
    notes = (
        f"{config.jobs} jobs per shape, durations {low:g}-{high:g} s log-uniform, simulated "
        f"clock, {LATENCY * 1000:g} ms per request; p95 % is the 95th percentile of lateness "
        "as a percentage of the job's duration.",
    )
    return Table(f"Progress shapes, {low:g}-{high:g} s jobs", columns, tuple(rows), notes)


def held_out_table(config: Config) -> Table:
    """The held-out shapes: fixed, exponential and ours (learned), GETs, p95 and max lateness."""
    results = run_shapes(config, ("fixed", "expo", "ours"), shapes=HELD_OUT)
    rows = []
    for shape, per in results.items():
        cells = [shape]
        for poller in ("fixed", "expo", "ours"):
            outcomes = per[poller]
            worst = max(o.lateness / o.duration for o in outcomes) * 100
            cells.append(
                f"{num(gets_per_job(outcomes), 1)} / {num(p95_fraction(outcomes), 1)} / "
                f"{num(worst, 1)}"
            )
        rows.append(tuple(cells))
    low, high = config.durations
    columns = ("shape", *[f"{LABELS[p]}: GETs / p95 % / max %" for p in ("fixed", "expo", "ours")])
    notes = (
        f"{config.jobs} jobs per shape, durations {low:g}-{high:g} s; shapes the schedule was "
        "not tuned on (see docs/testing.md), with no targets.",
    )
    return Table(f"Held-out shapes, {low:g}-{high:g} s jobs", columns, tuple(rows), notes)


def allowed_lateness(outcome: Outcome, policy: PollPolicy) -> float:
    """The lateness the schedule's guarantee allows *outcome*'s job, in seconds, answer
    included: the bound ``max(f * max(duration, floor), initial_delay)`` with the job's
    learned floor (the first poll of a client with learned durations may wait
    ``FIRST_POLL_CAP * initial_delay``), the duration counted to the last poll that saw the
    job unfinished (the server reads half way through a request), plus the request of the
    poll that sees the end and the rest of the one before it: ``1.5 * LATENCY``."""
    f = policy.max_lateness or 0.0
    least = policy.initial_delay * (FIRST_POLL_CAP if outcome.floor else 1.0)
    return max(f * max(outcome.duration + LATENCY / 2, outcome.floor), least) + 1.5 * LATENCY


def target_rows(
    results: dict[str, dict[str, list[Outcome]]],
    policy: PollPolicy | None = None,
    poller: str = "ours",
) -> list[tuple[str, str, str]]:
    """The issue's targets for *poller* on each shape."""
    policy = policy or PollPolicy()
    rows = []
    for shape, per in results.items():
        ours, fixed, expo = per[poller], per["fixed"], per["expo"]
        g, f = gets_per_job(ours), p95_fraction(ours)
        if shape in MOVING:
            ok = g < gets_per_job(expo) and f < p95_fraction(fixed)
            target = f"{shape}: GETs < exponential's and p95 % < fixed's"
            figure = (
                f"{num(g, 1)} vs {num(gets_per_job(expo), 1)} GETs; "
                f"{num(f, 2)} % vs {num(p95_fraction(fixed), 2)} %"
            )
        else:
            within = all(o.lateness <= allowed_lateness(o, policy) + 1e-9 for o in ours)
            worst = max((o.lateness - LATENCY) / o.duration for o in ours) * 100
            ok = g < gets_per_job(fixed) and within
            target = f"{shape}: within the lateness bound and GETs < fixed's"
            figure = f"max {num(worst, 1)} %; {num(g, 1)} vs {num(gets_per_job(fixed), 1)} GETs"
        rows.append((target, figure, verdict(ok)))
    return rows


def sweep(config: Config, fractions: tuple[float | None, ...]) -> Table:
    """Ours at several max_lateness values: GETs and p95 on the moving and the silent shapes."""
    rows = []
    for fraction in fractions:
        results = run_shapes(config, ("ours",), PollPolicy(max_lateness=fraction))
        moving = [o for s in MOVING for o in results[s]["ours"]]
        silent = [o for s, per in results.items() if s not in MOVING for o in per["ours"]]
        rows.append(
            (
                "off" if fraction is None else f"{fraction:g}",
                num(gets_per_job(moving), 1),
                num(p95_fraction(moving), 2),
                num(gets_per_job(silent), 1),
                num(p95_fraction(silent), 2),
                num(max(o.lateness / o.duration for o in silent) * 100, 1),
            )
        )
    columns = (
        "max_lateness",
        "moving: GETs",
        "moving: p95 %",
        "silent: GETs",
        "silent: p95 %",
        "silent: max %",
    )
    low, high = config.durations
    return Table(
        f"Choosing max_lateness ({low:g}-{high:g} s jobs)",
        columns,
        tuple(rows),
        (
            "moving: linear, fast-then-slow, slow-then-fast, coarse, noisy; silent: stall, "
            "enqueued 30 %, none.",
        ),
    )


def plot(results: dict[str, dict[str, list[Outcome]]], path: Path) -> None:
    """GETs per job against p95 lateness, one point per poller per shape (matplotlib)."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    markers = {"fixed": "s", "expo": "^", "ours": "o", "fresh": "D", "oracle": "*"}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for poller in POLLERS:
        xs = [p95_fraction(per[poller]) for per in results.values()]
        ys = [gets_per_job(per[poller]) for per in results.values()]
        ax.scatter(xs, ys, marker=markers[poller], s=60, label=LABELS[poller])
        if poller == "ours":
            for shape, x, y in zip(results, xs, ys, strict=True):
                ax.annotate(shape, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("log")
    ax.set_xlabel("p95 lateness, % of the job's duration")
    ax.set_ylabel("GETs per job")
    ax.set_title("Pollers on each progress shape (lower left is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def run(config: Config) -> list[Table]:
    results = run_shapes(config)
    table = shape_table(config, results)
    tables = [table]
    for poller in ("ours", "fresh"):
        rows = tuple(target_rows(results, poller=poller))
        tables.append(Table(f"Zoo targets: {LABELS[poller]}", ("target", "figure", "status"), rows))
    tables.append(held_out_table(config))
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pollers against progress shapes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plot", type=Path, default=None, help="write an SVG plot here")
    parser.add_argument("--sweep", action="store_true", help="try several max_lateness values")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    for table in run(config):
        print(table.text(), end="\n\n")
    long = attrs.evolve(LONG, jobs=max(10, config.jobs // 3))
    for table in run(long):
        print(table.text(), end="\n\n")
    if args.sweep:
        print(sweep(config, (0.25, 0.35, 0.5, 0.75, 1.0, None)).text(), end="\n\n")
    if args.plot is not None:
        plot(run_shapes(config), args.plot)


if __name__ == "__main__":
    main()
