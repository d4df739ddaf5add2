"""Log messages say each thing once (issue #12 item 16).

``GET /v1/async-actions/aa_x: GET /v1/async-actions/aa_x failed: ...`` named the request twice;
a retry warning of an HTTP error named it not at all. Every WARNING of a failing poll must name
the request it is about, once.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from _servers import action_json, serve
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import PollPolicy, VoucherifyClient
from voucherify_async.testing import Drop, Status, VoucherifyEmulator, fast_polling

ACTION_ID = "aa_logged0001"
PATH = f"/v1/async-actions/{ACTION_ID}"
QUICK = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, min_delay=0.01, jitter=0)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every message of ours about the failing poll, at any level (DEBUG poll events too)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("voucherify_async")
        and (r.levelno >= logging.WARNING or "error" in r.getMessage())
    ]


def _assert_said_once(messages: list[str]) -> None:
    assert messages, "a failing poll must be logged"
    for message in messages:
        assert message.count(ACTION_ID) == 1, message  # names its request, exactly once
        assert message.count("/v1/async-actions") <= 1, message


@pytest.mark.parametrize("max_retries", [0, 2], ids=["handle-retries", "transport-retries"])
async def test_500_then_200_is_logged_once_per_request(
    max_retries: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A server of our own answers 500, then 200 DONE: each warning names the GET once."""
    served: list[int] = []

    async def action(request: web.Request) -> web.Response:
        served.append(1)
        if len(served) == 1:
            body = {"code": 500, "key": "internal_error", "message": "boom", "request_id": "v-1"}
            return web.json_response(body, status=500)
        return web.json_response(action_json(request.match_info["id"], "2026-11-30T12:00:00Z"))

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", action)
    with caplog.at_level(logging.DEBUG, logger="voucherify_async"):
        async with serve(app) as url:
            client = VoucherifyClient("a", "b", base_url=url, max_retries=max_retries)
            try:
                with fast_polling():
                    async with asyncio.timeout(30):
                        done = await client.async_actions.wait(ACTION_ID, policy=QUICK)
            finally:
                await client.close()
    assert done.id == ACTION_ID and len(served) == 2
    messages = _warnings(caplog)
    _assert_said_once(messages)
    assert any("HTTP 500" in m for m in messages), messages


@pytest.mark.parametrize("max_retries", [0, 2], ids=["handle-retries", "transport-retries"])
async def test_dropped_connection_is_logged_once_per_request(
    emulator: VoucherifyEmulator, max_retries: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A dropped connection (a TransportError) names the GET once in every warning."""
    emulator.add_action(id=ACTION_ID, duration=0)
    emulator.inject(Drop(), times=2)
    emulator.inject(Status(502, body="<html>bad gateway</html>"), times=1)
    client = VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=emulator.base_url, max_retries=max_retries
    )
    with caplog.at_level(logging.DEBUG, logger="voucherify_async"):
        try:
            with fast_polling():
                async with asyncio.timeout(30):
                    done = await client.async_actions.wait(ACTION_ID, policy=QUICK)
        finally:
            await client.close()
    assert done.id == ACTION_ID
    _assert_said_once(_warnings(caplog))
