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

__all__ = ["RawGet", "SharedPoller", "SharedPolling"]

#: One GET of an action: the decoded snapshot and the body it came from.
RawGet = Callable[[str], Awaitable[tuple[AsyncAction, bytes]]]


class SharedPoller(Protocol):
    """One client's view of a shared-polling backend."""

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

    def poller(self, *, get: RawGet, account: str | None) -> SharedPoller:
        """The poller of one client: *get* performs one GET; *account* is ``host:app_id``
        (None with an OAuth token)."""
        ...
