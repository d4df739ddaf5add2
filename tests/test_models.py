"""The models: enums, AsyncAction and its properties, result classes, the import wall."""

from __future__ import annotations

import ast
import enum
import json
import pickle
from pathlib import Path
from typing import Any

import attrs
import pytest
from _seed import action_schema, examples, type_names

import voucherify_async
from voucherify_async import (
    AsyncAction,
    AsyncActionList,
    AsyncActionResult,
    AsyncActionStatus,
    AsyncActionType,
    MetadataKeyPurgeResult,
    OperationStatus,
    UnknownResult,
    VoucherImportFailure,
    VouchersImportResult,
    _results,
    converter,
    decode_async_action,
    result_type_for,
)

PACKAGE = Path(voucherify_async.__file__).parent


def _action(**fields: Any) -> AsyncAction:
    fields.setdefault("id", "aa_1")
    fields.setdefault("type", AsyncActionType.VOUCHERS_IMPORT)
    fields.setdefault("status", AsyncActionStatus.DONE)
    return AsyncAction(**fields)


# --- enums ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum_cls", "prop"),
    [
        (AsyncActionStatus, "status"),
        (OperationStatus, "operation_status"),
        (AsyncActionType, "type"),
    ],
)
def test_enums_match_the_schema(enum_cls: type[enum.StrEnum], prop: str) -> None:
    """Each enum holds exactly the values the seed's schema lists, as a StrEnum."""
    assert issubclass(enum_cls, enum.StrEnum)
    assert [member.value for member in enum_cls] == action_schema()["properties"][prop]["enum"]


def test_enum_members_are_strings() -> None:
    """Members compare equal to, and print as, their API value."""
    assert AsyncActionStatus.DONE == "DONE"
    assert str(AsyncActionType.CAMPAIGN_VOUCHERS_IMPORT_CSV) == "CAMPAIGN.VOUCHERS_IMPORT_CSV"
    assert f"{OperationStatus.FAILED}" == "FAILED"
    assert len(AsyncActionType) == 22 == len(type_names())


# --- AsyncAction ----------------------------------------------------------------------------


def test_async_action_is_frozen_with_slots() -> None:
    """An AsyncAction cannot be changed and has no instance dict."""
    action = _action()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        action.status = AsyncActionStatus.FAILED  # type: ignore[misc]
    assert not hasattr(action, "__dict__")


def test_async_action_defaults() -> None:
    """Everything but id, type and status is optional; extra is an empty mapping."""
    action = _action()
    assert action.result is None
    assert action.operation_status is None
    assert action.created_at is None
    assert action.object == "async_action"
    assert action.extra == {}
    with pytest.raises(TypeError):
        AsyncAction(id="aa_1", type="X")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        AsyncAction("aa_1", "X", "DONE")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("status", "operation_status", "terminal", "failed"),
    [
        (AsyncActionStatus.ENQUEUED, None, False, False),
        (AsyncActionStatus.IN_PROGRESS, None, False, False),
        (AsyncActionStatus.DONE, None, True, False),
        (AsyncActionStatus.DONE, OperationStatus.SUCCESS, True, False),
        (AsyncActionStatus.DONE, OperationStatus.UNKNOWN, True, False),
        (AsyncActionStatus.DONE, OperationStatus.FAILED, True, True),
        (AsyncActionStatus.FAILED, None, True, True),
        (AsyncActionStatus.FAILED, OperationStatus.SUCCESS, True, True),
        (AsyncActionStatus.IN_PROGRESS, OperationStatus.FAILED, False, False),
        ("PAUSED", None, False, False),
        ("PAUSED", OperationStatus.FAILED, False, False),
        ("DONE", "FAILED", True, True),
        ("DONE", "PARTIAL", True, False),
    ],
)
def test_is_terminal_and_is_failed(
    status: str, operation_status: str | None, terminal: bool, failed: bool
) -> None:
    """DONE and FAILED are terminal, an unknown status is not; FAILED or DONE+FAILED failed."""
    action = _action(status=status, operation_status=operation_status)
    assert action.is_terminal is terminal
    assert action.is_failed is failed


