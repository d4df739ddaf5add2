"""Every body the emulator serves validates against the seed's and Voucherify's own schemas."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voucherify_async.testing import ACTION_TYPES, Status, VoucherifyEmulator

DATA = Path(__file__).parent / "data"
AUTH = {"X-App-Id": "schema-app", "X-App-Token": "schema-token"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
BULK_TYPES = {t for t in ACTION_TYPES if t.endswith(("BULK_UPDATE", ".METADATA_UPDATE"))}
PHASES = ["ENQUEUED", "IN_PROGRESS", "DONE", "FAILED"]


def _one_of_as_any_of(node: Any) -> Any:
    """Read ``oneOf`` as ``anyOf``: the seed's result schemas overlap."""
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _one_of_as_any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_one_of_as_any_of(v) for v in node]
    return node


def _lenient(doc: dict[str, Any]) -> dict[str, Any]:
    """Accept both sides where the seed disagrees with itself (see FACTS.md)."""
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    for name in (
        "17_res_obj_get_async_action_result_vouchers_import",
        "17_res_obj_get_async_action_result_orders_import",
    ):
        failed = schemas[name]["properties"]["failed"]
        schemas[name]["properties"]["failed"] = {
            "anyOf": [failed, {"type": "array", "items": failed}]
        }
    orders = schemas["17_res_obj_get_async_action_result_orders_import"]["properties"]["failed"]
    orders["anyOf"][0]["properties"]["source_id"]["type"] = ["string", "null"]
    return doc


SEED = _one_of_as_any_of(json.loads((DATA / "seed_openapi.json").read_text()))
SPEC = _one_of_as_any_of(json.loads((DATA / "spec_async_actions.json").read_text()))
REGISTRY: Registry = Registry().with_resources(
    [
        ("urn:seed", Resource.from_contents(SEED, default_specification=DRAFT202012)),
        ("urn:spec", Resource.from_contents(SPEC, default_specification=DRAFT202012)),
        ("urn:lenient", Resource.from_contents(_lenient(SEED), default_specification=DRAFT202012)),
    ]
)
#: The result schema for each type: the seed titles each one with its type.
RESULT_SCHEMAS = {
    schema["title"]: name
    for name, schema in SEED["components"]["schemas"].items()
    if schema.get("title") in ACTION_TYPES
}


