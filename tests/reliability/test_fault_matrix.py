"""The fault matrix: every way a response can go wrong, for one get and for a polling handle.

Each row of :data:`CASES` names a fault the emulator injects and the outcome API.md documents.
Transient faults (5xx, 429, connection errors, timeouts) are retried by a get, which raises
only once a persistent fault has used up its retries, and they never end a handle: it survives
the outage and resolves after. Permanent ones (401/403/404, other 4xx, a 2xx body that cannot
be decoded) end a get and a handle at once. Odd but valid bodies decode. Every run is bounded
by ``asyncio.timeout``, so a hang fails instead of stalling the suite.

The runners (:func:`run_get_once`, :func:`run_get_persistent`, :func:`run_handle`) check the
outcome themselves and return what happened: ``tests/reliability/report.py`` runs the same rows
and prints the same table into ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import aiohttp
import attrs
import pytest

from voucherify_async import (
    APIError,
    AsyncAction,
    AsyncActionHandle,
    AsyncActionStatus,
    AuthenticationError,
    NotFoundError,
    PollPolicy,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    UnknownResult,
    VoucherifyClient,
    instrumentation,
)
from voucherify_async._transport import MAX_BODY_BYTES
from voucherify_async.testing import (
    Body,
    Delay,
    Drop,
    DropMidBody,
    Fault,
    Status,
    Truncate,
    VoucherifyEmulator,
    fast_polling,
)

APP_ID = "matrix-app-id"
APP_TOKEN = "matrix-app-token"

#: Extra attempts per call: a persistent fault costs MAX_RETRIES + 1 GETs.
MAX_RETRIES = 2
#: A quick, deterministic poll schedule (fast_polling() cuts it further to 1 ms).
POLICY = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, min_delay=0.01, jitter=0)
#: No run of the matrix may take longer than this (seconds): a hang fails the test.
RUN_BUDGET = 20.0
#: How many whole polls an outage must spoil before it ends (each poll used up its retries).
FAILED_POLLS = 2
#: Rows of ``result.failed`` in the 10 MB body.
BIG_ROWS = 130_000

Kind = Literal["transient", "permanent", "valid"]
Payload = dict[str, Any]
Check = Callable[[AsyncAction], str]


@attrs.frozen
class Case:
    """One row of the matrix: a fault and the outcome it must have.

    *fault* builds the fault from the served action's JSON (``None``: nothing listens at
    all, connection refused). *error* is the exception a get raises (for a transient fault:
    once the fault outlasts the retries); *check* asserts what a valid body decodes to and
    describes it. *terminal* says whether a valid body ends a handle. *min_gap* is the wait
    the server demands between the first two GETs (seconds). *timeout* is the client's
    per-request timeout. *bug* names a known bug that keeps the row from its documented
    outcome today: its tests are strict xfails, and report.py marks the row.
    """

    name: str
    kind: Kind
    fault: Callable[[Payload], Fault] | None
    error: type[Exception] | None = None
    check_error: Callable[[Exception], None] | None = None
    check: Check | None = None
    terminal: bool = True
    min_gap: float = 0.0
    timeout: float = 10.0
    bug: str | None = None

    @property
    def id(self) -> str:
        """The pytest id of the row."""
        return self.name.replace(" ", "-")


@attrs.frozen
class Outcome:
    """What one run of a row did: a short description, its duration, the GETs it cost."""

    text: str
    seconds: float
    requests: int


# --- the rows -----------------------------------------------------------------------------

_HTML = "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
_RATE_LIMITED = {"code": 429, "message": "Too many requests hit the API too quickly."}


def _server_error(status: int, body: str) -> Case:
    def fault(_: Payload) -> Fault:
        if body == "json":
            error = {"code": status, "message": "upstream failed", "request_id": "v-5xx"}
            return Status(status, body=error)
        if body == "html":
            return Status(status, body=_HTML.format(status), content_type="text/html")
        return Status(status, body=b"")

    def check_error(error: Exception) -> None:
        assert isinstance(error, ServerError) and error.status == status
        if body == "json":
            assert (error.message, error.request_id) == ("upstream failed", "v-5xx")
        elif body == "html":
            assert error.body.startswith("<html>") and error.message is None
        else:
            assert error.body == "" and error.message is None

    return Case(f"{status} {body}", "transient", fault, ServerError, check_error)


def _rate_limit_retry_after(error: Exception) -> None:
    assert isinstance(error, RateLimitError) and error.retry_after == 0.2


def _rate_limit_no_retry_after(error: Exception) -> None:
    assert isinstance(error, RateLimitError) and error.retry_after is None


def _transport(cause: type[BaseException]) -> Callable[[Exception], None]:
    def check_error(error: Exception) -> None:
        assert isinstance(error, TransportError)
        assert isinstance(error.__cause__, cause), repr(error.__cause__)

    return check_error


def _api_error(cls: type[APIError], status: int) -> Callable[[Exception], None]:
    def check_error(error: Exception) -> None:
        assert type(error) is cls and isinstance(error, APIError)
        assert error.status == status

    return check_error


def _decode_error(path: str | None) -> Callable[[Exception], None]:
    def check_error(error: Exception) -> None:
        assert isinstance(error, ResponseDecodeError)
        assert error.path == path, (error.path, str(error))
        assert len(error.body) < 2_100  # the body is kept truncated
        assert len(str(error)) < 2_000

    return check_error


def _decode_status(status: int) -> Callable[[Exception], None]:
    def check_error(error: Exception) -> None:
        assert isinstance(error, ResponseDecodeError)
        assert error.status == status, f"status {error.status}, the response's was {status}"

    return check_error


def _without(key: str) -> Callable[[Payload], Fault]:
    return lambda payload: Body({k: v for k, v in payload.items() if k != key})


def _big_valid(payload: Payload) -> Fault:
    rows = [
        {"code": f"CODE-{i:07d}", "reason": "Voucher with given code already exists"}
        for i in range(BIG_ROWS)
    ]
    result = {"message": "0 imported", "done_count": 0, "failed_count": BIG_ROWS, "failed": rows}
    body = json.dumps({**payload, "result": result}).encode()
    assert len(body) > 10_000_000
    return Body(body)


def _big_invalid(_: Payload) -> Fault:
    return Body(b'{"id": "aa_' + b"7" * 10_000_000)  # never closed


def _check_unknown_type(action: AsyncAction) -> str:
    assert action.type == "LOYALTIES.MEMBERS_BATCH" and type(action.type) is str
    assert isinstance(action.result, UnknownResult)
    return "type kept as str, UnknownResult"


def _check_unknown_status(action: AsyncAction) -> str:
    assert action.status == "PAUSED" and not action.is_terminal
    return "status 'PAUSED', not terminal"


def _check_unknown_operation_status(action: AsyncAction) -> str:
    assert action.operation_status == "PARTIALLY_APPLIED" and not action.is_failed
    return "operation_status kept as str"


def _check_failed_object(action: AsyncAction) -> str:
    failed = getattr(action.result, "failed", None)
    assert isinstance(failed, list) and len(failed) == 1
    return "failed as one object accepted"


def _check_big(action: AsyncAction) -> str:
    failed = getattr(action.result, "failed", None)
    assert isinstance(failed, list) and len(failed) == BIG_ROWS
    return f"{BIG_ROWS:,} failed rows decoded"


_GZIP = {"Content-Encoding": "gzip"}
#: 128 MB of zeros, gzipped: about 125 KB on the wire.
_BOMB = gzip.compress(b"\0" * (4 * MAX_BODY_BYTES), compresslevel=9)


def _check_inflated(action: AsyncAction) -> str:
    assert action.status is not None
    return "inflated and decoded"


CASES: tuple[Case, ...] = (
    *(_server_error(s, b) for s in (500, 502, 503, 504) for b in ("json", "html", "empty")),
    Case(
        "429 Retry-After 0.2 s",
        "transient",
        lambda _: Status(429, headers={"Retry-After": "0.2"}, rate_limit_headers=False),
        RateLimitError,
        _rate_limit_retry_after,
        min_gap=0.2,
    ),
    Case(
        "429 X-Rate-Limit-Retry epoch",
        "transient",
        # Built at injection: the epoch is "now + 0.3 s" (fractional, to keep the matrix quick).
        lambda _: Body(
            _RATE_LIMITED,
            status=429,
            headers={
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Retry": f"{time.time() + 0.3:.3f}",
            },
        ),
        RateLimitError,
        _rate_limit_no_retry_after,
        min_gap=0.25,
    ),
    Case(
        # The emulator adds "Retry-After: 1" to every Status(429) unless told otherwise: an
        # empty value is the closest to none, and the client must ignore it.
        "429 neither header",
        "transient",
        lambda _: Status(429, headers={"Retry-After": ""}, rate_limit_headers=False),
        RateLimitError,
        _rate_limit_no_retry_after,
    ),
    Case(
        "connection refused",
        "transient",
        None,
        TransportError,
        _transport(aiohttp.ClientConnectorError),
    ),
    Case(
        "reset before headers",
        "transient",
        lambda _: Drop(),
        TransportError,
        _transport(aiohttp.ClientError),
    ),
    Case(
        "reset mid-body",
        "transient",
        lambda _: DropMidBody(),
        TransportError,
        _transport(aiohttp.ClientPayloadError),
    ),
    Case(
        "read timeout",
        "transient",
        lambda _: Delay(2.0),
        TransportError,
        _transport(TimeoutError),
        timeout=0.2,
    ),
    Case(
        "401",
        "permanent",
        lambda _: Status(401),
        AuthenticationError,
        _api_error(AuthenticationError, 401),
    ),
    Case(
        "403",
        "permanent",
        lambda _: Status(403),
        AuthenticationError,
        _api_error(AuthenticationError, 403),
    ),
    Case("404", "permanent", lambda _: Status(404), NotFoundError, _api_error(NotFoundError, 404)),
    Case("400", "permanent", lambda _: Status(400), APIError, _api_error(APIError, 400)),
    Case(
        "413 proxy body",
        "permanent",
        lambda _: Status(
            413, body={"statusCode": 413, "error": "Payload Too Large", "message": "too big"}
        ),
        APIError,
        _api_error(APIError, 413),
    ),
    Case(
        "truncated JSON",
        "permanent",
        lambda _: Truncate(),
        ResponseDecodeError,
        _decode_error(None),
    ),
    Case(
        "invalid UTF-8",
        "permanent",
        lambda p: Body(json.dumps(p).encode().replace(b'"aa_', b'"aa_\xff\xfe', 1)),
        ResponseDecodeError,
        _decode_error(None),
    ),
    Case(
        "HTML 200",
        "permanent",
        lambda _: Body(_HTML.format("OK"), content_type="text/html"),
        ResponseDecodeError,
        _decode_error(None),
    ),
    *(
        Case(
            f"JSON {name}",
            "permanent",
            lambda _, body=body: Body(body),
            ResponseDecodeError,
            _decode_error("$"),
        )
        for name, body in (
            ("string", b'"aa_0c5559be44d7b63c06"'),
            ("number", b"42"),
            ("null", b"null"),
            ("boolean", b"true"),
        )
    ),
    Case(
        "body is a list",
        "permanent",
        lambda p: Body([p]),
        ResponseDecodeError,
        _decode_error("$"),
    ),
    Case(
        "result is a list",
        "permanent",
        lambda p: Body({**p, "result": [p["result"]]}),
        ResponseDecodeError,
        _decode_error("$.result"),
    ),
    Case(
        "count of wrong type",
        "permanent",
        lambda p: Body({**p, "result": {**p["result"], "done_count": "many"}}),
        ResponseDecodeError,
        _decode_error("$.result.done_count"),
    ),
    *(
        Case(
            f"missing {key}",
            "permanent",
            _without(key),
            ResponseDecodeError,
            _decode_error(f"$.{key}"),
        )
        for key in ("id", "type", "status")
    ),
    Case("10 MB invalid", "permanent", _big_invalid, ResponseDecodeError, _decode_error(None)),
    Case(
        "gzip body",
        "valid",
        lambda p: Body(gzip.compress(json.dumps(p).encode()), headers=_GZIP),
        check=_check_inflated,
    ),
    Case(
        "corrupt gzip 200",
        "permanent",
        lambda _: Body(b"\x1f\x8b\x08\x00not-really-gzip" * 64, headers=_GZIP),
        ResponseDecodeError,
        _decode_error(None),
    ),
    Case(
        "gzip bomb (64 KB to 128 MB)",
        "permanent",
        lambda _: Body(_BOMB, headers=_GZIP),
        ResponseDecodeError,
        _decode_error(None),
    ),
    Case(
        "encoding not asked for",
        "permanent",
        lambda p: Body(json.dumps(p).encode(), headers={"Content-Encoding": "br"}),
        ResponseDecodeError,
        _decode_error(None),
    ),
    Case(
        "200 over the 32 MB cap",
        "permanent",
        lambda _: Body(b" " * (MAX_BODY_BYTES + 1)),
        ResponseDecodeError,
        _decode_error(None),
    ),
    Case(
        "503 with a 33 MB page",
        "transient",
        lambda _: Status(503, body=b"<html>" + b"x" * MAX_BODY_BYTES, content_type="text/html"),
        ServerError,
        _api_error(ServerError, 503),
    ),
    Case(
        "202 undecodable",
        "permanent",
        lambda _: Body(b"accepted", status=202),
        ResponseDecodeError,
        _decode_status(202),
    ),
    Case(
        "unknown type",
        "valid",
        lambda p: Body({**p, "type": "LOYALTIES.MEMBERS_BATCH", "result": {"members": 3}}),
        check=_check_unknown_type,
    ),
    Case(
        "unknown status",
        "valid",
        lambda p: Body({**p, "status": "PAUSED"}),
        check=_check_unknown_status,
        terminal=False,
    ),
    Case(
        "unknown operation_status",
        "valid",
        lambda p: Body({**p, "operation_status": "PARTIALLY_APPLIED"}),
        check=_check_unknown_operation_status,
    ),
    Case(
        "failed as one object",
        "valid",
        lambda p: Body({**p, "result": {**p["result"], "failed": {"code": "X", "reason": "y"}}}),
        check=_check_failed_object,
    ),
    Case("10 MB valid", "valid", _big_valid, check=_check_big),
)


def _params(cases: Any) -> list[Any]:
    """The rows as pytest parameters; a row with a known bug is a strict xfail."""
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}")] if case.bug else [],
        )
        for case in cases
    ]


TRANSIENT = _params(case for case in CASES if case.kind == "transient")
REACHABLE = _params(case for case in CASES if case.fault is not None)
ALL = _params(CASES)


# --- running a row ------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nothing listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _client(case: Case, base_url: str) -> AsyncIterator[VoucherifyClient]:
    client = VoucherifyClient(
        APP_ID,
        APP_TOKEN,
        base_url=base_url,
        max_retries=MAX_RETRIES,
        timeout=case.timeout,
        poll_policy=POLICY,
    )
    try:
        with fast_polling():
            yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _scene(case: Case) -> AsyncIterator[tuple[VoucherifyEmulator, VoucherifyClient, str]]:
    """An emulator holding one finished VOUCHERS.IMPORT action, and a client for it."""
    async with VoucherifyEmulator(app_id=APP_ID, app_token=APP_TOKEN, seed=5) as emulator:
        action_id = emulator.add_action("VOUCHERS.IMPORT", duration=None)
        emulator.finish(action_id)
        async with _client(case, emulator.base_url) as client:
            yield emulator, client, action_id


async def _error_of(awaitable: Any) -> Exception:
    try:
        result = await awaitable
    except Exception as error:
        return error
    raise AssertionError(f"expected an error, got {result!r}")


def _check(case: Case, error: Exception) -> str:
    assert case.error is not None
    assert isinstance(error, case.error), f"{type(error).__name__}: {error}"
    if case.check_error is not None:
        case.check_error(error)
    return type(error).__name__


class FailedPolls:
    """A poll hook that counts the polls of one id that ended with a transient error."""

    def __init__(self, action_id: str, enough: int = FAILED_POLLS) -> None:
        self.action_id = action_id
        self.errors: list[BaseException] = []
        self.enough = asyncio.Event()
        self._needed = enough

    def __call__(self, event: instrumentation.PollEvent) -> None:
        if event.action_id == self.action_id and event.error is not None:
            self.errors.append(event.error)
            if len(self.errors) >= self._needed:
                self.enough.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[FailedPolls]:
        """Add this hook to the poll hooks for the duration of the block."""
        previous = instrumentation.get_on_poll_hooks()
        instrumentation.set_on_poll_hooks([*previous, self])
        try:
            yield self
        finally:
            instrumentation.set_on_poll_hooks(previous)


async def run_get_once(case: Case) -> Outcome:
    """One get while the fault hits the first GET only: retried (transient) or raised."""
    started = time.monotonic()
    async with asyncio.timeout(RUN_BUDGET), _scene(case) as (emulator, client, action_id):
        assert case.fault is not None
        emulator.inject(case.fault(emulator.action(action_id)), action_id=action_id)
        if case.kind == "permanent":
            text = _check(case, await _error_of(client.async_actions.get(action_id)))
            assert emulator.count(action_id) == 1, "a permanent error is never retried"
            text += " at once"
        else:
            action = await client.async_actions.get(action_id)
            assert action.id == action_id
            if case.kind == "valid":
                assert case.check is not None
                text = f"OK: {case.check(action)}"
                assert emulator.count(action_id) == 1
            else:
                assert action.status is AsyncActionStatus.DONE
                times = [r.time for r in emulator.requests if r.action_id == action_id]
                assert len(times) >= 2
                gap = times[1] - times[0]
                assert gap >= case.min_gap, f"the server asked for {case.min_gap} s, got {gap}"
                text = f"OK after retry ({len(times)} GETs)"
                if case.min_gap:
                    text += f", waited {gap:.2f} s"
        requests = emulator.count(action_id)
    return Outcome(text, time.monotonic() - started, requests)


async def run_get_persistent(case: Case) -> Outcome:
    """One get while a transient fault hits every GET: the documented error after the retries."""
    assert case.kind == "transient"
    started = time.monotonic()
    async with asyncio.timeout(RUN_BUDGET):
        if case.fault is None:
            async with _client(case, f"http://127.0.0.1:{free_port()}") as client:
                text = _check(case, await _error_of(client.async_actions.get("aa_refused")))
            return Outcome(f"{text}, nothing listening", time.monotonic() - started, 0)
        async with _scene(case) as (emulator, client, action_id):
            payload = emulator.action(action_id)
            emulator.inject(case.fault(payload), times=None, action_id=action_id)
            text = _check(case, await _error_of(client.async_actions.get(action_id)))
            requests = emulator.count(action_id)
            # Every attempt passed the gate: aiohttp's own silent resend is refused.
            assert requests == MAX_RETRIES + 1, requests
    return Outcome(f"{text} after {requests} GETs", time.monotonic() - started, requests)


async def run_handle(case: Case) -> Outcome:
    """A handle awaited through the fault: it survives an outage, or ends as documented."""
    started = time.monotonic()
    async with asyncio.timeout(RUN_BUDGET):
        if case.fault is None:
            text, requests = await _handle_through_refusal(case)
        else:
            async with _scene(case) as (emulator, client, action_id):
                text = await _handle_through_fault(case, emulator, client, action_id)
                requests = emulator.count(action_id)
    return Outcome(text, time.monotonic() - started, requests)


async def _handle_through_fault(
    case: Case, emulator: VoucherifyEmulator, client: VoucherifyClient, action_id: str
) -> str:
    fault = case.fault
    assert fault is not None
    payload = emulator.action(action_id)
    if case.kind == "permanent":
        emulator.inject(fault(payload), action_id=action_id)
        handle = client.async_actions.handle(action_id)
        text = _check(case, await _error_of(handle))
        assert handle.done() and emulator.count(action_id) == 1
        return f"ends with {text}"
    if case.kind == "valid":
        assert case.check is not None
        if case.terminal:
            emulator.inject(fault(payload), action_id=action_id)
            action = await client.async_actions.handle(action_id)
            return f"DONE: {case.check(action)}"
        emulator.inject(fault(payload), times=None, action_id=action_id)
        handle = client.async_actions.handle(action_id)
        await emulator.wait_for_requests(3, action_id=action_id)
        assert not handle.done() and handle.latest is not None
        case.check(handle.latest)
        emulator.clear_faults()
        action = await handle
        assert action.status is AsyncActionStatus.DONE
        return "polls on, then DONE"
    emulator.inject(fault(payload), times=None, action_id=action_id)
    with FailedPolls(action_id).installed() as failed:
        handle = client.async_actions.handle(action_id)
        handle.add_done_callback(lambda _: failed.enough.set())  # no waiting on a dead handle
        await failed.enough.wait()
        assert not handle.done(), f"a transient fault ended the handle: {_ended(handle)}"
        emulator.clear_faults()  # the outage ends
        action = await handle
    assert action.status is AsyncActionStatus.DONE and action.id == action_id
    for error in failed.errors:
        _check(case, error)  # type: ignore[arg-type]
    return f"DONE after {len(failed.errors)} failed polls"


def _ended(handle: AsyncActionHandle) -> str:
    future = handle._future
    if future.cancelled():
        return "cancelled"
    error = future.exception()
    return repr(error) if error is not None else repr(future.result())


async def _handle_through_refusal(case: Case) -> tuple[str, int]:
    """Nothing listens until two polls have failed; then the API comes up on that port."""
    port = free_port()
    action_id = "aa_0c5559be44d7b63c06"
    async with _client(case, f"http://127.0.0.1:{port}") as client:
        with FailedPolls(action_id).installed() as failed:
            handle = client.async_actions.handle(action_id)
            handle.add_done_callback(lambda _: failed.enough.set())
            await failed.enough.wait()
            assert not handle.done(), f"a refused connection ended the handle: {_ended(handle)}"
            async with VoucherifyEmulator(
                port=port, app_id=APP_ID, app_token=APP_TOKEN
            ) as emulator:
                emulator.add_action("VOUCHERS.IMPORT", id=action_id, duration=0)
                action = await handle
                requests = emulator.count(action_id)
    assert action.status is AsyncActionStatus.DONE
    for error in failed.errors:
        _check(case, error)  # type: ignore[arg-type]
    return f"DONE after {len(failed.errors)} failed polls", requests


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", REACHABLE)
async def test_get_with_fault_once(case: Case) -> None:
    """A fault on the first GET: transient ones are retried, permanent ones raise at once."""
    await run_get_once(case)


@pytest.mark.parametrize("case", TRANSIENT)
async def test_get_with_persistent_fault(case: Case) -> None:
    """A transient fault that outlasts the retries raises its documented error."""
    await run_get_persistent(case)


@pytest.mark.parametrize("case", ALL)
async def test_handle_through_fault(case: Case) -> None:
    """A handle survives a transient outage and resolves; a permanent error ends it."""
    await run_handle(case)


def test_matrix_covers_the_issue() -> None:
    """The matrix names every fault the issue lists, each with a documented outcome."""
    names = {case.name for case in CASES}
    for status in (500, 502, 503, 504):
        assert {f"{status} json", f"{status} html", f"{status} empty"} <= names
    assert len(names) == len(CASES)
    for case in CASES:
        assert (case.error is None) == (case.kind == "valid")
        assert (case.check is None) == (case.kind != "valid")
