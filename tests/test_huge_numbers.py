"""Integers beyond 64 bits in a response: a ResponseDecodeError naming the path, on both
JSON backends, from get(), list(), a handle and the command; never an OverflowError."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _servers import serve
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import (
    PollPolicy,
    ResponseDecodeError,
    VoucherifyClient,
    decode_async_action,
    decode_async_action_list,
)
from voucherify_async import _json as json_backend
from voucherify_async._cli import main

HUGE = 10**400  # 400 digits: beyond a double, and far beyond 64 bits

CASES = [
    ({"progress": HUGE}, "$.progress"),
    ({"processing_time": HUGE}, "$.processing_time"),
    ({"progress": -HUGE}, "$.progress"),
    ({"progress": 2**64}, "$.progress"),
    ({"progress": 2**63}, "$.progress"),  # unsigned 64 bits (orjson's int) is still refused
    ({"processing_time": -(2**63) - 1}, "$.processing_time"),  # orjson: a float; stdlib: an int
    ({"result": {"done_count": HUGE, "failed_count": 0, "message": "m"}}, "$.result.done_count"),
]


def action(**fields: Any) -> dict[str, Any]:
    return {"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "DONE", **fields}


def body(**fields: Any) -> bytes:
    return json.dumps(action(**fields)).encode()


@pytest.fixture(params=["default", "stdlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the installed backend (orjson when present) and with the stdlib."""
    if request.param == "stdlib":
        monkeypatch.setattr(json_backend, "loads", json_backend.stdlib_loads)
    return str(request.param)


@pytest.mark.parametrize(("fields", "path"), CASES)
def test_huge_integers_are_decode_errors_naming_their_path(
    backend: str, fields: dict[str, Any], path: str
) -> None:
    """A 400-digit progress, processing_time or count is refused with its path."""
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(body(**fields))
    assert info.value.path == path
    assert path in str(info.value)


def test_64_bit_integers_still_decode(backend: str) -> None:
    """The largest and smallest signed 64-bit values are taken as they are."""
    decoded = decode_async_action(body(processing_time=2**63 - 1, progress=-(2**63)))
    assert decoded.processing_time == 2**63 - 1
    assert decoded.progress == -(2**63)


def test_a_lone_surrogate_is_a_decode_error_with_either_backend(backend: str) -> None:
    """An unpaired \\ud800 escape is not text: refused by both backends; a pair is fine."""
    with pytest.raises(ResponseDecodeError):
        decode_async_action(b'{"id": "aa_\\ud800", "type": "VOUCHERS.IMPORT", "status": "DONE"}')
    paired = b'{"id": "aa_\\ud83d\\ude00", "type": "VOUCHERS.IMPORT", "status": "DONE"}'
    assert decode_async_action(paired).id == "aa_\U0001f600"


def test_a_huge_integer_in_a_list_page_names_its_item(backend: str) -> None:
    """In a list page the path names the item."""
    page = {"object": "list", "async_actions": [action(), action(progress=HUGE)]}
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action_list(json.dumps(page).encode())
    assert info.value.path == "$.async_actions[1].progress"


@pytest.fixture
async def huge_server() -> AsyncIterator[str]:
    """A server whose every action has a 400-digit progress."""

    async def one(request: web.Request) -> web.Response:
        return web.Response(body=body(progress=HUGE), content_type="application/json")

    async def page(request: web.Request) -> web.Response:
        text = json.dumps({"object": "list", "async_actions": [action(progress=HUGE)]})
        return web.Response(text=text, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", one)
    app.router.add_get("/v1/async-actions", page)
    async with serve(app) as url:
        yield url


async def test_get_list_and_handles_raise_the_decode_error(backend: str, huge_server: str) -> None:
    """get(), list() and a handle end with ResponseDecodeError, never OverflowError."""
    policy = PollPolicy(initial_delay=0.01, min_delay=0.01, max_delay=0.01)
    async with (
        asyncio.timeout(20),
        VoucherifyClient(APP_ID, APP_TOKEN, base_url=huge_server) as client,
    ):
        with pytest.raises(ResponseDecodeError, match=r"\$\.progress"):
            await client.async_actions.get("aa_1")
        with pytest.raises(ResponseDecodeError, match=r"\$\.async_actions\[0\]\.progress"):
            await client.async_actions.list()
        with pytest.raises(ResponseDecodeError, match=r"\$\.progress"):
            await client.async_actions.handle("aa_1", policy=policy)


@pytest.mark.parametrize("command", ["get", "wait", "list"])
async def test_the_command_exits_4_without_a_traceback(
    backend: str,
    huge_server: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command says the body is undecodable and exits 4 (not 1, "an action failed")."""
    for name in ("VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN", "VOUCHERIFY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    ids = [] if command == "list" else ["aa_1"]
    argv = [command, *ids, "--base-url", huge_server, "--app-id", "a", "--app-token", "t"]
    assert await asyncio.to_thread(main, argv) == 4
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "progress" in captured.out + captured.err
