"""Which waiting request goes first when the budget (or max_concurrency) is the bottleneck.

A poll carries the moment it becomes worth making, its *due* time: the earliest plausible
finish of its action (past, for an action that may well have ended: it goes before one just
polled), or later for an action whose first poll can wait. A user's own call
(``get()``, ``list()``) is due when it is made. The gate admits waiting requests in order of
due time, ties first come first served; with no due time set, that is plain FIFO.

Guarantees (``LocalGate``; the ``RequestGate`` interface is unchanged, so a gate that ignores
due times stays FIFO):

- **Nobody starves.** A due time is clamped to ``[now - MAX_ADVANCE, now + MAX_DEFERRAL]``
  when the request starts waiting. So a waiting request is passed only by requests that
  arrive less than ``MAX_ADVANCE + MAX_DEFERRAL`` seconds after it (a user's call: less than
  ``MAX_ADVANCE``): its wait is at most what FIFO would give a request arriving that much
  later. Nothing waits because of its due time while the gate has room: ordering applies
  only among requests that are waiting anyway.
- The budget and the concurrency cap are exactly as without due times.
- **Deferral.** Only a young action's poll is deferrable (one younger than the first-poll
  wait, ``2 * initial_delay`` at most: it almost always sees an unfinished action): while
  fewer than :data:`HOLD_WHEN_FREE_BELOW` of the budget's slots are free, it waits for its
  due time even when a slot is free, because a slot spent on a hopeless poll is gone for a
  whole window. Every other request waits only while the gate is full.

The due time travels in a context variable set by the handle around its poll, so the
transport between them needs no new argument.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Final

__all__ = [
    "HOLD_WHEN_FREE_BELOW",
    "MAX_ADVANCE",
    "MAX_DEFERRAL",
    "admission_key",
    "deferrable",
    "due",
    "polling_due",
]

#: The furthest (seconds) a due time may put a request ahead of its arrival.
MAX_ADVANCE: Final = 10.0
#: The furthest (seconds) a due time may put a request behind its arrival.
MAX_DEFERRAL: Final = 10.0
#: A deferrable request waits for its due time, even with room, while fewer than this
#: fraction of the budget's slots are free (a slot spent early is gone for a whole window).
HOLD_WHEN_FREE_BELOW: Final = 0.97

_due: contextvars.ContextVar[tuple[float | None, bool]] = contextvars.ContextVar(
    "voucherify_async_due", default=(None, False)
)


def due() -> float | None:
    """The due time (gate clock, seconds) of the request being made here, or None."""
    return _due.get()[0]


def deferrable() -> bool:
    """True when the request being made here may wait for its due time (a first poll)."""
    return _due.get()[1]


@contextlib.contextmanager
def polling_due(when: float | None, *, defer: bool = False) -> Iterator[None]:
    """Make the requests sent inside this block due at *when* (gate clock; None: now);
    with *defer*, they may be held until then while the budget is short."""
    token = _due.set((when, defer))
    try:
        yield
    finally:
        _due.reset(token)


def admission_key(now: float, when: float | None) -> float:
    """The order key of a request that starts waiting at *now*, due at *when*."""
    if when is None:
        return now
    return min(max(when, now - MAX_ADVANCE), now + MAX_DEFERRAL)
