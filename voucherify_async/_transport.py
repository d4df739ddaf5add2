"""HTTP: the session, authentication headers, retries, pacing and error mapping.

The transport knows URLs, statuses and bytes; it knows nothing of async actions, handles or
polling. It returns the body of a 2xx response, or raises an :class:`APIError` subclass,
:class:`TransportError`, :class:`ResponseDecodeError`, :class:`ClientClosedError` or, for a
request that starts an action, :class:`OutcomeUnknownError`.

Lifecycle: a transport belongs to the event loop it first sends in. Every call registers its
task while it runs; :meth:`Transport.close` fails the calls waiting in the gate, cancels the
ones in flight or between retries (they raise :class:`ClientClosedError`), and returns only once
every call has left the transport, so nothing of the client runs after ``close()`` returns.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import email.utils
import errno
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from . import _json, instrumentation
from ._config import MAX_SERVER_PAUSE, RETRY_MAX_TIME, retry_delays
from ._encoding import ACCEPT_ENCODING, BodyDecodeError, BodyTooLarge, read_body
from ._errors import (
    APIError,
    ClientClosedError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseDecodeError,
    TransportError,
    WrongEventLoopError,
)
from ._headers import secrets_of, server_now
from ._pacing import Admission, RequestGate, ServerPause
from ._routes import route_template

__all__ = ["Transport"]

logger: Final = logging.getLogger("voucherify_async")

#: Statuses worth another attempt; every other non-2xx status is final.
#: The pause (seconds) after ``X-Rate-Limit-Remaining: 0`` that says nothing of when the limit
#: renews (no ``X-Rate-Limit-Retry`` or ``Retry-After``): the API's plans count per minute, so
#: a minute covers their window wherever in it we are (a Sandbox's hourly limit answers its
#: next request with a 429 that says when). Shorter risks a request over the limit, which
#: "blocks access to the API"; longer only delays.
UNKNOWN_RENEWAL_PAUSE: Final = 60.0

RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: The largest 2xx body we read, in bytes, once decoded (a 10 MB body is fine; a bomb is not).
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: How much of an error (non-2xx) body we read, in bytes: enough for any error object.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
#: ``X-Rate-Limit-Retry`` values above this many epoch seconds (year 2286) are milliseconds.
_EPOCH_MS_THRESHOLD: Final = 1e10
#: The server offset is the lower median of the offsets the last this many successful
#: answers' Date headers gave: one skewed Date (or a few, up to half) cannot move it out
#: of the range the sane ones span. More samples follow a clock step later; nine answers
#: are a few seconds of polling.
OFFSET_SAMPLES: Final = 9

_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"([^"\\]{1,128})"')

#: How a call may be retried: ``"transient"`` retries any transient failure (GET);
#: ``"unsent"`` only failures that certainly did not reach the server (starting an action).
RetryMode = Literal["transient", "unsent"]

# Transport failures that no retry can mend: a certificate that does not verify, a bad URL.
_FINAL: Final = (aiohttp.ClientSSLError, aiohttp.InvalidURL)
# Failures before a single byte was sent: the connection was never made.
_NOT_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


# errno values of a connection the peer ended: reset, or closed under a write.
_PEER_CLOSED_ERRNOS: Final = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def _server_closed(exc: BaseException) -> bool:
    """True when *exc* says the server closed the connection, or it was never opened."""
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectorError):
        return True
    return isinstance(exc, OSError) and exc.errno in _PEER_CLOSED_ERRNOS


class _Abort(Exception):
    """Raised inside an attempt: stop the call with this already-built error, no retry."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class _SendOnce:
    """An aiohttp middleware that refuses aiohttp's own silent resend of a request.

    aiohttp sends an idempotent request a second time when a kept-alive connection drops
    after sending. That second request never passed our gate, so the budget could not see it;
    with this middleware the drop surfaces as an error and our retry (through the gate)
    decides.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        if self.error is not None:
            raise self.error
        try:
            return await handler(request)
        except BaseException as exc:
            self.error = exc
            raise


class Transport:
    """Sends requests for a client, through one gate, with retries.

    *session* is borrowed when given (never closed here); otherwise one is created on first
    use, inside the running loop, and closed by :meth:`close`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        max_retries: int,
        gate: RequestGate,
        concurrency: int,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.root = str(URL(base_url))  # encoded once, so paths can be appended as text
        self._headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        self._secrets = secrets_of(headers)
        self._timeout = timeout
        self._max_retries = max_retries
        self._gate = gate
        self._concurrency = concurrency
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Tasks inside a call -> how many cancellations they had on entry (for uncancel()).
        self._calls: dict[asyncio.Task[Any], int] = {}
        self._cancelled_by_close: set[asyncio.Task[Any]] = set()
        # Calls cancelled after their gate admission (monotonic send time): close() makes
        # those of a start OutcomeUnknownError, as the server may have read them.
        self._cut_in_flight: dict[asyncio.Task[Any], float] = {}
        self._idle: asyncio.Event | None = None
        # (server Unix time - time.monotonic()) per recent successful answer, from Date.
        self._offsets: collections.deque[float] = collections.deque(maxlen=OFFSET_SAMPLES)
        self._server_offset: float | None = None
        self._last_date: str | None = None  # the Date value last parsed
        # Attempts sent so far, and the number of the one whose answer set the server's
        # allowance: an answer to an earlier one, arriving late, is stale and not believed.
        self._sent = 0
        self._allowance_from = 0
        self._dropping: asyncio.Task[None] | None = None  # see _drop_dead_session

    @property
    def server_offset(self) -> float | None:
        """The server's Unix time minus ``time.monotonic()`` (seconds), from the ``Date``
        headers of successful (2xx) answers only: the lower median of the last
        :data:`OFFSET_SAMPLES` (None before the first).

        ``Date`` is whole seconds, stamped before the response is read, so each answer's
        ``Date - arrival`` is a lower bound of the truth (to a second plus the request's
        time) when the server's clock is right. The median of several keeps a single
        skewed header (a proxy's, a clock that jumped) from moving the estimate out of the
        range the others span; error pages, often from other machines, never count.
        """
        return self._server_offset

    def _note_date(self, headers: CIMultiDictProxy[str], arrived: float) -> None:
        value = headers.get("Date")
        if not value or value == self._last_date:
            # The same whole second, arriving later, can only give a lower bound: nothing new.
            # (Every response has a Date; parsing it costs more than the rest of this.)
            return
        self._last_date = value
        try:
            stamp = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        offset = stamp - arrived
        if not math.isfinite(offset):
            return
        offsets = self._offsets
        offsets.append(offset)
        ordered = sorted(offsets)
        self._server_offset = ordered[(len(ordered) - 1) // 2]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this transport belongs to (None before its first call)."""
        return self._loop

    @property
    def gate(self) -> RequestGate:
        """The gate every request passes."""
        return self._gate

    def check_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, once it is known to be this transport's; else a typed error."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise WrongEventLoopError(
                "VoucherifyClient calls need a running event loop (call them from async code)"
            ) from None
        if self._closed:
            raise ClientClosedError("this VoucherifyClient is closed")
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            if self._loop.is_closed():
                self._drop_dead_session(loop)
            state = "closed" if self._loop.is_closed() else "still running"
            raise WrongEventLoopError(
                "this VoucherifyClient belongs to another event loop (that loop is "
                f"{state}); a client works in the loop it first sent a request in: create it "
                "inside asyncio.run(), or close() it and create a new one"
            )
        return loop

    def _drop_dead_session(self, loop: asyncio.AbstractEventLoop) -> None:
        """This transport's loop is closed, so its session can serve nobody again: close it
        from *loop* now (aiohttp's public close() marks it and its connector closed and
        touches none of the closed loop's transports), instead of leaving aiohttp to warn
        "Unclosed client session" when it is collected. The close never waits on anything
        with a closed loop, so it ends in its task's first step."""
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            self._dropping = loop.create_task(session.close())

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency, limit_per_host=self._concurrency
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                raise_for_status=False,
                auto_decompress=False,
            )
        elif session.closed:
            raise ClientClosedError("the aiohttp session given to VoucherifyClient is closed")
        return session

    async def close(self) -> None:
        """End every call, close the gate, and close the session if we own it.

        Calls waiting in the gate, in flight or between retries raise
        :class:`ClientClosedError`; this returns once all of them have left the transport.
        Works from any loop: when the transport's loop is closed, it marks the transport
        closed and closes the session through aiohttp's public ``close()``, which leaves the
        closed loop's sockets alone (they are freed when collected). A loop that still runs or
        could run again should close its own client: :meth:`VoucherifyClient.close` sees to it.
        """
        if self._closed and not self._calls and self._session is None:
            return
        self._closed = True
        self._gate.close()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        own_loop = self._loop is None or self._loop is running
        if own_loop:
            current = asyncio.current_task()
            for task in list(self._calls):
                # A second close() must not cancel again: one uncancel() could not undo it.
                if task is not current and not task.done() and task not in self._cancelled_by_close:
                    self._cancelled_by_close.add(task)
                    task.cancel()
            if self._calls and current not in self._calls:
                if self._idle is None:
                    self._idle = asyncio.Event()
                await self._idle.wait()
            await self._gate.aclose()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            # From a closed loop's client, aiohttp's close() marks the session and its
            # connector closed and touches none of that loop's transports.
            await session.close()

    async def get(self, url: URL, *, path: str, patient: bool = False) -> tuple[int, bytes]:
        """GET *url*, retrying transient failures: see :meth:`request`."""
        return await self.request("GET", url, path=path, patient=patient)

    async def request(
        self,
        method: str,
        url: URL,
        *,
        path: str,
        retry: RetryMode = "transient",
        data: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        patient: bool = False,
    ) -> tuple[int, bytes]:
        """Send *method* to *url* (already encoded); return the status and body of its 2xx.

        *path* names the request in logs and errors. *data* builds the request body for each
        attempt (None: no body). With ``retry="transient"`` transient failures are retried up
        to ``max_retries`` times with exponential backoff and full jitter; with
        ``retry="unsent"`` only failures that certainly did not reach the server are, and any
        other raises :class:`OutcomeUnknownError`. A 429 or a spent budget pauses the whole
        client for as long as the server asks; a pause longer than this call may wait
        (``RETRY_MAX_TIME``) raises :class:`RateLimitError` with ``retry_at`` at once, unless
        *patient* (a handle's poll, which has deadlines of its own) waits it out.
        """
        self.check_loop()
        task = asyncio.current_task()
        if task is None or task in self._calls:  # a call inside a call (a hook): no tracking
            return await self._retrying(method, url, path, retry, data, headers, patient)
        self._calls[task] = task.cancelling()
        try:
            return await self._retrying(method, url, path, retry, data, headers, patient)
        except asyncio.CancelledError:
            if task in self._cancelled_by_close and task.uncancel() <= self._calls[task]:
                closed = ClientClosedError(
                    f"{method} {path}: the VoucherifyClient was closed while the request was "
                    "waiting or in flight" + _UNKNOWN_HINT.get(retry, "")
                )
                sent = self._cut_in_flight.get(task)
                if retry == "unsent" and sent is not None:
                    # Cut while in flight: the server may have read it (start's own rule).
                    raise _outcome_unknown(
                        f"{method} {path}", method, path, sent, closed
                    ) from closed
                raise closed from None
            raise
        finally:
            del self._calls[task]
            self._cancelled_by_close.discard(task)
            if self._cut_in_flight:
                self._cut_in_flight.pop(task, None)
            if self._idle is not None and not self._calls:
                self._idle.set()

    async def _retrying(
        self,
        method: str,
        url: URL,
        path: str,
        retry: RetryMode,
        data: Callable[[], Any] | None,
        headers: Mapping[str, str] | None,
        patient: bool,
    ) -> tuple[int, bytes]:
        session = self._get_session()
        request_headers = self._headers if headers is None else {**self._headers, **headers}
        label = f"{method} {path}"
        delays = None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            server_wait = 0.0
            try:
                max_wait = None if patient else RETRY_MAX_TIME - (time.monotonic() - started)
                status, body, response_headers, elapsed = await self._attempt(
                    session, method, url, request_headers, data, max_wait, path, attempt
                )
            except _Abort as abort:
                raise abort.error from abort.error.__cause__
            except ServerPause as pause:
                raise self._pause_error(label, pause.until) from None
            except _FINAL as exc:
                raise TransportError(f"{label} failed: {_describe(exc)}", permanent=True) from exc
            except _NOT_SENT as exc:
                error: Exception = TransportError(
                    f"{label} failed: {_describe(exc)}{self._never_answered_hint()}"
                )
                error.__cause__ = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = TransportError(f"{label} failed: {_describe(exc)}")
                error.__cause__ = exc
                if retry == "unsent":
                    raise _outcome_unknown(label, method, path, started, exc) from exc
            else:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s -> %d in %.1f ms (attempt %d, request_id %s)",
                        label, status, elapsed * 1000, attempt, _request_id(body),
                    )  # fmt: skip
                if 200 <= status < 300:
                    return status, body
                retry_after = _retry_after(response_headers)
                error = _api_error(status, self._scrub(body), retry_after, response_headers)
                if status not in RETRYABLE_STATUSES:
                    raise error
                if status == 429:
                    server_wait = (
                        retry_after
                        if retry_after is not None
                        else _seconds_until_retry(response_headers)
                    ) or 0.0
                elif retry == "unsent":
                    # A 5xx answer: the server (or a gateway) got the request.
                    raise _outcome_unknown(label, method, path, started, error) from error
                elif status == 503 and retry_after is not None:
                    server_wait = retry_after
            if attempt > self._max_retries:
                raise error
            if delays is None:
                delays = retry_delays()
            wait = max(next(delays), server_wait)
            if time.monotonic() - started + wait > RETRY_MAX_TIME:
                raise error
            # A TransportError's text starts with the label already; an APIError's has none.
            text = str(error)
            if not text.startswith(label):
                text = f"{label}: {text}"
            logger.warning("%s; retry %d of %d in %.2f s", text, attempt, self._max_retries, wait)
            await asyncio.sleep(wait)

    def _scrub(self, body: bytes) -> bytes:
        """An error page without this client's tokens (a proxy may echo request headers)."""
        for secret in self._secrets:
            body = body.replace(secret, b"[token]")
        return body

    def _never_answered_hint(self) -> str:
        """For a failed connection: a note when no response ever came from this host."""
        if self._last_date is not None:  # every response so far had a Date
            return ""
        return (
            f"; no response from {URL(self.root).origin()} since this client started "
            "(is base_url right, and the server up?)"
        )

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        data: Callable[[], Any] | None,
        max_wait: float | None,
        path: str = "",
        attempt: int = 1,
    ) -> tuple[int, bytes, CIMultiDictProxy[str], float]:
        gate = self._gate
        hooks = instrumentation.on_request  # empty unless someone observes requests
        asked = time.monotonic() if hooks else 0.0
        admission: Admission = await gate.acquire(
            max_wait=None if max_wait is None else max(0.0, max_wait)
        )
        finishers = None
        if hooks:
            event = instrumentation.RequestEvent(
                method, path, route_template(path), str(url), attempt,
                time.monotonic() - asked, gate.usage(),
            )  # fmt: skip
            finishers = instrumentation.emit_scoped(hooks, event)
        answered = False
        status: int | None = None
        error: BaseException | None = None
        sent = time.monotonic()
        self._sent = number = self._sent + 1
        try:
            try:
                context = session.request(
                    method,
                    url,
                    headers=headers,
                    data=data() if data is not None else None,
                    timeout=self._timeout,
                    allow_redirects=False,
                    auto_decompress=False,
                    middlewares=(_SendOnce(),),
                )
                async with context as response:
                    answered = True
                    status = response.status
                    if 200 <= response.status < 300:
                        self._note_date(response.headers, time.monotonic())
                    self._obey_rate_headers(response.headers, response.status, number)
                    body = await self._read(response)
                    return response.status, body, response.headers, time.monotonic() - sent
            except RuntimeError as exc:
                if session.closed:
                    raise ClientClosedError("the aiohttp session was closed") from exc
                raise
            except (aiohttp.ClientError, OSError) as exc:
                # The server closed the connection (or it never opened): it cannot count this
                # request after now, so its slot frees a window from now, as if answered. A
                # request we gave up on (timeout, cancel) keeps the long hold instead.
                answered = answered or _server_closed(exc)
                raise
        except BaseException as exc:
            error = exc.error if isinstance(exc, _Abort) else exc
            if isinstance(exc, asyncio.CancelledError) and (task := asyncio.current_task()):
                self._cut_in_flight[task] = sent  # admitted, so it may be on the wire
            raise
        finally:
            gate.release(admission, answered=answered)
            if finishers:
                outcome = instrumentation.RequestOutcome(status, error, time.monotonic() - sent)
                instrumentation.finish_scoped(finishers, outcome)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        status = response.status
        success = 200 <= status < 300
        try:
            # An error page of any size is still an APIError: keep only its start.
            limit = MAX_BODY_BYTES if success else MAX_ERROR_BODY_BYTES
            return await read_body(response, limit, truncate=not success)
        except BodyTooLarge as exc:
            raise _Abort(ResponseDecodeError(str(exc), status=status)) from None
        except BodyDecodeError as exc:
            if not success:
                return b""  # an undecodable error page still says its status
            raise _Abort(ResponseDecodeError(str(exc), status=status)) from None

    def _obey_rate_headers(self, headers: CIMultiDictProxy[str], status: int, number: int) -> None:
        """Pause the whole client as the server asks: a 429's ``Retry-After`` (or
        ``X-Rate-Limit-Retry``), and ``X-Rate-Limit-Remaining: 0`` until ``X-Rate-Limit-Retry``.

        *number* is the attempt's place in sending order: a ``Remaining`` in the answer to an
        attempt sent before the one that set the allowance is older news (the server counted
        less then), so it never raises the allowance."""
        pause: float | None = None
        if status == 429:
            pause = _retry_after(headers)
            if pause is None:
                pause = _seconds_until_retry(headers)
        remaining = headers.get("X-Rate-Limit-Remaining")
        allowed = _header_int(remaining)
        if allowed is not None and number > self._allowance_from:
            self._allowance_from = number
            self._gate.observe_allowance(allowed, _header_int(headers.get("X-Rate-Limit-Limit")))
        if remaining is not None and remaining.strip() == "0":
            until_retry = _seconds_until_retry(headers)
            if until_retry is None and pause is None and "X-Rate-Limit-Retry" not in headers:
                # Spent, and no word on when it renews: the next request would exceed it.
                until_retry = UNKNOWN_RENEWAL_PAUSE
            if until_retry is not None and (pause is None or until_retry > pause):
                pause = until_retry
        if not pause:
            return
        if pause > MAX_SERVER_PAUSE:
            logger.warning(
                "the server asked for a pause of %.0f s; pausing for the cap of %.0f s",
                pause, MAX_SERVER_PAUSE,
            )  # fmt: skip
            pause = MAX_SERVER_PAUSE
        if self._gate.paused_for < 1.0 <= pause:
            logger.warning(
                "the server's rate limit pauses every request of this client for %.1f s", pause
            )
        if instrumentation.on_server_pause:
            cause: instrumentation.PauseCause = "429" if status == 429 else "rate_limit_remaining"
            instrumentation.emit_server_pause(
                instrumentation.ServerPauseEvent(pause, cause, status)
            )
        self._gate.pause(pause)

    def _pause_error(self, label: str, until: float) -> RateLimitError:
        seconds = max(0.0, until - time.monotonic())
        retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        return RateLimitError(
            429,
            retry_after=seconds,
            retry_at=retry_at,
            message=(
                f"{label} not sent: the server paused this client for {seconds:.0f} s more, "
                f"longer than one call waits ({RETRY_MAX_TIME:.0f} s)"
            ),
        )


