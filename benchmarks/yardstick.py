"""A yardstick for the zoo's noisy shape: what a poller reaches that is *told* how noise is made.

The zoo's ``noisy`` job (``voucherify_async.testing._shapes.noisy``) splits its duration into
20 equal spans, gives each span a share of the work drawn from Exp(1), and reports the integer
part of the work done; the zoo draws durations log-uniformly over its range. This poller
knows all of that, which no client can: it keeps a particle posterior of (duration, shares)
given every reading so far, and polls at the latest moment at which the chance that the job
ends more than ``late`` of its duration before the poll is at most ``risk``.

It is not a product and not a bound: it is not the best policy with that knowledge, only a
good one, and it is not held to the client's lateness bound (its first poll waits for the
shortest durations, where the bound has the client poll at half of them). It answers one
question the targets raise: is the noisy target (fewer GETs than exponential backoff, p95
lateness below the fixed 1 s loop's) reachable at all by polling that reads progress? It
runs on the same jobs as ``zoo.py`` (the same seeds).

Needs numpy (``pip install -e '.[bench]'``, which matplotlib brings).

Usage: ``python benchmarks/yardstick.py [--quick] [--long]``
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import zoo
from benchmarks._common import Table

if TYPE_CHECKING:
    from voucherify_async.testing._jobs import Job

#: The noisy shape's spans (``noisy(rng, segments=20)``).
SPANS: Final = 20
#: A reading is matched within this many points (a soft likelihood keeps particles alive).
READING_SIGMA: Final = 0.8
#: Resample when the effective number of particles falls below this share of them.
RESAMPLE_BELOW: Final = 0.05
#: On resampling, each duration moves by this much (log scale).
MOVE: Final = 0.01
#: (risk, late) settings tried, from the most eager to the laziest.
SETTINGS: Final = ((0.005, 0.035), (0.01, 0.035))


@attrs.frozen
class Config:
    """How many of the zoo's noisy jobs (of *durations*, s) and how many particles per job."""

    jobs: int
    particles: int
    durations: tuple[float, float] = zoo.FULL.durations


FULL: Final = Config(zoo.FULL.jobs, 100_000)
QUICK: Final = Config(30, 20_000)
SMOKE: Final = Config(2, 2_000)


def _numpy() -> Any:
    import numpy  # an optional dependency: the bench extra (matplotlib brings it)

    return numpy


class Posterior:
    """Particles of (duration s, the 21 progress marks of the noisy shape), weighed by every
    reading seen."""

    def __init__(self, low: float, high: float, particles: int, seed: int) -> None:
        np = self.np = _numpy()
        self.rng = np.random.default_rng(seed)
        self.low, self.high = low, high
        self.duration, self.marks = self._draw(particles, 0.0)
        self.readings: list[tuple[float, int]] = []
        self.unfinished_at = 0.0
        self.logw = np.zeros(particles)

    def _draw(self, count: int, after: float) -> tuple[Any, Any]:
        """*count* particles from the prior, with durations longer than *after*."""
        np = self.np
        low = math.log(max(self.low, after * 1.001))
        duration = np.exp(self.rng.uniform(low, max(low, math.log(self.high)), count))
        shares = self.rng.exponential(1.0, (count, SPANS))
        done = np.concatenate([np.zeros((count, 1)), np.cumsum(shares, 1)], 1)
        return duration, np.floor(done / done[:, -1:] * 99)

    def _progress(self, t: float) -> Any:
        np = self.np
        fraction = np.clip(t / self.duration, 0.0, 1.0 - 1e-9)
        span = np.floor(fraction * SPANS).astype(int)
        rows = np.arange(len(self.duration))
        low, high = self.marks[rows, span], self.marks[rows, span + 1]
        return np.floor(low + (high - low) * (fraction - span / SPANS) * SPANS)

    def _weigh(self) -> None:
        np = self.np
        logw = np.zeros(len(self.duration))
        for t, value in self.readings:
            logw -= 0.5 * ((self._progress(t) - value) / READING_SIGMA) ** 2
        logw[self.duration <= self.unfinished_at] = -np.inf
        self.logw = logw

    def observe(self, t: float, progress: int | None) -> None:
        """A poll at *t* saw the job unfinished (IN_PROGRESS at *progress*)."""
        np = self.np
        self.unfinished_at = t
        if progress is not None:
            self.readings.append((t, progress))
            self.logw -= 0.5 * ((self._progress(t) - progress) / READING_SIGMA) ** 2
        self.logw[self.duration <= t] = -np.inf
        count = len(self.logw)
        if not np.isfinite(self.logw.max()):  # the job outlived every particle: start afresh
            self.duration, self.marks = self._draw(count, t)
            self._weigh()
            return
        weights = np.exp(self.logw - self.logw.max())
        if weights.sum() ** 2 / (weights**2).sum() < RESAMPLE_BELOW * count:
            # Resample and move each duration a little (an approximation: the moved
            # particles are not weighed against the earlier readings again).
            chosen = self.rng.choice(count, count, p=weights / weights.sum())
            self.duration = self.duration[chosen] * np.exp(self.rng.normal(0.0, MOVE, count))
            self.marks = self.marks[chosen]
            self.logw = np.zeros(count)
            self.logw[self.duration <= t] = -np.inf

    def next_poll(self, after: float, late: float, risk: float, longest: float) -> float:
        """The latest time (s) after *after* at which P(end < time / (1 + late)) <= *risk*."""
        np = self.np
        weights = np.exp(self.logw - self.logw.max())
        order = np.argsort(self.duration)
        ends, mass = self.duration[order], np.cumsum(weights[order]) / weights.sum()
        candidates = after + np.geomspace(0.05, longest, 2000)
        chance = np.interp(candidates / (1 + late), ends, mass)
        fine = candidates[chance <= risk]
        return float(fine[-1]) if len(fine) else float(candidates[0])