def test_partial_failures_are_not_a_failed_action() -> None:
    """A DONE import with failed rows is not failed: the failures are in the result."""
    action = converter.structure(examples()["VOUCHERS.IMPORT"], AsyncAction)
    assert action.result.failed_count == 3
    assert action.is_terminal
    assert not action.is_failed


def test_presence_tracking_is_not_part_of_equality_or_repr() -> None:
    """An explicit null and an absent key decode to equal actions; repr shows no bookkeeping."""
    absent = converter.structure({"id": "aa_1", "type": "X", "status": "DONE"}, AsyncAction)
    null = converter.structure(
        {"id": "aa_1", "type": "X", "status": "DONE", "request_id": None}, AsyncAction
    )
    assert absent == null
    assert hash(absent) == hash(null) == hash(_action(type="X"))
    assert "present" not in repr(null)
    assert converter.unstructure(null) != converter.unstructure(absent)


def test_repr_shows_unknown_keys() -> None:
    """The repr shows ``extra`` as a plain dict."""
    action = converter.structure(
        {"id": "aa_1", "type": "X", "status": "DONE", "log_id": "l_1"}, AsyncAction
    )
    assert "extra={'log_id': 'l_1'}" in repr(action)
    assert "extra={}" in repr(_action())


def test_evolve_writes_new_values_back() -> None:
    """A field set with attrs.evolve is written by unstructure even if the payload lacked it."""
    action = converter.structure(
        {"id": "aa_1", "type": "X", "status": "DONE", "request_id": None}, AsyncAction
    )
    changed = attrs.evolve(action, progress=50, object="other")
    assert converter.unstructure(changed) == {
        "id": "aa_1",
        "type": "X",
        "status": "DONE",
        "request_id": None,
        "progress": 50,
        "object": "other",
    }


def test_async_action_list() -> None:
    """A page holds actions and has_more; it defaults to no more pages."""
    page = AsyncActionList(async_actions=[_action()])
    assert page.has_more is False
    assert page.async_actions[0].id == "aa_1"
    assert (page.object, page.data_ref) == ("list", "async_actions")


# --- results --------------------------------------------------------------------------------


def _model_classes() -> list[type]:
    classes = [getattr(_results, name) for name in _results.__all__]
    # The bases AsyncActionResult and BulkUpdateError declare no fields; UnknownResult is raw.
    return [cls for cls in classes if attrs.fields(cls) and cls is not UnknownResult]


@pytest.mark.parametrize("cls", _model_classes(), ids=lambda cls: cls.__name__)
def test_result_and_item_classes(cls: type[Any]) -> None:
    """Every result and item class is frozen, keyword-only, all-optional, with ``extra``."""
    instance = cls()
    assert instance.extra == {}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        instance.extra = {}
    public = [f for f in attrs.fields(cls) if not f.name.startswith("_") and f.name != "extra"]
    assert all(f.default is None and f.kw_only for f in public)
    assert cls.__doc__


def test_purge_results_share_a_base() -> None:
    """The five metadata key purges are distinct classes with a common base."""
    purges = [name for name in type_names() if name.endswith("METADATA_KEY_PURGE")]
    classes = {result_type_for(name) for name in purges}
    assert len(classes) == 5
    assert all(issubclass(cls, MetadataKeyPurgeResult) for cls in classes)


def test_result_equality_ignores_wire_form() -> None:
    """A failed given as one object equals the same failure given as a list."""
    single = converter.structure({"failed": {"code": "A"}}, VouchersImportResult)
    listed = converter.structure({"failed": [{"code": "A"}]}, VouchersImportResult)
    assert single == listed == VouchersImportResult(failed=[VoucherImportFailure(code="A")])
    assert converter.unstructure(single) == {"failed": {"code": "A"}}
    assert converter.unstructure(listed) == {"failed": [{"code": "A"}]}


