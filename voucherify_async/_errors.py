"""The exceptions voucherify-async raises.

::

    VoucherifyError
    ├── ConfigurationError
    ├── APIError            .status .code .key .message .details .request_id
    │   │                   .resource_id .resource_type .body
    │   ├── AuthenticationError   401, 403
    │   ├── NotFoundError         404
    │   ├── RateLimitError        429   .retry_after (seconds or None)
    │   └── ServerError           5xx
    ├── TransportError      connection failures and timeouts, the aiohttp exception chained
    ├── ResponseDecodeError a 2xx body that is not JSON, or not an async action
    ├── AsyncActionFailed   .action
    └── PollTimeout         also a TimeoutError; .handle, .latest

The HTTP status picks the :class:`APIError` subclass, whatever the body says. Messages
never contain credentials: only the status, the error's key, message and request id.

This module imports no aiohttp: it is plain data, usable to decode a webhook or a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import AsyncAction

__all__ = [
    "APIError",
    "AsyncActionFailed",
    "AuthenticationError",
    "ConfigurationError",
    "NotFoundError",
    "PollTimeout",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "TransportError",
    "VoucherifyError",
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


class ConfigurationError(VoucherifyError):
    """The client cannot be built as asked: missing credentials, a bad URL or option."""


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
    """429: the request budget is spent. :attr:`retry_after` is in seconds, or ``None``."""

    retry_after: float | None

    def __init__(
        self, status: int = 429, *, retry_after: float | None = None, **fields: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status, **fields)


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

    The aiohttp (or asyncio) exception is chained as ``__cause__``.
    """


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
