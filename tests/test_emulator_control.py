"""Scripting the emulator: job specs, the ``--job`` shorthand, the control endpoint, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from voucherify_async import (
    AsyncActionFailed,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    PollTimeout,
    VoucherifyClient,
)
from voucherify_async._cli import main
from voucherify_async.testing import JobSpec, VoucherifyEmulator, fast_polling, parse_job

AUTH = {"X-App-Id": "ctl-app", "X-App-Token": "ctl-token"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VOUCHERS.IMPORT", JobSpec("VOUCHERS.IMPORT", 1.0)),
        ("VOUCHERS.IMPORT:600", JobSpec("VOUCHERS.IMPORT", 600.0)),
        ("ORDERS.IMPORT:never", JobSpec("ORDERS.IMPORT", None)),
        ("aa_1=SKUS.IMPORT_CSV:5:failed", JobSpec("SKUS.IMPORT_CSV", 5.0, "FAILED", id="aa_1")),
    ],
)
def test_parse_job(text: str, expected: JobSpec) -> None:
    """The ``--job`` shorthand: [ID=]TYPE[:SECONDS|never][:DONE|FAILED]."""
    assert parse_job(text) == expected


@pytest.mark.parametrize(
    "text", ["", ":5", "T:soon", "T:5:LOST", "T:1:DONE:x", "T:-1", "T:nan", "=T:5"]
)
def test_parse_job_refuses_nonsense(text: str) -> None:
    """A shorthand that does not parse is a ValueError naming the form."""
    with pytest.raises(ValueError):
        parse_job(text)


def test_parse_job_refuses_what_is_not_a_string() -> None:
    """parse_job({...}) is a typed error (a TypeError) pointing at JobSpec.from_json."""
    with pytest.raises(InvalidArgumentTypeError, match="from_json"):
        parse_job({"duration": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"kind": "x"},
        {"duration": "long"},
        {"duration": True},
        {"status": "LOST"},
        {"id": ""},
        {"duration": 10**400},
        {"result": 5},
        {"operation_status": 5},
    ],
)
def test_job_spec_refuses_nonsense(data: Any) -> None:
    """A JSON job spec with unknown keys or bad values is a ValueError."""
    with pytest.raises(ValueError):
        JobSpec.from_json(data)


@pytest.fixture
async def controlled() -> AsyncIterator[VoucherifyEmulator]:
    """An emulator with its control endpoint, accepting AUTH only."""
    async with VoucherifyEmulator(
        app_id=AUTH["X-App-Id"], app_token=AUTH["X-App-Token"], control=True, seed=5
    ) as emu:
        yield emu


@pytest.fixture
async def session(controlled: VoucherifyEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(controlled.base_url, headers=AUTH) as session:
        yield session


async def test_control_adds_finishes_and_lists_jobs(
    controlled: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """POST /_emulator/jobs adds jobs of any kind; finish ends one; GET lists them."""
    specs = [
        {"type": "ORDERS.IMPORT", "duration": None},
        {"type": "SKUS.IMPORT_CSV", "duration": 0, "status": "FAILED", "id": "aa_fail"},
        {"id": "aa_gone", "not_found": True},
    ]
    async with session.post("/_emulator/jobs", json=specs) as response:
        assert response.status == 201
        never, failing, gone = (await response.json())["ids"]
    assert failing == "aa_fail" and gone == "aa_gone"
    async with session.get("/_emulator/jobs") as response:
        assert (await response.json())["ids"] == [never, failing, gone]
    async with VoucherifyClient(
        AUTH["X-App-Id"], AUTH["X-App-Token"], base_url=controlled.base_url
    ) as client:
        with fast_polling():
            with pytest.raises(AsyncActionFailed):
                await client.async_actions.wait(failing, timeout=10)
            with pytest.raises(NotFoundError):
                await client.async_actions.get(gone)
            with pytest.raises(PollTimeout):
                await client.async_actions.wait(never, timeout=0.2)
            async with session.post(f"/_emulator/jobs/{never}/finish", json={}) as response:
                assert response.status == 204
            assert (await client.async_actions.wait(never, timeout=10)).status == "DONE"
        listed = {a.id for a in (await client.async_actions.list(limit=10)).async_actions}
    assert gone in listed  # listed, though its GET answers 404


async def test_control_serves_the_request_log(
    controlled: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """GET /_emulator/requests gives the API requests (not the control ones), tokens redacted."""
    async with session.get("/v1/async-actions/aa_nope") as response:
        assert response.status == 404
    async with session.post("/v1/vouchers/import", json=[{"code": "A"}]) as response:
        started = (await response.json())["async_action_id"]
    async with session.get("/_emulator/requests") as response:
        log = await response.json()
    assert [(r["method"], r["raw_path"], r["status"]) for r in log] == [
        ("GET", "/v1/async-actions/aa_nope", 404),
        ("POST", "/v1/vouchers/import", 202),
    ]
    assert log[1]["started_id"] == started
    assert log[0]["raw_action_id"] == "aa_nope"
    assert log[0]["headers"]["X-App-Token"] == "***"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_emulator/jobs", {"duration": "long"}, 400),
        ("POST", "/_emulator/jobs", {"duration": 10**400}, 400),
        ("POST", "/_emulator/jobs", {"result": 5}, 400),
        ("POST", "/_emulator/jobs", "[" * 5000 + "]" * 5000, 400),
        ("POST", "/_emulator/jobs/aa_none/finish", {}, 404),
        ("GET", "/_emulator/nothing", None, 404),
    ],
)
async def test_control_errors(
    session: aiohttp.ClientSession, method: str, path: str, body: Any, status: int
) -> None:
    """Bad specs (a 400-digit duration, a result that is no object, JSON nested too deeply)
    are 400, never a 500; unknown jobs and endpoints 404."""
    data = body if isinstance(body, str) else json.dumps(body)
    async with session.request(method, path, data=data) as response:
        assert response.status == status


async def test_control_checks_credentials_and_is_opt_in(controlled: VoucherifyEmulator) -> None:
    """The control endpoint wants the API's credentials; without control=True it is absent."""
    async with (
        aiohttp.ClientSession(controlled.base_url) as anonymous,
        anonymous.get("/_emulator/jobs") as response,
    ):
        assert response.status == 401
    async with (
        VoucherifyEmulator() as plain,
        aiohttp.ClientSession(plain.base_url) as session,
        session.get("/_emulator/jobs", headers=AUTH) as response,
    ):
        assert response.status == 404
    assert controlled.action_ids == []


