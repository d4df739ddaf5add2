"""Fuzzing: generated bodies through the decoder and through the client; only documented errors.

Bodies are valid seed-shaped actions, mutated ones (keys dropped, values replaced by values of
the wrong type, nested garbage, values wrapped in lists), random JSON, spliced bytes and random
bytes. A 2xx body either decodes or raises ResponseDecodeError; a non-2xx response is the
APIError subclass its status picks, whatever its body and headers; a handle only ever resolves,
raises AsyncActionFailed, or ends with the documented permanent error. Never KeyError,
TypeError, AttributeError or anything else.

The client tests reuse one emulator across examples: each runs inside one ``asyncio.Runner``,
and the Hypothesis test inside it is a plain function that runs one coroutine per example.
"""

from __future__ import annotations

import asyncio
import json
import math
import pickle
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from _seed import actions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voucherify_async import (
    APIError,
    AsyncAction,
    AsyncActionFailed,
    RateLimitError,
    ResponseDecodeError,
    VoucherifyClient,
    converter,
)
from voucherify_async._converter import decode_async_action, structure_async_action
from voucherify_async._errors import error_class_for_status
from voucherify_async.testing import Body, VoucherifyEmulator, fast_polling

APP_ID = "fuzz-app-id"
APP_TOKEN = "fuzz-app-token"

DECODER = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLIENT = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: No example may take longer than this (seconds).
EXAMPLE_BUDGET = 10.0

# --- strategies ---------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
#: Any JSON value, nested a little deeper than the seed's strategies go.
garbage = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _parent(payload: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        payload = payload[key]
    return payload


#: Valid seed-shaped actions, with unknown keys, nulls and single objects where lists belong.
_actions = actions(extra_keys=True, nulls=True, singular_objects=True)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A seed-shaped action with one to four mutations anywhere inside it."""
    payload = draw(_actions)
    for _ in range(draw(st.integers(1, 4))):
        paths = [path for path in _paths(payload) if path]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(payload, path), path[-1]
        operation = draw(st.sampled_from(["drop", "replace", "nest", "wrap"]))
        if operation == "drop":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(garbage)
        elif operation == "nest":
            parent[key] = {"nested": [parent[key], draw(garbage)]}
        else:
            parent[key] = [parent[key]]
    return payload


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """A mutated action's JSON with a few bytes overwritten, or cut short."""
    body = bytearray(_dumps(draw(mutated())))
    at = draw(st.integers(0, len(body)))
    if draw(st.booleans()):
        return bytes(body[:at])
    body[at : at + 2] = draw(st.binary(min_size=1, max_size=3))
    return bytes(body)


#: Response bodies of every sort.
bodies = st.one_of(
    _actions.map(_dumps),
    mutated().map(_dumps),
    garbage.map(_dumps),
    spliced(),
    st.binary(max_size=300),
)

_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
_odd_numbers = st.sampled_from(
    ["0", "1", "-1", "0.5", "1e309", "nan", "inf", "-inf", "3600", "99999999999", "", " 2 "]
)
_http_date = st.just("Wed, 21 Oct 2015 07:28:00 GMT")
#: Rate-limit headers with any value, as a proxy or a broken server might send them.
rate_headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": _odd_numbers | _http_date | _header_text,
        "X-Rate-Limit-Retry": _odd_numbers | _header_text,
        "X-Rate-Limit-Remaining": st.sampled_from(["0", "1", "-3", "x"]),
    },
)
SUCCESS = st.sampled_from([200, 201, 202, 203, 206])
NON_2XX = st.sampled_from(
    [300, 301, 302, 304, 307, 400, 401, 402, 403, 404, 405, 409, 413, 418, 422, 423, 429,
     500, 501, 502, 503, 504, 599]
)  # fmt: skip
CONTENT_TYPES = st.sampled_from(["application/json", "text/html", "text/plain", "application/x"])

# --- checks -------------------------------------------------------------------------------


def check_decode_error(error: ResponseDecodeError) -> None:
    """A ResponseDecodeError that can be shown, logged and pickled."""
    assert isinstance(str(error), str) and isinstance(repr(error), str)
    assert error.path is None or error.path.startswith("$")
    assert len(error.body) <= 2_100
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.path, again.body) == (str(error), error.path, error.body)


def check_api_error(error: Exception, status: int) -> None:
    """The APIError subclass *status* picks, with fields of their declared types."""
    assert type(error) is error_class_for_status(status), (status, repr(error))
    assert isinstance(error, APIError) and error.status == status
    assert error.code is None or isinstance(error.code, int | str)
    for name in ("key", "message", "details", "request_id", "resource_id", "resource_type"):
        assert getattr(error, name) is None or isinstance(getattr(error, name), str)
    assert isinstance(str(error), str) and len(error.body) <= 2_100
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        assert math.isfinite(error.retry_after) and error.retry_after >= 0
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)


def check_action(action: AsyncAction) -> None:
    """A decoded action that serializes back to JSON."""
    assert isinstance(action, AsyncAction) and isinstance(action.id, str)
    json.dumps(converter.unstructure(action))


# --- the decoder --------------------------------------------------------------------------


@pytest.mark.slow
@DECODER
@given(bodies)
def test_decoder_raises_only_response_decode_error(body: bytes) -> None:
    """Any body decodes to an action or raises ResponseDecodeError, nothing else."""
    try:
        action = decode_async_action(body)
    except ResponseDecodeError as error:
        check_decode_error(error)
    else:
        check_action(action)


