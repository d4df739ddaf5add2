"""When one action will finish, from the integer progress it reported, and how sure that is.

Guarantee: memory is bounded (:data:`WINDOW` samples per action) and the estimate is a pure
function of the samples and the action's creation time. It is **not** a bound: no estimate
can hold for every progress function (a job may jump from 5 to 100 at any moment), which is
what the schedule's lateness bound is for. What it promises is an honest doubt
(:attr:`Estimate.doubt`): at least :data:`MODEL_DOUBT` plus what the readings' widths allow,
and at least how far off the model was about the last values, so the schedule polls
*before* the estimate by that much while the end is far and *at* it once the doubt is small.

How:

- **Readings.** Each distinct progress value is a point at its first sighting. A reported 37
  is anything in ``[37, 37 + w)``: ``w`` is the job's step ``q`` (1, or 25 for a job that
  reports quarters), or less when the value before was seen shortly before. The point sits
  where the models through the earlier points put it, if the reading allows that, else at
  the nearest value it allows (the middle of ``w`` with fewer than two earlier points).
- **Two models** through the newest point and an anchor, the newest point at least
  :data:`MIN_GAIN` points back (so recent progress weighs more than old; jobs speed up and
  slow down): (a) the local rate; (b) the power law ``progress = c * age ** k`` from the
  action's creation, which follows progress that keeps speeding up (``k > 1``) or slowing
  down (``k < 1``). The one that foretold the last :data:`HINDSIGHT_SPAN` values better is
  used; with no such record, the earlier of the two.
- **Hindsight.** When every recent value came sooner than the model said, what is left
  shrinks by :data:`SHRINK` of the mildest such ratio; how far off it was either way sets
  the doubt (a job whose pace jumps at random earns a wide one). So does the newest
  reading's width, where it is a large part of what is left: a 99 may be a breath from 100.
- **The stall rule.** A value shown for longer than the model gives its step moves the
  finish later by the time it overstayed, and, once the step is known, to at least
  :data:`STUCK_SHARE` of the time the value has been shown for each step left: a stalled or
  crawling job is not polled ever faster.
"""

from __future__ import annotations

import collections
import math
from typing import Final

import attrs

from ._steady import Steady, steady_finish

__all__ = ["MIN_GAIN", "WINDOW", "Estimate", "ProgressEstimator"]

#: The step is the gcd of the values seen once there are this many above 0.
STEP_VALUES: Final = 2
#: How many distinct progress values (the newest ones) the estimate looks at.
WINDOW: Final = 8
#: A span must gain at least this many points to anchor the local rate while one exists.
MIN_GAIN: Final = 4
GAIN_SHARE = 0.35
#: The doubt of any model of a job's future: how much faster the rest may go, as a fraction
#: of the time it predicts (jobs change pace; the zoo's noisy shape changes it at random).
MODEL_DOUBT: Final = 0.12
#: The largest doubt ever reported: the schedule never polls earlier than this fraction of
#: the predicted remaining time.
MAX_DOUBT: Final = 0.7
#: The doubt is at least this multiple of how far off (as a share of the time it gave) the
#: model was about the newest values...
HINDSIGHT: Final = 1.0
#: ... looking at this many of them.
HINDSIGHT_SPAN: Final = 3
#: The miss assumed before any value could be foretold (two readings say little).
FIRST_SURPRISE: Final = 0.3
#: How much of the mildest recent speed-up the estimate takes on (0: none, 1: all of it).
SHRINK: Final = 0.5
#: The stall rule's pace: each step left takes at least this share of the time the newest
#: value has been shown (1 would wait out a long stall in few polls but see the rush after
#: it late; 0 polls a crawl ever faster).
STUCK_SHARE: Final = 0.25
#: Power-law exponents outside this range are read as the edge of it (a two-point fit on a
#: short span can give absurd ones).
K_RANGE: Final = (0.25, 4.0)