async def test_start_pace_is_checked() -> None:
    """The start pace is seconds: a negative or NaN value is refused when set."""
    from voucherify_async import InvalidArgumentError

    async with VoucherifyEmulator() as emu:
        with pytest.raises(InvalidArgumentError):
            emu.start_seconds = -1.0
        with pytest.raises(InvalidArgumentError):
            emu.start_seconds_per_row = float("nan")
        emu.start_seconds, emu.start_seconds_per_row = 1.5, 0.0
        assert (emu.start_seconds, emu.start_seconds_per_row) == (1.5, 0.0)


# --- the command ------------------------------------------------------------------------


def test_remote_host_error_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-loopback --host says to add --allow-remote (the flag, not the library argument)."""
    assert main(["emulator", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err and "allow_remote=True" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_emulator_command_with_jobs_log_and_credentials(tmp_path: Path) -> None:
    """``emulator --job/--jobs-file/--not-found --log --app-id --app-token`` does what it says."""
    spec_file = tmp_path / "jobs.json"
    spec_file.write_text(json.dumps([{"id": "aa_file", "type": "ORDERS.IMPORT", "duration": 600}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOUCHERIFY_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voucherify_async", "emulator", "--port", "0",
        "--job", "aa_long=VOUCHERS.IMPORT:never", "--jobs-file", str(spec_file),
        "--not-found", "aa_gone", "--log", "--app-id", "ctl-app", "--app-token", "ctl-token",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), timeout=120)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        listed = [(await proc.stdout.readline()).decode() for _ in range(4)]
        assert "3 jobs scheduled" in listed[0]
        assert [line.split()[0] for line in listed[1:]] == ["aa_long", "aa_file", "aa_gone"]
        async with aiohttp.ClientSession(url.group()) as session:
            async with session.get("/v1/async-actions/aa_gone", headers=AUTH) as response:
                assert response.status == 404
            async with session.get("/v1/async-actions/aa_long") as response:
                assert response.status == 401
        logged = [(await proc.stdout.readline()).decode().strip() for _ in range(2)]
        assert logged == [
            "GET /v1/async-actions/aa_gone -> 404",
            "GET /v1/async-actions/aa_long -> 401",
        ]
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/vouchers/import", "[" * 5000 + "]" * 5000),
        ("/v1/campaigns/c/vouchers?vouchers_count=" + "9" * 400, "{}"),
    ],
)
async def test_start_endpoints_refuse_hostile_payloads_with_400(
    session: aiohttp.ClientSession, path: str, body: str
) -> None:
    """JSON nested too deeply and a 400-digit vouchers_count are 400s, not 500s."""
    async with session.post(path, data=body) as response:
        assert response.status == 400


async def test_add_action_refuses_a_result_or_extra_that_is_no_mapping(
    controlled: VoucherifyEmulator,
) -> None:
    """add_action(result=5) / extra=5 / operation_status=5: typed errors, not a TypeError deep
    inside; a 400-digit duration is an InvalidArgumentError."""
    for options in ({"result": 5}, {"extra": 5}, {"operation_status": 5}):
        with pytest.raises(InvalidArgumentTypeError):
            controlled.add_action(**options)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="duration"):
        controlled.add_action(duration=10**400)
