"""HTTP: the session, authentication headers, retries, pacing and error mapping.

The transport knows URLs, statuses and bytes; it knows nothing of async actions, handles or
polling. It returns the body of a 2xx response, or raises an :class:`APIError` subclass,
:class:`TransportError` or :class:`ResponseDecodeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from . import _json
from ._config import MAX_SERVER_PAUSE, RETRY_MAX_TIME, retry_delays
from ._errors import APIError, ResponseDecodeError, TransportError
from ._pacing import RequestGate

__all__ = ["Transport"]

logger: Final = logging.getLogger("voucherify_async")

#: Statuses worth another attempt; every other non-2xx status is final.
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: The largest 2xx body we read, in bytes (a 10 MB body is fine; a runaway stream is not).
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: How much of an error (non-2xx) body we read, in bytes: enough for any error object.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024

_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"([^"\\]{1,128})"')

# Transport failures that no retry can mend: a certificate that does not verify, a bad URL.
_FINAL_CLIENT_ERRORS: Final = (
    aiohttp.ClientSSLError,
    aiohttp.InvalidURL,
)


class Transport:
    """Sends GETs for a client, through one gate, with retries.

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
        self._headers = dict(headers)
        self._timeout = timeout
        self._max_retries = max_retries
        self._gate = gate
        self._concurrency = concurrency
        self._session = session
        self._owns_session = session is None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this VoucherifyClient is closed")
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency, limit_per_host=self._concurrency
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, raise_for_status=False
            )
        elif session.closed:
            raise RuntimeError("the aiohttp session given to VoucherifyClient is closed")
        return session

    async def close(self) -> None:
        """Close the session if we own it; a borrowed one is left open."""
        self._closed = True
        self._gate.close()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def get(self, url: URL, *, path: str) -> tuple[int, bytes]:
        """GET *url* (already encoded) and return the status and body of its 2xx response.

        *path* names the request in logs and errors. Retries transient failures up to
        ``max_retries`` times with exponential backoff and full jitter; a 429 or a spent budget
        pauses the whole client for as long as the server asks.
        """
        session = self._get_session()
        delays = None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            server_wait = 0.0
            try:
                status, body, headers, elapsed = await self._attempt(session, url)
            except _FINAL_CLIENT_ERRORS as exc:
                raise TransportError(f"GET {path} failed: {type(exc).__name__}") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                error: Exception = TransportError(
                    f"GET {path} failed: {_describe_transport_error(exc)}"
                )
                error.__cause__ = exc
                logger.debug("GET %s -> %s (attempt %d)", path, type(exc).__name__, attempt)
            else:
                self._obey_rate_headers(headers)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "GET %s -> %d in %.1f ms (attempt %d, request_id %s)",
                        path, status, elapsed * 1000, attempt, _request_id(body),
                    )  # fmt: skip
                if 200 <= status < 300:
                    return status, body
                retry_after = _retry_after(headers)
                error = _api_error(status, body, retry_after)
                if status not in RETRYABLE_STATUSES:
                    raise error
                if status == 429:
                    pause = (
                        retry_after if retry_after is not None else _seconds_until_retry(headers)
                    )
                    if pause is not None:
                        self._gate.pause(min(pause, MAX_SERVER_PAUSE))
                        server_wait = pause
                elif status == 503 and retry_after is not None:
                    server_wait = retry_after
            if attempt > self._max_retries:
                raise error
            if delays is None:
                delays = retry_delays()
            wait = max(next(delays), server_wait)
            if time.monotonic() - started + wait > RETRY_MAX_TIME:
                raise error
            logger.warning(
                "GET %s: %s; retry %d of %d in %.2f s",
                path, error, attempt, self._max_retries, wait,
            )  # fmt: skip
            await asyncio.sleep(wait)

    async def _attempt(
        self, session: aiohttp.ClientSession, url: URL
    ) -> tuple[int, bytes, CIMultiDictProxy[str], float]:
        gate = self._gate
        await gate.acquire()
        try:
            started = time.monotonic()
            async with session.get(
                url, headers=self._headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
                length = response.content_length
                if not 200 <= status < 300:
                    # An error page of any size is still an APIError: keep only its start.
                    body = await _read_prefix(response, MAX_ERROR_BODY_BYTES)
                elif length is not None and length <= MAX_BODY_BYTES:
                    body = await response.read()
                else:
                    body = await _read_capped(response)
                return status, body, response.headers, time.monotonic() - started
        finally:
            gate.release()

    def _obey_rate_headers(self, headers: CIMultiDictProxy[str]) -> None:
        """``X-Rate-Limit-Remaining: 0`` pauses the whole client until ``X-Rate-Limit-Retry``."""
        remaining = headers.get("X-Rate-Limit-Remaining")
        if remaining is None or remaining.strip() != "0":
            return
        pause = _seconds_until_retry(headers)
        if pause:
            self._gate.pause(min(pause, MAX_SERVER_PAUSE))


async def _read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to *limit* bytes of the body; the rest is left unread (the connection is dropped)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ResponseDecodeError(
                f"response body is larger than {MAX_BODY_BYTES} bytes", status=response.status
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _api_error(status: int, body: bytes, retry_after: float | None) -> APIError:
    payload: Any = None
    if body.lstrip()[:1] == b"{":
        with contextlib.suppress(ValueError, TypeError):
            payload = _json.loads(body)
    return APIError.from_response(status, body, payload, retry_after=retry_after)


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
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until_retry(headers: CIMultiDictProxy[str]) -> float | None:
    """Seconds until ``X-Rate-Limit-Retry`` (Unix epoch seconds); None when absent or past."""
    value = headers.get("X-Rate-Limit-Retry")
    if value is None:
        return None
    try:
        epoch = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(epoch):
        return None
    seconds = epoch - time.time()
    return seconds if seconds > 0 else None


def _request_id(body: bytes) -> str | None:
    match = _REQUEST_ID.search(body, 0, 4096)
    return match.group(1).decode("ascii", "replace") if match else None


def _describe_transport_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
