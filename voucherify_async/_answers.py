"""What an answer (or its absence) means: the errors, and the waits the server asks for.

The transport's reading of responses and failures, kept apart from its sending: a non-2xx
answer's :class:`APIError`, whether it is worth another attempt and after how long
(``Retry-After``, ``X-Rate-Limit-Retry``), the words for a transport failure, and the
:class:`OutcomeUnknownError` of a start whose answer was lost. Plain functions of headers,
bodies and exceptions; nothing here sends.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import time
from typing import Any, Final, Literal

import aiohttp
from multidict import CIMultiDictProxy

from . import _json
from ._config import MAX_SERVER_PAUSE
from ._errors import APIError, OutcomeUnknownError, RateLimitError
from ._headers import server_now

__all__ = [
    "RETRYABLE_STATUSES",
    "UNKNOWN_HINT",
    "RetryMode",
    "api_error",
    "describe",
    "header_int",
    "outcome_unknown",
    "parse_retry_after",
    "refusal",
    "request_id",
    "seconds_until_retry",
]

#: Statuses worth another attempt; every other non-2xx status is final.
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: ``X-Rate-Limit-Retry`` values above this many epoch seconds (year 2286) are milliseconds.
EPOCH_MS_THRESHOLD: Final = 1e10
#: A request id in an error body (logged at DEBUG, with the request).
REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"([^"\\]{1,128})"')

#: How a call may be retried: ``"transient"`` retries any transient failure (GET);
#: ``"unsent"`` only failures that certainly did not reach the server (starting an action).
RetryMode = Literal["transient", "unsent"]

UNKNOWN_HINT: Final = {
    "unsent": "; it may have reached the server: find the action with client.async_actions.list()",
}


def refusal(
    status: int,
    body: bytes,
    headers: CIMultiDictProxy[str],
    retry: RetryMode,
    label: str,
    method: str,
    path: str,
    started: float,
) -> tuple[Exception, float]:
    """A non-2xx answer: raise its error when final; else the error to retry after, and the
    seconds the server asked to wait first (0 when it did not ask)."""
    retry_after = parse_retry_after(headers)
    error = api_error(status, body, retry_after, headers)
    if status not in RETRYABLE_STATUSES:
        raise error
    if status == 429:
        wait = retry_after if retry_after is not None else seconds_until_retry(headers)
        return error, wait or 0.0
    if retry == "unsent":
        # A 5xx answer: the server (or a gateway) got the request.
        raise outcome_unknown(label, method, path, started, error) from error
    if status == 503 and retry_after is not None:
        return error, retry_after
    return error, 0.0


def outcome_unknown(
    label: str, method: str, path: str, started: float, cause: BaseException
) -> OutcomeUnknownError:
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - started)
    reason = describe(cause) if not isinstance(cause, APIError) else str(cause)
    return OutcomeUnknownError(
        f"{label}: the request may have reached the server, and its answer was lost "
        f"({reason}); it is not retried, as that could start the action twice. Look for an "
        f"action created after {sent_at.isoformat(timespec='seconds')} in "
        "client.async_actions.list() before trying again",
        method=method,
        path=path,
        sent_at=sent_at,
    )


def api_error(
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
        wait = retry_after if retry_after is not None else seconds_until_retry(headers)
        if wait is not None:
            wait = min(wait, MAX_SERVER_PAUSE)
            error.retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            error.args = (error._describe(),)
    return error


def header_int(value: str | None) -> int | None:
    """A header's non-negative integer value, or None when absent or not one."""
    if value is None:
        return None
    text = value
    if not (text.isascii() and text.isdigit()):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            return None
    return int(text) if len(text) < 10 else None


def parse_retry_after(headers: CIMultiDictProxy[str]) -> float | None:
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


def seconds_until_retry(headers: CIMultiDictProxy[str]) -> float | None:
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
    if epoch > EPOCH_MS_THRESHOLD:
        epoch /= 1000.0
    seconds = epoch - server_now(headers)
    return seconds if seconds > 0 else None


def request_id(body: bytes) -> str | None:
    match = REQUEST_ID.search(body, 0, 4096)
    return match.group(1).decode("ascii", "replace") if match else None


def describe(exc: BaseException) -> str:
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
