"""The converter and the decoders: the seed's examples, leniency, strictness and errors."""

from __future__ import annotations

import copy
import importlib.util
import json
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from _seed import examples, list_example
from cattrs.errors import ClassValidationError

from voucherify_async import (
    AsyncAction,
    AsyncActionList,
    AsyncActionStatus,
    AsyncActionType,
    CampaignVouchersDeleteResult,
    CampaignVouchersGenerateResult,
    CampaignVouchersImportCsvResult,
    CampaignVouchersImportResult,
    CampaignVouchersUpdateResult,
    CustomerCsvImportFailure,
    CustomersBulkUpdateResult,
    CustomersImportCsvResult,
    MetadataKeyPurgeResult,
    MetadataUpdateResult,
    OperationStatus,
    OrderImportFailure,
    OrdersImportResult,
    ProductsImportCsvResult,
    ResponseDecodeError,
    SkusImportCsvResult,
    UnknownResult,
    VoucherCsvImportFailure,
    VoucherImportFailure,
    VouchersImportCsvResult,
    VouchersImportResult,
    _json,
    converter,
    result_type_for,
)
from voucherify_async._converter import (
    decode_async_action,
    decode_async_action_list,
    structure_async_action,
)

SEED = examples()


def _dig(obj: Any, path: str) -> Any:
    for part in path.replace("]", "").replace("[", ".").split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# --- the seed -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(SEED))
def test_seed_example_round_trips_exactly(key: str) -> None:
    """Every seed example structures and unstructures back to the very same dict."""
    payload = SEED[key]
    action = converter.structure(copy.deepcopy(payload), AsyncAction)
    assert converter.unstructure(action) == payload
    assert decode_async_action(_body(payload)) == action


@pytest.mark.parametrize("key", sorted(SEED))
def test_seed_example_result_is_the_registered_class(key: str) -> None:
    """The result of every seed example is an instance of the class registered for its type."""
    action = decode_async_action(_body(SEED[key]))
    assert isinstance(action.type, AsyncActionType)
    assert type(action.result) is result_type_for(action.type)
    assert action.status is AsyncActionStatus.DONE


@pytest.mark.parametrize("key", sorted(SEED))
def test_seed_example_top_level_fields(key: str) -> None:
    """Ids, timings and timestamps of every seed example decode to typed, UTC-aware values."""
    payload = SEED[key]
    action = decode_async_action(_body(payload))
    assert action.id == payload["id"]
    assert action.request_id == payload["request_id"]
    assert action.processing_time == payload["processing_time"]
    assert action.progress == 100
    assert action.object == "async_action"
    assert action.extra == {}
    for name in ("created_at", "updated_at"):
        value = getattr(action, name)
        assert value.tzinfo is UTC
        assert value == datetime.fromisoformat(payload[name])