@pytest.mark.slow
@DECODER
@given(mutated() | garbage)
def test_structuring_parsed_json_raises_only_response_decode_error(payload: Any) -> None:
    """Already parsed JSON (a webhook's) structures or raises ResponseDecodeError only."""
    try:
        action = structure_async_action(payload)
    except ResponseDecodeError as error:
        check_decode_error(error)
    else:
        check_action(action)


@pytest.mark.slow
@DECODER
@given(mutated())
def test_a_mutated_action_that_decodes_round_trips(payload: Any) -> None:
    """When a mutated action still decodes, unstructuring it gives the same JSON back."""
    body = _dumps(payload)
    try:
        action = decode_async_action(body)
    except ResponseDecodeError:
        return
    assert converter.unstructure(action) == json.loads(body)


# --- through the client -------------------------------------------------------------------

Example = Callable[..., Coroutine[Any, Any, None]]


def run_examples(test: Callable[[asyncio.Runner, VoucherifyEmulator], None]) -> None:
    """Run *test* with one event loop and one emulator, shared by all its examples."""
    with asyncio.Runner() as runner:
        emulator = VoucherifyEmulator(app_id=APP_ID, app_token=APP_TOKEN, seed=3)
        runner.run(emulator.start())
        try:
            with fast_polling():
                test(runner, emulator)
        finally:
            runner.run(emulator.close())


async def _bounded(coroutine: Coroutine[Any, Any, None]) -> None:
    async with asyncio.timeout(EXAMPLE_BUDGET):
        await coroutine


def _client(emulator: VoucherifyEmulator) -> VoucherifyClient:
    # A new client per example: a fuzzed rate-limit header may pause a client for an hour.
    return VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url, max_retries=0)


async def _get(emulator: VoucherifyEmulator, fault: Body) -> Any:
    action_id = emulator.add_action(duration=None)
    emulator.inject(fault, action_id=action_id)
    async with _client(emulator) as client:
        try:
            return await client.async_actions.get(action_id)
        except Exception as error:
            return error


def test_client_get_fuzzed_2xx_bodies() -> None:
    """A 2xx response with any body gives an action or a ResponseDecodeError through get()."""

    def test(runner: asyncio.Runner, emulator: VoucherifyEmulator) -> None:
        @CLIENT
        @given(body=bodies, status=SUCCESS, content_type=CONTENT_TYPES)
        def example(body: bytes, status: int, content_type: str) -> None:
            fault = Body(body, status=status, content_type=content_type)
            outcome = runner.run(_bounded_result(_get(emulator, fault)))
            if isinstance(outcome, ResponseDecodeError):
                check_decode_error(outcome)
            else:
                assert isinstance(outcome, AsyncAction), repr(outcome)
                check_action(outcome)

        example()

    run_examples(test)


def test_client_get_fuzzed_error_responses() -> None:
    """A non-2xx response with any body and rate-limit headers is the APIError its status picks."""

    def test(runner: asyncio.Runner, emulator: VoucherifyEmulator) -> None:
        @CLIENT
        @given(
            body=bodies,
            status=NON_2XX,
            content_type=CONTENT_TYPES,
            headers=rate_headers,
        )
        def example(body: bytes, status: int, content_type: str, headers: dict[str, str]) -> None:
            fault = Body(body, status=status, content_type=content_type, headers=headers)
            outcome = runner.run(_bounded_result(_get(emulator, fault)))
            check_api_error(outcome, status)

        example()

    run_examples(test)


async def _bounded_result(coroutine: Coroutine[Any, Any, Any]) -> Any:
    async with asyncio.timeout(EXAMPLE_BUDGET):
        return await coroutine


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def test_handle_fuzzed_responses() -> None:
    """A handle whose first poll gets any response resolves, fails, or ends as documented."""

    def test(runner: asyncio.Runner, emulator: VoucherifyEmulator) -> None:
        @CLIENT
        @given(body=bodies, status=SUCCESS | NON_2XX)
        def example(body: bytes, status: int) -> None:
            runner.run(_bounded(_one_handle(emulator, body, status)))

        example()

    run_examples(test)


async def _one_handle(emulator: VoucherifyEmulator, body: bytes, status: int) -> None:
    action_id = emulator.add_action(duration=None)
    emulator.finish(action_id)
    # A 429 without an explicit retry time would pause the client until the emulator's
    # X-Rate-Limit-Retry (up to a minute away): this test is about bodies, not waits.
    headers = {"Retry-After": "0", "X-Rate-Limit-Retry": "0"} if status == 429 else {}
    emulator.inject(Body(body, status=status, headers=headers), action_id=action_id)
    async with _client(emulator) as client:
        handle = client.async_actions.handle(action_id)
        try:
            outcome: Any = await handle
        except Exception as error:
            outcome = error
        assert handle.done()
    success = 200 <= status < 300
    if isinstance(outcome, AsyncActionFailed):
        assert success and outcome.action.is_failed
    elif isinstance(outcome, ResponseDecodeError):
        assert success
        check_decode_error(outcome)
    elif isinstance(outcome, APIError):
        assert not _transient(status), f"a transient {status} ended the handle"
        check_api_error(outcome, status)
    else:
        assert isinstance(outcome, AsyncAction), repr(outcome)
        assert outcome.is_terminal and not outcome.is_failed
        if not success:
            assert outcome.id == action_id  # the real answer, after the fault
