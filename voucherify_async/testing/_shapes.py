"""Progress shapes for simulated jobs: how progress rises over the IN_PROGRESS phase.

A shape is a function of the elapsed fraction of the IN_PROGRESS phase (0.0-1.0) returning
progress 0-100, non-decreasing. Real jobs do not rise in a straight line: imports speed up
once parsing is done, slow down on a big last batch, stall on a lock, or never report
progress at all. These shapes let tests and benchmarks put a poller in front of each.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Sequence
from typing import Final

from voucherify_async._errors import InvalidArgumentError

__all__ = ["PROGRESS_SHAPES", "SHAPES", "make_shape", "mixed", "noisy", "scripted", "stages"]

Shape = Callable[[float], int]


def _clamp(value: float) -> int:
    return min(100, max(0, math.floor(value)))


def linear(fraction: float) -> int:
    """Progress proportional to elapsed time (0-99; 100 comes with DONE)."""
    return min(99, _clamp(fraction * 100))


def fast_then_slow(fraction: float) -> int:
    """Quick at first, slower to the end: progress ~ sqrt(t)."""
    return min(99, _clamp(math.sqrt(max(0.0, fraction)) * 100))


def slow_then_fast(fraction: float) -> int:
    """Slow at first, quicker to the end: progress ~ t^2 (done ~ t^2)."""
    return min(99, _clamp(fraction * fraction * 100))


def stall(fraction: float) -> int:
    """Linear to 30 % over the first 15 % of the time, stuck at 30 for half the job, then
    linear to the end (a lock, a slow batch, a retried stage)."""
    if fraction < 0.15:
        return _clamp(fraction / 0.15 * 30)
    if fraction < 0.65:
        return 30
    return min(99, _clamp(30 + (fraction - 0.65) / 0.35 * 70))


def coarse(fraction: float) -> int:
    """Steps of 25: 0, 25, 50, 75 (a job that reports per stage)."""
    return 25 * min(3, math.floor(fraction * 4))


def s_curve(fraction: float) -> int:
    """Slow to start, fast in the middle, crawling through its last points: a logistic curve
    (at 99 for the last eighth of the job)."""
    return min(99, _clamp(100 / (1 + math.exp(-12 * (fraction - 0.5)))))


def jump_then_crawl(fraction: float) -> int:
    """To 10 by half time, a jump to 95 within the next 5 %, then a crawl to 99 (a job that
    reports a big batch done at once, then cleans up slowly)."""
    if fraction < 0.5:
        return _clamp(fraction / 0.5 * 10)
    if fraction < 0.55:
        return _clamp(10 + (fraction - 0.5) / 0.05 * 85)
    return min(99, _clamp(95 + (fraction - 0.55) / 0.45 * 4))


def late_stall(fraction: float) -> int:
    """Linear to 90 in the first 60 % of the time, stuck at 90 until 95 %, then a rush to the
    end (a last step that waits on something else)."""
    if fraction < 0.6:
        return _clamp(fraction / 0.6 * 90)
    if fraction < 0.95:
        return 90
    return min(99, _clamp(90 + (fraction - 0.95) / 0.05 * 9))


def cubic(fraction: float) -> int:
    """Speeding up harder than the square: progress ~ t^3 (0 for the first fifth of the job)."""
    return min(99, _clamp(fraction**3 * 100))


def tenths(fraction: float) -> int:
    """Steps of 10: 0, 10, ..., 90."""
    return 10 * min(9, math.floor(fraction * 10))


def no_progress(fraction: float) -> int:
    """Always 0 until the job ends (a type that never reports progress)."""
    return 0


def scripted(points: Sequence[tuple[float, int]]) -> Shape:
    """A shape through *points*: ``(fraction, progress)`` pairs, joined by straight lines.

    Fractions are 0.0-1.0 and increasing, progress 0-100 and non-decreasing; before the first
    point progress is the first point's, after the last the last point's.
    :class:`~voucherify_async.InvalidArgumentError` (a ValueError) when the points break
    those rules.
    """
    pts = [(float(f), int(p)) for f, p in points]
    if not pts:
        raise InvalidArgumentError(
            "a scripted progress needs at least one (fraction, progress) point"
        )
    for (f0, p0), (f1, p1) in itertools.pairwise(pts):
        if not f1 > f0 or p1 < p0:
            raise InvalidArgumentError(
                "scripted progress points need increasing fractions and non-decreasing progress"
            )
    if any(not 0.0 <= f <= 1.0 or not 0 <= p <= 100 for f, p in pts):
        raise InvalidArgumentError("scripted progress points are (0.0-1.0, 0-100) pairs")
    xs = [f for f, _ in pts]

    def shape(fraction: float) -> int:
        i = bisect.bisect_right(xs, fraction)
        if i == 0:
            return pts[0][1]
        if i == len(pts):
            return pts[-1][1]
        (f0, p0), (f1, p1) = pts[i - 1], pts[i]
        return _clamp(p0 + (p1 - p0) * (fraction - f0) / (f1 - f0))

    return shape


def noisy(rng: random.Random, segments: int = 20) -> Shape:
    """Progress that rises at a random, changing rate (never backwards): *segments* equal
    spans of time, each with a random share of the work (from *rng*)."""
    weights = [rng.expovariate(1.0) for _ in range(segments)]
    total = sum(weights)
    points = [(0.0, 0)]
    done = 0.0
    for i, weight in enumerate(weights, 1):
        done += weight / total * 99
        points.append((i / segments, math.floor(done)))
    return scripted(points)


def stages(rng: random.Random, count: int = 4) -> Shape:
    """Progress in quarters (0, 25, 50, 75) whose stages take random shares of the time
    (from *rng*): a job that reports per stage, its stages of unequal length."""
    weights = [rng.expovariate(1.0) for _ in range(count)]
    total = sum(weights)
    marks = [sum(weights[: i + 1]) / total for i in range(count - 1)]
    step = 100 // count

    def shape(fraction: float) -> int:
        return step * sum(fraction >= mark for mark in marks)

    return shape


def mixed(rng: random.Random) -> Shape:
    """One of linear, fast-then-slow, slow-then-fast, s-curve, cubic or noisy, drawn per job
    (from *rng*): jobs of one type that progress differently (what a client learned of the
    type's earlier jobs fits this one only in part)."""
    name = rng.choice(_MIXED)
    return noisy(rng) if name == "noisy" else SHAPES[name]


#: Shapes drawn per job from the emulator's seed, by name.
_SEEDED: Final[dict[str, Callable[[random.Random], Shape]]] = {
    "noisy": noisy,
    "stages": stages,
    "mixed": mixed,
}

#: The named shapes ``add_action(progress=...)`` takes, besides ``"noisy"``, ``"stages"`` and
#: ``"mixed"`` (seeded per job).
SHAPES: Final[dict[str, Shape]] = {
    "linear": linear,
    "fast-then-slow": fast_then_slow,
    "slow-then-fast": slow_then_fast,
    "stall": stall,
    "coarse": coarse,
    "steps": coarse,
    "none": no_progress,
    "s-curve": s_curve,
    "jump-then-crawl": jump_then_crawl,
    "late-stall": late_stall,
    "cubic": cubic,
    "tenths": tenths,
}

#: The shapes ``"mixed"`` draws from.
_MIXED: Final = ("linear", "fast-then-slow", "slow-then-fast", "s-curve", "cubic", "noisy")

#: Every name ``add_action(progress=...)`` accepts.
PROGRESS_SHAPES: Final = (*SHAPES, *_SEEDED)


def make_shape(spec: str | Shape | Sequence[tuple[float, int]], rng: random.Random) -> Shape:
    """The shape for *spec*: a name from :data:`PROGRESS_SHAPES`, a function of the elapsed
    fraction, or ``(fraction, progress)`` points (see :func:`scripted`).
    :class:`~voucherify_async.InvalidArgumentError` otherwise."""
    if isinstance(spec, str):
        if spec in _SEEDED:
            return _SEEDED[spec](rng)
        try:
            return SHAPES[spec]
        except KeyError:
            raise InvalidArgumentError(
                f"unknown progress shape {spec!r}; use one of {', '.join(PROGRESS_SHAPES)}, "
                "a function or (fraction, progress) points"
            ) from None
    if callable(spec):
        return spec
    return scripted(spec)
