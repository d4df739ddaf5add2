"""The seam for learning shared across processes: what ``VoucherifyClient(learning=...)`` takes.

A client learns how long each type of action takes (``client.async_actions.durations``, a
:class:`~voucherify_async.DurationStats`, with its ``time_left``). Without a learning backend
that stays in the process. With one (``voucherify_async.redis``'s ``RedisLearning``), the
client opens a :class:`LearningSession` on its statistics: the session loads what the fleet
learned before the client's first handle, hears when the client learned something, and merges
it into the shared store. A session sees only the statistics' public methods (``to_dict``,
``update``, ``time_left.to_dict``, ``time_left.update``), never the polling engine.
"""

from __future__ import annotations

from typing import Protocol

from ._durations import DurationStats

__all__ = ["Learning", "LearningSession"]


class LearningSession(Protocol):
    """One client's link to a shared store of learned durations (built by
    :meth:`Learning.session`)."""

    async def load(self) -> None:
        """Add what the store holds to the client's statistics (once, as the client starts).
        Never raises for an unreachable or damaged store: the client then starts cold."""
        ...

    def learned(self) -> None:
        """The client learned something (a handle ended, a terminal snapshot was read): merge
        it into the store soon. Called on the client's event loop; must not block."""
        ...

    async def aclose(self) -> None:
        """Merge what is left and stop every background task (the client is closing)."""
        ...


class Learning(Protocol):
    """What ``VoucherifyClient(learning=...)`` takes: it opens a client's session."""

    def session(self, stats: DurationStats, *, account: str | None) -> LearningSession:
        """The session of one client over its statistics *stats*; *account* is
        ``host:app_id`` (None with an OAuth token)."""
        ...
