"""Faults the emulator can inject: error statuses, broken bodies, delays and cut connections.

Each fault is a small frozen attrs class. Hand one to
:meth:`~voucherify_async.testing.VoucherifyEmulator.inject`::

    emu.inject(Status(503))                        # the next request gets a proxy's 503 page
    emu.inject(Body(b'{"id": "aa_'), times=3)     # three 200s with truncated JSON
    emu.inject(Drop(), probability=0.2, times=None)  # one request in five loses its connection
    emu.inject(Delay(2.0, then=Status(504)))       # a slow gateway timeout

Faults act in front of the API, like a proxy: a request answered by :class:`Status`,
:class:`Body` or :class:`Drop` never reaches authentication or the request budget.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from voucherify_async._errors import InvalidArgumentError
from voucherify_async._validate import check_seconds

__all__ = [
    "Body",
    "Delay",
    "Drop",
    "DropMidBody",
    "Fault",
    "InjectedFault",
    "Status",
    "Truncate",
    "default_status_body",
]


def _check_status(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise InvalidArgumentError(
            f"{attribute.name} must be an HTTP status (100-599), got {value!r}"
        )


def _headers(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


@attrs.frozen
class Status:
    """Answer with HTTP *status* instead of the real response.

    *body* is sent as is when it is bytes or str, serialised when it is a dict or list,
    and defaults (``None``) to what the real service sends: nothing for 1xx-3xx,
    Voucherify's JSON error object for 4xx and 500, a load balancer's HTML page for 502,
    503 and 504. ``b""`` sends an empty body. *content_type* defaults to
    ``application/json`` (``text/html`` for the default HTML pages). *headers* are added
    to the response (and win over the emulator's own); a 429 gets ``Retry-After: 1``
    unless *headers* say otherwise. With *rate_limit_headers* (default True) the response
    also carries the ``X-Rate-Limit-*`` headers; a 429 reports ``Remaining: 0`` and a
    ``Retry`` at its ``Retry-After``.
    """

    status: int = attrs.field(validator=_check_status)
    body: bytes | str | Mapping[str, Any] | list[Any] | None = attrs.field(
        default=None, kw_only=True, hash=False
    )
    content_type: str | None = attrs.field(default=None, kw_only=True)
    headers: dict[str, str] = attrs.field(
        factory=dict, converter=_headers, kw_only=True, hash=False
    )
    rate_limit_headers: bool = attrs.field(default=True, kw_only=True)


@attrs.frozen
class Body:
    """Answer with this *body* and *status* (default 200), whatever the real response is.

    For bodies a client must survive: invalid JSON, truncated JSON, invalid UTF-8, a JSON
    list where an object belongs, a huge body, or an action with odd values. Bytes are sent
    as they are, str as UTF-8, a dict or list as JSON. *content_type* defaults to
    ``application/json; charset=utf-8``; *headers* are added (and win over the emulator's).
    """

    body: bytes | str | Mapping[str, Any] | list[Any] = attrs.field(hash=False)
    status: int = attrs.field(default=200, validator=_check_status, kw_only=True)
    content_type: str = attrs.field(default="application/json; charset=utf-8", kw_only=True)
    headers: dict[str, str] = attrs.field(
        factory=dict, converter=_headers, kw_only=True, hash=False
    )

    @property
    def data(self) -> bytes:
        """The body as bytes."""
        return encode_body(self.body)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    check_seconds(value, attribute.name)


@attrs.frozen
class Delay:
    """Wait *seconds* (real time, not scaled by the emulator's ``speed``) before answering.

    Then answer normally, or with the fault *then* (default None) when given. A delay is
    cut short when the emulator closes.
    """

    seconds: float = attrs.field(validator=_non_negative)
    then: Fault | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Drop:
    """Close the connection before sending anything: the client sees a disconnect.

    aiohttp's client resends an idempotent request once on a fresh connection after such a
    disconnect, so inject ``Drop()`` with ``times=2`` for a plain aiohttp client to see it
    (voucherify-async's client refuses that resend: one ``Drop()`` reaches it).
    """


@attrs.frozen
class DropMidBody:
    """Send the real response's headers and half its body, then close the connection.

    ``Content-Length`` announces the whole body, so the client sees a payload error.
    """


@attrs.frozen
class Truncate:
    """Send the real response cut to its first half, as a complete HTTP response.

    ``Content-Length`` matches what is sent, so the client gets a well-formed response
    whose JSON body ends too early.
    """


#: Any fault :meth:`~voucherify_async.testing.VoucherifyEmulator.inject` accepts.
Fault: TypeAlias = Status | Body | Delay | Drop | DropMidBody | Truncate


@attrs.define
class InjectedFault:
    """A fault waiting for requests, as returned by ``inject()``.

    *times* is how many more requests it will hit (None: no limit); *hits* counts the
    requests it has hit so far.
    """

    fault: Fault
    times: int | None
    probability: float | None
    action_id: str | None
    hits: int = 0

    def __attrs_post_init__(self) -> None:
        if self.times is not None and (
            isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 1
        ):
            raise InvalidArgumentError(f"times must be >= 1 or None (no limit), got {self.times!r}")
        if self.probability is not None and not (
            isinstance(self.probability, int | float)
            and not isinstance(self.probability, bool)
            and 0.0 <= self.probability <= 1.0
        ):
            raise InvalidArgumentError(
                f"probability must be between 0 and 1, got {self.probability!r}"
            )

    @property
    def active(self) -> bool:
        """True while the fault can still hit a request."""
        return self.times is None or self.times > 0

    def matches(self, action_id: str | None, rng: random.Random) -> bool:
        """Decide whether this fault hits a request for *action_id*, and count the hit."""
        if not self.active:
            return False
        if self.action_id is not None and self.action_id != action_id:
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        self.hits += 1
        if self.times is not None:
            self.times -= 1
        return True


_JSON = "application/json; charset=utf-8"

_HTML_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}

_JSON_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    402: ("payment_required", "Payment Required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Resource not found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    409: ("duplicate_found", "Duplicated resource"),
    413: ("payload_too_large", "Payload Too Large"),
    423: ("locked", "Locked"),
    500: ("internal_server_error", "Internal Server Error"),
}


def default_status_body(status: int, request_id: str) -> tuple[bytes, str]:
    """Return the body and content type the real service sends with *status*."""
    if status < 400:
        return b"", _JSON
    if status in _HTML_PAGES:
        title = _HTML_PAGES[status]
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        return page.encode(), "text/html"
    if status == 429:
        body: dict[str, Any] = {
            "code": 429,
            "message": "Too many requests hit the API too quickly.",
        }
    else:
        key, message = _JSON_ERRORS.get(status, ("error", "Error"))
        body = {"code": status, "key": key, "message": message, "request_id": request_id}
    return json.dumps(body).encode(), _JSON


def encode_body(body: bytes | str | Mapping[str, Any] | list[Any]) -> bytes:
    """Encode a fault's body: bytes as is, str as UTF-8, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()
