"""The polling engine: when a handle polls next, and what the client learns for that.

The rule, after a poll at ``t`` (seconds; ``f = PollPolicy.max_lateness``):

1. Where progress moves, poll at the earliest finish the pace *this client measured*
   allows (the pace taken ``DOUBT`` faster, plus its own measuring doubt); once that is
   within ``TOLERANCE``, poll every tolerance, thinning out while it lasts.
2. Where progress says nothing (no reading, ``ENQUEUED``, a value that overstays its step),
   grow the gaps, at most ``SILENT_SHARE * f`` (a quarter) of the wait.
3. Never wait longer than the bound ``max(f * max(t - r, L), initial_delay)``; every gap is
   finite and in ``[min_delay, max_delay]``, whatever the snapshots say. A fresh client
   learns ``L`` from one ``list()`` page once (``PollPolicy.warm_start``).

The guarantee: ``r`` is when the handle met the action, or the last poll that saw it
ENQUEUED once it has been seen running; so an action's end is seen at most ``f`` times what
its user has waited (at least ``initial_delay``; ``L``, a learned floor, only for an action
this client started, less its time before ``r``). ``created_at`` and the server's clock play
no part in it.

Modules: :mod:`.schedule` (the rule), :mod:`.estimator` (the pace), :mod:`.durations` and
:mod:`.timeleft` (what is learned per type, in :mod:`.pertype`'s bounded store),
:mod:`.admission` (the order of waiting polls under a saturated budget). Details:
docs/polling.md.
"""

from __future__ import annotations

from .durations import DurationStats
from .schedule import PollSchedule

__all__ = ["DurationStats", "PollSchedule"]
