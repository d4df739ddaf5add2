"""The type -> result class registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from _seed import result_schemas, type_names

import voucherify_async
from voucherify_async import (
    AsyncActionResult,
    AsyncActionType,
    CampaignVouchersImportCsvResult,
    ResponseDecodeError,
    UnknownResult,
    VoucherCsvImportFailure,
    VouchersImportResult,
    converter,
    register_result_type,
    result_type_for,
)
from voucherify_async._converter import decode_async_action
from voucherify_async._registry import _RESULT_TYPES


@pytest.fixture(autouse=True)
def _restore_registry() -> Iterator[None]:
    """Every test leaves the registry as it found it."""
    saved = dict(_RESULT_TYPES)
    yield
    _RESULT_TYPES.clear()
    _RESULT_TYPES.update(saved)


@attrs.frozen
class LoyaltyImport:
    """A user's own result class for a type the library does not know."""

    imported: int
    members: list[str] = attrs.field(factory=list)


def _action(type_name: str, result: Any) -> bytes:
    return json.dumps(
        {"id": "aa_1", "type": type_name, "status": "DONE", "result": result}
    ).encode()


def test_the_22_seed_types_are_registered() -> None:
    """Each of the enum's 22 types maps to its own class, none to UnknownResult."""
    assert [member.value for member in AsyncActionType] == type_names()
    classes = [result_type_for(name) for name in type_names()]
    assert len(set(classes)) == 22
    assert all(issubclass(cls, AsyncActionResult) for cls in classes)


@pytest.mark.parametrize("type_name", type_names())
def test_each_class_declares_its_schema_properties(type_name: str) -> None:
    """Every property of a type's result schema is a field of its class."""
    cls = result_type_for(type_name)
    fields = attrs.fields_dict(cls)
    for name in result_schemas()[type_name].get("properties", {}):
        assert name in fields, (type_name, name)
    assert "extra" in fields


def test_campaign_vouchers_import_csv_has_its_own_class() -> None:
    """CAMPAIGN.VOUCHERS_IMPORT_CSV decodes code/row/reason failures, per its schema."""
    assert result_type_for("CAMPAIGN.VOUCHERS_IMPORT_CSV") is CampaignVouchersImportCsvResult
    assert set(attrs.fields_dict(VoucherCsvImportFailure)) >= {"code", "row", "reason"}


def test_unknown_names_give_unknown_result() -> None:
    """A type nobody registered reads as UnknownResult."""
    assert result_type_for("LOYALTIES.MEMBERS_IMPORT") is UnknownResult
    assert result_type_for("") is UnknownResult


def test_enum_members_and_strings_look_up_alike() -> None:
    """An AsyncActionType member and its string find the same class."""
    assert result_type_for(AsyncActionType.VOUCHERS_IMPORT) is VouchersImportResult
    assert result_type_for("VOUCHERS.IMPORT") is VouchersImportResult


def test_register_a_new_type_takes_effect_at_once() -> None:
    """Registering a class for a new type changes how the next decode reads it."""
    body = _action("LOYALTIES.MEMBERS_IMPORT", {"imported": 2, "members": ["a", "b"]})
    assert isinstance(decode_async_action(body).result, UnknownResult)
    register_result_type("LOYALTIES.MEMBERS_IMPORT", LoyaltyImport)
    assert result_type_for("LOYALTIES.MEMBERS_IMPORT") is LoyaltyImport
    action = decode_async_action(body)
    assert action.result == LoyaltyImport(imported=2, members=["a", "b"])
    assert converter.unstructure(action)["result"] == {"imported": 2, "members": ["a", "b"]}


def test_register_replaces_a_mapping() -> None:
    """Registering a known type again replaces its class."""
    body = _action("VOUCHERS.IMPORT", {"imported": 1})
    register_result_type(AsyncActionType.VOUCHERS_IMPORT, LoyaltyImport)
    assert result_type_for("VOUCHERS.IMPORT") is LoyaltyImport
    assert decode_async_action(body).result == LoyaltyImport(imported=1)


def test_registered_classes_are_decoded_strictly() -> None:
    """A user's attrs class gets the same strict, path-naming errors as the built-in ones."""
    register_result_type("LOYALTIES.MEMBERS_IMPORT", LoyaltyImport)
    for result, path in [
        ({"imported": "2"}, "$.result.imported"),
        ({"imported": True}, "$.result.imported"),
        ({"imported": 1, "members": [1]}, "$.result.members[0]"),
        ({}, "$.result.imported"),
    ]:
        with pytest.raises(ResponseDecodeError) as info:
            decode_async_action(_action("LOYALTIES.MEMBERS_IMPORT", result))
        assert info.value.path == path


def test_a_class_the_converter_cannot_build_is_a_decode_error() -> None:
    """A registered class with no hook fails decoding with ResponseDecodeError, not a crash."""

    class NotStructurable:
        def __init__(self, anything: object) -> None:
            self.anything = anything

    register_result_type("X.Y", NotStructurable)
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(_action("X.Y", {"a": 1}))
    assert info.value.path == "$.result"


@pytest.mark.parametrize(
    ("type_name", "cls", "error"),
    [
        (None, LoyaltyImport, TypeError),
        (5, LoyaltyImport, TypeError),
        ("", LoyaltyImport, ValueError),
        ("X.Y", LoyaltyImport(imported=1), TypeError),
        ("X.Y", "LoyaltyImport", TypeError),
    ],
)
def test_register_rejects_bad_arguments(type_name: Any, cls: Any, error: type[Exception]) -> None:
    """A type name must be a non-empty string and the class a class."""
    with pytest.raises(error):
        register_result_type(type_name, cls)


def test_registry_functions_are_public() -> None:
    """register_result_type and result_type_for are exported by the package."""
    assert voucherify_async.register_result_type is register_result_type
    assert voucherify_async.result_type_for is result_type_for
