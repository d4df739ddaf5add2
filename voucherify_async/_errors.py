"""The exceptions voucherify-async raises.

::

    VoucherifyError
    ├── ConfigurationError  also a ValueError: the client or a PollPolicy cannot be built as asked
    ├── InvalidArgumentError also a ValueError: a call got an argument it cannot use
    │   └── InvalidArgumentTypeError  also a TypeError: ... of the wrong type
    ├── ClientClosedError   also a RuntimeError: the client is closed, or closed under the call
    ├── WrongEventLoopError also a RuntimeError: used from an event loop other than its own
    ├── APIError            .status .code .key .message .details .request_id
    │   │                   .resource_id .resource_type .body
    │   ├── AuthenticationError   401, 403
    │   ├── NotFoundError         404
    │   ├── RateLimitError        429   .retry_after (seconds or None) .retry_at
    │   └── ServerError           5xx
    ├── TransportError      connection failures and timeouts, the aiohttp exception chained
    │                       .permanent: True when no retry can mend it (TLS verification)
    ├── OutcomeUnknownError a request that starts an action may have reached the server
    ├── ResponseDecodeError a 2xx body that is not JSON, or not an async action
    ├── AsyncActionFailed   .action
    └── PollTimeout         also a TimeoutError; .handle, .latest

The rule for misuse: every exception the library raises on purpose is a
:class:`VoucherifyError`. A bad argument is also a :class:`ValueError` (a bad value) or a
:class:`TypeError` (a wrong type), so ``except ValueError`` keeps working; a call on a closed
client, or from another event loop, is also a :class:`RuntimeError`.

The HTTP status picks the :class:`APIError` subclass, whatever the body says. Messages
never contain credentials: only the status, the error's key, message and request id.

This module imports no aiohttp: it is plain data, usable to decode a webhook or a file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import AsyncAction

__all__ = [
    "APIError",
    "AsyncActionFailed",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PollTimeout",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "TransportError",
    "VoucherifyError",
    "WrongEventLoopError",
]

#: How many characters of a response body an exception keeps (and shows in its repr).
BODY_LIMIT = 2_000


def truncate_body(body: bytes | str | None, limit: int = BODY_LIMIT) -> str:
    """Return *body* as text, cut to *limit* characters with a marker when longer."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    if len(text) > limit:
        return f"{text[:limit]}... [{len(text) - limit} more characters]"
    return text


class VoucherifyError(Exception):
    """The base of every exception this library raises on purpose."""


class ConfigurationError(VoucherifyError, ValueError):
    """The client or a :class:`PollPolicy` cannot be built as asked.

    Missing credentials, a bad URL, an unknown cluster, an option of the wrong type or out of
    range. Also a :class:`ValueError`.
    """


class InvalidArgumentError(VoucherifyError, ValueError):
    """A call got an argument it cannot use (an empty id, a limit of 0, a NaN timeout).

    Raised before any request is sent. Also a :class:`ValueError`.
    """


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """A call got an argument of the wrong type (a ``str`` where ids are expected).

    Also a :class:`TypeError` (and a :class:`ValueError`, through its base).
    """


class ClientClosedError(VoucherifyError, RuntimeError):
    """The client is closed: a call made after :meth:`VoucherifyClient.close`, or one that was
    still waiting or in flight when ``close()`` ran. Also a :class:`RuntimeError`."""


class WrongEventLoopError(VoucherifyError, RuntimeError):
    """A client or handle was used from an event loop other than the one it belongs to.

    A client belongs to the loop it first sent a request in (a module-level client used in a
    second ``asyncio.run()``, a notebook cell, a test with a loop of its own): create the client
    inside the loop, or ``await client.close()`` and make a new one. Also a :class:`RuntimeError`.
    """


class APIError(VoucherifyError):
    """Voucherify (or a proxy in front of it) answered with a non-2xx status.

    Every field but :attr:`status` and :attr:`body` is ``None`` when the body did not carry it
    (an HTML page from a load balancer, an empty body).
    """

    status: int
    code: int | str | None
    key: str | None
    message: str | None
    details: str | None
    request_id: str | None
    resource_id: str | None
    resource_type: str | None
    body: str

    def __init__(
        self,
        status: int,
        *,
        code: int | str | None = None,
        key: str | None = None,
        message: str | None = None,
        details: str | None = None,
        request_id: str | None = None,
        resource_id: str | None = None,
        resource_type: str | None = None,
        body: bytes | str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.key = key
        self.message = message
        self.details = details
        self.request_id = request_id
        self.resource_id = resource_id
        self.resource_type = resource_type
        self.body = truncate_body(body)
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.key:
            parts.append(f"[{self.key}]")
        if self.message:
            parts.append(self.message)
        text = " ".join(parts)
        if self.details:
            text += f" ({self.details})"
        if self.request_id:
            text += f"; request_id={self.request_id}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_api_error, (type(self), self.__dict__.copy()))

    @classmethod
    def from_response(
        cls,
        status: int,
        body: bytes,
        payload: Any = None,
        *,
        retry_after: float | None = None,
    ) -> APIError:
        """Build the subclass the *status* picks from a response's *body*.

        *payload* is the body already parsed as JSON, when it was; an error object
        (``{"code", "message", "key", ...}``), a proxy's ``{"statusCode", "error", "message"}``
        and anything else all work: fields that are missing or of another type stay ``None``.
        """
        fields: dict[str, Any] = {}
        if isinstance(payload, Mapping):
            for name in ("key", "message", "details", "request_id", "resource_id", "resource_type"):
                value = payload.get(name)
                if isinstance(value, str):
                    fields[name] = value
            code = payload.get("code", payload.get("statusCode"))
            if isinstance(code, int | str) and not isinstance(code, bool):
                fields["code"] = code
            if "message" not in fields:
                nested = payload.get("error")
                if isinstance(nested, Mapping) and isinstance(nested.get("message"), str):
                    fields["message"] = nested["message"]
                elif isinstance(nested, str):
                    fields["message"] = nested
        error_cls = error_class_for_status(status)
        if error_cls is RateLimitError:
            return RateLimitError(status, retry_after=retry_after, body=body, **fields)
        return error_cls(status, body=body, **fields)


def _rebuild_api_error(cls: type[APIError], state: dict[str, Any]) -> APIError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._describe())
    return error


