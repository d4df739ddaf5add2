"""The emulator's request log, with secrets redacted and a way to wait for traffic."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote

import attrs
from aiohttp import web

from ._errors import RequestsTimeout

__all__ = ["RecordedRequest", "RequestLog", "monotonic"]

_REDACTED = frozenset({"x-app-token", "authorization"})


def monotonic() -> float:
    """The running event loop's clock (seconds), or ``time.monotonic()`` outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


@attrs.define
class RecordedRequest:
    """One request the emulator received.

    *time* is the event loop's monotonic clock (seconds) and *wall* the Unix time (seconds)
    at arrival. *path* is the decoded path and *raw_path* the path exactly as sent
    (percent-encoded, without the query); *query* holds the first value of each query
    parameter. *headers* has ``X-App-Token`` and ``Authorization`` replaced by ``"***"``.
    *action_id* (decoded once) and *raw_action_id* (as sent) are set for
    ``/v1/async-actions/{id}``. *status* is None until the response is decided, and stays
    None when the connection was dropped; *fault* names the injected fault that hit it.
    *started_id* is the id of the async action a start request (an import, a bulk update, a
    deletion...) created, None for every other request.
    """

    time: float
    wall: float
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    action_id: str | None = None
    raw_action_id: str | None = None
    status: int | None = None
    fault: str | None = None
    started_id: str | None = None


class RequestLog:
    """Every request received, oldest first, and waiters for more."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._arrived = asyncio.Event()

    def record(
        self, request: web.BaseRequest, raw_path: str, raw_id: str | None
    ) -> RecordedRequest:
        """Log *request* (its path as sent, and the raw action id segment if any)."""
        query: dict[str, str] = {}
        for key, value in request.query.items():
            query.setdefault(key, value)
        headers = {
            name: "***" if name.lower() in _REDACTED else value
            for name, value in request.headers.items()
        }
        entry = RecordedRequest(
            time=monotonic(),
            wall=time.time(),
            method=request.method,
            path=unquote(raw_path),
            raw_path=raw_path,
            query=query,
            headers=headers,
            action_id=None if raw_id is None else unquote(raw_id),
            raw_action_id=raw_id,
        )
        self.requests.append(entry)
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()
        return entry

    def matching(self, action_id: str | None) -> list[RecordedRequest]:
        """The requests for *action_id*, or all of them when it is None."""
        if action_id is None:
            return list(self.requests)
        return [r for r in self.requests if r.action_id == action_id]

    async def wait(
        self,
        n: int,
        timeout: float | None,
        action_id: str | None,
    ) -> list[RecordedRequest]:
        """Wait until *n* requests (for *action_id*) have arrived; TimeoutError after *timeout*."""
        seen: list[RecordedRequest] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    seen = self.matching(action_id)
                    if len(seen) >= n:
                        return seen
                    await self._arrived.wait()
        except TimeoutError:
            raise RequestsTimeout(
                f"saw {len(seen)} of {n} requests within {timeout} seconds"
            ) from None