EXPECTED: dict[str, tuple[type, dict[str, Any]]] = {
    "CAMPAIGN.VOUCHERS_IMPORT": (
        CampaignVouchersImportResult,
        {
            "done_count": 0,
            "failed_count": 3,
            "message": "0 voucher(s) imported successfully, 3 failed.",
            "failed[0].code": "CODE9",
            "failed[2].code": "CODE7",
            "failed[0].reason": (
                "unit: must be a number, property is required (actual value is 'EUR')"
            ),
        },
    ),
    "CAMPAIGN.VOUCHERS_IMPORT_CSV": (  # filed under this key, but a CUSTOMERS.IMPORT_CSV action
        CustomersImportCsvResult,
        {
            "done_count": 0,
            "failed_count": 2,
            "failed[0].source_id": "test-user@voucherify.io",
            "failed[0].row": 1,
            "failed[1].source_id": "",
            "failed[1].row": 2,
        },
    ),
    "CAMPAIGN.VOUCHERS_DELETE": (CampaignVouchersDeleteResult, {"done_count": 2}),
    "CAMPAIGN.VOUCHERS_UPDATE": (CampaignVouchersUpdateResult, {"done_count": 1}),
    "CAMPAIGN.VOUCHERS_GENERATE": (
        CampaignVouchersGenerateResult,
        {"done_count": 2, "message": "Generated 2 vouchers."},
    ),
    "CAMPAIGNS.METADATA_KEY_PURGE": (MetadataKeyPurgeResult, {"done_count": 0}),
    "CUSTOMERS.METADATA_KEY_PURGE": (MetadataKeyPurgeResult, {"done_count": 0}),
    "PRODUCTS.METADATA_KEY_PURGE": (MetadataKeyPurgeResult, {"done_count": 2}),
    "VOUCHERS.METADATA_KEY_PURGE": (MetadataKeyPurgeResult, {"done_count": 9}),
    "ORDERS.METADATA_KEY_PURGE": (
        MetadataKeyPurgeResult,
        {"done_count": 1, "message": "Updated 1 orders."},
    ),
    "CUSTOMERS.IMPORT_CSV": (CustomersImportCsvResult, {"failed[1].row": 2}),
    "CUSTOMERS.BULK_UPDATE": (CustomersBulkUpdateResult, {"done_count": 3, "failed_count": 0}),
    "VOUCHERS.IMPORT": (
        VouchersImportResult,
        {"failed_count": 3, "failed[2].code": "GIFT-CARD-100-1"},
    ),
    "VOUCHERS.IMPORT_CSV": (
        VouchersImportCsvResult,
        {
            "failed[0].code": "FALL2023",
            "failed[0].row": 1,
            "failed[0].reason": "Voucher Type is required",
            "failed[1].code": "FALL2024",
            "failed[1].row": 2,
        },
    ),
    "SKUS.IMPORT_CSV": (SkusImportCsvResult, {"done_count": 4, "failed_count": 0, "failed": []}),
    "PRODUCTS.IMPORT_CSV": (
        ProductsImportCsvResult,
        {"done_count": 1, "failed[0].row": 1, "failed[0].source_id": None},
    ),
    "ORDERS.IMPORT": (
        OrdersImportResult,
        {"done_count": 1, "failed[0].source_id": None, "failed[0].reason": "Internal error"},
    ),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_seed_example_result_values(key: str) -> None:
    """Counts and the failed rows of the seed's results come out typed and exact."""
    cls, values = EXPECTED[key]
    result = decode_async_action(_body(SEED[key])).result
    assert isinstance(result, cls)
    for path, expected in values.items():
        assert _dig(result, path) == expected, path


@pytest.mark.parametrize(
    "key",
    [
        "CUSTOMERS.BULK_UPDATE",
        "PRODUCTS.BULK_UPDATE",
        "VOUCHERS.BULK_UPDATE",
        "CUSTOMERS.METADATA_UPDATE",
        "PRODUCTS.METADATA_UPDATE",
        "VOUCHERS.METADATA_UPDATE",
    ],
)
def test_bulk_and_metadata_updates(key: str) -> None:
    """Bulk and metadata updates give counts, the report placeholder, a UTC deadline, errors."""
    action = decode_async_action(_body(SEED[key]))
    assert action.operation_status is OperationStatus.SUCCESS
    result = action.result
    assert (result.done_count, result.failed_count) == (3, 0)
    assert result.reports == ["{{voucherify-link-to-report}}"]
    assert result.reports_available_till == datetime(2024, 11, 6, 8, 26, 13, 304000, tzinfo=UTC)
    assert result.errors == []
    if "METADATA_UPDATE" in key:
        assert isinstance(result, MetadataUpdateResult)


def test_failure_items_are_typed() -> None:
    """Failed rows are item classes with their schema's fields."""
    csv = decode_async_action(_body(SEED["VOUCHERS.IMPORT_CSV"])).result
    assert csv.failed[0] == VoucherCsvImportFailure(
        code="FALL2023", row=1, reason="Voucher Type is required"
    )
    imported = decode_async_action(_body(SEED["VOUCHERS.IMPORT"])).result
    assert all(type(item) is VoucherImportFailure for item in imported.failed)
    customers = decode_async_action(_body(SEED["CUSTOMERS.IMPORT_CSV"])).result
    assert type(customers.failed[0]) is CustomerCsvImportFailure
    orders = decode_async_action(_body(SEED["ORDERS.IMPORT"])).result
    assert orders.failed == [OrderImportFailure(source_id=None, reason="Internal error")]


def test_campaign_vouchers_import_csv_follows_its_schema() -> None:
    """A real CAMPAIGN.VOUCHERS_IMPORT_CSV action gets code/row/reason failures."""
    payload = {
        "id": "aa_1",
        "type": "CAMPAIGN.VOUCHERS_IMPORT_CSV",
        "status": "DONE",
        "result": {
            "message": "1 voucher(s) imported successfully, 1 failed.",
            "failed": [{"code": "X1", "row": 3, "reason": "duplicate"}],
            "done_count": 1,
            "failed_count": 1,
        },
    }
    action = decode_async_action(_body(payload))
    assert isinstance(action.result, CampaignVouchersImportCsvResult)
    assert action.result.failed == [VoucherCsvImportFailure(code="X1", row=3, reason="duplicate")]
    assert converter.unstructure(action) == payload


def test_explicit_null_round_trips() -> None:
    """ORDERS.IMPORT's ``"source_id": null`` is written back as null, not dropped."""
    payload = SEED["ORDERS.IMPORT"]
    again = converter.unstructure(decode_async_action(_body(payload)))
    assert again["result"]["failed"][0] == {"source_id": None, "reason": "Internal error"}


# --- lenient about presence ---------------------------------------------------------------


def test_minimal_action() -> None:
    """Only id, type and status: everything else is None, and nothing is added back."""
    payload = {"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "ENQUEUED"}
    action = decode_async_action(_body(payload))
    assert action.result is None
    assert action.created_at is None
    assert action.progress is None
    assert action.object == "async_action"
    assert converter.unstructure(action) == payload


def test_extra_keys_survive_at_every_level() -> None:
    """Unknown keys are kept in ``extra`` of the action, result and items, and written back."""
    payload = copy.deepcopy(SEED["VOUCHERS.IMPORT_CSV"])
    payload["user"] = {"id": "user_1", "email": "a@b.c"}
    payload["log_id"] = "log_1"
    payload["result"]["batch"] = 7
    payload["result"]["failed"][0]["hint"] = None
    action = decode_async_action(_body(payload))
    assert action.extra == {"user": {"id": "user_1", "email": "a@b.c"}, "log_id": "log_1"}
    assert action.result.extra == {"batch": 7}
    assert action.result.failed[0].extra == {"hint": None}
    assert action.result.failed[1].extra == {}
    assert converter.unstructure(action) == payload


def test_a_key_named_extra_is_just_an_unknown_key() -> None:
    """A payload key called ``extra`` lands in ``extra`` like any unknown key."""
    payload = {"id": "aa_1", "type": "X", "status": "DONE", "extra": 1}
    action = decode_async_action(_body(payload))
    assert action.extra == {"extra": 1}
    assert converter.unstructure(action) == payload


def test_unknown_enum_values_stay_strings() -> None:
    """A new type, status or operation status decodes as a plain string."""
    payload = {
        "id": "aa_1",
        "type": "LOYALTIES.MEMBERS_IMPORT",
        "status": "PAUSED",
        "operation_status": "PARTIAL",
        "result": {"imported": 3, "nested": [1, {"a": None}]},
    }
    action = decode_async_action(_body(payload))
    for name in ("type", "status", "operation_status"):
        value = getattr(action, name)
        assert type(value) is str
        assert value == payload[name]
    assert action.result == UnknownResult(raw=payload["result"])
    assert not action.is_terminal
    assert converter.unstructure(action) == payload


def test_unknown_type_with_a_non_object_result() -> None:
    """For an unknown type any JSON result is kept as it came."""
    payload = {"id": "aa_1", "type": "NEW.TYPE", "status": "DONE", "result": ["a", 1]}
    action = decode_async_action(_body(payload))
    assert action.result == UnknownResult(raw=["a", 1])
    assert converter.unstructure(action) == payload


@pytest.mark.parametrize("type_name", ["VOUCHERS.IMPORT", "ORDERS.IMPORT", "SKUS.IMPORT_CSV"])
def test_failed_as_one_object(type_name: str) -> None:
    """``failed`` sent as one object becomes a one-item list, and is written back as an object."""
    item = (
        {"source_id": "o_1", "reason": "bad"} if type_name == "ORDERS.IMPORT" else {"reason": "r"}
    )
    payload = {"id": "aa_1", "type": type_name, "status": "DONE", "result": {"failed": item}}
    action = decode_async_action(_body(payload))
    assert isinstance(action.result.failed, list)
    assert len(action.result.failed) == 1
    assert action.result.failed[0].reason == item["reason"]
    assert converter.unstructure(action) == payload


def test_failed_as_a_one_item_list_stays_a_list() -> None:
    """Only the object form is written back as an object."""
    payload = {
        "id": "aa_1",
        "type": "VOUCHERS.IMPORT",
        "status": "DONE",
        "result": {"failed": [{"code": "A", "reason": "r"}]},
    }
    assert converter.unstructure(decode_async_action(_body(payload))) == payload


def test_nulls_where_strings_were_declared() -> None:
    """``null`` for an optional string, datetime or result is None, and written back."""
    payload = {
        "id": "aa_1",
        "type": "CAMPAIGN.VOUCHERS_DELETE",
        "status": "IN_PROGRESS",
        "request_id": None,
        "created_at": None,
        "operation_status": None,
        "object": None,
        "result": {"message": None, "done_count": 2},
    }
    action = decode_async_action(_body(payload))
    assert action.request_id is None
    assert action.object is None
    assert action.result.message is None
    assert converter.unstructure(action) == payload


def test_result_null_and_absent() -> None:
    """A missing result stays absent; ``"result": null`` stays null."""
    absent = {"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "IN_PROGRESS", "progress": 40}
    action = decode_async_action(_body(absent))
    assert action.result is None
    assert "result" not in converter.unstructure(action)
    null = {**absent, "result": None}
    action = decode_async_action(_body(null))
    assert action.result is None
    assert converter.unstructure(action) == null


def test_metadata_update_beyond_its_schema() -> None:
    """Metadata updates carry typed counts and reports beyond the schema's ``errors``."""
    payload = copy.deepcopy(SEED["VOUCHERS.METADATA_UPDATE"])
    payload["result"]["errors"] = [{"message": "m", "details": "d", "key": "k", "code": "V1"}]
    action = decode_async_action(_body(payload))
    error = action.result.errors[0]
    assert (error.message, error.details, error.key) == ("m", "d", "k")
    assert error.extra == {"code": "V1"}
    assert converter.unstructure(action) == payload


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-20T07:23:43.289Z", datetime(2023, 1, 20, 7, 23, 43, 289000, tzinfo=UTC)),
        ("2023-01-20T07:23:43.289+00:00", datetime(2023, 1, 20, 7, 23, 43, 289000, tzinfo=UTC)),
        ("2023-01-20T09:23:43.289+02:00", datetime(2023, 1, 20, 7, 23, 43, 289000, tzinfo=UTC)),
        ("2023-01-20T07:23:43Z", datetime(2023, 1, 20, 7, 23, 43, tzinfo=UTC)),
        ("2023-01-20T07:23:43.289123Z", datetime(2023, 1, 20, 7, 23, 43, 289123, tzinfo=UTC)),
        ("2023-01-20T07:23:43", datetime(2023, 1, 20, 7, 23, 43, tzinfo=UTC)),
    ],
)
def test_datetime_forms(text: str, expected: datetime) -> None:
    """ISO-8601 forms decode to UTC-aware datetimes; unstructure writes milliseconds and Z."""
    payload = {"id": "aa_1", "type": "X", "status": "DONE", "created_at": text}
    action = decode_async_action(_body(payload))
    assert action.created_at == expected
    assert action.created_at.tzinfo is UTC
    written = converter.unstructure(action)["created_at"]
    assert written == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert written.endswith("Z")
    assert len(written) == len("2023-01-20T07:23:43.289Z")


def test_unstructure_a_hand_built_action() -> None:
    """A model built by hand unstructures to JSON: plain strings, Z datetimes, no Nones."""
    action = AsyncAction(
        id="aa_1",
        type=AsyncActionType.VOUCHERS_IMPORT,
        status=AsyncActionStatus.DONE,
        created_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        result=VouchersImportResult(done_count=1, failed=[VoucherImportFailure(code="A")]),
        extra={"log_id": "l"},
    )
    out = converter.unstructure(action)
    assert out == {
        "id": "aa_1",
        "type": "VOUCHERS.IMPORT",
        "status": "DONE",
        "created_at": "2024-05-01T12:00:00.123Z",
        "result": {"done_count": 1, "failed": [{"code": "A"}]},
        "object": "async_action",
        "log_id": "l",
    }
    assert type(out["type"]) is str
    assert type(out["status"]) is str
    again = converter.structure(out, AsyncAction)
    in_milliseconds = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert again == attrs.evolve(action, created_at=in_milliseconds)


# --- lists ----------------------------------------------------------------------------------


def test_list_page_from_the_spec() -> None:
    """The spec's list example decodes: items without result, has_more False when absent."""
    payload = list_example()
    page = decode_async_action_list(_body(payload))
    assert isinstance(page, AsyncActionList)
    assert [action.id for action in page.async_actions] == [
        "aa_0ba518c55290c6fd62",
        "aa_0ba50a7ff4d3574568",
    ]
    assert all(action.result is None for action in page.async_actions)
    assert page.async_actions[0].type is AsyncActionType.CUSTOMERS_BULK_UPDATE
    assert page.has_more is False
    assert (page.object, page.data_ref) == ("list", "async_actions")
    assert converter.unstructure(page) == payload


def test_list_page_with_has_more_and_extras() -> None:
    """``has_more`` and unknown keys of a page are kept."""
    payload = {**list_example(), "has_more": True, "total": 2}
    page = decode_async_action_list(_body(payload))
    assert page.has_more is True
    assert page.extra == {"total": 2}
    assert converter.unstructure(page) == payload


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p["async_actions"][1].update(status=5), "$.async_actions[1].status"),
        (lambda p: p.update(has_more="yes"), "$.has_more"),
        (lambda p: p.update(has_more=1), "$.has_more"),
        (lambda p: p.pop("async_actions"), "$.async_actions"),
        (lambda p: p.update(async_actions={}), "$.async_actions"),
        (lambda p: p["async_actions"][0].pop("id"), "$.async_actions[0].id"),
    ],
)
def test_list_page_errors_name_their_path(mutate: Any, path: str) -> None:
    """A bad page is a ResponseDecodeError naming the failing path."""
    payload = list_example()
    mutate(payload)
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action_list(_body(payload))
    assert info.value.path == path
    assert f"@ {path}" in str(info.value)


