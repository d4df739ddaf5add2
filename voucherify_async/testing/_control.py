"""Scripting a running emulator from outside: job specs, and an HTTP control endpoint.

A job spec is a JSON object (or the ``--job`` shorthand ``[ID=]TYPE[:SECONDS|never][:FAILED]``)
that adds one job: long, never-ending, failing, or "not found" (listed, but its GET answers
404). The control endpoint, under ``/_emulator/``, takes the same specs over HTTP and serves
the request log, so a test suite in another process or language can drive the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web

from voucherify_async._errors import InvalidArgumentError, InvalidArgumentTypeError
from voucherify_async._validate import finite, shown

from ._faults import Status

if TYPE_CHECKING:
    from ._emulator import VoucherifyEmulator
    from ._log import RecordedRequest

__all__ = ["CONTROL_PREFIX", "JobSpec", "control_reply", "parse_job", "record_json"]

#: Where the control endpoint lives (``POST /_emulator/jobs``, ``GET /_emulator/requests``...).
CONTROL_PREFIX: Final = "/_emulator/"

_KEYS: Final = frozenset(
    {"type", "duration", "status", "id", "not_found", "progress", "operation_status", "result"}
)


@attrs.frozen
class JobSpec:
    """One job to add: its type, its duration in seconds (None: never ends), its ending."""

    type: str = "VOUCHERS.IMPORT"
    duration: float | None = 1.0
    status: str = "DONE"
    id: str | None = None
    #: Listed like any job, but ``GET /v1/async-actions/{id}`` answers 404.
    not_found: bool = False
    progress: str = "linear"
    operation_status: str | None = None
    result: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: object) -> JobSpec:
        """A spec from a JSON object.

        Raises :class:`~voucherify_async.InvalidArgumentError` (a ``ValueError``) naming what is
        wrong.
        """
        if not isinstance(data, dict):
            raise InvalidArgumentError("a job spec is a JSON object")
        unknown = set(data) - _KEYS
        if unknown:
            raise InvalidArgumentError(f"unknown job spec keys: {', '.join(sorted(unknown))}")
        duration = data.get("duration", 1.0)
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not finite(duration)
            or duration < 0
        ):
            raise InvalidArgumentError(
                f"duration must be seconds >= 0 or null (never ends): {shown(duration)}"
            )
        if not isinstance(data.get("result", {}), dict | None):
            raise InvalidArgumentError("result must be an object or null")
        if not isinstance(data.get("operation_status"), str | None):
            raise InvalidArgumentError("operation_status must be a string or null")
        spec = cls(
            type=_text(data, "type", "VOUCHERS.IMPORT"),
            duration=None if duration is None else float(duration),
            status=_text(data, "status", "DONE").upper(),
            id=data.get("id"),
            not_found=bool(data.get("not_found", False)),
            progress=_text(data, "progress", "linear"),
            operation_status=data.get("operation_status"),
            result=data.get("result"),
        )
        if spec.status not in ("DONE", "FAILED"):
            raise InvalidArgumentError(f"status must be DONE or FAILED, got {spec.status!r}")
        if spec.id is not None and (not isinstance(spec.id, str) or not spec.id):
            raise InvalidArgumentError("id must be a non-empty string")
        return spec

    def add_to(self, emulator: VoucherifyEmulator) -> str:
        """Add this job to *emulator* and return its id."""
        action_id = emulator.add_action(
            self.type,
            duration=self.duration,
            status=self.status,
            progress="steps" if self.progress == "steps" else "linear",
            operation_status=self.operation_status,
            result=self.result,
            id=self.id,
        )
        if self.not_found:
            body = {
                "code": 404,
                "key": "not_found",
                "message": "Resource not found",
                "details": f"Cannot find async_action with id {action_id}",
                "resource_id": action_id,
                "resource_type": "async_action",
            }
            emulator.inject(Status(404, body=body), times=None, action_id=action_id)
        return action_id


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{key} must be a non-empty string")
    return value


def parse_job(text: str) -> JobSpec:
    """The ``--job`` shorthand: ``[ID=]TYPE[:SECONDS|never][:DONE|FAILED]``.

    ``VOUCHERS.IMPORT:600`` lasts ten minutes, ``ORDERS.IMPORT:never`` never ends,
    ``aa_1=SKUS.IMPORT_CSV:5:FAILED`` fails after 5 seconds under the id ``aa_1``.
    """
    if not isinstance(text, str):
        raise InvalidArgumentTypeError(
            f"a job is a str [ID=]TYPE[:SECONDS|never][:DONE|FAILED] (for an object, use "
            f"JobSpec.from_json), got {type(text).__name__}"
        )
    action_id, equals, rest = text.partition("=") if "=" in text else ("", "", text)
    parts = rest.split(":")
    if not parts[0] or len(parts) > 3 or (equals and not action_id):
        raise InvalidArgumentError(
            f"a job is [ID=]TYPE[:SECONDS|never][:DONE|FAILED], got {text!r}"
        )
    data: dict[str, Any] = {"type": parts[0]}
    if action_id:
        data["id"] = action_id
    if len(parts) > 1:
        if parts[1].lower() == "never":
            data["duration"] = None
        else:
            try:
                data["duration"] = float(parts[1])
            except ValueError:
                raise InvalidArgumentError(
                    f"not a number of seconds or 'never': {parts[1]!r}"
                ) from None
    if len(parts) > 2:
        data["status"] = parts[2]
    return JobSpec.from_json(data)


def record_json(record: RecordedRequest) -> dict[str, Any]:
    """A request of the log as JSON (headers already redacted)."""
    return {
        "time": record.time,
        "wall": record.wall,
        "method": record.method,
        "path": record.path,
        "raw_path": record.raw_path,
        "query": record.query,
        "headers": record.headers,
        "action_id": record.action_id,
        "raw_action_id": record.raw_action_id,
        "status": record.status,
        "fault": record.fault,
        "started_id": record.started_id,
    }


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def control_reply(emulator: VoucherifyEmulator, request: web.BaseRequest) -> web.Response:
    """Answer a control request (the caller checked its credentials).

    - ``POST /_emulator/jobs`` with a job spec or a list of them -> ``201 {"ids": [...]}``
    - ``POST /_emulator/jobs/{id}/finish`` with ``{"status": "DONE"|"FAILED"}`` (optional)
    - ``GET /_emulator/jobs`` -> ``{"ids": [...]}``, oldest first
    - ``GET /_emulator/requests`` -> the request log, API requests only, oldest first
    """
    path = request.path[len(CONTROL_PREFIX) :].strip("/")
    parts = path.split("/")
    try:
        if request.method == "GET" and path == "requests":
            return _json(200, [record_json(r) for r in emulator.requests])
        if request.method == "GET" and path == "jobs":
            return _json(200, {"ids": emulator.action_ids})
        if request.method == "POST" and path == "jobs":
            payload = await request.json()
            items = payload if isinstance(payload, list) else [payload]
            specs = [JobSpec.from_json(item) for item in items]
            return _json(201, {"ids": [spec.add_to(emulator) for spec in specs]})
        if request.method == "POST" and len(parts) == 3 and parts[::2] == ["jobs", "finish"]:
            payload = await request.json() if request.can_read_body else {}
            status = payload.get("status", "DONE") if isinstance(payload, dict) else "DONE"
            emulator.finish(parts[1], status)
            return web.Response(status=204)
    except KeyError as exc:
        return _json(404, {"code": 404, "message": str(exc.args[0])})
    except ValueError as exc:  # a bad spec, bad JSON, or a job that already ended
        return _json(400, {"code": 400, "message": str(exc)})
    except RecursionError:
        return _json(400, {"code": 400, "message": "the JSON is nested too deeply"})
    return _json(404, {"code": 404, "message": f"no control endpoint {request.method} {path}"})
