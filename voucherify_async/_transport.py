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
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import instrumentation
from ._answers import (
    UNKNOWN_HINT,
    RetryMode,
    describe,
    header_int,
    outcome_unknown,
    parse_retry_after,
    refusal,
    request_id,
    seconds_until_retry,
)
from ._config import MAX_SERVER_PAUSE, RETRY_MAX_TIME, retry_delays
from ._encoding import ACCEPT_ENCODING, BodyDecodeError, BodyTooLarge, read_body
from ._errors import (
    ClientClosedError,
    RateLimitError,
    ResponseDecodeError,
    TransportError,
    WrongEventLoopError,
)
from ._headers import secrets_of
from ._pacing import Admission, RequestGate, ServerPause
from ._routes import route_template

__all__ = ["Transport"]

logger: Final = logging.getLogger("voucherify_async")

#: The largest 2xx body we read, in bytes, once decoded (a 10 MB body is fine; a bomb is not).
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: How much of an error (non-2xx) body we read, in bytes: enough for any error object.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
#: The pause (seconds) after ``X-Rate-Limit-Remaining: 0`` that says nothing of when the limit
#: renews (no ``X-Rate-Limit-Retry`` or ``Retry-After``): the API's plans count per minute, so
#: a minute covers their window wherever in it we are (a Sandbox's hourly limit answers its
#: next request with a 429 that says when). Shorter risks a request over the limit, which
#: "blocks access to the API"; longer only delays.
UNKNOWN_RENEWAL_PAUSE: Final = 60.0
#: The server offset is the lower median of the offsets the last this many successful
#: answers' Date headers gave: one skewed Date (or a few, up to half) cannot move it out
#: of the range the sane ones span. More samples follow a clock step later; nine answers
#: are a few seconds of polling.
OFFSET_SAMPLES: Final = 9


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


class _NotResent(aiohttp.ClientConnectionError):
    """Carries a failure of the first send past aiohttp's resend (see :func:`_send_once`)."""

    def __init__(self, error: aiohttp.ClientError) -> None:
        super().__init__(error)
        self.error = error


async def _send_once(
    request: aiohttp.ClientRequest,
    handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
) -> aiohttp.ClientResponse:
    """An aiohttp middleware that refuses aiohttp's own silent resend of a request.

    aiohttp sends an idempotent request a second time when a kept-alive connection drops
    after sending (it catches ``ClientOSError`` and ``ServerDisconnectedError`` from the
    send). That second request never passed our gate, so the budget could not see it: here
    those failures leave wrapped in :class:`_NotResent`, which aiohttp passes on without a
    resend, and :meth:`Transport._attempt` unwraps them, so our retry (through the gate)
    decides. Stateless, so one tuple of it serves every request.
    """
    try:
        return await handler(request)
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise _NotResent(exc) from None