# --- strict about types -----------------------------------------------------------------


def _csv() -> dict[str, Any]:
    return copy.deepcopy(SEED["VOUCHERS.IMPORT_CSV"])


WRONG_TYPES = [
    ("many for a count", lambda p: p["result"].update(done_count="many"), "$.result.done_count"),
    ("bool for an int", lambda p: p["result"].update(failed_count=True), "$.result.failed_count"),
    ("float for an int", lambda p: p.update(progress=99.5), "$.progress"),
    ("numeric string", lambda p: p.update(processing_time="173"), "$.processing_time"),
    ("number for a string", lambda p: p.update(request_id=5), "$.request_id"),
    ("bool for a string", lambda p: p["result"].update(message=False), "$.result.message"),
    ("list for an object", lambda p: p.update(result=[]), "$.result"),
    ("string for an object", lambda p: p.update(result="done"), "$.result"),
    ("item row", lambda p: p["result"]["failed"][1].update(row="2"), "$.result.failed[1].row"),
    (
        "item not an object",
        lambda p: p["result"]["failed"].__setitem__(0, "x"),
        "$.result.failed[0]",
    ),
    ("null item", lambda p: p["result"]["failed"].__setitem__(0, None), "$.result.failed[0]"),
    ("failed a string", lambda p: p["result"].update(failed="none"), "$.result.failed"),
    ("number for a type", lambda p: p.update(type=17), "$.type"),
    ("null status", lambda p: p.update(status=None), "$.status"),
    ("list for a status", lambda p: p.update(status=["DONE"]), "$.status"),
    (
        "object for an operation status",
        lambda p: p.update(operation_status={}),
        "$.operation_status",
    ),
    ("number for a datetime", lambda p: p.update(created_at=1674199447), "$.created_at"),
    ("garbage datetime", lambda p: p.update(updated_at="yesterday"), "$.updated_at"),
    ("null id", lambda p: p.update(id=None), "$.id"),
    ("missing id", lambda p: p.pop("id"), "$.id"),
    ("missing type", lambda p: p.pop("type"), "$.type"),
    ("missing status", lambda p: p.pop("status"), "$.status"),
]


