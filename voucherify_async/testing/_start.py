"""The emulator's endpoints that start async actions: imports, bulk and metadata updates,
deletions, voucher generation and the loyalty members batch.

Each reads its payload, counts its rows, checks each one the way the real API reports row
failures (a missing code or source_id, a duplicate), and plans a job of the matching type
whose duration grows with the number of rows and whose result reflects the payload. It
answers ``{"async_action_id": ...}`` with the status the real endpoint uses (200 or 202).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, cast

import attrs
from aiohttp import BodyPartReader, web

__all__ = ["ENDPOINTS", "BadPayload", "Endpoint", "Plan", "find_endpoint", "read_plan"]

#: The type the emulator gives the loyalty members batch: not among the 22 of the seed.
MEMBERS_BATCH_TYPE: Final = "LOYALTIES.MEMBERS_BATCH"

Kind = Literal["import", "csv", "bulk", "metadata", "generate", "delete", "members"]


@attrs.frozen
class Endpoint:
    """One endpoint that starts an action: how to match it and what job it plans."""

    method: str
    pattern: re.Pattern[str]
    type: str
    kind: Kind
    #: 200 or 202, as the real endpoint answers.
    status: int
    #: The key that identifies a row: ``code`` or ``source_id`` (``""``: none).
    id_key: str = ""
    #: What a row is, in result messages: ``voucher``, ``customer``...
    noun: str = ""


# method, path, job type, kind, answer status, the key of a row ("-": none).
_TABLE: Final = """
POST /v1/vouchers/import                       VOUCHERS.IMPORT              import   202 code
POST /v1/vouchers/importCSV                    VOUCHERS.IMPORT_CSV          csv      202 code
POST /v1/vouchers/bulk/async                   VOUCHERS.BULK_UPDATE         bulk     202 code
POST /v1/vouchers/metadata/async               VOUCHERS.METADATA_UPDATE     metadata 202 codes
POST /v1/campaigns/{id}/import                 CAMPAIGN.VOUCHERS_IMPORT     import   202 code
POST /v1/campaigns/{id}/importCSV              CAMPAIGN.VOUCHERS_IMPORT_CSV csv      200 code
POST /v1/campaigns/{id}/vouchers               CAMPAIGN.VOUCHERS_GENERATE   generate 202 -
DELETE /v1/campaigns/{id}                      CAMPAIGN.VOUCHERS_DELETE     delete   202 -
POST /v1/customers/importCSV                   CUSTOMERS.IMPORT_CSV         csv      202 source_id
POST /v1/customers/bulk/async                  CUSTOMERS.BULK_UPDATE        bulk     202 source_id
POST /v1/customers/metadata/async              CUSTOMERS.METADATA_UPDATE    metadata 202 source_ids
POST /v1/products/bulk/async                   PRODUCTS.BULK_UPDATE         bulk     202 source_id
POST /v1/products/metadata/async               PRODUCTS.METADATA_UPDATE     metadata 202 source_ids
POST /v1/products/importCSV                    PRODUCTS.IMPORT_CSV          csv      200 source_id
POST /v1/skus/importCSV                        SKUS.IMPORT_CSV              csv      200 source_id
POST /v1/orders/import                         ORDERS.IMPORT                import   200 source_id
DELETE /v1/loyalties/{id}                      CAMPAIGN.VOUCHERS_DELETE     delete   200 -
POST /v2/loyalties/programs/{id}/members/batch LOYALTIES.MEMBERS_BATCH      members  202 -
"""


_NOUNS: Final = {
    "VOUCHERS": "voucher",
    "CAMPAIGN": "voucher",
    "CUSTOMERS": "customer",
    "PRODUCTS": "product",
    "SKUS": "sku",
    "ORDERS": "order",
}


def _endpoints(table: str) -> tuple[Endpoint, ...]:
    endpoints = []
    for line in table.strip().splitlines():
        method, path, type, kind, status, id_key = line.split()
        pattern = re.compile(re.escape(path).replace(r"\{id\}", "[^/]+"))
        endpoints.append(
            Endpoint(
                method,
                pattern,
                type,
                cast(Kind, kind),
                int(status),
                "" if id_key == "-" else id_key,
                _NOUNS.get(type.split(".")[0], "row"),
            )
        )
    return tuple(endpoints)


#: Every endpoint that starts an action, with its job type and its answer's status.
ENDPOINTS: Final = _endpoints(_TABLE)


def find_endpoint(method: str, raw_path: str) -> Endpoint | None:
    """The endpoint *method* *raw_path* starts an action at, or None."""
    for endpoint in ENDPOINTS:
        if endpoint.method == method and endpoint.pattern.fullmatch(raw_path):
            return endpoint
    return None


class BadPayload(Exception):
    """The payload cannot start the action: the emulator answers 400 with this message."""

    def __init__(self, details: str, key: str = "invalid_payload", status: int = 400) -> None:
        self.details = details
        self.key = key
        self.status = status
        super().__init__(details)


@attrs.frozen
class Plan:
    """The job a start request plans: its size, outcome and result."""

    rows: int
    result: dict[str, Any]
    status: str = "DONE"
    operation_status: str | None = None
    #: An answer other than the async action id (a single voucher for a count of 1).
    answer: dict[str, Any] | None = None


_REPORTS: Final = ["{{voucherify-link-to-report}}"]


async def read_plan(endpoint: Endpoint, request: web.BaseRequest, max_bytes: int) -> Plan:
    """Read *request*'s payload (at most *max_bytes*) and plan its job; BadPayload if unusable."""
    if endpoint.kind == "csv":
        return _csv_plan(endpoint, await _read_csv(request, max_bytes))
    if endpoint.kind == "delete":
        return Plan(0, {"message": "Deleted 0 vouchers.", "done_count": 0})
    payload = await _read_json(request, max_bytes)
    if endpoint.kind == "generate":
        return _generate_plan(request, payload)
    if endpoint.kind == "metadata":
        return _metadata_plan(endpoint, payload)
    if not isinstance(payload, list) or not payload:
        raise BadPayload("The request body must be a non-empty array")
    if endpoint.kind == "bulk":
        return _bulk_plan(endpoint, payload)
    if endpoint.kind == "members":
        return _members_plan(payload)
    return _import_plan(endpoint, _row_failures(endpoint.id_key, payload, json_rows=True))