def test_unknown_result_is_not_a_typed_result() -> None:
    """UnknownResult holds the raw JSON and is no AsyncActionResult."""
    unknown = UnknownResult(raw={"a": 1})
    assert not isinstance(unknown, AsyncActionResult)
    assert converter.unstructure(unknown) == {"a": 1}
    assert converter.structure({"a": 1}, UnknownResult) == unknown


# --- the package surface --------------------------------------------------------------------

DATA_NAMES = {
    "AsyncAction",
    "AsyncActionList",
    "AsyncActionStatus",
    "AsyncActionType",
    "OperationStatus",
    "UnknownResult",
    "converter",
    "register_result_type",
    "result_type_for",
    *_results.__all__,
}


def test_all_is_sorted_and_exports_the_data_layer() -> None:
    """``__all__`` is sorted and names every public model, result and item class."""
    assert voucherify_async.__all__ == sorted(voucherify_async.__all__)
    assert set(voucherify_async.__all__) >= DATA_NAMES
    for name in DATA_NAMES:
        assert getattr(voucherify_async, name) is not None


DATA_MODULES = ["_models", "_results", "_registry", "_converter", "_hooks", "_json", "_errors"]


@pytest.mark.parametrize("module", DATA_MODULES)
def test_data_layer_imports_no_aiohttp(module: str) -> None:
    """Models, registry, converter and errors import neither aiohttp nor the client modules."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [("." * node.level) + (node.module or "")]
        else:
            continue
        for name in names:
            assert not name.startswith("aiohttp"), (module, name)
            if name.startswith("."):
                assert name.lstrip(".") in DATA_MODULES or name == ".", (module, name)


def test_models_pickle() -> None:
    """Decoded actions (with extras, nulls and results) survive pickling, as errors need."""
    payload = {**examples()["ORDERS.IMPORT"], "user": {"id": "u"}}
    action = converter.structure(payload, AsyncAction)
    again = pickle.loads(pickle.dumps(action))
    assert again == action
    assert converter.unstructure(again) == payload


def test_extra_is_read_only_and_owned() -> None:
    """``extra`` cannot be changed, and shares no container with the input or the output."""
    payload: dict[str, Any] = {"id": "aa_1", "type": "NEW", "status": "DONE"}
    payload.update(user={"id": "u"}, result={})
    action = converter.structure(payload, AsyncAction)
    with pytest.raises(TypeError):
        action.extra["user"] = None  # type: ignore[index]
    payload["user"]["id"] = "changed"
    payload["result"]["x"] = 1
    assert action.extra == {"user": {"id": "u"}}
    assert action.result == UnknownResult(raw={})
    out = converter.unstructure(action)
    out["user"]["id"] = "changed again"
    out["result"]["y"] = 2
    assert action.extra == {"user": {"id": "u"}}
    assert action.result == UnknownResult(raw={})


def test_str_is_one_line_and_repr_keeps_every_field() -> None:
    """print(action) gives one line (id, type, status, progress, counts); repr() stays full."""
    action = decode_async_action(
        json.dumps(
            {
                "id": "aa_1",
                "type": "VOUCHERS.IMPORT",
                "status": "DONE",
                "operation_status": "FAILED",
                "progress": 100,
                "created_at": "2024-01-01T00:00:00.000Z",
                "result": {"done_count": 2, "failed_count": 1, "message": "m"},
            }
        ).encode()
    )
    assert str(action) == "aa_1 VOUCHERS.IMPORT DONE (operation FAILED) 100% (done 2, failed 1)"
    assert "\n" not in str(action) and "datetime" not in str(action)
    assert "datetime.datetime(2024, 1, 1" in repr(action)
    running = decode_async_action(b'{"id": "aa_2", "type": "NEW.TYPE", "status": "IN_PROGRESS"}')
    assert str(running) == "aa_2 NEW.TYPE IN_PROGRESS"
    unknown = decode_async_action(
        b'{"id": "aa_3", "type": "NEW.TYPE", "status": "DONE", "progress": 100,'
        b' "result": {"done_count": 7}}'
    )
    assert str(unknown) == "aa_3 NEW.TYPE DONE 100% (done 7)"