_UNKNOWN_HINT: Final = {
    "unsent": "; it may have reached the server: find the action with client.async_actions.list()",
}


def _outcome_unknown(
    label: str, method: str, path: str, started: float, cause: BaseException
) -> OutcomeUnknownError:
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - started)
    reason = _describe(cause) if not isinstance(cause, APIError) else str(cause)
    return OutcomeUnknownError(
        f"{label}: the request may have reached the server, and its answer was lost "
        f"({reason}); it is not retried, as that could start the action twice. Look for an "
        f"action created after {sent_at.isoformat(timespec='seconds')} in "
        "client.async_actions.list() before trying again",
        method=method,
        path=path,
        sent_at=sent_at,
    )


def _api_error(
    status: int, body: bytes, retry_after: float | None, headers: CIMultiDictProxy[str]
) -> APIError:
    payload: Any = None
    if body.lstrip()[:1] == b"{":
        try:
            payload = _json.loads(body)
        except (ValueError, TypeError):
            payload = None
    if 300 <= status < 400 and not (isinstance(payload, dict) and payload.get("message")):
        location = headers.get("Location")
        where = f" to {location[:200]}" if location else " without a Location"
        payload = {"message": f"redirect{where} (redirects are not followed: check base_url)"}
    if retry_after is not None:  # the client's own pause stops there (and 1e20 s overflows)
        retry_after = min(retry_after, MAX_SERVER_PAUSE)
    error = APIError.from_response(status, body, payload, retry_after=retry_after)
    if isinstance(error, RateLimitError):
        wait = retry_after if retry_after is not None else _seconds_until_retry(headers)
        if wait is not None:
            wait = min(wait, MAX_SERVER_PAUSE)
            error.retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            error.args = (error._describe(),)
    return error