async def _read_json(request: web.BaseRequest, max_bytes: int) -> Any:
    data = await request.content.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadPayload("Request Entity Too Large", key="payload_too_large", status=413)
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise BadPayload("The request body is not valid JSON", key="invalid_json") from None


async def _read_csv(request: web.BaseRequest, max_bytes: int) -> str:
    if not request.content_type.startswith("multipart/"):
        raise BadPayload("Expected a multipart/form-data upload with a file field")
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            raise BadPayload("Missing the file field", key="missing_file")
        if isinstance(part, BodyPartReader) and part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > max_bytes:
                    raise BadPayload(
                        "Request Entity Too Large", key="payload_too_large", status=413
                    )
            try:
                return data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise BadPayload("The file is not UTF-8 text", key="invalid_csv") from None


def _row_failures(
    id_key: str, rows: list[Any], *, json_rows: bool
) -> tuple[int, list[dict[str, Any]]]:
    """(rows imported, one failure per failed row), rows numbered from 1."""
    seen: set[str] = set()
    failed: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        value = row.get(id_key) if isinstance(row, dict) else None
        failure: dict[str, Any] = {} if json_rows else {"row": number}
        if not isinstance(row, dict):
            failure["reason"] = "each row must be an object"
        elif not isinstance(value, str) or not value:
            failure[id_key] = value if isinstance(value, str) else None
            failure["reason"] = f"{id_key}: property is required"
        elif value in seen:
            failure[id_key] = value
            failure["reason"] = f"Duplicate {id_key} {value}"
        else:
            seen.add(value)
            continue
        failed.append(failure)
    return len(rows) - len(failed), failed