@pytest.mark.parametrize(
    ("mutate", "path"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES]
)
def test_wrong_types_are_errors_naming_their_path(mutate: Any, path: str) -> None:
    """A value of the wrong type is never coerced: a ResponseDecodeError names its path."""
    payload = _csv()
    mutate(payload)
    body = _body(payload)
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(body, status=200)
    error = info.value
    assert error.path == path
    assert f"@ {path}" in str(error)
    assert error.status == 200
    assert error.body == body.decode()
    with pytest.raises(ResponseDecodeError) as again:
        structure_async_action(payload)
    assert again.value.path == path
    with pytest.raises(ClassValidationError):
        converter.structure(payload, AsyncAction)


def test_wrong_type_in_a_single_object_failed() -> None:
    """In the one-object form of ``failed`` the path has no index."""
    payload = {
        "id": "aa_1",
        "type": "VOUCHERS.IMPORT",
        "status": "DONE",
        "result": {"failed": {"code": 5}},
    }
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(_body(payload))
    assert info.value.path == "$.result.failed.code"


def test_message_says_what_came() -> None:
    """The message says what was expected and what came instead."""
    payload = _csv()
    payload["result"]["done_count"] = "many"
    with pytest.raises(
        ResponseDecodeError, match=r"expected integer, got string 'many' @ \$\.result\.done_count"
    ):
        decode_async_action(_body(payload))


