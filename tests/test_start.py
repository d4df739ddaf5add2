"""Starting async actions: the request, its body, its answer, and when it may be retried."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _servers import serve
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import (
    APIError,
    AsyncActionHandle,
    AsyncActionStatus,
    AuthenticationError,
    ClientClosedError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    OutcomeUnknownError,
    ResponseDecodeError,
    UnknownResult,
    VoucherifyClient,
)
from voucherify_async._pacing import LocalGate
from voucherify_async.testing import (
    Delay,
    Drop,
    DropMidBody,
    Status,
    Truncate,
    VoucherifyEmulator,
    fast_polling,
)

DATA = Path(__file__).resolve().parent / "data"

Client = Callable[..., VoucherifyClient]


@pytest.fixture(autouse=True)
def _fast() -> Iterator[None]:
    with fast_polling():
        yield


@pytest.fixture
def quick_jobs(emulator: VoucherifyEmulator) -> VoucherifyEmulator:
    """Jobs started through the API end at once (the job clock's pace is tested apart)."""
    emulator.start_seconds = 0.0
    emulator.start_seconds_per_row = 0.0
    return emulator


# --- the generic mechanism -----------------------------------------------------------------


async def test_start_sends_json_and_returns_the_live_handle(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """start() posts the JSON body once and returns the handle every waiter shares."""
    handle = await client.async_actions.start(
        "POST", "/v1/vouchers/import", json=[{"code": "A"}, {"code": "B"}]
    )
    assert isinstance(handle, AsyncActionHandle)
    post = quick_jobs.requests[0]
    assert (post.method, post.raw_path, post.status) == ("POST", "/v1/vouchers/import", 202)
    assert post.started_id == handle.id
    assert post.headers["Content-Type"] == "application/json"
    assert client.async_actions.handle(handle.id) is handle
    assert handle.started_at is not None
    assert handle.started_at <= asyncio.get_running_loop().time()
    action = await handle.result(timeout=10)
    assert action.type == "VOUCHERS.IMPORT"
    assert action.result.done_count == 2
    assert [r.method for r in quick_jobs.requests].count("POST") == 1


async def test_handle_of_an_action_started_elsewhere_has_no_start_time(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A handle for an id from elsewhere does not know when its action started."""
    handle = client.async_actions.handle(emulator.add_action(duration=0.0))
    assert handle.started_at is None
    await handle.result(timeout=10)


@pytest.mark.parametrize(
    "path",
    [
        "v1/vouchers/import",
        "/v3/vouchers/import",
        "/v1",
        "/v1/",
        "/v1//import",
        "/v1/../async-actions",
        "/v1/campaigns/./import",
        "/v1/vouchers/import?x=1",
        "/v1/vouchers/import#x",
        "/v1/vouchers/im port",
        "/v1/vouchers/%zz",
        "/v1/vouchers/\u00e9",
        "https://evil.example/v1/vouchers/import",
    ],
)
async def test_bad_paths_are_refused_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient, path: str
) -> None:
    """A path that is not one API path is an InvalidArgumentError, and nothing is sent."""
    with pytest.raises(InvalidArgumentError):
        await client.async_actions.start("POST", path, json=[])
    assert emulator.count() == 0


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/v1/vouchers/import", InvalidArgumentError),
        (b"POST", "/v1/vouchers/import", InvalidArgumentTypeError),
        ("POST", b"/v1/vouchers/import", InvalidArgumentTypeError),
    ],
)
async def test_bad_methods_and_types_are_refused(
    emulator: VoucherifyEmulator, client: VoucherifyClient, method: Any, path: Any, error: type
) -> None:
    """Only methods that start actions are accepted, as str."""
    with pytest.raises(error):
        await client.async_actions.start(method, path)
    assert emulator.count() == 0


async def test_a_bad_action_type_is_refused_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """action_type is a str (an AsyncActionType is one); anything else is refused unsent."""
    with pytest.raises(InvalidArgumentTypeError, match="action_type"):
        await client.async_actions.start(
            "POST",
            "/v1/vouchers/import",
            json=[],
            action_type=7,  # type: ignore[arg-type]
        )
    assert emulator.count() == 0


async def test_json_and_file_together_are_refused(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A request has one body: json or file."""
    with pytest.raises(InvalidArgumentError, match="json or file"):
        await client.async_actions.start(
            "POST", "/v1/vouchers/importCSV", json={}, file=io.BytesIO(b"code\n")
        )
    with pytest.raises(InvalidArgumentTypeError, match="JSON"):
        await client.async_actions.start("POST", "/v1/vouchers/import", json=[object()])
    assert emulator.count() == 0


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_non_finite_numbers_in_a_start_payload_are_refused_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient, number: float
) -> None:
    """NaN and +-inf are not JSON: orjson would send them as null, silently changing the data."""
    with pytest.raises(InvalidArgumentError, match="valid JSON"):
        await client.async_actions.start_customers_metadata_update(["c1"], {"k": number})
    with pytest.raises(InvalidArgumentError, match="valid JSON"):
        await client.async_actions.start_vouchers_import([{"code": "A", "value": number}])
    assert emulator.count() == 0


# --- the named helpers -----------------------------------------------------------------------

Helper = Callable[[VoucherifyClient], Awaitable[AsyncActionHandle]]

CSV = b"code,value\nA,1\nB,2\n"

NAMED: list[tuple[str, Helper, str, str, str]] = [
    ("vouchers import", lambda c: c.async_actions.start_vouchers_import([{"code": "A"}]),
     "POST", "/v1/vouchers/import", "VOUCHERS.IMPORT"),
    ("vouchers csv", lambda c: c.async_actions.start_vouchers_import_csv(io.BytesIO(CSV)),
     "POST", "/v1/vouchers/importCSV", "VOUCHERS.IMPORT_CSV"),
    ("vouchers bulk", lambda c: c.async_actions.start_vouchers_bulk_update(
        [{"code": "A", "metadata": {"x": 1}}]),
     "POST", "/v1/vouchers/bulk/async", "VOUCHERS.BULK_UPDATE"),
    ("vouchers metadata", lambda c: c.async_actions.start_vouchers_metadata_update(
        ["A", "B"], {"x": 1}),
     "POST", "/v1/vouchers/metadata/async", "VOUCHERS.METADATA_UPDATE"),
    ("campaign import", lambda c: c.async_actions.start_campaign_vouchers_import(
        "camp_1", [{"code": "A"}]),
     "POST", "/v1/campaigns/camp_1/import", "CAMPAIGN.VOUCHERS_IMPORT"),
    ("campaign csv", lambda c: c.async_actions.start_campaign_vouchers_import_csv(
        "camp_1", io.BytesIO(CSV)),
     "POST", "/v1/campaigns/camp_1/importCSV", "CAMPAIGN.VOUCHERS_IMPORT_CSV"),
    ("campaign generate", lambda c: c.async_actions.start_campaign_vouchers_generate("camp_1", 3),
     "POST", "/v1/campaigns/camp_1/vouchers", "CAMPAIGN.VOUCHERS_GENERATE"),
    ("campaign delete", lambda c: c.async_actions.delete_campaign("camp_1"),
     "DELETE", "/v1/campaigns/camp_1", "CAMPAIGN.VOUCHERS_DELETE"),
    ("customers csv", lambda c: c.async_actions.start_customers_import_csv(
        io.BytesIO(b"source_id\nc1\n")),
     "POST", "/v1/customers/importCSV", "CUSTOMERS.IMPORT_CSV"),
    ("customers bulk", lambda c: c.async_actions.start_customers_bulk_update(
        [{"source_id": "c1"}]),
     "POST", "/v1/customers/bulk/async", "CUSTOMERS.BULK_UPDATE"),
    ("customers metadata", lambda c: c.async_actions.start_customers_metadata_update(
        ["c1"], {"x": 1}),
     "POST", "/v1/customers/metadata/async", "CUSTOMERS.METADATA_UPDATE"),
    ("products bulk", lambda c: c.async_actions.start_products_bulk_update(
        [{"source_id": "p1"}]),
     "POST", "/v1/products/bulk/async", "PRODUCTS.BULK_UPDATE"),
    ("products metadata", lambda c: c.async_actions.start_products_metadata_update(
        ["p1"], {"x": 1}),
     "POST", "/v1/products/metadata/async", "PRODUCTS.METADATA_UPDATE"),
    ("products csv", lambda c: c.async_actions.start_products_import_csv(
        io.BytesIO(b"source_id,name\np1,Phone\n")),
     "POST", "/v1/products/importCSV", "PRODUCTS.IMPORT_CSV"),
    ("skus csv", lambda c: c.async_actions.start_skus_import_csv(
        io.BytesIO(b"source_id,sku\ns1,S\n")),
     "POST", "/v1/skus/importCSV", "SKUS.IMPORT_CSV"),
    ("orders import", lambda c: c.async_actions.start_orders_import([{"source_id": "o1"}]),
     "POST", "/v1/orders/import", "ORDERS.IMPORT"),
    ("loyalty delete", lambda c: c.async_actions.delete_loyalty_program("camp_2"),
     "DELETE", "/v1/loyalties/camp_2", "CAMPAIGN.VOUCHERS_DELETE"),
    ("members batch", lambda c: c.async_actions.start_loyalty_members_batch(
        "prog_1", [{"customer": {"source_id": "c1"}}]),
     "POST", "/v2/loyalties/programs/prog_1/members/batch", "LOYALTIES.MEMBERS_BATCH"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("helper", "method", "path", "type_name"),
    [case[1:] for case in NAMED],
    ids=[case[0] for case in NAMED],
)
async def test_named_helpers(
    quick_jobs: VoucherifyEmulator,
    client: VoucherifyClient,
    helper: Helper,
    method: str,
    path: str,
    type_name: str,
) -> None:
    """Each helper sends its endpoint's request and gives the handle of a job of its type."""
    handle = await helper(client)
    start = quick_jobs.requests[0]
    assert (start.method, start.raw_path) == (method, path)
    assert start.started_id == handle.id
    action = await handle.result(timeout=10)
    assert str(action.type) == type_name
    assert action.status == AsyncActionStatus.DONE


async def test_members_batch_decodes_as_an_unknown_type(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """The loyalty members batch's type is not among the 22: a plain str and an UnknownResult."""
    handle = await client.async_actions.start_loyalty_members_batch(
        "prog_1", [{"customer": {"source_id": "c1"}}, {"points": 3}]
    )
    action = await handle.result(timeout=10)
    assert type(action.type) is str
    assert isinstance(action.result, UnknownResult)
    assert action.result.raw["done_count"] == 1
    assert action.result.raw["failed"] == [{"index": 1, "reason": "customer: property is required"}]


async def test_helpers_encode_ids_as_one_segment(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """An id with slashes, dots or a query never reaches another endpoint."""
    await client.async_actions.delete_campaign("a/b?c#d", force=True)
    await client.async_actions.delete_campaign("...")
    first, second = (r for r in quick_jobs.requests if r.method == "DELETE")
    assert first.raw_path == "/v1/campaigns/a%2Fb%3Fc%23d"
    assert first.query == {"force": "true"}
    assert second.raw_path == "/v1/campaigns/%2E%2E%2E"
    with pytest.raises(InvalidArgumentError, match="dot-segment"):
        await client.async_actions.delete_campaign("..")
    with pytest.raises(InvalidArgumentError):
        await client.async_actions.delete_campaign("")
    with pytest.raises(InvalidArgumentTypeError):
        await client.async_actions.start_vouchers_import({"code": "A"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=">= 2"):
        await client.async_actions.start_campaign_vouchers_generate("camp_1", 1)
    with pytest.raises(InvalidArgumentError, match="64 bits"):
        await client.async_actions.start_campaign_vouchers_generate("camp_1", 10**400)


# --- the CSV upload -----------------------------------------------------------------------


class _Generated(io.RawIOBase):
    """A binary stream of *rows* CSV rows made on the fly, recording the reads asked of it."""

    def __init__(self, rows: int) -> None:
        self._lines = iter([b"code,value\n"] + [b"CODE-%07d,%d\n" % (i, i) for i in range(rows)])
        self._pending = b""
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None and size > 0, "the whole file was asked for"
        self.largest_read = max(self.largest_read, size)
        while len(self._pending) < size:
            line = next(self._lines, None)
            if line is None:
                break
            self._pending += line
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


async def test_csv_is_streamed_in_chunks(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A file object is read in bounded chunks, never whole; the job counts every row."""
    stream = _Generated(200_000)  # about 3.6 MB
    handle = await client.async_actions.start_vouchers_import_csv(stream)
    assert 0 < stream.largest_read <= 64 * 1024
    action = await handle.result(timeout=30)
    assert action.result.done_count == 200_000
    assert not stream.closed  # the caller's file stays the caller's


async def test_csv_from_a_path_reports_failed_rows(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient, tmp_path: Path
) -> None:
    """The job's result reflects the file: rows imported, rows failed with their reasons."""
    path = tmp_path / "vouchers.csv"
    path.write_bytes((DATA / "vouchers.csv").read_bytes())
    handle = await client.async_actions.start_vouchers_import_csv(str(path))
    action = await handle.result(timeout=10)
    assert action.type == "VOUCHERS.IMPORT_CSV"
    assert (action.result.done_count, action.result.failed_count) == (3, 2)
    reasons = {(f.row, f.code, f.reason) for f in action.result.failed}
    assert reasons == {
        (4, None, "code: property is required"),
        (5, "FALL-1", "Duplicate code FALL-1"),
    }
    upload = quick_jobs.requests[0]
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")


async def test_bad_files_are_refused(
    emulator: VoucherifyEmulator, client: VoucherifyClient, tmp_path: Path
) -> None:
    """A text-mode file, a missing path or a non-file is refused before any request."""
    path = tmp_path / "v.csv"
    path.write_text("code\nA\n")
    with path.open() as text, pytest.raises(InvalidArgumentTypeError, match="binary"):
        await client.async_actions.start_vouchers_import_csv(text)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="not a readable file"):
        await client.async_actions.start_vouchers_import_csv(tmp_path / "missing.csv")
    with pytest.raises(InvalidArgumentTypeError):
        await client.async_actions.start_vouchers_import_csv(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="one line"):
        await client.async_actions.start(
            "POST", "/v1/vouchers/importCSV", file=path, fields={"webhooks_enable": "a\r\nb"}
        )
    assert emulator.count() == 0


class _FailingRead(io.RawIOBase):
    """A binary file object whose read() fails, as a closed pipe or a broken disk would."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise OSError(5, "Input/output error")


class _TextRead(io.RawIOBase):
    """A file object that claims to be binary but whose read() gives str."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> str:  # type: ignore[override]
        return "code\nA\n"


async def test_unreadable_file_objects_are_refused_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A file whose read() fails, or gives str, is a typed argument error, never
    OutcomeUnknownError: nothing was sent."""
    with pytest.raises(InvalidArgumentError, match="could not be read") as failed:
        await client.async_actions.start_vouchers_import_csv(_FailingRead())
    assert not isinstance(failed.value, OutcomeUnknownError)
    with pytest.raises(InvalidArgumentTypeError, match="bytes"):
        await client.async_actions.start_vouchers_import_csv(_TextRead())  # type: ignore[arg-type]
    assert emulator.count() == 0


class _FailsLater(io.RawIOBase):
    """A binary file object whose first read() works and whose second fails."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise OSError(5, "Input/output error")
        return b"code\nA\n"


async def test_a_file_failing_mid_upload_is_its_typed_error(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A read that fails once the upload is under way ends the call with the file's typed
    error: the body never ended, so no action can have started (no OutcomeUnknownError)."""
    with pytest.raises(InvalidArgumentError, match="could not be read") as failed:
        await client.async_actions.start_vouchers_import_csv(_FailsLater())
    assert not isinstance(failed.value, OutcomeUnknownError)
    assert emulator.action_ids == []  # the emulator started nothing


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("a-str", InvalidArgumentTypeError),
        (None, InvalidArgumentTypeError),
        (["ab"], InvalidArgumentTypeError),
        ([("a", "b")], InvalidArgumentTypeError),
        ({1: "x"}, InvalidArgumentTypeError),
    ],
)
async def test_metadata_must_be_an_object(
    emulator: VoucherifyEmulator, client: VoucherifyClient, metadata: Any, error: type
) -> None:
    """metadata is a dict with str keys: anything else is a typed error before any request
    (never a bare ValueError or TypeError, never ["ab"] sent as {"a": "b"})."""
    actions = client.async_actions
    for call in (
        lambda: actions.start_vouchers_metadata_update(["A"], metadata),
        lambda: actions.start_customers_metadata_update(["c"], metadata),
        lambda: actions.start_products_metadata_update(["p"], metadata),
        lambda: actions.start_campaign_vouchers_generate("camp", 2, metadata or "x"),
    ):
        with pytest.raises(error, match=r"must be an object|keys must be str"):
            await call()
    assert emulator.count() == 0


async def test_rows_must_be_objects(emulator: VoucherifyEmulator, client: VoucherifyClient) -> None:
    """Rows of an import are objects: [1, 2] is refused before any request, naming the row."""
    with pytest.raises(InvalidArgumentTypeError, match=r"vouchers\[0\] must be an object"):
        await client.async_actions.start_vouchers_import([1, 2])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentTypeError, match=r"orders\[1\]"):
        await client.async_actions.start_orders_import([{"id": "o"}, "x"])  # type: ignore[list-item]
    assert emulator.count() == 0


async def test_form_fields_go_with_the_file(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """Extra form fields (like webhooks_enable) travel before the file; the upload still counts."""
    handle = await client.async_actions.start(
        "POST",
        "/v1/vouchers/importCSV",
        file=io.BytesIO(CSV),
        fields={"webhooks_enable": "true"},
    )
    action = await handle.result(timeout=10)
    assert action.result.done_count == 2


async def test_a_seekable_file_is_sent_whole_again_after_a_429(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A retry rewinds a seekable file object to where it stood: no row is lost."""
    quick_jobs.inject(Status(429, headers={"Retry-After": "0"}))
    stream = io.BytesIO(b"skip me\n" + CSV)
    stream.readline()  # the upload starts where the file stands
    handle = await client.async_actions.start_vouchers_import_csv(stream)
    action = await handle.result(timeout=10)
    assert action.result.done_count == 2
    assert [r.status for r in quick_jobs.requests if r.method == "POST"] == [429, 202]


# --- when a start may be retried ----------------------------------------------------------


def _posts(emu: VoucherifyEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method != "GET"]


async def test_429_is_retried_after_the_pause(
    quick_jobs: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A 429 says the request was not processed: it is sent again once the pause is over."""
    quick_jobs.inject(Status(429, headers={"Retry-After": "1"}))
    handle = await client.async_actions.start_vouchers_import([{"code": "A"}])
    first, second = _posts(quick_jobs)
    assert (first.status, second.status) == (429, 202)
    assert second.time - first.time >= 0.9  # the server's pause, honoured
    assert second.started_id == handle.id
    assert len(quick_jobs.action_ids) == 1


@pytest.mark.parametrize(
    "fault",
    [Drop(), DropMidBody(), Status(500), Status(502), Status(503), Status(504)],
    ids=["drop", "drop mid-body", "500", "502", "503", "504"],
)
async def test_a_lost_answer_is_never_retried(
    emulator: VoucherifyEmulator, client: VoucherifyClient, fault: Any
) -> None:
    """After a request may have reached the server, the outcome is unknown: no second request."""
    emulator.inject(fault)
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.async_actions.start_vouchers_import([{"code": "A"}])
    assert emulator.count() == 1
    error = caught.value
    assert (error.method, error.path) == ("POST", "/v1/vouchers/import")
    assert error.sent_at is not None
    assert "client.async_actions.list()" in str(error)


async def test_a_timeout_is_never_retried(
    emulator: VoucherifyEmulator, make_client: Client
) -> None:
    """A start that times out may still run on the server: OutcomeUnknownError, one request.

    Only reading the answer times out (a connect timeout would be a request never sent).
    """
    client = make_client(timeout=aiohttp.ClientTimeout(sock_read=0.2))
    emulator.inject(Delay(60.0))
    with pytest.raises(OutcomeUnknownError, match="timed out"):
        await client.async_actions.start_vouchers_import([{"code": "A"}])
    assert emulator.count() == 1


@pytest.mark.parametrize(
    ("call", "error", "status"),
    [
        (lambda c: c.async_actions.start("POST", "/v1/vouchers/import", json={"not": "a list"}),
         APIError, 400),
        (lambda c: c.async_actions.start("POST", "/v1/nowhere", json=[]), NotFoundError, 404),
    ],
    ids=["400", "404"],
)  # fmt: skip
async def test_4xx_raise_their_api_error(
    emulator: VoucherifyEmulator,
    client: VoucherifyClient,
    call: Callable[[VoucherifyClient], Awaitable[Any]],
    error: type[APIError],
    status: int,
) -> None:
    """A 4xx answer is final and typed; nothing was started."""
    with pytest.raises(error) as caught:
        await call(client)
    assert caught.value.status == status
    assert emulator.count() == 1
    assert emulator.action_ids == []


async def test_credentials_are_checked(emulator: VoucherifyEmulator, make_client: Client) -> None:
    """The emulator checks a start's credentials like a GET's: no job for a wrong token."""
    client = make_client(app_token="wrong-token")
    with pytest.raises(AuthenticationError):
        await client.async_actions.start_vouchers_import([{"code": "A"}])
    assert emulator.action_ids == []
    assert emulator.requests[0].headers["X-App-Token"] == "***"


async def test_a_cut_answer_is_a_decode_error_saying_it_may_have_started(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A 2xx whose JSON is cut short is a ResponseDecodeError; the job exists, nothing is resent."""
    emulator.inject(Truncate())
    with pytest.raises(ResponseDecodeError, match="may have started"):
        await client.async_actions.start_vouchers_import([{"code": "A"}])
    assert emulator.count() == 1
    assert len(emulator.action_ids) == 1


async def test_an_answer_without_an_id_is_a_decode_error(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A 2xx body without async_action_id (one voucher made at once) is a ResponseDecodeError."""
    with pytest.raises(ResponseDecodeError) as caught:
        await client.async_actions.start("POST", "/v1/campaigns/camp_1/vouchers", json={})
    assert caught.value.status == 200
    assert caught.value.path == "$.async_action_id"


@pytest.mark.parametrize("value", [12345, "", None, ["aa_1"]])
async def test_an_id_of_the_wrong_type_is_named_as_such(value: object) -> None:
    """{"async_action_id": 12345} is not "an answer without an id": the error says the id is
    not a string and that the action may have started; null stays "holds no async_action_id"."""

    async def start(request: web.Request) -> web.Response:
        return web.json_response({"async_action_id": value}, status=202)

    app = web.Application()
    app.router.add_post("/v1/vouchers/import", start)
    async with serve(app) as url, VoucherifyClient(APP_ID, APP_TOKEN, base_url=url) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.async_actions.start_vouchers_import([{"code": "A"}])
    assert caught.value.path == "$.async_action_id"
    if value is None:
        assert "holds no async_action_id" in str(caught.value)
    else:
        assert "not a non-empty string" in str(caught.value)
        assert "may have started" in str(caught.value)


async def test_close_during_a_start_says_it_may_have_started(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """Closing the client while a start is in flight ends it with OutcomeUnknownError (the
    server got the POST), caused by ClientClosedError; a start after close sends nothing."""
    emulator.inject(Delay(60.0))
    start = asyncio.create_task(client.async_actions.start_vouchers_import([{"code": "A"}]))
    await emulator.wait_for_requests(1)
    await client.close()
    with pytest.raises(OutcomeUnknownError, match="may have reached the server") as caught:
        await start
    assert isinstance(caught.value.__cause__, ClientClosedError)
    assert caught.value.method == "POST"
    with pytest.raises(ClientClosedError):
        await client.async_actions.start_vouchers_import([{"code": "B"}])
    assert emulator.count() == 1


async def test_close_while_a_start_waits_for_the_budget_is_client_closed_error(
    emulator: VoucherifyEmulator, make_client: Callable[..., VoucherifyClient]
) -> None:
    """A start still waiting in the gate never reached the server: close() ends it with a plain
    ClientClosedError, not OutcomeUnknownError."""
    client = make_client(requests_per_minute=1)
    with pytest.raises(NotFoundError):
        await client.async_actions.get("aa_missing")  # spends the one slot of the minute
    start = asyncio.create_task(client.async_actions.start_vouchers_import([{"code": "A"}]))
    gate = client._transport._gate
    assert isinstance(gate, LocalGate)
    for _ in range(10_000):  # until the start has asked the gate
        if gate.waiting:
            break
        await asyncio.sleep(0)
    assert gate.waiting == 1
    await client.close()
    with pytest.raises(ClientClosedError) as caught:
        await start
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert emulator.count() == 1


# --- connection refused: a server of the test's own, listening only once a retry is due ----


@pytest.fixture
async def late_server() -> AsyncIterator[tuple[str, asyncio.Event, list[str]]]:
    """A port that refuses connections until the client logs its first retry, then serves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound, not listening: a connection is refused
    port = sock.getsockname()[1]
    listening = asyncio.Event()
    seen: list[str] = []

    class ListenOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retry 1 of" in record.getMessage() and not listening.is_set():
                sock.listen(8)  # the retry's connection waits in the backlog
                listening.set()

    async def start_import(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.json_response({"async_action_id": "aa_late"}, status=202)

    async def get_action(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        body = json.loads((DATA / "started_action.json").read_text())
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/v1/vouchers/import", start_import)
    app.router.add_get("/v1/async-actions/aa_late", get_action)
    runner = web.AppRunner(app)
    await runner.setup()
    handler = ListenOnRetry(logging.WARNING)
    logger = logging.getLogger("voucherify_async")
    logger.addHandler(handler)

    async def serve_when_listening() -> None:
        await listening.wait()
        await web.SockSite(runner, sock).start()

    server = asyncio.create_task(serve_when_listening())
    try:
        yield f"http://127.0.0.1:{port}", listening, seen
    finally:
        logger.removeHandler(handler)
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        await runner.cleanup()
        sock.close()


async def test_connection_refused_is_retried(
    late_server: tuple[str, asyncio.Event, list[str]],
) -> None:
    """A refused connection never reached the server: the start is retried, and succeeds."""
    base_url, listening, seen = late_server
    async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=base_url) as client:
        handle = await client.async_actions.start_vouchers_import([{"code": "A"}])
        assert listening.is_set()
        assert handle.id == "aa_late"
        action = await handle.result(timeout=10)
    assert action.status == AsyncActionStatus.DONE
    assert seen.count("POST /v1/vouchers/import") == 1


# --- the emulator's jobs ----------------------------------------------------------------


async def test_job_duration_grows_with_the_payload(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A bigger payload makes a longer job (job clock: advance it, no waiting)."""
    emulator.start_seconds, emulator.start_seconds_per_row = 1.0, 1.0
    small = await client.async_actions.start_orders_import([{"source_id": "o1"}])
    big = await client.async_actions.start_orders_import(
        [{"source_id": f"o{i}"} for i in range(1000)]
    )
    small.cancel()
    big.cancel()
    emulator.advance(10.0)
    assert emulator.action(small.id)["status"] == "DONE"
    assert emulator.action(big.id)["status"] == "IN_PROGRESS"
    emulator.advance(1000.0)
    done = emulator.action(big.id)
    assert done["result"]["done_count"] == 1000
    assert done["result"]["message"] == "1000 order(s) imported successfully, 0 failed."


async def test_starts_stay_within_the_servers_budget() -> None:
    """Starts obey the server's rate-limit headers like polls: every start makes exactly one
    job, and no window of the server's sees more requests than its budget."""
    async with VoucherifyEmulator(requests_per_minute=2, rate_limit_window=1.0, seed=2) as emu:
        emu.start_seconds = emu.start_seconds_per_row = 0.0
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=emu.base_url) as client:
            handles = [
                await client.async_actions.start_orders_import([{"source_id": f"o{i}"}])
                for i in range(3)
            ]
            for handle in handles:
                handle.cancel()
        posts = [r for r in emu.requests if r.method == "POST"]
        assert [r.status for r in posts if r.status != 429] == [200, 200, 200]
        assert sorted(h.id for h in handles) == sorted(emu.action_ids)
        admitted = [r.time for r in emu.requests if r.status != 429]
        for first in admitted:
            assert sum(first <= t < first + 1.0 for t in admitted) <= 2


@pytest.mark.parametrize("how", ["start", "handle"])
async def test_the_started_handle_waits_out_a_long_server_pause_quietly(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The handle start() returns polls patiently, as handle()'s does: during a server pause
    longer than a call waits, its next poll waits in the gate instead of failing (and logging
    a WARNING) on every poll; the 429 that began the pause is the one WARNING."""
    paused = asyncio.Event()
    gets: list[str] = []

    async def start(request: web.Request) -> web.Response:
        return web.json_response({"async_action_id": "aa_1"}, status=202)

    async def poll(request: web.Request) -> web.Response:
        gets.append(request.path)
        paused.set()
        return web.json_response(
            {"message": "slow down"}, status=429, headers={"Retry-After": "600"}
        )

    app = web.Application()
    app.router.add_post("/v1/vouchers/import", start)
    app.router.add_get("/v1/async-actions/{id}", poll)
    caplog.set_level(logging.WARNING, "voucherify_async")
    async with asyncio.timeout(20), serve(app) as url:
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url)
        with fast_polling():
            if how == "start":
                handle = await client.async_actions.start_vouchers_import([{"code": "A"}])
            else:
                handle = client.async_actions.handle("aa_1")
            await paused.wait()
            gate = client._gate
            # The gate offers no event for "someone queued": look each 10 ms (bounded above).
            while gate.waiting == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            assert not handle.done()
            await client.close()
    with pytest.raises(ClientClosedError):
        await handle
    assert gets == ["/v1/async-actions/aa_1"]
    polls_failed = [r.getMessage() for r in caplog.records if "aa_1" in r.getMessage()]
    assert len(polls_failed) == 1, polls_failed
    assert "HTTP 429" in polls_failed[0]
