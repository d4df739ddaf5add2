"""Property tests: payloads generated from the seed's schemas, round trips and errors."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from _seed import (
    action_schema,
    actions,
    full_schema,
    json_path,
    json_values,
    replace_at,
    typed_leaves,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voucherify_async import (
    AsyncAction,
    AsyncActionStatus,
    AsyncActionType,
    OperationStatus,
    ResponseDecodeError,
    UnknownResult,
    converter,
    result_type_for,
)
from voucherify_async._converter import _hooks, decode_async_action, structure_async_action
from voucherify_async._json import dumps


def _outcome(decode: Callable[[Any], AsyncAction], value: Any) -> Any:
    """The decoded action, or the ResponseDecodeError (any other exception propagates)."""
    try:
        return decode(value)
    except ResponseDecodeError as error:
        return error


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(actions())
def test_generated_actions_round_trip(payload: dict[str, Any]) -> None:
    """Any payload valid for the seed's schemas structures and unstructures back unchanged."""
    action = decode_async_action(dumps(payload))
    if "result" in payload:
        assert type(action.result) is result_type_for(payload["type"])
    assert converter.unstructure(action) == payload
    assert converter.structure(copy.deepcopy(payload), AsyncAction) == action


@FAST
@given(actions(extra_keys=True, nulls=True, singular_objects=True))
def test_extra_keys_nulls_and_single_objects_round_trip(payload: dict[str, Any]) -> None:
    """Unknown keys at every level, nulls for strings and ``failed`` as one object survive."""
    action = decode_async_action(dumps(payload))
    assert converter.unstructure(action) == payload
    known = set(action_schema()["properties"]) | {"result"}
    assert set(action.extra) == set(payload) - known


_known_values = {m.value for e in (AsyncActionType, AsyncActionStatus, OperationStatus) for m in e}
_unknown = st.text(min_size=1, max_size=30).filter(lambda text: text not in _known_values)


@FAST
@given(
    payload=actions(),
    type_name=_unknown,
    status=_unknown,
    operation_status=_unknown,
)
def test_unknown_enum_values_decode(
    payload: dict[str, Any], type_name: str, status: str, operation_status: str
) -> None:
    """An unknown type, status or operation status stays a string; the result stays raw."""
    payload.update(type=type_name, status=status, operation_status=operation_status)
    action = decode_async_action(dumps(payload))
    assert (action.type, action.status, action.operation_status) == (
        type_name,
        status,
        operation_status,
    )
    assert type(action.type) is str
    assert not action.is_terminal
    if "result" in payload:
        assert action.result == UnknownResult(raw=payload["result"])
    assert converter.unstructure(action) == payload


_WRONG: dict[str, list[Any]] = {
    "integer": ["many", "3", True, False, 1.5, [], {}],
    "string": [5, 0.5, True, [], {}],
    "date-time": [1674199447, True, "yesterday", "2023-13-45T00:00:00Z", [], {}],
    "boolean": [0, 1, "true", None],
    "array": ["x", 5, True],
    "object": ["x", 5, False, []],
}


_with_extra_keys = actions(extra_keys=True)


@FAST
@given(st.data())
def test_a_wrong_type_is_an_error_naming_its_path(data: st.DataObject) -> None:
    """Any one value replaced by a wrong-typed one is a ResponseDecodeError at its path."""
    payload = data.draw(_with_extra_keys)
    leaves = [leaf for leaf in typed_leaves(payload, full_schema(payload["type"])) if leaf[0]]
    keys, kind, _ = data.draw(st.sampled_from(leaves))
    replace_at(payload, keys, data.draw(st.sampled_from(_WRONG[kind])))
    path = json_path(keys)
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(dumps(payload))
    assert info.value.path == path
    assert f"@ {path}" in str(info.value)


@FAST
@given(st.binary(max_size=200) | json_values.map(dumps))
def test_any_bytes_decode_or_raise_response_decode_error(body: bytes) -> None:
    """Whatever the body, the decoder returns an action or raises ResponseDecodeError only."""
    outcome = _outcome(decode_async_action, body)
    assert isinstance(outcome, AsyncAction | ResponseDecodeError)


_required = st.fixed_dictionaries(
    {"id": json_values, "type": json_values, "status": json_values},
    optional={"result": json_values, "progress": json_values, "created_at": json_values},
)


@FAST
@given(_required)
def test_any_json_object_structures_or_raises_response_decode_error(payload: Any) -> None:
    """Random values in the well-known keys: an action or a ResponseDecodeError, nothing else."""
    outcome = _outcome(structure_async_action, payload)
    if isinstance(outcome, ResponseDecodeError):
        assert outcome.path is not None
        assert outcome.path.startswith("$")
    else:
        assert isinstance(outcome.id, str)
        assert converter.unstructure(outcome) == payload


_slow_action = _hooks._make_slow_structure(AsyncAction, _hooks._field_table(AsyncAction))


@FAST
@given(actions(extra_keys=True, nulls=True, singular_objects=True))
def test_fast_and_slow_paths_agree(payload: dict[str, Any]) -> None:
    """The generated fast path builds exactly what the generic slow path builds."""
    fast = converter.structure(payload, AsyncAction)
    slow = _slow_action(payload)
    assert fast == slow
    assert converter.unstructure(fast) == converter.unstructure(slow) == payload


def test_hypothesis_profile_is_reproducible_in_ci() -> None:
    """Under CI the examples are derandomized; everywhere, no example fails by time."""
    import os

    import _hypothesis_profiles

    active = settings.default
    assert active.deadline is None
    if os.environ.get("HYPOTHESIS_PROFILE") is None:
        assert ("ci" if os.environ.get("CI") else "explore") == _hypothesis_profiles.PROFILE
    if _hypothesis_profiles.PROFILE == "ci":
        assert active.derandomize is True and active.database is None
        assert active.print_blob is True
    # The module-level settings of the property tests inherit the profile.
    assert FAST.derandomize == active.derandomize