def _header_int(value: str | None) -> int | None:
    """A header's non-negative integer value, or None when absent or not one."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def _retry_after(headers: CIMultiDictProxy[str]) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent or bad."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        try:
            seconds = when.timestamp() - server_now(headers)
        except OverflowError:
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until_retry(headers: CIMultiDictProxy[str]) -> float | None:
    """Seconds until ``X-Rate-Limit-Retry`` (Unix epoch seconds); None when absent or past.

    A value too large for seconds is read as milliseconds (a common mistake); one that is
    not a number, or in the past, is ignored.
    """
    value = headers.get("X-Rate-Limit-Retry")
    if value is None:
        return None
    try:
        epoch = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(epoch):
        return None
    if epoch > _EPOCH_MS_THRESHOLD:
        epoch /= 1000.0
    seconds = epoch - server_now(headers)
    return seconds if seconds > 0 else None


def _request_id(body: bytes) -> str | None:
    match = _REQUEST_ID.search(body, 0, 4096)
    return match.group(1).decode("ascii", "replace") if match else None


def _describe(exc: BaseException) -> str:
    """What happened, in words, for a transport failure."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the server's TLS certificate does not verify ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS failed: {exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientResponseError):
        # We never raise for status: this is aiohttp's parser refusing what the server sent.
        return f"the server's response could not be parsed ({exc.message})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the response body was cut off or malformed ({exc})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
