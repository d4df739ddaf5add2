"""The finishes a steady pace allows, from progress read in steps.

Guarantee: if an action's progress at time ``t`` is ``r * (t - o)`` rounded down to the step
``q`` it reports in (0-100, one rate ``r > 0`` from one origin ``o`` in ``[o_lo, o_hi]``),
each reading was made no later than the time recorded for it (first sightings) and no
earlier (last sightings), and it had not finished at its last reading, then its finish
``o + 100 / r`` lies in the interval :func:`steady_finish` returns. When no rate and origin
fit every reading it returns None: the job is not steady, and the estimator's models (which
follow a changing pace) decide alone.

Why: a job that reports quarters says little per reading (a 25 is anything from 25 to 50),
so a model through the readings is far off; but every reading bounds the pace from both
sides, and the bounds together can be tight. :func:`plan_poll` places polls where the
steps' crossings split what is left, counting what each poll may teach and what it may
cost (polls, and lateness past the tolerance); it promises no bound of its own: the
schedule's lateness bound holds over it.

How: with ``o`` fixed, a value ``v`` first seen at ``t`` says ``F <= o + 100 (t - o) / v``
and a value last seen at ``t`` says ``F > o + 100 (t - o) / (v + q)``: lines in ``o`` that
fall as ``o`` grows. The origins that fit are an interval (the lowest upper line is concave,
the highest lower line convex), with its ends at ``o_lo``, ``o_hi`` or a crossing of two
lines; the finishes are from the lower line at the latest such origin to the upper line at
the earliest. At most :data:`~voucherify_async._estimator.WINDOW` readings: about a hundred
line crossings per new value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

__all__ = ["Steady", "plan_poll", "steady_finish"]

#: Origins, and finishes per origin, sampled from what a steady pace allows when planning.
_ORIGINS = 6
_FINISHES = 10
#: Candidate poll times a plan weighs.
_CANDIDATES = 28
#: Plans count no more than this many polls ahead.
_MAX_POLLS = 64
#: What a poll that comes later than the tolerance after the end costs, in polls per
#: tolerance it is late by beyond the first.
LATE_COST = 16.0
#: A plan's polls are at least this fraction of the finishes' spread apart (when that is
#: more than this many tolerances): no plan creeps up on a crossing.
SCAN_POLLS = 8
#: Slack for float rounding when two bounds meet (seconds).
_EPS = 1e-9

#: ``(intercept, slope)``: the bound ``intercept + slope * o`` on the finish.
_Line = tuple[float, float]


def _lowest(lines: tuple[_Line, ...], o: float) -> float:
    return min(a + b * o for a, b in lines)


def _highest(lines: tuple[_Line, ...], o: float) -> float:
    return max(a + b * o for a, b in lines)


class Steady(NamedTuple):
    """The finishes and origins a steady pace allows (monotonic s), and the bounds they come
    from."""

    finish_lo: float
    finish_hi: float
    origin_lo: float
    origin_hi: float
    upper: tuple[_Line, ...] = ()
    lower: tuple[_Line, ...] = ()

    def finishes(self, origin: float) -> tuple[float, float]:
        """The finishes allowed if the pace started at *origin* (monotonic s)."""
        return _highest(self.lower, origin), _lowest(self.upper, origin)


def steady_finish(
    readings: Iterable[tuple[float, float, int]], step: int, origin_lo: float, origin_hi: float
) -> Steady | None:
    """The finishes a steady pace allows, or None when no steady pace fits.

    *readings* are ``(first seen, last seen, progress)`` per distinct value (monotonic s),
    *step* the quantum progress is read in (1 for most jobs), and the pace started between
    *origin_lo* and *origin_hi*. None too when nothing bounds the finish from above (no value
    above 0 yet).
    """
    upper: list[_Line] = []
    lower: list[_Line] = []
    newest = -float("inf")
    for first, last, progress in readings:
        newest = max(newest, last)
        if progress > 0:
            origin_hi = min(origin_hi, first)  # it had started by the time it moved
            scale = 100.0 / progress
            upper.append((scale * first, 1.0 - scale))
        ceiling = min(100, progress + max(1, step))
        scale = 100.0 / ceiling
        lower.append((scale * last, 1.0 - scale))
    if not upper or origin_hi < origin_lo:
        return None
    lower.append((newest, 0.0))  # not finished at its last reading
    ups, lows = tuple(upper), tuple(lower)
    candidates = [origin_lo, origin_hi]
    for a_u, b_u in ups:
        for a_l, b_l in lows:
            if b_u != b_l:
                o = (a_l - a_u) / (b_u - b_l)
                if origin_lo < o < origin_hi:
                    candidates.append(o)
    fits = [o for o in candidates if _lowest(ups, o) >= _highest(lows, o) - _EPS]
    if not fits:
        return None
    earliest, latest = min(fits), max(fits)
    finish_hi = _lowest(ups, earliest)
    finish_lo = min(finish_hi, _highest(lows, latest))
    return Steady(finish_lo, finish_hi, earliest, latest, ups, lows)


def _polls(width: float, tolerance: float, eggs: int) -> int:
    """How many polls find a finish somewhere in *width* seconds to within *tolerance*,
    with *eggs* chances to learn that it is already behind a poll: each step's crossing
    still ahead, and the end itself. The egg-drop count: ``n`` polls with ``e`` such
    chances tell apart ``sum(comb(n, i) for i in 1..e)`` stretches of *tolerance*."""
    if width <= tolerance:
        return 1
    units = width / tolerance
    polls = 1
    while _capacity(polls, eggs) < units and polls < _MAX_POLLS:
        polls += 1
    return polls


@functools.cache
def _capacity(polls: int, eggs: int) -> int:
    """How many stretches *polls* polls with *eggs* chances tell apart."""
    return sum(math.comb(polls, i) for i in range(1, eggs + 1))


def _sample(
    fits: Iterable[tuple[Steady, float]], prior: Callable[[float], float] | None = None
) -> list[tuple[float, float, float]]:
    """``(origin, finish, weight)`` hypotheses spread over what each fit allows, each fit
    weighing its share, each finish by *prior* (a relative density over finishes)."""
    hypotheses = []
    for fit, share in fits:
        if share <= 0:
            continue
        rows = []
        for i in range(_ORIGINS):
            o = fit.origin_lo + (fit.origin_hi - fit.origin_lo) * (i + 0.5) / _ORIGINS
            lo, hi = fit.finishes(o)
            lo, hi = max(lo, fit.finish_lo), min(hi, fit.finish_hi)
            if hi >= lo:
                rows.append((o, lo, hi))
        area = sum(hi - lo for _, lo, hi in rows)
        for o, lo, hi in rows:
            for j in range(_FINISHES):
                finish = lo + (hi - lo) * (j + 0.5) / _FINISHES
                weight = share * ((hi - lo) / area if area > 0 else 1.0 / len(rows))
                if prior is not None:
                    weight *= prior(finish)
                hypotheses.append((o, finish, weight / _FINISHES))
    return hypotheses


def plan_poll(
    fits: Iterable[tuple[Steady, float]],
    step: int,
    progress: int,
    not_before: float,
    tolerance: float,
    prior: Callable[[float], float] | None = None,
) -> float:
    """When to poll next (at or after *not_before*, monotonic s) so as to see the end within
    *tolerance* seconds in the fewest polls, while a steady pace fits.

    *fits* are what a steady pace allows under each assumption about when the work began,
    with how much each is believed (shares). A poll at ``t`` splits the hypotheses (origin
    ``o``, finish ``F``) by what it will see: the value reached by then (``v`` comes at
    ``o + v / 100 * (F - o)``, in steps of *step*) or the end. Each group left costs the
    polls of :func:`_polls` (its finishes' spread, with the crossings still ahead of its
    value and the end as chances); each ended hypothesis :data:`LATE_COST` per *tolerance*
    it is seen late by beyond the first. The poll with the least expected cost wins (the
    earlier of equals).
    """
    fits = [(fit, share) for fit, share in fits if share > 0]
    if not fits:
        return not_before
    latest = max(fit.finish_hi for fit, _ in fits)
    if latest - min(fit.finish_lo for fit, _ in fits) <= tolerance:
        return max(latest, not_before)  # known well enough: poll once, at its latest
    hypotheses = _sample(fits, prior)
    if sum(h[2] for h in hypotheses) <= 0:
        hypotheses = _sample(fits)
    if not hypotheses:
        return not_before
    # No plan creeps: the most believed fit's finishes are crossed in SCAN_POLLS polls.
    main = max(fits, key=lambda pair: pair[1])[0]
    spread = main.finish_hi - main.finish_lo
    if spread > tolerance * SCAN_POLLS:
        not_before += spread / SCAN_POLLS
    q = max(1, step)
    # Candidate times: quantiles of the moments something may change (a crossing, the end).
    moments = []
    for o, finish, _ in hypotheses:
        value = progress - progress % q + q
        while value < 100:
            moments.append(o + value / 100 * (finish - o))
            value += q
        moments.append(finish)
        moments.append(finish + tolerance)
    moments = sorted(m for m in moments if m >= not_before)
    if not moments:
        return not_before
    candidates = {not_before}
    for i in range(_CANDIDATES):
        candidates.add(moments[(len(moments) - 1) * i // (_CANDIDATES - 1)])
    total = sum(w for _, _, w in hypotheses)
    best = (math.inf, not_before)
    for when in sorted(candidates):
        cost = 1.0
        groups: dict[int, list[float]] = {}
        for o, finish, weight in hypotheses:
            if when >= finish:
                late = when - finish - tolerance
                if late > 0:
                    cost += LATE_COST * late / tolerance * weight / total
                continue
            share = (when - o) / (finish - o) if finish > o else 1.0
            value = min(100 - q, q * math.floor(max(0.0, share) * 100 / q + 1e-9))
            group = groups.get(value)
            if group is None:
                groups[value] = group = [finish, finish, 0.0]
            group[0] = min(group[0], finish)
            group[1] = max(group[1], finish)
            group[2] += weight
        for value, (lo, hi, weight) in groups.items():
            eggs = (100 - value) // q  # the crossings still ahead of it, and the end
            cost += _polls(hi - lo, tolerance, eggs) * weight / total
        if cost < best[0]:
            best = (cost, when)
    return best[1]
