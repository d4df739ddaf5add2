"""VoucherifyEmulator over HTTP: auth, errors, lists, jobs, rate limits, faults, log, plugin."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yarl

from voucherify_async.testing import (
    ACTION_TYPES,
    PROGRESS_SHAPES,
    Body,
    Delay,
    Drop,
    DropMidBody,
    Status,
    Truncate,
    VoucherifyEmulator,
    serve,
)
from voucherify_async.testing._ratelimit import SlidingWindow

AUTH = {"X-App-Id": "some-app", "X-App-Token": "some-token-SECRET"}
RATE_HEADERS = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Retry")
TOO_MANY = {"code": 429, "message": "Too many requests hit the API too quickly."}


def _client_available() -> bool:
    try:
        import voucherify_async

        return hasattr(voucherify_async, "VoucherifyClient")
    except ImportError:
        return False


@pytest.fixture
async def session(voucherify_emulator: VoucherifyEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    """An authenticated HTTP session on the emulator (closed before the emulator)."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=AUTH) as session:
        yield session


class Answer:
    """A response read in full: status, headers and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(session: aiohttp.ClientSession, url: str | yarl.URL, **kwargs: Any) -> Answer:
    """Send a request (GET unless *method* says otherwise) and read the whole response."""
    method = kwargs.pop("method", "GET")
    async with session.request(method, url, **kwargs) as response:
        return Answer(response.status, dict(response.headers), await response.read())


def action_url(action_id: str) -> yarl.URL:
    """The path of one action, its id percent-encoded as one segment."""
    return yarl.URL("/v1/async-actions/" + quote(action_id, safe=""), encoded=True)


async def status_of(session: aiohttp.ClientSession, action_id: str) -> dict[str, Any]:
    answer = await fetch(session, action_url(action_id))
    assert answer.status == 200
    result: dict[str, Any] = answer.json()
    return result


# -- lifecycle and hosts ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_host_is_refused(host: str) -> None:
    """A host other than loopback needs allow_remote=True."""
    with pytest.raises(ValueError, match="allow_remote"):
        VoucherifyEmulator(host=host)
    VoucherifyEmulator(host=host, allow_remote=True)  # constructing does not bind


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    """Every loopback spelling is accepted without allow_remote."""
    VoucherifyEmulator(host=host)


async def test_explicit_start_and_close() -> None:
    """start() and close() work without ``async with``; close() twice is harmless."""
    emu = VoucherifyEmulator()
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.base_url
    await emu.start()
    try:
        assert emu.base_url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already started"):
            await emu.start()
        async with aiohttp.ClientSession(headers=AUTH) as session:
            assert (await fetch(session, emu.base_url + "/v1/async-actions")).status == 200
    finally:
        await emu.close()
    await emu.close()


def test_bad_arguments_are_refused() -> None:
    """Speed, budget and window must make sense."""
    with pytest.raises(ValueError, match="speed"):
        VoucherifyEmulator(speed=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        VoucherifyEmulator(requests_per_minute=0)
    with pytest.raises(ValueError, match="rate_limit_window"):
        VoucherifyEmulator(rate_limit_window=0)


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [AUTH, {"Authorization": "Bearer any-token"}, {"authorization": "bearer lower-case"}],
    ids=["app-keys", "bearer", "lower-case"],
)
async def test_any_credentials_accepted_by_default(
    voucherify_emulator: VoucherifyEmulator, headers: dict[str, str]
) -> None:
    """With no credentials configured, any non-empty pair or bearer token passes."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=headers) as session:
        assert (await fetch(session, "/v1/async-actions")).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-App-Id": "only-the-id"},
        {"X-App-Id": "id", "X-App-Token": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "id-only", "empty-token", "empty-bearer", "basic"],
)
async def test_missing_credentials_get_401(
    voucherify_emulator: VoucherifyEmulator, headers: dict[str, str]
) -> None:
    """A request without usable credentials gets the real 401 body, with rate-limit headers."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=headers) as session:
        answer = await fetch(session, "/v1/async-actions")
    assert answer.status == 401
    body = answer.json()
    assert body.pop("request_id").startswith("v-")
    assert body == {"code": 401, "key": "unauthorized", "message": "Unauthorized"}
    assert all(name in answer.headers for name in RATE_HEADERS)


@pytest.mark.voucherify_emulator(app_id="right-id", app_token="right-token")
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-App-Id": "right-id", "X-App-Token": "right-token"}, 200),
        ({"X-App-Id": "right-id", "X-App-Token": "wrong-token"}, 401),
        ({"X-App-Id": "wrong-id", "X-App-Token": "right-token"}, 401),
        ({"Authorization": "Bearer right-token"}, 401),
    ],
    ids=["match", "wrong-token", "wrong-id", "bearer-not-configured"],
)
async def test_configured_app_keys_must_match(
    voucherify_emulator: VoucherifyEmulator, headers: dict[str, str], expected: int
) -> None:
    """Configured app keys are the only ones accepted."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=headers) as session:
        assert (await fetch(session, "/v1/async-actions")).status == expected