#: The middlewares of every request (given per request, so a borrowed session gets it too).
_MIDDLEWARES: Final = (_send_once,)


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
        # A CIMultiDict, which aiohttp takes as it is (a dict it would convert per request).
        self._headers = CIMultiDict({**headers, "Accept-Encoding": ACCEPT_ENCODING})
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
        self._last_limit: tuple[str | None, int | None] = (None, None)  # X-Rate-Limit-Limit

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

    def _note_date(self, value: str | None, arrived: float) -> None:
        """Learn from a response's ``Date`` *value* that differs from the last one seen (the
        same whole second, arriving later, can only give a lower bound: nothing new)."""
        if not value:
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

    def get(
        self, url: URL, *, path: str, patient: bool = False
    ) -> Coroutine[Any, Any, tuple[int, bytes]]:
        """GET *url*, retrying transient failures: see :meth:`request` (whose coroutine this
        returns, to await: no coroutine of its own on the path of every poll)."""
        return self._call("GET", url, path, "transient", None, None, patient)

    def request(
        self,
        method: str,
        url: URL,
        *,
        path: str,
        retry: RetryMode = "transient",
        data: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        patient: bool = False,
    ) -> Coroutine[Any, Any, tuple[int, bytes]]:
        """Send *method* to *url* (already encoded); return the status and body of its 2xx.

        *path* names the request in logs and errors. *data* builds the request body for each
        attempt (None: no body). With ``retry="transient"`` transient failures are retried up
        to ``max_retries`` times with exponential backoff and full jitter; with
        ``retry="unsent"`` only failures that certainly did not reach the server are, and any
        other raises :class:`OutcomeUnknownError`. A 429 or a spent budget pauses the whole
        client for as long as the server asks; a pause longer than this call may wait
        (``RETRY_MAX_TIME``) raises :class:`RateLimitError` with ``retry_at`` at once, unless
        *patient* (a handle's poll, which has deadlines of its own) waits it out.

        Returns the call's coroutine, to await (one coroutine per call, not one per layer:
        this is the path of every poll).
        """
        return self._call(method, url, path, retry, data, headers, patient)

    async def _call(
        self,
        method: str,
        url: URL,
        path: str,
        retry: RetryMode,
        data: Callable[[], Any] | None,
        headers: Mapping[str, str] | None,
        patient: bool,
    ) -> tuple[int, bytes]:
        """:meth:`request`: the call registered for :meth:`close`, around its attempts."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None or running is not self._loop or self._closed:
            self.check_loop()  # the first call, or a typed error
        task = asyncio.current_task(running)
        calls = self._calls
        # A call inside a call (a hook) is not tracked: the outer one is.
        tracked = task if task is not None and task not in calls else None
        if tracked is not None:
            calls[tracked] = tracked.cancelling()
        try:
            session = self._session
            if session is None or not self._owns_session:
                session = self._get_session()
            request_headers = self._headers
            if headers is not None:
                request_headers = request_headers.copy()
                request_headers.update(headers)
            label = f"{method} {path}"
            delays = None
            started = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                server_wait = 0.0
                try:
                    max_wait = (
                        None
                        if patient
                        else RETRY_MAX_TIME
                        if attempt == 1
                        else RETRY_MAX_TIME - (time.monotonic() - started)
                    )
                    status, body, response_headers, sent = await self._attempt(
                        session, method, url, request_headers, data, max_wait, path, attempt
                    )
                except _Abort as abort:
                    raise abort.error from abort.error.__cause__
                except ServerPause as pause:
                    raise self._pause_error(label, pause.until) from None
                except _FINAL as exc:
                    raise TransportError(
                        f"{label} failed: {describe(exc)}", permanent=True
                    ) from exc
                except _NOT_SENT as exc:
                    error: Exception = TransportError(
                        f"{label} failed: {describe(exc)}{self._never_answered_hint()}"
                    )
                    error.__cause__ = exc
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = TransportError(f"{label} failed: {describe(exc)}")
                    error.__cause__ = exc
                    if retry == "unsent":
                        raise outcome_unknown(label, method, path, started, exc) from exc
                else:
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug(
                            "%s -> %d in %.1f ms (attempt %d, request_id %s)",
                            label, status, (time.monotonic() - sent) * 1000, attempt,
                            request_id(body),
                        )  # fmt: skip
                    if 200 <= status < 300:
                        return status, body
                    error, server_wait = refusal(
                        status,
                        self._scrub(body),
                        response_headers,
                        retry,
                        label,
                        method,
                        path,
                        started,
                    )
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
                logger.warning(
                    "%s; retry %d of %d in %.2f s", text, attempt, self._max_retries, wait
                )
                await asyncio.sleep(wait)
        except asyncio.CancelledError:
            if (
                tracked is not None
                and tracked in self._cancelled_by_close
                and tracked.uncancel() <= calls[tracked]
            ):
                closed = ClientClosedError(
                    f"{method} {path}: the VoucherifyClient was closed while the request was "
                    "waiting or in flight" + UNKNOWN_HINT.get(retry, "")
                )
                sent_at = self._cut_in_flight.get(tracked)
                if retry == "unsent" and sent_at is not None:
                    # Cut while in flight: the server may have read it (start's own rule).
                    raise outcome_unknown(
                        f"{method} {path}", method, path, sent_at, closed
                    ) from closed
                raise closed from None
            raise
        finally:
            if tracked is not None:
                del calls[tracked]
                if self._cancelled_by_close:
                    self._cancelled_by_close.discard(tracked)
                if self._cut_in_flight:
                    self._cut_in_flight.pop(tracked, None)
                if self._idle is not None and not calls:
                    self._idle.set()

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        data: Callable[[], Any] | None,
        max_wait: float | None,
        path: str = "",
        attempt: int = 1,
    ) -> tuple[int, bytes, CIMultiDictProxy[str], float]:
        """One attempt: the status, body and headers of the response, and when it was sent
        (monotonic); the gate's admission is held from before the send to the headers."""
        gate = self._gate
        hooks = instrumentation.on_request  # empty unless someone observes requests
        asked = time.monotonic() if hooks else 0.0
        admission: Admission = await gate.acquire(
            max_wait=max_wait if max_wait is None or max_wait > 0.0 else 0.0
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
                    middlewares=_MIDDLEWARES,
                )
                async with context as response:
                    answered = True
                    status = response.status
                    response_headers = response.headers
                    success = 200 <= status < 300
                    if success:  # error pages, often from other machines, never count
                        date = response_headers.get("Date")
                        if date != self._last_date:
                            self._note_date(date, time.monotonic())
                    self._obey_rate_headers(response_headers, status, number)
                    try:
                        # An error page of any size is still an APIError: keep only its start.
                        body = await read_body(
                            response,
                            MAX_BODY_BYTES if success else MAX_ERROR_BODY_BYTES,
                            truncate=not success,
                        )
                    except BodyTooLarge as exc:
                        raise _Abort(ResponseDecodeError(str(exc), status=status)) from None
                    except BodyDecodeError as exc:
                        if success:
                            raise _Abort(ResponseDecodeError(str(exc), status=status)) from None
                        body = b""  # an undecodable error page still says its status
                    return status, body, response_headers, sent
            except _NotResent as wrapped:
                answered = answered or _server_closed(wrapped.error)  # as below
                raise wrapped.error from wrapped.error.__cause__
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

    def _obey_rate_headers(self, headers: CIMultiDictProxy[str], status: int, number: int) -> None:
        """Pause the whole client as the server asks: a 429's ``Retry-After`` (or
        ``X-Rate-Limit-Retry``), and ``X-Rate-Limit-Remaining: 0`` until ``X-Rate-Limit-Retry``.

        *number* is the attempt's place in sending order: a ``Remaining`` in the answer to an
        attempt sent before the one that set the allowance is older news (the server counted
        less then), so it never raises the allowance."""
        remaining = headers.get("X-Rate-Limit-Remaining")
        if remaining is None and status != 429:
            return
        pause: float | None = None
        if status == 429:
            pause = parse_retry_after(headers)
            if pause is None:
                pause = seconds_until_retry(headers)
        if (
            remaining is not None
            and remaining.isascii()
            and remaining.isdigit()
            and len(remaining) < 10
        ):
            allowed: int | None = int(remaining)  # the usual form, without a call
        else:
            allowed = header_int(remaining)
        if allowed is not None:
            if number > self._allowance_from:
                self._allowance_from = number
                limit_text = headers.get("X-Rate-Limit-Limit")
                last_text, limit = self._last_limit
                if limit_text != last_text:  # the limit rarely changes: parse it when it does
                    limit = header_int(limit_text)
                    self._last_limit = (limit_text, limit)
                self._gate.observe_allowance(allowed, limit)
            if allowed == 0:
                until_retry = seconds_until_retry(headers)
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