class AuthenticationError(APIError):
    """401 or 403: the credentials are wrong, expired or lack the scope."""


class NotFoundError(APIError):
    """404: no async action has that id (``key == "not_found"``)."""


class RateLimitError(APIError):
    """429: the request budget is spent. :attr:`retry_after` is in seconds, or ``None``.

    Also raised, with status 429, when the server asked the whole client to pause
    (``Retry-After``, ``X-Rate-Limit-Remaining: 0``) for longer than the call may wait:
    :attr:`retry_at` then says when the account may send again (a timezone-aware UTC
    datetime; ``None`` when unknown).
    """

    retry_after: float | None
    retry_at: dt.datetime | None

    def __init__(
        self,
        status: int = 429,
        *,
        retry_after: float | None = None,
        retry_at: dt.datetime | None = None,
        **fields: Any,
    ) -> None:
        self.retry_after = retry_after
        self.retry_at = retry_at
        super().__init__(status, **fields)

    def _describe(self) -> str:
        text = super()._describe()
        if self.retry_at is not None:
            text += f"; retry at {self.retry_at.isoformat(timespec='seconds')}"
        return text


class ServerError(APIError):
    """5xx: Voucherify or a proxy in front of it failed; retried before it reaches you."""


def error_class_for_status(status: int) -> type[APIError]:
    """The :class:`APIError` subclass for an HTTP *status*."""
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return APIError


class TransportError(VoucherifyError):
    """The request did not get a whole response: connection failure, reset or timeout.

    The aiohttp (or asyncio) exception is chained as ``__cause__``. :attr:`permanent` is
    True when no retry can mend it (a TLS certificate that does not verify): a handle ends on
    such an error instead of polling again.
    """

    permanent: bool

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_transport_error,
            (type(self), self.args[0] if self.args else "", self.permanent),
        )


def _rebuild_transport_error(
    cls: type[TransportError], message: str, permanent: bool
) -> TransportError:
    return cls(message, permanent=permanent)


class OutcomeUnknownError(VoucherifyError):
    """A request that starts an async action may have reached the server, and its answer was
    lost (a dropped connection, a timeout, a gateway error, or ``close()`` while it was in
    flight: then the cause is a :class:`ClientClosedError`).

    Starting an action is not idempotent, so it is never retried: the action may or may not
    exist. Find out with ``client.async_actions.list()`` (newest first: look for an action of
    the expected type created after :attr:`sent_at`). The cause is chained as ``__cause__``.
    """

    method: str
    path: str
    sent_at: dt.datetime | None

    def __init__(
        self, message: str, *, method: str = "", path: str = "",
        sent_at: dt.datetime | None = None,
    ) -> None:  # fmt: skip
        self.method = method
        self.path = path
        self.sent_at = sent_at
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_outcome_unknown,
            (self.args[0] if self.args else "", self.method, self.path, self.sent_at),
        )


def _rebuild_outcome_unknown(
    message: str, method: str, path: str, sent_at: dt.datetime | None
) -> OutcomeUnknownError:
    return OutcomeUnknownError(message, method=method, path=path, sent_at=sent_at)


class ResponseDecodeError(VoucherifyError):
    """A 2xx body that is not JSON, not an object, or not an async action.

    The message names the failing path (``$.result.done_count``); :attr:`body` keeps
    the start of the body.
    """

    status: int | None
    body: str
    path: str | None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: bytes | str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.body = truncate_body(body)
        self.path = path
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_decode_error,
            (self.args[0] if self.args else "", self.status, self.body, self.path),
        )


def _rebuild_decode_error(
    message: str, status: int | None, body: str, path: str | None
) -> ResponseDecodeError:
    return ResponseDecodeError(message, status=status, body=body, path=path)


class AsyncActionFailed(VoucherifyError):
    """The action ended ``FAILED``, or ``DONE`` with ``operation_status == FAILED``.

    :attr:`action` is the terminal snapshot.
    """

    action: AsyncAction

    def __init__(self, action: AsyncAction) -> None:
        self.action = action
        operation = getattr(action, "operation_status", None)
        detail = f", operation_status {operation}" if operation is not None else ""
        super().__init__(f"async action {action.id} ({action.type}) ended {action.status}{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.action,))


class PollTimeout(VoucherifyError, TimeoutError):
    """A wait's deadline or a handle's deadline passed before the action ended.

    :attr:`handle` is the handle that was waited on (``None`` when there was none) and
    :attr:`latest` the newest snapshot seen (``None`` before the first answer).
    """

    #: The :class:`~voucherify_async.AsyncActionHandle` waited on, or ``None``.
    handle: Any
    #: The newest snapshot seen before the deadline, or ``None`` before the first answer.
    latest: AsyncAction | None

    def __init__(
        self, message: str, *, handle: Any = None, latest: AsyncAction | None = None
    ) -> None:
        self.handle = handle
        self.latest = latest
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # The handle lives on an event loop and does not travel; the snapshot does.
        return (_rebuild_poll_timeout, (self.args[0] if self.args else "", self.latest))


def _rebuild_poll_timeout(message: str, latest: AsyncAction | None) -> PollTimeout:
    return PollTimeout(message, latest=latest)