def _import_plan(endpoint: Endpoint, counts: tuple[int, list[dict[str, Any]]]) -> Plan:
    done, failed = counts
    message = f"{done} {endpoint.noun}(s) imported successfully, {len(failed)} failed."
    result = {"message": message, "failed": failed, "done_count": done, "failed_count": len(failed)}
    return Plan(done + len(failed), result)


def _csv_plan(endpoint: Endpoint, text: str) -> Plan:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise BadPayload("The CSV file is empty: it needs a header row", key="invalid_csv")
    columns = [name.strip().lower() for name in header]
    key = endpoint.id_key
    column = columns.index(key) if key in columns else None
    rows: list[Any] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are skipped, like the real import
        value = cells[column].strip() if column is not None and column < len(cells) else ""
        rows.append({key: value} if value else {})
    return _import_plan(endpoint, _row_failures(key, rows, json_rows=False))


def _bulk_plan(endpoint: Endpoint, rows: list[Any]) -> Plan:
    key = endpoint.id_key
    done, failed = _row_failures(key, rows, json_rows=True)
    errors = [
        {
            "message": "Invalid payload",
            "details": failure["reason"],
            "key": "invalid_payload",
            key: failure.get(key),
        }
        for failure in failed
    ]
    result = {
        "done_count": done,
        "failed_count": len(errors),
        "reports": list(_REPORTS),
        "errors": errors,
    }
    return Plan(len(rows), result, operation_status="SUCCESS" if done else "FAILED")


def _metadata_plan(endpoint: Endpoint, payload: Any) -> Plan:
    key = endpoint.id_key
    ids = payload.get(key) if isinstance(payload, dict) else None
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise BadPayload(f"Property .{key} must be a non-empty array of strings")
    if not isinstance(metadata, dict):
        raise BadPayload("Property .metadata must be an object")
    result = {
        "done_count": len(set(ids)),
        "failed_count": 0,
        "reports": list(_REPORTS),
        "errors": [],
    }
    return Plan(len(ids), result, operation_status="SUCCESS")


def _generate_plan(request: web.BaseRequest, payload: Any) -> Plan:
    text = request.query.get("vouchers_count", "1")
    # At most 18 digits: a count within 64 bits, whose job's duration stays a float.
    if not (text.isascii() and text.isdigit() and len(text) <= 18 and int(text) >= 1):
        raise BadPayload(
            "Property .vouchers_count must be a positive integer", key="invalid_query_params"
        )
    if payload is not None and not isinstance(payload, dict):
        raise BadPayload("The request body must be an object")
    count = int(text)
    if count == 1:  # the real API creates one voucher at once and answers with it
        voucher = {"object": "voucher", "code": "EMU-" + request.path.rsplit("/", 2)[-2]}
        return Plan(1, {}, answer={**(payload or {}), **voucher})
    return Plan(count, {"message": f"Generated {count} vouchers.", "done_count": count})


def _members_plan(rows: list[Any]) -> Plan:
    failed = [
        {"index": index, "reason": "customer: property is required"}
        for index, row in enumerate(rows)
        if not isinstance(row, dict) or not row.get("customer")
    ]
    done = len(rows) - len(failed)
    result = {"done_count": done, "failed_count": len(failed), "failed": failed}
    return Plan(len(rows), result)


#: Seconds a planned job lasts: a base plus a time per row (both on the job clock).
DurationRule = Callable[[int], float]


def linear_duration(base: float, per_row: float) -> DurationRule:
    """A duration of *base* seconds plus *per_row* seconds per row."""
    return lambda rows: base + per_row * rows


def error_fields(exc: BadPayload) -> Mapping[str, str]:
    """The error body's fields for a payload the emulator refused."""
    return {"key": exc.key, "message": "Invalid payload", "details": exc.details}
