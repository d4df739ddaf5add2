"""The emulator's start endpoints follow Voucherify's own OpenAPI description of them.

``data/spec_start_actions.json`` is the extract of Voucherify's OpenAPI file for the endpoints
that answer with an ``async_action_id``. Each is served, takes the spec's own example payload,
answers with the documented status, and its body validates against the documented schema.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voucherify_async.testing import VoucherifyEmulator

DATA = Path(__file__).parent / "data"
AUTH = {"X-App-Id": "start-app", "X-App-Token": "start-token"}
SPEC = json.loads((DATA / "spec_start_actions.json").read_text())
REGISTRY: Registry = Registry().with_resource(
    "urn:start", Resource.from_contents(SPEC, default_specification=DRAFT202012)
)

#: (method, path template) of every operation in the extract.
OPERATIONS = [
    (method.upper(), path)
    for path, ops in SPEC["paths"].items()
    for method in ops
    if method != "parameters"
]


def _answer_schema(method: str, path: str) -> tuple[int, dict[str, Any]]:
    """The status and schema of the answer that carries the async action id."""
    op = SPEC["paths"][path][method.lower()]
    for status, response in op["responses"].items():
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema and _has_action_id(schema):
            return int(status), schema
    raise AssertionError(f"{method} {path}: no answer with an async_action_id")


def _has_action_id(node: Any) -> bool:
    """Whether a schema (refs followed) declares an ``async_action_id`` property."""
    if isinstance(node, list):
        return any(_has_action_id(item) for item in node)
    if not isinstance(node, dict):
        return False
    if "$ref" in node:
        return _has_action_id(SPEC["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]])
    if "async_action_id" in node.get("properties", {}):
        return True
    return any(_has_action_id(value) for value in node.values())


def _example(op: dict[str, Any]) -> Any:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    for example in content.get("examples", {}).values():
        return example["value"]
    return None


@pytest.fixture
async def session(voucherify_emulator: VoucherifyEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    """An authenticated HTTP session (closed before the emulator)."""
    async with aiohttp.ClientSession(voucherify_emulator.base_url, headers=AUTH) as session:
        yield session


def test_every_documented_operation_is_served() -> None:
    """Every operation of the extract has an emulator endpoint of the matching method."""
    from voucherify_async.testing._start import find_endpoint

    assert len(OPERATIONS) == 17
    for method, path in OPERATIONS:
        raw = path.replace("{campaignId}", "camp_1")
        assert find_endpoint(method, raw) is not None, f"{method} {path}"


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
async def test_answers_follow_the_spec(
    voucherify_emulator: VoucherifyEmulator,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
) -> None:
    """The spec's own example payload starts a job; the answer has the documented status and
    validates against the documented schema."""
    op = SPEC["paths"][path][method.lower()]
    status, schema = _answer_schema(method, path)
    raw = path.replace("{campaignId}", "camp_1")
    params = {"vouchers_count": "5"} if raw.endswith("/vouchers") else {}
    data: Any = None
    kwargs: dict[str, Any] = {}
    if "multipart/form-data" in op.get("requestBody", {}).get("content", {}):
        form = aiohttp.FormData()
        form.add_field("file", b"code,source_id\nA,a\nB,b\n", filename="x.csv")
        data = form
    else:
        example = _example(op)
        kwargs["json"] = example if example is not None else ({} if method == "POST" else None)
        if kwargs["json"] is None:
            del kwargs["json"]
    async with session.request(method, raw, params=params, data=data, **kwargs) as response:
        body = await response.json()
        assert response.status == status, body
    jsonschema.Draft202012Validator(
        {"$ref": "urn:start#" + schema["$ref"][1:]} if "$ref" in schema else schema,
        registry=REGISTRY,
    ).validate(body)
    assert body["async_action_id"] in voucherify_emulator.action_ids
