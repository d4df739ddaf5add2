"""How long actions of each type take, learned from what the client saw (bounded memory).

Guarantee: memory is bounded, at most :data:`MAX_TYPES` types of :data:`PER_TYPE` durations
each (the newest kept), whatever the client polls; durations are only ever learned from
terminal snapshots (``processing_time``, or ``updated_at - created_at`` of list items), so
a quantile is a statement about finished actions of that type on this account.

The schedule uses them where progress says nothing: the first poll of a fresh action (which
almost always sees it unfinished) and the ENQUEUED phase. A program can start warm from a
``list()`` page (:meth:`DurationStats.learn_from_list`) or from figures it saved
(:meth:`DurationStats.to_dict` / :meth:`DurationStats.from_dict`).

Alongside, :attr:`DurationStats.time_left` learns how long each type ran on after each
progress reading its handles saw (:mod:`._timeleft`); it lives in memory only (a program
that starts warm from saved figures learns it again from the actions it polls).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from voucherify_async._errors import InvalidArgumentTypeError
from voucherify_async._validate import finite

from .pertype import PerType
from .timeleft import TimeLeft

if TYPE_CHECKING:
    from voucherify_async._models import AsyncAction

__all__ = ["MAX_TYPES", "PER_TYPE", "DurationStats", "duration_of"]

#: Durations kept per type (the newest).
PER_TYPE: Final = 64
#: Types kept; the least recently updated type is forgotten beyond this.
MAX_TYPES: Final = 64
#: Durations a type needs before its quantiles are used.
MIN_SAMPLES: Final = 5
#: How many action ids are remembered as already counted.
SEEN_IDS: Final = 4096
#: The pseudo-type under which every duration is also kept (for actions of unknown type).
ANY_TYPE: Final = "*"


def duration_of(action: AsyncAction) -> float | None:
    """How long a terminal *action* took (s): its ``processing_time``, else ``updated_at -
    created_at``; None when it is not terminal or says neither."""
    if not action.is_terminal:
        return None
    if action.processing_time is not None:
        return action.processing_time / 1000
    if action.created_at is not None and action.updated_at is not None:
        return (action.updated_at - action.created_at).total_seconds()
    return None


class DurationStats:
    """How long finished actions of each type took (seconds), newest kept; bounded memory.

    Each client has one, as ``client.async_actions.durations``: it learns from every
    terminal snapshot a ``get()``, a handle or a ``list()`` sees, and handles use it for
    their first poll. Save it with :meth:`to_dict` and start warm with :meth:`update`.
    """

    __slots__ = ("_by_type", "_given", "_seen", "_seen_order", "time_left")

    def __init__(self) -> None:
        self._by_type: PerType[float] = PerType(PER_TYPE, MAX_TYPES)
        # Ids already counted (the newest SEEN_IDS), so a polled or listed action counts once.
        self._seen: set[str] = set()
        self._seen_order: collections.deque[str] = collections.deque()
        #: How long each type ran on after each progress reading, relative to what its
        #: average pace foretold, taught by the handles when their actions end (DONE); the
        #: schedule polls by it once a type has 20 such readings. Bounded like the durations;
        #: not in :meth:`to_dict`: save ``time_left.to_dict()`` and start warm with
        #: ``time_left.update(saved)``.
        self.time_left = TimeLeft()
        self._given = False  # learned state was given: update() or learn_from_list()

    def add(self, action_type: str | None, seconds: float) -> None:
        """Learn that an action of *action_type* took *seconds* (ignored unless finite >= 0)."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        if action_type:
            self._by_type.add(str(action_type), (seconds,))
        self._by_type.add(ANY_TYPE, (seconds,))

    def learn(self, action: AsyncAction) -> bool:
        """Learn from a terminal snapshot: its ``processing_time``, else its timestamps.

        Each action id counts once (among the last 4,096 counted). True if it counted.
        """
        if not action.is_terminal or action.id in self._seen:
            return False
        seconds = duration_of(action)
        if seconds is None:
            return False
        self._seen.add(action.id)
        self._seen_order.append(action.id)
        if len(self._seen_order) > SEEN_IDS:
            self._seen.discard(self._seen_order.popleft())
        self.add(action.type, seconds)
        return True

    def learn_from_list(self, actions: Iterable[AsyncAction]) -> int:
        """Learn from list items (``client.async_actions.list()``); returns how many counted."""
        self._given = True
        return sum(self.learn(action) for action in actions)

    @property
    def given(self) -> bool:
        """True once learned state was given to it: :meth:`update`, :meth:`learn_from_list`
        (every ``list()`` page, the client's own warm start's too), or :meth:`from_dict`.
        (A client then sends no warm-start ``list()``: ``PollPolicy.warm_start``.)"""
        return self._given

    def knows(self, action_type: str | None) -> bool:
        """True when *action_type* itself has enough durations (5) for its quantiles."""
        return bool(action_type) and self._by_type.count(str(action_type)) >= MIN_SAMPLES

    def quantile(self, action_type: str | None, q: float) -> float | None:
        """The *q* quantile (0-1) of *action_type*'s durations in seconds, falling back to every
        type's; None when fewer than 5 are known."""
        values = self.quantiles(action_type, (q,))
        return values[0] if values else None

    def quantiles(
        self, action_type: str | None, qs: Sequence[float], *, fallback: bool = True
    ) -> list[float] | None:
        """The quantiles *qs* (each 0-1) of *action_type*'s durations in seconds, falling back
        to every type's (unless *fallback* is False); None when fewer than 5 are known."""
        key = str(action_type) if action_type else None
        if self._by_type.count(key) < MIN_SAMPLES and fallback:
            key = ANY_TYPE
        if key is None or self._by_type.count(key) < MIN_SAMPLES:
            return None
        ordered = self._by_type.ordered(key)
        last = len(ordered) - 1
        return [ordered[min(last, max(0, math.ceil(q * len(ordered)) - 1))] for q in qs]

    def to_dict(self) -> dict[str, list[float]]:
        """The figures, JSON-ready: type -> durations in seconds, oldest first."""
        return {key: samples for key, samples in self._by_type.items() if key != ANY_TYPE}

    def update(self, data: Mapping[str, Iterable[float]]) -> None:
        """Add figures saved by :meth:`to_dict` (values that are not finite numbers are
        skipped); *data* that is not a mapping is an :class:`InvalidArgumentTypeError`."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentTypeError(
                f"durations data must be a mapping of type -> seconds, got {type(data).__name__}"
            )
        self._given = True
        for key, values in data.items():
            if not isinstance(values, Iterable) or isinstance(values, str | bytes):
                continue
            for value in values:
                if isinstance(value, int | float) and not isinstance(value, bool) and finite(value):
                    self.add(key, float(value))

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[float]]) -> DurationStats:
        """Statistics from :meth:`to_dict`'s output (values that are not numbers are skipped)."""
        stats = cls()
        stats.update(data)
        return stats

    def __len__(self) -> int:
        return self._by_type.count(ANY_TYPE)