@pytest.mark.voucherify_emulator(oauth_token="oauth-SECRET")
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "Bearer oauth-SECRET"}, 200),
        ({"Authorization": "Bearer other"}, 401),
        (AUTH, 401),
    ],
    ids=["match", "other-token", "app-keys"],
)
async def test_configured_oauth_token_must_match(
    voucherify_emulator: VoucherifyEmulator, headers: dict[str, str], expected: int
) -> None:
    """A configured OAuth token is the only credential accepted."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=headers) as session:
        assert (await fetch(session, "/v1/async-actions")).status == expected


# -- errors and ids ---------------------------------------------------------------------


async def test_unknown_id_gets_realistic_404(session: aiohttp.ClientSession) -> None:
    """An unknown id gets Voucherify's 404 body naming the resource."""
    answer = await fetch(session, "/v1/async-actions/aa_0aeb82bd55d5beffb")
    assert answer.status == 404
    body = answer.json()
    assert body.pop("request_id").startswith("v-")
    assert body == {
        "code": 404,
        "key": "not_found",
        "message": "Resource not found",
        "details": "Cannot find async_action with id aa_0aeb82bd55d5beffb",
        "resource_id": "aa_0aeb82bd55d5beffb",
        "resource_type": "async_action",
    }


async def test_other_routes_and_methods(session: aiohttp.ClientSession) -> None:
    """Other paths are 404, other methods 405, both with JSON error bodies."""
    assert (await fetch(session, "/v1/vouchers")).status == 404
    assert (await fetch(session, "/v1/async-actions/a/b")).status == 404
    answer = await fetch(session, "/v1/async-actions", method="POST")
    assert answer.status == 405
    assert answer.json()["key"] == "method_not_allowed"


@pytest.mark.parametrize(
    "action_id",
    [
        "../vouchers",
        "a/b?c#d",
        "100%",
        "with space",
        "ünï/cødé",
        "%2F",
        "x\r\nX-Injected: 1",
        "aa_1",
    ],
)
async def test_ids_travel_as_one_encoded_segment(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession, action_id: str
) -> None:
    """An id is matched as one raw segment, decoded once, and logged in both forms."""
    missing = await fetch(session, action_url(action_id))
    assert missing.status == 404
    assert missing.json()["resource_id"] == action_id
    voucherify_emulator.add_action(id=action_id, duration=None)
    assert (await status_of(session, action_id))["id"] == action_id
    for record in voucherify_emulator.requests:
        assert record.action_id == action_id
        assert record.raw_action_id == quote(action_id, safe="")
        assert record.raw_path == "/v1/async-actions/" + quote(action_id, safe="")
        assert record.path == "/v1/async-actions/" + action_id
    assert voucherify_emulator.count(action_id) == 2