def validate(instance: Any, uri: str, name: str) -> None:
    """Validate *instance* against ``components.schemas[name]`` of the document at *uri*."""
    schema = {"$ref": f"{uri}#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(instance)


@pytest.fixture
async def session(voucherify_emulator: VoucherifyEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    """An authenticated HTTP session (closed before the emulator)."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=AUTH) as session:
        yield session


async def get(session: aiohttp.ClientSession, path: str, **params: str) -> tuple[int, Any]:
    """GET *path* and return the status and the decoded JSON body."""
    async with session.get(path, params=params) as response:
        return response.status, await response.json()


def schedule(emu: VoucherifyEmulator, action_type: str, phase: str) -> str:
    """Add an action of *action_type* and bring it to *phase* through the emulator's controls."""
    if phase == "ENQUEUED":
        return emu.add_action(action_type, duration=100.0, enqueued=50.0)
    if phase == "IN_PROGRESS":
        action_id = emu.add_action(action_type, duration=100.0, enqueued=1.0)
        emu.advance(40.0)
        return action_id
    action_id = emu.add_action(action_type, duration=100.0)
    emu.finish(action_id, phase)
    return action_id


def test_every_type_has_a_result_schema() -> None:
    """The seed titles a result schema for each of the 22 types."""
    assert sorted(RESULT_SCHEMAS) == sorted(ACTION_TYPES)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("action_type", ACTION_TYPES)
async def test_get_body_validates(
    voucherify_emulator: VoucherifyEmulator,
    session: aiohttp.ClientSession,
    action_type: str,
    phase: str,
) -> None:
    """A GET body validates against AsyncActionGetResponseBody and its type's result schema."""
    action_id = schedule(voucherify_emulator, action_type, phase)
    status, body = await get(session, f"/v1/async-actions/{action_id}")
    assert status == 200
    validate(body, "urn:seed", "AsyncActionGetResponseBody")
    validate(body, "urn:spec", "AsyncActionGetResponseBody")
    assert body["id"] == action_id
    assert body["type"] == action_type
    assert body["status"] == phase
    assert body["object"] == "async_action"
    assert TIMESTAMP.match(body["created_at"])
    assert TIMESTAMP.match(body["updated_at"])
    assert body["updated_at"] >= body["created_at"]
    assert re.fullmatch(r"v-[0-9a-f]{18}", body["request_id"])
    terminal = phase in ("DONE", "FAILED")
    assert ("result" in body) is terminal
    assert ("processing_time" in body) is terminal
    assert ("operation_status" in body) is (terminal and action_type in BULK_TYPES)
    if terminal:
        assert body["progress"] == 100
        validate(body["result"], "urn:lenient", RESULT_SCHEMAS[action_type])
        assert isinstance(body["processing_time"], int)
        if action_type in BULK_TYPES:
            assert body["operation_status"] == ("SUCCESS" if phase == "DONE" else "FAILED")
    elif phase == "ENQUEUED":
        assert body["progress"] == 0
    else:
        assert 0 < body["progress"] < 100


def test_default_results_follow_the_seed() -> None:
    """DONE results are the seed's example results; the misfiled example's type gets its own."""
    examples = json.loads((DATA / "seed_examples.json").read_text())
    with_defaults = VoucherifyEmulator()
    for key, example in examples.items():
        action_id = with_defaults.add_action(key, duration=0.0)
        result = with_defaults.action(action_id)["result"]
        if key == example["type"]:
            if "reports_available_till" in result:  # set from the completion time
                result["reports_available_till"] = example["result"]["reports_available_till"]
            assert result == example["result"], key
        else:  # CAMPAIGN.VOUCHERS_IMPORT_CSV: failed rows with code, row and reason
            assert key == "CAMPAIGN.VOUCHERS_IMPORT_CSV"
            assert result["failed"]
            assert all(set(row) == {"code", "row", "reason"} for row in result["failed"])


async def test_list_body_validates(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession
) -> None:
    """A list of every type in every phase validates against AsyncActionsListResponseBody."""
    for action_type in ACTION_TYPES:
        for phase in PHASES:
            schedule(voucherify_emulator, action_type, phase)
    status, body = await get(session, "/v1/async-actions", limit="100")
    assert status == 200
    validate(body, "urn:spec", "AsyncActionsListResponseBody")
    assert len(body["async_actions"]) == 88
    for item in body["async_actions"]:
        validate(item, "urn:spec", "AsyncActionBase")
        assert "result" not in item
    assert {item["status"] for item in body["async_actions"]} == set(PHASES)


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/v1/async-actions/aa_000000000000000000", {}, 404),
        ("/v1/vouchers", {}, 404),
        ("/v1/async-actions", {"limit": "0"}, 400),
        ("/v1/async-actions", {"end_date": "next tuesday"}, 400),
    ],
    ids=["unknown-id", "unknown-route", "bad-limit", "bad-date"],
)
async def test_error_bodies_validate(
    session: aiohttp.ClientSession, path: str, params: dict[str, str], expected: int
) -> None:
    """404 and 400 bodies validate against Error."""
    status, body = await get(session, path, **params)
    assert status == expected
    validate(body, "urn:seed", "Error")
    validate(body, "urn:spec", "Error")
    assert body["code"] == expected


async def test_401_body_validates(voucherify_emulator: VoucherifyEmulator) -> None:
    """A 401 body validates against Error."""
    async with (
        aiohttp.ClientSession(voucherify_emulator.base_url) as anonymous,
        anonymous.get("/v1/async-actions") as response,
    ):
        assert response.status == 401
        validate(await response.json(), "urn:spec", "Error")


@pytest.mark.voucherify_emulator(requests_per_minute=1)
async def test_429_body_validates(session: aiohttp.ClientSession) -> None:
    """The 429 of a spent budget validates against Error."""
    assert (await get(session, "/v1/async-actions"))[0] == 200
    status, body = await get(session, "/v1/async-actions")
    assert status == 429
    validate(body, "urn:spec", "Error")


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
async def test_injected_json_error_bodies_validate(
    voucherify_emulator: VoucherifyEmulator, session: aiohttp.ClientSession, status: int
) -> None:
    """The default JSON bodies of injected error statuses validate against Error."""
    voucherify_emulator.inject(Status(status))
    code, body = await get(session, "/v1/async-actions")
    assert code == status
    validate(body, "urn:spec", "Error")
    assert body["code"] == status