def informed(zoo_config: zoo.Config, risk: float, late: float, particles: int) -> list[zoo.Outcome]:
    """The informed poller on the noisy jobs of *zoo_config* (the zoo's jobs, its seeds)."""
    spec, enqueued = zoo.SHAPES["noisy"]
    low, high = zoo_config.durations
    outcomes = []
    for i, duration in enumerate(zoo.durations(zoo_config, random.Random(zoo_config.seed))):
        job = zoo._job(spec, enqueued, duration, random.Random(f"{zoo_config.seed}:job:{i}"))
        posterior = Posterior(low, high, particles, seed=i)
        outcomes.append(_poll(job, duration, posterior, risk, late, 2 * high))
    return outcomes


def _poll(
    job: Job, duration: float, posterior: Posterior, risk: float, late: float, longest: float
) -> zoo.Outcome:
    gets = 0
    t = max(zoo.HANDLE_START, posterior.next_poll(0.0, late, risk, longest) - zoo.LATENCY / 2)
    while True:
        gets += 1
        seen = t + zoo.LATENCY / 2
        status, progress, _ = job.state(seen * 1000)
        if status == "DONE":
            return zoo.Outcome(gets, t + zoo.LATENCY - duration, duration)
        posterior.observe(seen, progress if status == "IN_PROGRESS" else None)
        answered = t + zoo.LATENCY
        t = max(answered + 0.05, posterior.next_poll(seen, late, risk, longest) - zoo.LATENCY / 2)


def run(config: Config) -> list[Table]:
    """The yardstick at each of :data:`SETTINGS`, beside the zoo's pollers on the same jobs."""
    low, high = config.durations
    title = f"Noisy progress: an informed poller ({low:g}-{high:g} s jobs)"
    columns = ("poller", "GETs per job", "p95 lateness %")
    try:
        _numpy()
    except ImportError:
        note = "numpy is not installed (pip install -e '.[bench]'): not measured."
        return [Table(title, columns, (), (note,))]
    picked = attrs.evolve(zoo.FULL, jobs=config.jobs, durations=config.durations)
    noisy = {"noisy": zoo.SHAPES["noisy"]}
    measured = dict(zoo.run_shapes(picked, ("fixed", "expo", "ours"), shapes=noisy)["noisy"])
    labels = {poller: zoo.LABELS[poller] for poller in measured}
    for risk, late in SETTINGS:
        key = f"informed {risk:g}/{late:g}"
        measured[key] = informed(picked, risk, late, config.particles)
        labels[key] = f"informed (risk {risk:g}, late {late:g})"
    rows = tuple(
        (labels[key], f"{zoo.gets_per_job(o):.1f}", f"{zoo.p95_fraction(o):.2f}")
        for key, o in measured.items()
    )
    notes = (
        f"{config.jobs} of the zoo's noisy jobs (its seeds). The informed poller is told how "
        f"noisy jobs are made and follows {config.particles:,} particles per job; no client "
        "knows that much. It shows that the noisy target is reachable by polling that reads "
        "progress, and how far the client's schedule is from it.",
    )
    return [Table(title, columns, rows, notes)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 jobs, 20,000 particles")
    parser.add_argument("--long", action="store_true", help="the 2-30 min range")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.long:
        config = attrs.evolve(config, durations=zoo.LONG.durations)
    for table in run(config):
        print(table.text())


if __name__ == "__main__":
    main()
