"""The seam for polls shared across processes: what ``VoucherifyClient(shared_polling=...)`` takes.

A handle polls through one ``fetch(action_id)`` callable. Without shared polling that is a
plain GET. With it, the client asks the shared-polling backend (``voucherify_async.redis``'s
``RedisPolling``) for a :class:`SharedPoller`, whose ``fetch`` either performs the GET (as the
one process leading that id) and publishes the snapshot, or returns the next snapshot another
process published. Handles, their schedules and their deadlines do not know which.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ._models import AsyncAction

__all__ = ["SharedPoller", "SharedPolling"]


class SharedPoller(Protocol):
    """One client's view of a shared-polling backend (built by :meth:`SharedPolling.poller`)."""

    async def fetch(self, action_id: str) -> AsyncAction:
        """The next snapshot of *action_id*: polled here, or published by another process."""
        ...

    def done(self, action_id: str) -> None:
        """This client's handle of *action_id* ended: stop leading its poll."""
        ...

    async def aclose(self) -> None:
        """Stop every background task (the client is closing)."""
        ...


class SharedPolling(Protocol):
    """What ``VoucherifyClient(shared_polling=...)`` takes: it builds a client's poller."""

    def poller(
        self,
        *,
        get: Callable[[str], Awaitable[tuple[AsyncAction, bytes]]],
        account: str | None,
        wake: Callable[[str], None] | None = None,
    ) -> SharedPoller:
        """The poller of one client: ``await get(action_id)`` performs one GET (through the
        client's budget) and gives the snapshot and the body it came from; *account* is
        ``host:app_id`` (None with an OAuth token). ``wake(action_id)`` asks the id's handle to
        fetch now (a snapshot from another process arrived while it waited between polls)."""
        ...
