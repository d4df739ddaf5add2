"""HTTP plumbing for the emulator: replies, authentication, and sending (or breaking) them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from ._faults import Body, DropMidBody, Fault, Status, Truncate, default_status_body, encode_body
from ._ratelimit import RateState

__all__ = ["JSON", "PREFIX", "Reply", "authorized", "close_connection", "fault_reply", "send"]

PREFIX = "/v1/async-actions"
JSON = "application/json; charset=utf-8"


@attrs.frozen
class Reply:
    """A response decided but not yet sent."""

    status: int
    body: bytes
    headers: dict[str, str]

    @classmethod
    def json(
        cls, status: int, body: Mapping[str, Any], rate: Mapping[str, str], **headers: str
    ) -> Reply:
        """A JSON reply carrying the *rate* headers."""
        return cls(status, json.dumps(body).encode(), {**rate, "Content-Type": JSON, **headers})


def action_segment(raw_path: str) -> str | None:
    """The raw id in ``/v1/async-actions/{id}`` (one path segment), or None."""
    if not raw_path.startswith(PREFIX + "/"):
        return None
    segment = raw_path[len(PREFIX) + 1 :]
    return segment if segment and "/" not in segment else None


def authorized(
    headers: Mapping[str, str],
    *,
    app_id: str | None,
    app_token: str | None,
    oauth_token: str | None,
) -> bool:
    """Whether the request's credentials pass.

    With nothing configured, any non-empty ``X-App-Id``/``X-App-Token`` pair or bearer
    token passes; otherwise only the configured ones do.
    """
    sent_id = headers.get("X-App-Id", "")
    sent_token = headers.get("X-App-Token", "")
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    keys = app_id is not None or app_token is not None
    if not keys and oauth_token is None:
        return bool(sent_id and sent_token) or bool(bearer)
    pair_ok = (
        keys
        and bool(sent_id and sent_token)
        and app_id in (None, sent_id)
        and app_token in (None, sent_token)
    )
    return pair_ok or (oauth_token is not None and bearer == oauth_token)


def _retry_after(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "1")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


def fault_reply(fault: Status | Body, state: RateState, wall: float, request_id: str) -> Reply:
    """The reply a :class:`Status` or :class:`Body` fault stands for.

    *state* is the budget at that moment, *wall* the Unix time (seconds) and *request_id*
    the id a default error body reports.
    """
    if isinstance(fault, Body):
        raw_headers = {**state.headers(wall), "Content-Type": fault.content_type, **fault.headers}
        return Reply(fault.status, fault.data, raw_headers)
    if fault.body is None:
        body, content_type = default_status_body(fault.status, request_id)
    else:
        body, content_type = encode_body(fault.body), JSON
    extra = dict(fault.headers)
    if fault.status == 429 and not any(k.lower() == "retry-after" for k in extra):
        extra["Retry-After"] = "1"
    headers: dict[str, str] = {}
    if fault.rate_limit_headers:
        if fault.status == 429:
            state = RateState(state.limit, 0, _retry_after(extra))
        headers.update(state.headers(wall))
    if body:
        headers["Content-Type"] = fault.content_type or content_type
    headers.update(extra)
    return Reply(fault.status, body, headers)


def close_connection(request: web.BaseRequest) -> None:
    """Close the request's connection at once, whatever was sent on it."""
    transport = request.transport
    if transport is not None:
        transport.close()


async def send(request: web.BaseRequest, reply: Reply, fault: Fault | None) -> web.StreamResponse:
    """Send *reply*, broken as :class:`Truncate` or :class:`DropMidBody` say."""
    half = reply.body[: len(reply.body) // 2]
    if isinstance(fault, Truncate):
        return web.Response(status=reply.status, body=half, headers=reply.headers)
    if isinstance(fault, DropMidBody):
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_length = len(reply.body)
        await response.prepare(request)
        await response.write(half)
        close_connection(request)
        return response
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
