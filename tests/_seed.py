"""The seed's examples and schemas (tests/data), and Hypothesis strategies built from them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

DATA = Path(__file__).parent / "data"

#: JSON schema "type" -> the Python types a decoded JSON value of it has.
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


@cache
def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def examples() -> dict[str, dict[str, Any]]:
    """The 22 seed examples by their key (a fresh deep copy each call)."""
    return copy.deepcopy(_load("seed_examples.json"))


def openapi() -> dict[str, Any]:
    """The seed's OpenAPI document."""
    result: dict[str, Any] = _load("seed_openapi.json")
    return result


def list_example() -> dict[str, Any]:
    """The example page of ``GET /v1/async-actions`` in Voucherify's own spec."""
    spec = _load("spec_async_actions.json")
    response = spec["paths"]["/v1/async-actions"]["get"]["responses"]["200"]
    example = response["content"]["application/json"]["examples"]["List Async Actions"]
    return copy.deepcopy(example["value"])


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = openapi()["components"]["schemas"]
    return schemas


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """*schema* with ``$ref`` followed and ``allOf`` merged (properties and required)."""
    if "$ref" in schema:
        return resolve(_schemas()[schema["$ref"].rsplit("/", 1)[1]])
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = resolve(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        for key in ("title", "description"):
            if key in schema:
                merged[key] = schema[key]
        return merged
    return schema


def action_schema() -> dict[str, Any]:
    """The properties of an async action (``AsyncActionBase``), without ``result``."""
    return resolve(_schemas()["AsyncActionBase"])


def type_names() -> list[str]:
    """The 22 type names of the seed's enum, in its order."""
    names: list[str] = action_schema()["properties"]["type"]["enum"]
    return names


def result_schemas() -> dict[str, dict[str, Any]]:
    """Type name -> its result schema (resolved); each schema's title is its type name."""
    variants = _schemas()["AsyncAction"]["allOf"][1]["properties"]["result"]["oneOf"]
    return {resolve(variant)["title"]: resolve(variant) for variant in variants}


# --- hypothesis strategies from the schemas -----------------------------------------------

_T0 = datetime(2020, 1, 1, tzinfo=UTC)

#: A Z timestamp with milliseconds, the form the API writes (round-trips exactly).
timestamps = st.integers(min_value=0, max_value=10 * 365 * 86_400_000).map(
    lambda ms: (_T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"
)

#: Any JSON value (for the values of unknown keys).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

_texts = st.text(max_size=20)


def _extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.text(min_size=1, max_size=12).filter(lambda key: key not in known)
    return st.dictionaries(keys, json_values, max_size=2)


def from_schema(
    schema: dict[str, Any],
    *,
    extra_keys: bool = False,
    nulls: bool = False,
    singular_objects: bool = False,
) -> st.SearchStrategy[Any]:
    """Valid JSON values for *schema*.

    *extra_keys* adds unknown keys to every object; *nulls* puts ``null`` where the schema
    declares a string; *singular_objects* also gives an object where an array of objects is
    declared (the API sends ``failed`` that way), and an array where one object is.
    """
    schema = resolve(schema)
    options = {"extra_keys": extra_keys, "nulls": nulls, "singular_objects": singular_objects}
    kind = schema.get("type", "object" if "properties" in schema else None)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "string":
        base = timestamps if schema.get("format") == "date-time" else _texts
        return base | st.none() if nulls else base
    if kind == "integer":
        return st.integers(schema.get("minimum", 0), schema.get("maximum", 10_000))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        item_schema = resolve(schema.get("items", {}))
        of_objects = item_schema.get("type") == "object"
        # ``null`` is accepted for a string field, not for a string in a list.
        items = from_schema(item_schema, **{**options, "nulls": nulls and of_objects})
        many = st.lists(items, max_size=3)
        return many | items if singular_objects and of_objects else many
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        # Only ``failed`` is accepted as one object instead of a list.
        subs = {
            key: from_schema(
                sub, **{**options, "singular_objects": singular_objects and key == "failed"}
            )
            for key, sub in properties.items()
        }
        strategy: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
            {key: sub for key, sub in subs.items() if key in required},
            optional={key: sub for key, sub in subs.items() if key not in required},
        )
        if extra_keys:
            strategy = st.builds(
                lambda known, extra: {**extra, **known}, strategy, _extras(set(properties))
            )
        return strategy
    return json_values


def actions(type_name: str | None = None, **options: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Whole async action payloads (usually with a result) of *type_name*, or of any seed type.

    *options* are those of :func:`from_schema`; the strategies are built once per call.
    """
    schemas = result_schemas()
    names = [type_name] if type_name else sorted(schemas)
    results = {
        name: from_schema(_failed_as_list_or_object(schemas[name], options), **options)
        for name in names
    }
    base = action_schema()
    top = {key: sub for key, sub in base["properties"].items() if key not in ("id", "type")}
    common = st.fixed_dictionaries(
        {
            "id": st.text(min_size=1, max_size=20),
            "status": st.sampled_from(top.pop("status")["enum"]),
        },
        optional={
            key: from_schema(sub, **{**options, "extra_keys": False}) for key, sub in top.items()
        },
    )
    extras = _extras(set(base["properties"]) | {"result"})

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        name = draw(st.sampled_from(names))
        payload = draw(common)
        payload["type"] = name
        if draw(st.integers(0, 4)):  # a result most of the time; none now and then
            payload["result"] = draw(results[name])
        if options.get("extra_keys"):
            payload.update(draw(extras))
        return payload

    return build()


def _failed_as_list_or_object(schema: dict[str, Any], options: dict[str, bool]) -> dict[str, Any]:
    """VOUCHERS.IMPORT and ORDERS.IMPORT declare ``failed`` an object: make it an array.

    With *singular_objects* the array strategy also yields the single-object form.
    """
    failed = schema.get("properties", {}).get("failed")
    if failed is None or failed.get("type") != "object":
        return schema
    schema = copy.deepcopy(schema)
    schema["properties"]["failed"] = {"type": "array", "items": failed}
    return schema


def typed_leaves(
    value: Any, schema: dict[str, Any], path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """(keys, declared JSON type or "date-time", value) for each value under *value*.

    Follows the schema; keys the schema does not declare, and ``null`` values, are skipped.
    *value* itself is included with the path ``()``.
    """
    schema = resolve(schema)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "string" and schema.get("format") == "date-time":
        kind = "date-time"
    if kind is not None:
        yield path, kind, value
    if kind == "object" and isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value and value[key] is not None:
                yield from typed_leaves(value[key], sub, (*path, key))
    elif kind == "array" and isinstance(value, list):
        for index, item in enumerate(value):
            yield from typed_leaves(item, schema.get("items", {}), (*path, index))


def json_path(keys: tuple[str | int, ...]) -> str:
    """``("result", "failed", 0, "row")`` -> ``$.result.failed[0].row``."""
    return "$" + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys)


def replace_at(payload: Any, keys: tuple[str | int, ...], value: Any) -> None:
    """Set the value at *keys* inside *payload* (in place)."""
    for key in keys[:-1]:
        payload = payload[key]
    payload[keys[-1]] = value


@cache
def full_schema(type_name: str) -> dict[str, Any]:
    """The schema of a whole action of *type_name*: the base properties plus its result."""
    base = action_schema()
    result = _failed_as_list_or_object(result_schemas()[type_name], {})
    return {"type": "object", "properties": {**base["properties"], "result": result}}