@attrs.frozen
class Estimate:
    """A predicted finish (monotonic s) and its doubt (a fraction of the remaining time)."""

    finish: float
    #: Relative doubt of ``finish - now``: the end may come this fraction of it earlier.
    doubt: float
    #: When the newest progress value was first seen (the estimate's reference moment).
    seen: float
    #: Seconds the last step (``q`` points, the job's quantum) takes at the predicted pace.
    last_step: float = 0.0
    #: Seconds one step took lately, as seen (between the first sightings of the newest two
    #: values): polls closer together than a share of it mostly see nothing new.
    seen_step: float = 0.0

    @property
    def earliest(self) -> float:
        """The earliest the action may plausibly finish: the finish less its doubt of the
        time ahead (monotonic s)."""
        return self.finish - self.doubt * max(0.0, self.finish - self.seen)


#: ``(first sighting, progress read as a middle, reported progress, width of the reading)``.
_Point = tuple[float, float, int, float]


class _Fit:
    """The models through the newest point and an anchor: when each value will be reached."""

    __slots__ = ("gain", "linear", "power", "single", "spread")

    def __init__(
        self,
        linear: tuple[float, float, float] | None,
        power: tuple[float, float, float, float] | None,
        gain: float,
        single: bool,
        spread: float = 1.0,
    ) -> None:
        self.linear = linear  # (time, progress, seconds per point) of the newest point
        self.power = power  # (origin, age and progress of the newest point, exponent k)
        self.gain = gain  # points between the anchor and the newest
        self.single = single  # one reading only: the straight line from the creation
        self.spread = spread  # the relative error of the pace the readings' widths allow

    @classmethod
    def through(cls, points: list[_Point], origin: float | None, q: int) -> _Fit | None:
        """The models through *points* (a step of *q*); None when they say nothing."""
        if not points:
            return None
        t_n, v_n, p_n, w_n = points[-1]
        anchor = None
        for point in reversed(points[:-1]):
            if p_n - point[2] >= max(MIN_GAIN, q):
                anchor = point
                break
        if anchor is None and len(points) > 1:
            anchor = points[0]
        if anchor is None:
            if origin is None or t_n <= origin:
                return None
            # One reading: the straight line from the creation (the schedule doubts it).
            return cls(None, (origin, t_n - origin, v_n, 1.0), float(p_n), True)
        t_a, v_a, p_a, w_a = anchor
        linear = power = None
        if t_n > t_a and v_n > v_a:
            linear = (t_n, v_n, (t_n - t_a) / (v_n - v_a))
        if origin is not None and t_a - origin > 0 and t_n > t_a and v_n > v_a:
            k = math.log(v_n / v_a) / math.log((t_n - origin) / (t_a - origin))
            k = min(max(k, K_RANGE[0]), K_RANGE[1])
            power = (origin, t_n - origin, v_n, k)
        if linear is None and power is None:
            return None
        spread = (w_a + w_n) / 2 / (v_n - v_a) if v_n > v_a else 1.0
        return cls(linear, power, max(1.0, p_n - p_a), False, spread)

    def value_at(self, when: float) -> float:
        """The progress the models (the higher of them) put at *when*."""
        values = []
        if self.linear is not None:
            t_n, v_n, pace = self.linear
            values.append(v_n + (when - t_n) / pace)
        if self.power is not None:
            origin, age, v_n, k = self.power
            values.append(v_n * (max(0.0, when - origin) / age) ** k)
        return max(values)

    def when(self, value: float, model: str | None = None) -> float:
        """When *model* (``"linear"`` or ``"power"``; None: the earlier of those it has)
        puts *value* (monotonic s)."""
        times = []
        if self.linear is not None and model in (None, "linear"):
            t_n, v_n, pace = self.linear
            times.append(t_n + (value - v_n) * pace)
        if self.power is not None and model in (None, "power"):
            origin, age, v_n, k = self.power
            times.append(origin + age * (max(value, 1e-9) / v_n) ** (1.0 / k))
        if not times:  # the model asked for is not fitted: the earlier of the others
            return self.when(value)
        return min(times)


class _Analysis:
    """What the estimate derives from the values alone (not from when they were last seen)."""

    __slots__ = ("fit", "points", "record")

    def __init__(self, points: list[_Point], fit: _Fit, record: dict[str, list[float]]) -> None:
        self.points = points
        self.fit = fit
        self.record = record