def test_every_error_is_listed_up_to_a_limit() -> None:
    """Several bad values are all reported (the first gives ``.path``), then "... and N more"."""
    payload = _csv()
    payload["result"]["done_count"] = "x"
    payload["progress"] = "x"
    payload["result"]["failed"] = [{"row": "r"}] * 8
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(_body(payload))
    message = str(info.value)
    assert info.value.path is not None
    assert "$.progress" in message
    assert "... and 5 more" in message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b'{"id": "\xff\xfe"}', "not valid UTF-8"),
        (b"NaN", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'"DONE"', "expected a JSON object, got string"),
        (b"null", "expected a JSON object, got null"),
        (b"42", "expected a JSON object, got number"),
    ],
)
def test_bodies_that_are_not_an_action(body: bytes, fragment: str) -> None:
    """Not JSON, not UTF-8 or not an object: a ResponseDecodeError, never a bare ValueError."""
    with pytest.raises(ResponseDecodeError, match=fragment) as info:
        decode_async_action(body, status=202)
    assert info.value.status == 202
    assert info.value.body == body.decode("utf-8", "replace")
    with pytest.raises(ResponseDecodeError):
        decode_async_action_list(body)


def test_long_body_is_truncated_in_the_error() -> None:
    """The error keeps the start of a long body, not all of it."""
    body = b"x" * 10_000
    with pytest.raises(ResponseDecodeError) as info:
        decode_async_action(body)
    assert len(info.value.body) < 2_100
    assert info.value.body.startswith("xxxx")