async def test_unencoded_slash_reaches_no_action(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """A raw slash makes two segments: no action id, and a 404."""
    voucherify_emulator.add_action(id="a/b", duration=None)
    answer = await fetch(session, yarl.URL("/v1/async-actions/a/b", encoded=True))
    assert answer.status == 404
    assert voucherify_emulator.requests[-1].action_id is None


# -- listing ----------------------------------------------------------------------------


async def test_list_newest_first_without_results(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """The list is newest first, 10 by default, with has_more, and items carry no result."""
    ids = [voucherify_emulator.add_action(duration=0.0) for _ in range(12)]
    answer = await fetch(session, "/v1/async-actions")
    body = answer.json()
    assert answer.status == 200
    assert (body["object"], body["data_ref"], body["has_more"]) == ("list", "async_actions", True)
    assert [item["id"] for item in body["async_actions"]] == ids[::-1][:10]
    created = [item["created_at"] for item in body["async_actions"]]
    assert created == sorted(created, reverse=True)
    assert len(set(created)) == len(created)
    for item in body["async_actions"]:
        assert item["status"] == "DONE"
        assert "result" not in item
        assert "processing_time" not in item


async def test_list_limit(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """limit caps the page; has_more tells whether more remain."""
    ids = [voucherify_emulator.add_action(duration=None) for _ in range(5)]
    for limit, has_more in [(1, True), (4, True), (5, False), (100, False)]:
        body = (await fetch(session, "/v1/async-actions", params={"limit": limit})).json()
        assert [item["id"] for item in body["async_actions"]] == ids[::-1][:limit]
        assert body["has_more"] is has_more


async def test_list_end_date_pages_through_everything(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """end_date keeps items created strictly before it: paging by it sees every item once."""
    ids = [voucherify_emulator.add_action(duration=None) for _ in range(25)]
    seen: list[str] = []
    params = {"limit": "10"}
    while True:
        body = (await fetch(session, "/v1/async-actions", params=params)).json()
        seen += [item["id"] for item in body["async_actions"]]
        if not body["has_more"]:
            break
        params["end_date"] = body["async_actions"][-1]["created_at"]
    assert seen == ids[::-1]


@pytest.mark.parametrize(
    ("end_date", "expected"),
    [
        ("2000-01-01", 0),
        ("2999-12-31", 3),
        ("2999-12-31T00:00:00Z", 3),
        ("2999-12-31T00:00:00+02:00", 3),
        ("2000-01-01T00:00:00.000Z", 0),
    ],
)
async def test_list_end_date_forms(
    voucherify_emulator: VoucherifyEmulator,
    session: aiohttp.ClientSession,
    end_date: str,
    expected: int,
) -> None:
    """end_date accepts ISO date-times (Z or offset) and plain dates."""
    for _ in range(3):
        voucherify_emulator.add_action(duration=None)
    answer = await fetch(session, "/v1/async-actions", params={"end_date": end_date})
    assert answer.status == 200
    assert len(answer.json()["async_actions"]) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": "5.0"},
        {"limit": ""},
        {"end_date": "yesterday"},
        {"end_date": "2023-13-45"},
        {"end_date": ""},
    ],
)
async def test_list_bad_query_gets_400(
    session: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    """A bad limit or end_date gets 400 invalid_query_params."""
    answer = await fetch(session, "/v1/async-actions", params=params)
    assert answer.status == 400
    body = answer.json()
    assert (body["code"], body["key"]) == (400, "invalid_query_params")
    assert body["message"]
    assert body["details"]
    assert body["request_id"].startswith("v-")


# -- jobs -------------------------------------------------------------------------------


async def test_phases_follow_the_job_clock(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """ENQUEUED, then IN_PROGRESS with progress rising, then DONE with a result."""
    emu = voucherify_emulator
    action_id = emu.add_action("VOUCHERS.IMPORT", duration=10.0, enqueued=2.0)
    first = await status_of(session, action_id)
    assert (first["status"], first["progress"]) == ("ENQUEUED", 0)
    assert first["updated_at"] == first["created_at"]
    assert "result" not in first
    progress = []
    emu.advance(0.6)
    for _ in range(4):
        emu.advance(1.9)
        snapshot = await status_of(session, action_id)
        assert snapshot["status"] == "IN_PROGRESS"
        assert "result" not in snapshot
        assert "processing_time" not in snapshot
        progress.append(snapshot["progress"])
    assert progress == sorted(progress)
    assert len(set(progress)) == 4
    assert 70 <= progress[-1] < 100
    assert emu.finished_at(action_id) is None
    emu.advance(3.0)
    done = await status_of(session, action_id)
    assert (done["status"], done["progress"]) == ("DONE", 100)
    assert done["result"]["failed_count"] == 3
    assert emu.finished_at(action_id) is not None
    assert done == emu.action(action_id)


async def test_timestamps_and_processing_time(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """processing_time is the job's duration in milliseconds of the job clock."""
    action_id = voucherify_emulator.add_action(duration=1.25, enqueued=0.25)
    voucherify_emulator.advance(2.0)
    body = await status_of(session, action_id)
    assert body["processing_time"] == 1250
    created, updated = (
        datetime.fromisoformat(body[key]).timestamp() for key in ("created_at", "updated_at")
    )
    assert (updated - created) * 1000 == pytest.approx(1250, abs=1)


async def test_progress_curves(voucherify_emulator: VoucherifyEmulator) -> None:
    """'steps' moves in quarters; a function of the elapsed fraction sets progress itself."""
    emu = voucherify_emulator
    steps = emu.add_action(duration=8.0, enqueued=0.0, progress="steps")
    custom = emu.add_action(duration=8.0, enqueued=0.0, progress=lambda f: int(f * f * 100))
    seen = []
    for _ in range(7):
        emu.advance(1.0)
        seen.append(emu.action(steps)["progress"])
        assert 0 <= emu.action(custom)["progress"] < 100
    assert set(seen) == {0, 25, 50, 75}
    assert emu.action(custom)["progress"] == pytest.approx(76, abs=2)


@pytest.mark.parametrize("shape", PROGRESS_SHAPES)
async def test_named_progress_shapes_never_go_back(
    voucherify_emulator: VoucherifyEmulator, shape: str
) -> None:
    """Every named shape rises from 0, never decreases, and ends DONE at 100."""
    emu = voucherify_emulator
    action_id = emu.add_action(duration=1000.0, enqueued=0.0, progress=shape)
    seen = []
    for _ in range(20):
        snapshot = emu.action(action_id)
        assert snapshot["status"] == "IN_PROGRESS"
        seen.append(snapshot["progress"])
        emu.advance(49.0)
    assert seen == sorted(seen) and seen[0] <= 1 and all(0 <= p < 100 for p in seen)
    emu.advance(100.0)
    assert (emu.action(action_id)["status"], emu.action(action_id)["progress"]) == ("DONE", 100)
    expected_midway = {
        "linear": 49,
        "fast-then-slow": 70,
        "slow-then-fast": 24,
        "stall": 30,
        "coarse": 25,
        "steps": 25,
        "none": 0,
        "s-curve": 47,
        "jump-then-crawl": 9,
        "late-stall": 73,
        "cubic": 11,
        "tenths": 40,
    }
    if shape in expected_midway:  # seen[10] is at 490 s of 1000
        assert seen[10] == pytest.approx(expected_midway[shape], abs=1)
    if shape == "noisy":
        assert len(set(seen)) > 5


async def test_scripted_progress(voucherify_emulator: VoucherifyEmulator) -> None:
    """(fraction, progress) points are joined by straight lines; bad scripts are refused."""
    emu = voucherify_emulator
    action_id = emu.add_action(
        duration=1000.0, enqueued=0.0, progress=[(0.0, 0), (0.5, 10), (1.0, 90)]
    )
    emu.advance(250.0)
    assert emu.action(action_id)["progress"] == pytest.approx(5, abs=1)
    emu.advance(500.0)
    assert emu.action(action_id)["progress"] == pytest.approx(50, abs=1)
    for bad in ([], [(0.5, 10), (0.2, 20)], [(0.0, 50), (1.0, 10)], [(0.0, 0), (2.0, 10)]):
        with pytest.raises(ValueError, match="scripted progress"):
            emu.add_action(progress=bad)
    with pytest.raises(ValueError, match="unknown progress shape"):
        emu.add_action(progress="wobbly")
    with pytest.raises(ValueError, match="progress must be"):
        emu.add_action(progress=42)  # type: ignore[arg-type]


async def test_never_ending_job(voucherify_emulator: VoucherifyEmulator) -> None:
    """duration=None stays IN_PROGRESS however far the clock moves."""
    action_id = voucherify_emulator.add_action(duration=None)
    voucherify_emulator.advance(10_000.0)
    assert voucherify_emulator.action(action_id)["status"] == "IN_PROGRESS"
    assert voucherify_emulator.finished_at(action_id) is None


async def test_finish_set_progress_and_hold(voucherify_emulator: VoucherifyEmulator) -> None:
    """The controls pin progress, freeze a job and end it on demand."""
    emu = voucherify_emulator
    action_id = emu.add_action("PRODUCTS.BULK_UPDATE", duration=10.0, enqueued=5.0)
    emu.set_progress(action_id, 40)
    snapshot = emu.action(action_id)
    assert (snapshot["status"], snapshot["progress"]) == ("IN_PROGRESS", 40)
    emu.advance(3.0)
    assert emu.action(action_id)["progress"] == 40
    emu.hold(action_id)
    emu.advance(100.0)
    assert emu.action(action_id)["status"] == "IN_PROGRESS"
    emu.set_progress(action_id, 60)
    assert emu.action(action_id)["progress"] == 60
    before = asyncio.get_running_loop().time()
    emu.finish(action_id, "FAILED")
    finished = emu.action(action_id)
    assert (finished["status"], finished["operation_status"]) == ("FAILED", "FAILED")
    assert finished["result"]["errors"]
    finished_at = emu.finished_at(action_id)
    assert finished_at is not None
    assert finished_at >= before
    with pytest.raises(ValueError, match="already ended"):
        emu.finish(action_id)
    with pytest.raises(ValueError, match="already ended"):
        emu.hold(action_id)
    with pytest.raises(KeyError):
        emu.action("aa_nope")


async def test_held_enqueued_job_stays_enqueued(voucherify_emulator: VoucherifyEmulator) -> None:
    """hold() freezes a job in the queue too."""
    action_id = voucherify_emulator.add_action(duration=2.0, enqueued=1.0)
    voucherify_emulator.hold(action_id)
    voucherify_emulator.advance(50.0)
    assert voucherify_emulator.action(action_id)["status"] == "ENQUEUED"


async def test_finish_keeps_planned_outcome(voucherify_emulator: VoucherifyEmulator) -> None:
    """finish() with the planned status keeps the planned result and operation status."""
    emu = voucherify_emulator
    result = {"done_count": 7, "failed_count": 0, "errors": []}
    action_id = emu.add_action(
        "VOUCHERS.METADATA_UPDATE",
        duration=None,
        operation_status="UNKNOWN",
        result=result,
        extra={"user": {"id": "user_1"}, "log_id": "log_1"},
    )
    assert emu.action(action_id)["user"] == {"id": "user_1"}
    emu.finish(action_id)
    body = emu.action(action_id)
    assert (body["result"], body["operation_status"], body["log_id"]) == (
        result,
        "UNKNOWN",
        "log_1",
    )


async def test_operation_status_only_for_bulk_types(
    voucherify_emulator: VoucherifyEmulator,
) -> None:
    """Bulk and metadata updates carry operation_status; other types do not."""
    emu = voucherify_emulator
    bulk = emu.add_action("CUSTOMERS.BULK_UPDATE", duration=0.0)
    other = emu.add_action("VOUCHERS.IMPORT", duration=0.0, status="FAILED")
    unknown = emu.add_action("LOYALTIES.MEMBERS_BATCH", duration=0.0)
    assert emu.action(bulk)["operation_status"] == "SUCCESS"
    assert "operation_status" not in emu.action(other)
    assert emu.action(other)["status"] == "FAILED"
    assert emu.action(unknown)["result"] == {}


def test_add_action_validates() -> None:
    """Bad durations, statuses, ids and curves are refused."""
    emu = VoucherifyEmulator()
    emu.add_action(id="aa_taken")
    with pytest.raises(ValueError, match="id"):
        emu.add_action(id="aa_taken")
    with pytest.raises(ValueError, match="id"):
        emu.add_action(id="")
    with pytest.raises(ValueError, match="enqueued"):
        emu.add_action(duration=1.0, enqueued=2.0)
    with pytest.raises(ValueError, match="duration"):
        emu.add_action(duration=-1.0)
    with pytest.raises(ValueError, match="status"):
        emu.add_action(status="PAUSED")
    with pytest.raises(ValueError, match="progress"):
        emu.add_action(progress="quintic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="progress"):
        emu.set_progress("aa_taken", 101)


def test_generated_ids_and_created_at() -> None:
    """Ids look like the API's; created_at strictly increases; a seed makes ids repeatable."""
    first, second = VoucherifyEmulator(seed=7), VoucherifyEmulator(seed=7)
    ids = [first.add_action() for _ in range(50)]
    assert ids == [second.add_action() for _ in range(50)]
    assert all(len(i) == 21 and i.startswith("aa_") and int(i[3:], 16) >= 0 for i in ids)
    created = [first.action(i)["created_at"] for i in ids]
    assert created == sorted(set(created))
    assert first.action_ids == ids


@pytest.mark.voucherify_emulator(speed=50.0)
async def test_speed_scales_the_job_clock(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """At speed 50 a 1-second job ends in about 20 ms of real time, progress rising on the way."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    action_id = voucherify_emulator.add_action(duration=1.0, enqueued=0.0)
    progress = []
    async with asyncio.timeout(2.0):
        while (body := await status_of(session, action_id))["status"] != "DONE":
            progress.append(body["progress"])
    finished_at = voucherify_emulator.finished_at(action_id)
    assert finished_at is not None
    assert 0.015 <= finished_at - started <= 0.2
    assert progress == sorted(progress)
    assert body["processing_time"] == pytest.approx(1000, abs=2)  # job-clock milliseconds


async def test_demo_jobs(voucherify_emulator: VoucherifyEmulator) -> None:
    """Demo jobs cover all types, mostly in the seed's 0.1-1.3 s range, one of them FAILED."""
    emu = voucherify_emulator
    ids = emu.add_demo_jobs(30)
    assert len(set(ids)) == 30
    emu.advance(60.0)
    bodies = [emu.action(i) for i in ids]
    assert {b["type"] for b in bodies} == set(ACTION_TYPES)
    assert [b["status"] for b in bodies].count("FAILED") == 1
    times = sorted(b["processing_time"] for b in bodies)
    assert times[0] >= 100
    assert times[-4] <= 1300
    assert times[-1] >= 5000


# -- rate limits ------------------------------------------------------------------------


async def test_rate_limit_headers_on_every_response(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """Success, errors and injected statuses all carry the X-Rate-Limit-* headers."""
    action_id = voucherify_emulator.add_action()
    voucherify_emulator.inject(Status(503), action_id=action_id)
    answers = [
        await fetch(session, action_url(action_id)),
        await fetch(session, action_url(action_id)),
        await fetch(session, "/v1/async-actions"),
        await fetch(session, "/v1/async-actions", params={"limit": "0"}),
        await fetch(session, action_url("aa_missing")),
        await fetch(session, "/v1/async-actions", headers={"X-App-Token": ""}),
    ]
    assert [a.status for a in answers] == [503, 200, 200, 400, 404, 401]
    now = time.time()
    for answer in answers:
        assert answer.headers["X-Rate-Limit-Limit"] == "1000000"
        assert answer.headers["X-Rate-Limit-Type"] == "api_calls"
        assert int(answer.headers["X-Rate-Limit-Remaining"]) > 999_990
        assert now - 1 <= int(answer.headers["X-Rate-Limit-Retry"]) <= now + 61
    remaining = [int(a.headers["X-Rate-Limit-Remaining"]) for a in answers]
    assert remaining == [1_000_000, 999_999, 999_998, 999_997, 999_996, 999_996]


@pytest.mark.voucherify_emulator(requests_per_minute=3, rate_limit_window=0.3)
async def test_budget_gives_429_then_refills(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """Request N+1 inside the window gets the real 429 with Retry-After; the window slides."""
    loop = asyncio.get_running_loop()
    answers = [await fetch(session, "/v1/async-actions") for _ in range(3)]
    first = voucherify_emulator.requests[0].time
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert {a.headers["X-Rate-Limit-Limit"] for a in answers} == {"3"}
    limited = await fetch(session, "/v1/async-actions")
    assert limited.status == 429
    assert limited.json() == TOO_MANY
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    assert int(limited.headers["X-Rate-Limit-Retry"]) >= int(time.time())
    async with asyncio.timeout(3.0):  # keep asking until the first request leaves the window
        while (await fetch(session, "/v1/async-actions")).status == 429:
            pass
    assert loop.time() - first >= 0.3


def test_sliding_window_is_exact() -> None:
    """No window of the given length ever admits more than the limit; 429s do not count."""
    window = SlidingWindow(2, 60.0)
    assert window.admit(0.0)[0]
    assert window.admit(30.0)[0]
    admitted, state = window.admit(59.0)
    assert not admitted
    assert (state.remaining, state.refill_in) == (0, pytest.approx(1.0))
    assert window.admit(60.0)[0]  # the request at 0.0 has left the window
    assert not window.admit(89.9)[0]
    assert window.admit(90.0)[0]
    assert window.peek(90.0).remaining == 0
    assert window.peek(150.0).remaining == 2


@pytest.mark.voucherify_emulator(requests_per_minute=1)
async def test_faults_and_401s_use_no_budget(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """Requests answered by a fault, or refused as unauthorized, leave the budget alone."""
    voucherify_emulator.inject(Status(500), times=3)
    for _ in range(3):
        assert (await fetch(session, "/v1/async-actions")).status == 500
    assert (await fetch(session, "/v1/async-actions", headers={"X-App-Id": ""})).status == 401
    assert (await fetch(session, "/v1/async-actions")).status == 200
    assert (await fetch(session, "/v1/async-actions")).status == 429


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "marker"),
    [
        (500, "application/json", b'"internal_server_error"'),
        (502, "text/html", b"502 Bad Gateway"),
        (503, "text/html", b"503 Service Temporarily Unavailable"),
        (504, "text/html", b"504 Gateway Time-out"),
        (429, "application/json", b"Too many requests hit the API too quickly."),
    ],
)
async def test_status_fault_default_bodies(
    voucherify_emulator: VoucherifyEmulator,
    session: aiohttp.ClientSession,
    status: int,
    content_type: str,
    marker: bytes,
) -> None:
    """Injected statuses get realistic bodies; the next request is served normally."""
    action_id = voucherify_emulator.add_action()
    injected = voucherify_emulator.inject(Status(status))
    answer = await fetch(session, action_url(action_id))
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith(content_type)
    assert marker in answer.body
    assert (injected.hits, injected.active) == (1, False)
    assert voucherify_emulator.requests[-1].fault == "Status"
    assert voucherify_emulator.requests[-1].status == status
    assert (await fetch(session, action_url(action_id))).status == 200


async def test_status_429_fault_reports_its_retry(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """An injected 429 says Retry-After 1 (or its own) and Remaining 0."""
    voucherify_emulator.inject(Status(429))
    voucherify_emulator.inject(Status(429, headers={"Retry-After": "5"}))
    first = await fetch(session, "/v1/async-actions")
    second = await fetch(session, "/v1/async-actions")
    assert (first.headers["Retry-After"], second.headers["Retry-After"]) == ("1", "5")
    assert first.headers["X-Rate-Limit-Remaining"] == "0"
    assert second.headers["X-Rate-Limit-Remaining"] == "0"
    assert int(second.headers["X-Rate-Limit-Retry"]) >= int(time.time()) + 4


@pytest.mark.parametrize(
    ("fault", "status", "body", "content_type"),
    [
        (
            Status(400, body={"code": 400, "message": "Nope"}),
            400,
            b'{"code": 400, "message": "Nope"}',
            "application/json",
        ),
        (Status(503, body=b""), 503, b"", None),
        (
            Status(502, body="<p>down</p>", content_type="text/html"),
            502,
            b"<p>down</p>",
            "text/html",
        ),
        (Status(200, headers={"X-Rate-Limit-Remaining": "0"}), 200, b"", None),
        (
            Body(b'{"id": "aa_1", "status": "DO'),
            200,
            b'{"id": "aa_1", "status": "DO',
            "application/json",
        ),
        (Body(b"\xff\xfe\xfa"), 200, b"\xff\xfe\xfa", "application/json"),
        (Body("[1, 2, 3]"), 200, b"[1, 2, 3]", "application/json"),
        (Body({"id": 1}, status=201), 201, b'{"id": 1}', "application/json"),
        (Body(b"<html/>", status=500, content_type="text/html"), 500, b"<html/>", "text/html"),
    ],
    ids=[
        "json-400",
        "empty-503",
        "html-502",
        "200-remaining-0",
        "truncated-json",
        "bad-utf8",
        "list",
        "dict",
        "html-500",
    ],
)
async def test_status_and_body_faults(
    session: aiohttp.ClientSession,
    voucherify_emulator: VoucherifyEmulator,
    fault: Status | Body,
    status: int,
    body: bytes,
    content_type: str | None,
) -> None:
    """Status and Body faults send exactly the body, status and content type asked for."""
    voucherify_emulator.inject(fault)
    answer = await fetch(session, "/v1/async-actions")
    assert (answer.status, answer.body) == (status, body)
    if content_type is not None:
        assert answer.headers["Content-Type"].startswith(content_type)
    if isinstance(fault, Status) and fault.headers:
        assert answer.headers["X-Rate-Limit-Remaining"] == "0"


async def test_huge_body(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """A multi-megabyte body arrives whole."""
    huge = b"[" + b"0," * 2_500_000 + b"0]"
    voucherify_emulator.inject(Body(huge))
    answer = await fetch(session, "/v1/async-actions")
    assert answer.body == huge


async def test_delay_then_normal_or_fault(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """Delay holds the answer back (real time), then answers normally or with its follow-up."""
    loop = asyncio.get_running_loop()
    voucherify_emulator.inject(Delay(0.1))
    voucherify_emulator.inject(Delay(0.05, then=Status(504)))
    started = loop.time()
    assert (await fetch(session, "/v1/async-actions")).status == 200
    assert loop.time() - started >= 0.1
    started = loop.time()
    assert (await fetch(session, "/v1/async-actions")).status == 504
    assert loop.time() - started >= 0.05


async def test_long_delay_is_cut_by_close(voucherify_emulator: VoucherifyEmulator) -> None:
    """A client timing out on a long Delay does not keep close() waiting."""
    loop = asyncio.get_running_loop()
    voucherify_emulator.inject(Delay(60.0))
    timeout = aiohttp.ClientTimeout(total=0.05)
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=AUTH) as session:
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, "/v1/async-actions", timeout=timeout)
    started = loop.time()
    await voucherify_emulator.close()
    assert loop.time() - started < 1.0


async def test_drop_closes_before_headers(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """Drop closes the connection before a status line (aiohttp resends once, hence times=2)."""
    voucherify_emulator.inject(Drop(), times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(session, "/v1/async-actions")
    assert [(r.status, r.fault) for r in voucherify_emulator.requests] == [(None, "Drop")] * 2
    assert (await fetch(session, "/v1/async-actions")).status == 200


async def test_drop_mid_body(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """DropMidBody sends headers announcing the whole body, half of it, then closes."""
    action_id = voucherify_emulator.add_action(duration=None, enqueued=0.0)
    full = len(json.dumps(voucherify_emulator.action(action_id)))  # never changes
    voucherify_emulator.inject(DropMidBody())
    async with session.get(action_url(action_id)) as response:
        assert response.status == 200
        assert response.content_length == full
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert (await fetch(session, action_url(action_id))).status == 200


async def test_truncate(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """Truncate sends a well-formed response whose body is the first half of the real one."""
    action_id = voucherify_emulator.add_action(duration=None, enqueued=0.0)
    voucherify_emulator.inject(Truncate())
    answer = await fetch(session, action_url(action_id))
    whole = (await fetch(session, action_url(action_id))).body
    assert answer.status == 200
    assert answer.body == whole[: len(whole) // 2]
    with pytest.raises(json.JSONDecodeError):
        answer.json()


async def test_fault_times_order_and_clear(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """times counts hits; the first injected fault answers first; clear_faults() forgets all."""
    emu = voucherify_emulator
    three = emu.inject(Status(500), times=3)
    emu.inject(Status(502))
    statuses = [(await fetch(session, "/v1/async-actions")).status for _ in range(5)]
    assert statuses == [500, 500, 500, 502, 200]
    assert (three.hits, three.times) == (3, 0)
    emu.inject(Status(503), times=None)
    assert (await fetch(session, "/v1/async-actions")).status == 503
    emu.clear_faults()
    assert (await fetch(session, "/v1/async-actions")).status == 200
    with pytest.raises(ValueError, match="times"):
        emu.inject(Status(500), times=0)
    with pytest.raises(ValueError, match="probability"):
        emu.inject(Status(500), probability=1.5)
    with pytest.raises(ValueError, match="status"):
        Status(99)


async def test_fault_for_one_action_only(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """A fault with action_id leaves other ids and the list alone."""
    target = voucherify_emulator.add_action(duration=None)
    other = voucherify_emulator.add_action(duration=None)
    voucherify_emulator.inject(Status(503), action_id=target)
    assert (await fetch(session, action_url(other))).status == 200
    assert (await fetch(session, "/v1/async-actions")).status == 200
    assert (await fetch(session, action_url(target))).status == 503
    assert (await fetch(session, action_url(target))).status == 200


async def pattern(seed: int, probability: float) -> list[int]:
    """Statuses of 40 requests to an emulator with a random 503 fault."""
    async with (
        VoucherifyEmulator(seed=seed) as emu,
        aiohttp.ClientSession(emu.base_url, headers=AUTH) as session,
    ):
        emu.inject(Status(503), probability=probability, times=None)
        return [(await fetch(session, "/v1/async-actions")).status for _ in range(40)]


async def test_fault_probability_is_seeded() -> None:
    """probability draws from the seeded generator: same seed, same pattern."""
    first = await pattern(3, 0.5)
    assert first == await pattern(3, 0.5)
    assert 5 <= first.count(503) <= 35
    assert await pattern(3, 0.0) == [200] * 40
    assert await pattern(3, 1.0) == [503] * 40


# -- the request log --------------------------------------------------------------------


async def test_log_records_and_redacts(voucherify_emulator: VoucherifyEmulator) -> None:
    """The log keeps method, paths, query, status and times, never the secrets."""
    headers = {**AUTH, "Authorization": "Bearer oauth-SECRET"}
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=headers) as session:
        wall, loop_time = time.time(), asyncio.get_running_loop().time()
        await fetch(session, "/v1/async-actions", params={"limit": "5", "end_date": "2030-01-01"})
    (record,) = voucherify_emulator.requests
    assert (record.method, record.path, record.raw_path) == (
        "GET",
        "/v1/async-actions",
        "/v1/async-actions",
    )
    assert record.query == {"limit": "5", "end_date": "2030-01-01"}
    assert (record.status, record.action_id, record.fault) == (200, None, None)
    assert record.headers["X-App-Token"] == record.headers["Authorization"] == "***"
    assert record.headers["X-App-Id"] == "some-app"
    assert "SECRET" not in repr(voucherify_emulator.requests)
    assert 0 <= record.wall - wall < 1
    assert 0 <= record.time - loop_time < 1


async def test_count_and_wait_for_requests(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """count() totals GETs per id; wait_for_requests() wakes when enough have arrived."""
    emu = voucherify_emulator
    polled, other = emu.add_action(duration=None), emu.add_action(duration=None)

    async def traffic() -> None:
        for action_id in (other, polled, polled, other, polled):
            await fetch(session, action_url(action_id))

    task = asyncio.create_task(traffic())
    seen = await emu.wait_for_requests(3, action_id=polled)
    assert [r.action_id for r in seen] == [polled] * 3
    await task
    assert (emu.count(polled), emu.count(other), emu.count()) == (3, 2, 5)
    assert len(await emu.wait_for_requests(5)) == 5
    with pytest.raises(TimeoutError, match="saw 5 of 6"):
        await emu.wait_for_requests(6, timeout=0.01)


# -- serve() and the pytest plugin ------------------------------------------------------


async def test_serve_runs_until_cancelled() -> None:
    """serve() hands the started emulator to ready(), with demo jobs, until cancelled."""
    started: asyncio.Queue[VoucherifyEmulator] = asyncio.Queue()
    task = asyncio.create_task(serve(jobs=5, seed=1, ready=started.put_nowait))
    emu = await asyncio.wait_for(started.get(), 5.0)
    async with aiohttp.ClientSession(emu.base_url, headers=AUTH) as session:
        body = (await fetch(session, "/v1/async-actions")).json()
    assert len(body["async_actions"]) == 5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.voucherify_emulator(requests_per_minute=2, seed=5)
async def test_fixture_takes_marker_options(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """The voucherify_emulator fixture is started and takes options from its marker."""
    statuses = [(await fetch(session, "/v1/async-actions")).status for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.skipif(not _client_available(), reason="VoucherifyClient is not available yet")
async def test_voucherify_client_fixture(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: Any
) -> None:
    """voucherify_client is a VoucherifyClient on the emulator, with the test credentials."""
    import voucherify_async

    assert isinstance(voucherify_client, voucherify_async.VoucherifyClient)
    action_id = voucherify_emulator.add_action(duration=0.0)
    action = await voucherify_client.async_actions.get(action_id)
    assert action.id == action_id
    assert voucherify_emulator.requests[-1].headers["X-App-Id"] == "test-app-id"


def run_python(code: str, *, env_path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter (optionally with *env_path* first on sys.path)."""
    prefix = f"import sys; sys.path.insert(0, {env_path!r})\n" if env_path else ""
    return subprocess.run(
        [sys.executable, "-c", prefix + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_plugin_import_is_cheap() -> None:
    """Importing the plugin loads neither the emulator nor the client."""
    result = run_python(
        """
        import sys
        import voucherify_async.testing._plugin as plugin
        assert plugin._HAVE_PYTEST_ASYNCIO
        loaded = [m for m in sys.modules if m.endswith(("._emulator", "._client"))]
        assert "voucherify_async.testing._emulator" not in loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_plugin_without_pytest_asyncio(tmp_path: Any) -> None:
    """Without pytest-asyncio the plugin still imports, and its fixtures fail clearly."""
    fake = tmp_path / "pytest_asyncio"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('pytest-asyncio is not installed')\n")
    (tmp_path / "test_uses_fixture.py").write_text("def test_it(voucherify_emulator):\n    pass\n")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import pytest; "
            f"sys.exit(pytest.main(['-p', 'no:asyncio', '-p', 'no:cacheprovider', "
            f"'-q', {str(tmp_path / 'test_uses_fixture.py')!r}, '--rootdir', {str(tmp_path)!r}]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "install pytest-asyncio" in result.stdout