class _Sample:
    __slots__ = ("first", "last", "progress")

    def __init__(self, now: float, progress: int) -> None:
        self.first = now  # when this value was first seen
        self.last = now  # ... and last seen
        self.progress = progress


class ProgressEstimator:
    """Samples of one action's progress and the finish they predict (monotonic s)."""

    __slots__ = ("_analysis", "_samples", "_step", "_values")

    def __init__(self) -> None:
        self._samples: collections.deque[_Sample] = collections.deque(maxlen=WINDOW)
        self._step = 0  # gcd of every value seen: 1 for most jobs, 25 for quarters
        self._values = 0  # distinct values above 0 seen
        # The points, fit and record for one origin, until a new value comes (a value seen
        # again changes none of them: each poll of a stalled job costs no refit).
        self._analysis: tuple[float | None, _Analysis | None] | None = None

    def reset(self) -> None:
        """Forget everything (progress went back: a new run of the job)."""
        self._samples.clear()
        self._step = 0
        self._values = 0
        self._analysis = None

    def observe(self, now: float, progress: int) -> None:
        """Record that the action reported *progress* (0-100) at *now*."""
        samples = self._samples
        if samples and progress < samples[-1].progress:
            self.reset()
        if samples and samples[-1].progress == progress:
            samples[-1].last = now
            return
        if progress > 0:
            self._values += 1
            self._step = math.gcd(self._step, progress)
        samples.append(_Sample(now, progress))
        self._analysis = None

    def readings(self) -> list[tuple[float, float, int]]:
        """``(first seen, last seen, progress)`` per distinct value kept, oldest first."""
        return [(s.first, s.last, s.progress) for s in self._samples]

    def steady(self, origin_lo: float, origin_hi: float, step: int) -> Steady | None:
        """The finishes a steady pace from an origin in ``[origin_lo, origin_hi]`` allows
        (see :mod:`._steady`), with progress read in steps of *step*; None when none fits."""
        return steady_finish(self.readings(), step, origin_lo, origin_hi)

    @property
    def values(self) -> int:
        """How many distinct values above 0 were seen."""
        return self._values

    @property
    def quantum(self) -> int:
        """The largest step progress may move in: the gcd of every value above 0 seen (one
        25 may be a quarter), 1 before any. Never smaller than the true step."""
        return max(1, self._step)

    @property
    def progress(self) -> int | None:
        """The newest progress observed, or None."""
        return self._samples[-1].progress if self._samples else None

    @property
    def step(self) -> int:
        """The quantum progress moves in: the gcd of the values seen once there are two or
        more above 0 (one says nothing of the quantum), else 1. An accidental gcd (a linear
        job seen at 30 and 60) overstates it, which only makes the estimate earlier."""
        return max(1, self._step) if self._values >= STEP_VALUES else 1

    def _points(self, origin: float | None = None) -> list[_Point]:
        """``(time, progress read, reported progress, width of the reading)`` per value above
        0, oldest first. A value is read where the models through the values before it put
        it, if that is a value the reading allows; else as the middle of what it allows."""
        samples = list(self._samples)
        q = self.step
        moving = [s for s in samples if s.progress > 0]
        rough: float | None = None
        if len(moving) >= 2 and moving[-1].first > moving[0].first:
            span = moving[-1].first - moving[0].first
            rough = (moving[-1].progress - moving[0].progress) / span
        points: list[_Point] = []
        for i, sample in enumerate(samples):
            if sample.progress <= 0:
                continue
            width = float(q)
            if i > 0 and rough is not None:
                width = min(width, rough * (sample.first - samples[i - 1].last))
            value = sample.progress + width / 2
            if len(points) >= 2:
                fit = _Fit.through(points, origin, q)
                if fit is not None:
                    predicted = fit.value_at(sample.first)
                    value = min(max(predicted, sample.progress), sample.progress + width)
            value = min(value, 100.0 - 1e-6)
            points.append((sample.first, value, sample.progress, width))
        return points

    def _analyse(self, origin: float | None) -> _Analysis | None:
        """The points, the fit through them and each model's record, for *origin* (cached
        until a new value is observed)."""
        cached = self._analysis
        if cached is not None and cached[0] == origin:
            return cached[1]
        points = self._points(origin)
        q = self.step
        fit = _Fit.through(points, origin, q)
        analysis = None
        if fit is not None:
            record = {name: self._record(points, origin, q, name) for name in ("linear", "power")}
            analysis = _Analysis(points, fit, record)
        self._analysis = (origin, analysis)
        return analysis

    def estimate(self, origin: float | None = None) -> Estimate | None:
        """The predicted finish and its doubt; None while progress says nothing.

        *origin* is the action's creation on the same clock (a lower bound of its age); it
        enables the power-law model and lets a single reading speak.
        """
        analysis = self._analyse(origin)
        if analysis is None:
            return None
        points, fit, record = analysis.points, analysis.fit, analysis.record
        q = self.step
        t_n, _, p_n, _ = points[-1]
        # The model that foretold the recent values best; with no record, the earlier one.
        model: str | None = None
        if record["linear"] and record["power"]:
            model = min(record, key=lambda name: max(abs(1 - r) for r in record[name]))
        finish = fit.when(100.0, model)
        # Calibration: when every recent value came sooner than the model said, shrink what
        # is left by part of the mildest of those ratios. (Values that all came later do
        # not stretch it: a job that slowed down may burst again; the stall rule waits.)
        ratios = record[model] if model is not None else []
        scale = 1.0
        if ratios and max(ratios) < 1:
            scale = 1 + SHRINK * (max(ratios) - 1)
        finish = t_n + (finish - t_n) * scale
        # The stall rule: the value after the newest should have come by now at the pace the
        # model gives; it has not, so the job is slower than the model: at least as slow as
        # one step per the time it has shown the newest value.
        newest = self._samples[-1]
        overdue_next = newest.last - (t_n + (fit.when(min(100.0, p_n + q), model) - t_n) * scale)
        if overdue_next > 0:
            finish += overdue_next
            if self._values >= 2:  # the step is known: the newest has overstayed one
                stuck_pace = STUCK_SHARE * (newest.last - newest.first) / q  # s per point
                finish = max(finish, newest.last + (100.0 - p_n - q) * stuck_pace)
        if fit.single:
            doubt = MAX_DOUBT
        else:
            extrapolation = (100.0 - p_n) / fit.gain
            doubt = MODEL_DOUBT + fit.spread + 0.02 * extrapolation
            if ratios:
                surprise = max(abs(1 - r / scale) for r in ratios)
            elif record["linear"] or record["power"]:
                surprise = max(abs(1 - r) for rs in record.values() for r in rs)
            else:
                surprise = FIRST_SURPRISE
            doubt = min(MAX_DOUBT, max(doubt, HINDSIGHT * surprise))
        # The newest reading's own width: what is left may be less than its placement says,
        # by as much as the reading allows (all of it, on the last step).
        _, v_n, _, w_n = points[-1]
        left = 100.0 - v_n
        if left > 0:
            least = max(0.0, 100.0 - p_n - w_n)
            doubt = min(MAX_DOUBT, max(doubt, (left - least) / left))
        last_step = max(0.0, fit.when(100.0, model) - fit.when(100.0 - q, model))
        seen_step = 0.0
        if len(points) >= 2 and p_n > points[-2][2]:
            seen_step = (t_n - points[-2][0]) * q / (p_n - points[-2][2])
        return Estimate(
            finish=finish, doubt=doubt, seen=t_n, last_step=last_step, seen_step=seen_step
        )

    @staticmethod
    def _record(points: list[_Point], origin: float | None, q: int, model: str) -> list[float]:
        """How *model* did on the last :data:`HINDSIGHT_SPAN` values: for each, the time it
        took to come over the time the model, fitted before it, gave it (1: on time; 2:
        twice as long; 0.5: twice as fast)."""
        ratios = []
        for j in range(max(2, len(points) - HINDSIGHT_SPAN), len(points)):
            fit = _Fit.through(points[:j], origin, q)
            if fit is None or fit.single:
                continue
            t_prev = points[j - 1][0]
            predicted = fit.when(points[j][1], model)
            if predicted > t_prev:
                ratios.append((points[j][0] - t_prev) / (predicted - t_prev))
        return ratios