def test_structure_async_action_keeps_the_payload_in_the_error() -> None:
    """structure_async_action re-serializes the payload into the error's body."""
    with pytest.raises(ResponseDecodeError) as info:
        structure_async_action({"id": "aa_1", "type": "X"})
    assert info.value.path == "$.status"
    assert '"aa_1"' in info.value.body
    with pytest.raises(ResponseDecodeError) as top:
        structure_async_action(["not", "a", "dict"])
    assert top.value.path == "$"


def test_structure_async_action_accepts_any_mapping() -> None:
    """A read-only mapping works as well as a dict."""
    from types import MappingProxyType

    action = structure_async_action(MappingProxyType(SEED["SKUS.IMPORT_CSV"]))
    assert action == decode_async_action(_body(SEED["SKUS.IMPORT_CSV"]))


# --- JSON backends ----------------------------------------------------------------------


def test_orjson_is_used_when_installed() -> None:
    """orjson is the backend when importable (the ``speed`` extra), the stdlib otherwise."""
    expected = "orjson" if importlib.util.find_spec("orjson") is not None else "json"
    assert expected == _json.BACKEND


@pytest.mark.parametrize("loads", [_json.loads, _json.stdlib_loads], ids=["default", "stdlib"])
def test_json_backends_agree(loads: Any) -> None:
    """Both backends parse the seed alike and reject NaN and invalid UTF-8 with ValueError."""
    for payload in SEED.values():
        assert loads(_json.dumps(payload)) == payload
        assert loads(_json.stdlib_dumps(payload)) == payload
    with pytest.raises(ValueError):
        loads(b"NaN")
    with pytest.raises(ValueError):
        loads(b'"\xff"')


def test_stdlib_dumps_is_compact_utf8() -> None:
    """The stdlib backend writes compact UTF-8 like orjson."""
    assert _json.stdlib_dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
