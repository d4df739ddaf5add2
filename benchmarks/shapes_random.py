"""Random progress shapes: the out-of-sample yardstick of the polling engine (issue #29).

Every job is drawn from a seed, deterministically (``random.Random`` with string seeds, so
the same seed gives the same job on every machine and Python version), with no numpy. A
job is a timeline on a simulated clock, in seconds since its ``created_at``:

- ``ENQUEUED`` until ``start`` (the queue wait), ``IN_PROGRESS`` until ``end``, then
  ``DONE`` (progress 100). Its *running time* is ``end - start``.
- The client first meets it at ``first_seen``: just after its creation (a start helper,
  :data:`HANDLE_START`), or, for an **unseen queue wait**, long after ``created_at`` (an id
  from ``list()``, a webhook or another process): up to hours, often after the work began.
- Its progress is a piecewise-linear path of work (0-100) over time, read in the type's
  **steps** (1 point to 25-point quarters; 0 = a type that reports **no progress**) and
  never above 99 before ``DONE``. The path has **paces that change** at random points,
  **noise** (many short spans of random pace), **stalls** anywhere (near the end too), and
  may **restart** (progress goes back to a lower value, and the work is done again).
- Jobs come in **types** of :data:`BLOCK` jobs each (seeds ``8k`` to ``8k + 7`` share one
  type): a type has a median running time, a spread, a style (step, noise, pace changes)
  and a **drift** (its durations change from one job to the next, so what a client learned
  of its earlier jobs is off). :func:`history` gives a job's earlier jobs of the same type,
  for a client that learned them.

Families (what the issue's targets are about):

- ``"moving"``: progress moves (steps, pace changes, noise, short stalls, restarts,
  sometimes a queue wait the client sees as ENQUEUED);
- ``"silent"``: progress says nothing for long stretches (types that report no progress,
  stalls of 30-70 % of the running time anywhere, long ENQUEUED queue waits);
- ``"unseen"``: the action waited in a queue before the client first saw it (any wait up to
  :data:`UNSEEN_WAIT_MAX`), the client meeting it around the start of its work;
- ``"short"``: the seed's jobs, 0.1-1.3 s, met at once.

Seed ranges: :data:`TUNING` may be used to choose the engine's constants; :data:`HELD_OUT`
must never be (its figures are the out-of-sample ones). Both use the same generator.

Usage: ``python benchmarks/shapes_random.py [--family moving] [--range medium] [SEED ...]``
prints the jobs of those seeds.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import random
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Literal

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = [
    "BLOCK",
    "DURATIONS",
    "FAMILIES",
    "FEATURES",
    "HELD_OUT",
    "TUNING",
    "Shape",
    "TypeProfile",
    "draw",
    "draw_many",
    "history",
    "type_profile",
]

Family = Literal["moving", "silent", "unseen", "short"]
Status = Literal["ENQUEUED", "IN_PROGRESS", "DONE"]

#: Seeds whose jobs may be used to choose the engine's constants.
TUNING: Final = range(1000)
#: Seeds never used to choose anything: the out-of-sample figures.
HELD_OUT: Final = range(100_000, 101_000)
#: Jobs per type: seeds ``BLOCK * k`` to ``BLOCK * k + BLOCK - 1`` share type ``k``.
BLOCK: Final = 8
FAMILIES: Final[tuple[Family, ...]] = ("moving", "silent", "unseen", "short")
#: Running-time ranges (seconds, log-uniform type medians; each job clipped into its range).
DURATIONS: Final[dict[str, tuple[float, float]]] = {
    "short": (0.1, 1.3),
    "medium": (15.0, 45.0),
    "long": (120.0, 1800.0),
}
#: When a client that started the action itself (a start helper) first meets it (s).
HANDLE_START: Final = 0.01
#: The longest queue wait before an unseen-queue job's work begins (seconds: 3 hours).
UNSEEN_WAIT_MAX: Final = 3 * 3600.0
#: Every feature a job can have (``Shape.features``); the generator's test checks that each
#: one occurs among the tuning seeds.
FEATURES: Final = (
    "pace-changes",
    "steps",
    "quarters",
    "tenths",
    "noise",
    "stall",
    "late-stall",
    "no-progress",
    "queue-seen",
    "queue-unseen",
    "restart",
    "drift",
)
#: Step sizes (points) a type reports progress in, drawn with these weights.
_STEPS: Final = ((1, 5), (2, 1), (3, 1), (5, 1), (10, 2), (20, 1), (25, 2))


@attrs.frozen
class TypeProfile:
    """What the jobs of one type share."""

    #: The action type the jobs report (``SIM.<family>.<range>.<k>``).
    name: str
    #: Median running time of the type's job 0 (seconds), and the log-normal spread.
    median: float
    spread: float
    #: Log change of the median per job (0: no drift): job *i* runs ``exp(drift * i)`` times
    #: as long as job 0 does, on average.
    drift: float
    #: Progress is reported in steps of this many points; 0 = no progress is reported.
    step: int
    #: How much each pace segment's speed varies (log-normal sigma) and how many times at
    #: most the pace changes in a job.
    pace_sigma: float
    pace_changes: int
    #: 0 = smooth; up to 1 = each short span's share of work is drawn from Exp(1).
    noise: float
    #: The running-time range the jobs are clipped into (seconds).
    low: float
    high: float


@attrs.frozen
class Shape:
    """One job's timeline, in seconds since its ``created_at`` (see the module docstring)."""

    family: Family
    type: str
    #: The job's place in its type's sequence (history jobs are negative).
    index: int
    start: float
    end: float
    first_seen: float
    step: int
    #: ``(time s, work 0-100)`` points of the path while IN_PROGRESS, joined by straight
    #: lines; two points at one time are a restart (progress goes back).
    knots: tuple[tuple[float, float], ...]
    features: frozenset[str]

    @property
    def running(self) -> float:
        """Seconds from the start of the work to the end."""
        return self.end - self.start

    def work(self, t: float) -> float:
        """The path's work (0-100, not stepped) at *t*."""
        times = [k[0] for k in self.knots]
        i = bisect.bisect_right(times, t)
        if i == 0:
            return self.knots[0][1]
        if i == len(self.knots):
            return self.knots[-1][1]
        (t0, v0), (t1, v1) = self.knots[i - 1], self.knots[i]
        return v0 if t1 <= t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def state(self, t: float) -> tuple[Status, int]:
        """Status and reported progress at *t* (seconds since ``created_at``)."""
        if t >= self.end:
            return "DONE", 100
        if t < self.start:
            return "ENQUEUED", 0
        if self.step == 0:
            return "IN_PROGRESS", 0
        value = max(0.0, min(100.0, self.work(t)))
        return "IN_PROGRESS", min(99, int(value // self.step) * self.step)

    def curve(self, fraction: float) -> int:
        """Progress at *fraction* (0.0-1.0) of the running phase: the emulator's
        ``add_action(progress=...)`` form, for running this job against a server."""
        t = self.start + fraction * self.running
        return self.state(min(t, self.end - 1e-9))[1]


def type_profile(seed: int, family: Family, durations: tuple[float, float]) -> TypeProfile:
    """The type of the job of *seed* (seeds ``BLOCK * k`` to ``BLOCK * k + BLOCK - 1`` share
    it) in *family*, with type medians in *durations* (seconds)."""
    block = seed // BLOCK
    low, high = durations
    rng = random.Random(f"type:{family}:{low:g}-{high:g}:{block}")
    median = math.exp(rng.uniform(math.log(low), math.log(high)))
    spread = rng.uniform(0.05, 0.5)
    drift = rng.choice((-1, 1)) * rng.uniform(0.005, 0.03) if rng.random() < 0.5 else 0.0
    step = rng.choices([s for s, _ in _STEPS], weights=[w for _, w in _STEPS])[0]
    silent_type = family == "silent" and rng.random() < 0.4
    if silent_type or (family == "unseen" and rng.random() < 0.15):
        step = 0
    if family == "short":
        step = rng.choice((0, 1, 1, 1, 10, 25))
    pace_sigma = rng.uniform(0.0, 1.2)
    pace_changes = rng.randint(0, 5)
    noise = rng.choice((0.0, 0.0, 0.5, 1.0))
    name = f"SIM.{family}.{low:g}-{high:g}.{block}"
    return TypeProfile(
        name, median, spread, drift, step, pace_sigma, pace_changes, noise, low, high
    )


def draw(seed: int, family: Family, durations: tuple[float, float] | None = None) -> Shape:
    """The job of *seed* in *family*; *durations* (seconds) defaults to
    ``DURATIONS["short"]`` for the short family and ``DURATIONS["medium"]`` otherwise."""
    durations = durations or DURATIONS["short" if family == "short" else "medium"]
    return _job(type_profile(seed, family, durations), family, seed % BLOCK)


def draw_many(
    seeds: Iterable[int], family: Family, durations: tuple[float, float] | None = None
) -> list[Shape]:
    """:func:`draw` for each of *seeds*, in order."""
    return [draw(seed, family, durations) for seed in seeds]


def history(shape: Shape, count: int, durations: tuple[float, float] | None = None) -> list[Shape]:
    """The *count* jobs of *shape*'s type before the first of its block (indices ``-count``
    to -1, oldest first): what a client that learned the type saw end. *durations* must be
    the range *shape* was drawn with."""
    seed_block = int(shape.type.rsplit(".", 1)[1])
    durations = durations or DURATIONS["short" if shape.family == "short" else "medium"]
    profile = type_profile(seed_block * BLOCK, shape.family, durations)
    if profile.name != shape.type:
        raise ValueError(f"{shape.type} was not drawn with durations {durations}")
    return [_job(profile, shape.family, index) for index in range(-count, 0)]


def _job(profile: TypeProfile, family: Family, index: int) -> Shape:
    rng = random.Random(f"job:{profile.name}:{index}")
    features: set[str] = set()
    typical = profile.median * math.exp(profile.drift * index)
    running = _reflect(typical * math.exp(rng.gauss(0.0, profile.spread)), profile)
    if profile.drift:
        features.add("drift")
    # The queue wait, and when the client first meets the action.
    start, first_seen = 0.0, HANDLE_START
    if family == "unseen":
        start = math.exp(rng.uniform(math.log(max(1.0, 0.2 * running)), math.log(UNSEEN_WAIT_MAX)))
        first_seen = max(HANDLE_START, start + running * rng.uniform(-0.1, 0.6))
        features.add("queue-unseen")
    elif family == "short":
        if rng.random() < 0.3:
            start = rng.uniform(0.0, 0.5)
    elif family == "silent" and rng.random() < 0.4:
        start = running * rng.uniform(0.5, 5.0)
    elif family == "moving" and rng.random() < 0.25:
        start = running * rng.uniform(0.05, 1.0)
    if start > 0 and family != "unseen":
        features.add("queue-seen")
    # The path over the running phase, in fractions u of it: pace segments, noise spans,
    # a stall, a restart.
    cuts = {0.0, 1.0}
    changes = sorted(rng.random() for _ in range(rng.randint(0, profile.pace_changes)))
    paces = [math.exp(rng.gauss(0.0, profile.pace_sigma)) for _ in range(len(changes) + 1)]
    if changes and profile.pace_sigma > 0.3 and profile.step:
        features.add("pace-changes")
    cuts.update(changes)
    spans = 0
    if profile.noise and family != "short":
        spans = rng.randint(10, 40)
        cuts.update(i / spans for i in range(1, spans))
        if profile.step:
            features.add("noise")
    stall: tuple[float, float] | None = None
    stall_chance = {"moving": 0.3, "silent": 1.0, "unseen": 0.2, "short": 0.0}[family]
    if profile.step and rng.random() < stall_chance:
        length = rng.uniform(0.3, 0.7) if family == "silent" else rng.uniform(0.03, 0.15)
        if rng.random() < 0.3:  # near the end
            begin = max(0.0, 1.0 - length - rng.uniform(0.0, 0.05))
            features.add("late-stall")
        else:
            begin = rng.uniform(0.0, 1.0 - length)
        stall = (begin, begin + length)
        cuts.update(stall)
        features.add("stall")
    restart: float | None = None
    if profile.step and family in ("moving", "unseen") and rng.random() < 0.1:
        restart = rng.uniform(0.25, 0.75)
        cuts.add(restart)
        features.add("restart")
    grid = sorted(cuts)
    shares = {i: 1.0 - profile.noise + profile.noise * rng.expovariate(1.0) for i in range(spans)}

    def weight(a: float, b: float) -> float:
        middle = (a + b) / 2
        if stall is not None and stall[0] <= middle < stall[1]:
            return 0.0
        pace = paces[bisect.bisect_right(changes, middle)]
        share = shares[min(spans - 1, int(middle * spans))] if spans else 1.0
        return (b - a) * pace * share

    parts: list[tuple[list[float], float, float]] = []
    if restart is None:
        parts.append((grid, 0.0, 100.0))
    else:
        reached = rng.uniform(20.0, 95.0)
        back = reached * rng.choice((0.0, 0.0, rng.uniform(0.1, 0.8)))
        parts.append(([u for u in grid if u <= restart], 0.0, reached))
        parts.append(([u for u in grid if u >= restart], back, 100.0))
    knots: list[tuple[float, float]] = []
    for points, begin_value, end_value in parts:
        weights = [weight(a, b) for a, b in itertools.pairwise(points)]
        total = sum(weights)
        value = begin_value
        knots.append((start + points[0] * running, value))
        for u, w in zip(points[1:], weights, strict=True):
            value += (end_value - begin_value) * (w / total if total else 0.0)
            knots.append((start + u * running, value))
    step = profile.step
    if step == 0:
        features.add("no-progress")
    elif step > 1:
        features.add("steps")
        if step == 25:
            features.add("quarters")
        if step == 10:
            features.add("tenths")
    return Shape(
        family=family,
        type=profile.name,
        index=index,
        start=start,
        end=start + running,
        first_seen=first_seen,
        step=step,
        knots=tuple(knots),
        features=frozenset(features),
    )


def _reflect(running: float, profile: TypeProfile) -> float:
    """*running* folded into the type's range on a log scale (a clip would pile jobs up
    at the range's ends)."""
    low, high = math.log(profile.low), math.log(profile.high)
    x = math.log(running)
    while not low <= x <= high:
        x = 2 * low - x if x < low else 2 * high - x
    return math.exp(x)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="print random progress shapes")
    parser.add_argument("--family", choices=FAMILIES, default="moving")
    parser.add_argument("--range", choices=sorted(DURATIONS), default=None)
    parser.add_argument("seeds", nargs="*", type=int, default=list(range(8)))
    args = parser.parse_args(argv)
    durations = DURATIONS[args.range] if args.range else None
    for seed in args.seeds:
        shape = draw(seed, args.family, durations)
        marks = ", ".join(
            f"{t:.1f}s:{shape.state(t)[1]}"
            for t in (shape.start + shape.running * i / 10 for i in range(10))
        )
        print(
            f"{seed}: {shape.type} start {shape.start:.1f} s, running {shape.running:.1f} s, "
            f"first seen {shape.first_seen:.1f} s, step {shape.step}, "
            f"{sorted(shape.features)}\n    {marks}"
        )


if __name__ == "__main__":
    main()
