"""The converter between the API's JSON and the models, and the decoders the transport calls.

``converter.structure(payload, AsyncAction)`` builds an :class:`AsyncAction` whose
``result`` is decoded by the class registered for its ``type`` at that moment;
``converter.unstructure(action)`` gives the API's JSON back (ISO-8601 ``Z`` datetimes with
milliseconds, absent keys absent, explicit ``null`` kept, unknown keys written back).

Decoding is lenient about presence and strict about types: a missing optional field,
an extra key, an unknown enum value or ``null`` for a string is fine; ``"many"`` for a
count, ``true`` for an int, ``5`` for a string or a list for an object is an error that
names its path (``$.result.done_count``). :func:`decode_async_action`,
:func:`decode_async_action_list` and :func:`structure_async_action` raise only
:class:`~voucherify_async.ResponseDecodeError` for a bad payload.

The hooks of the models are generated once per class and cached (see ``_hooks``); the
result-class lookup is one dict get.

This module imports no aiohttp: use it to decode a webhook or a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import cattrs
from cattrs.v import format_exception

from . import _json
from ._errors import ResponseDecodeError
from ._hooks import (
    BadValueError,
    Hook,
    ModelHooks,
    WrongTypeError,
    describe,
    format_datetime,
    is_model,
    parse_datetime,
    strict_bool,
    strict_float,
    strict_int,
    strict_str,
    structure_unknown,
    unstructure_unknown,
)
from ._models import AsyncAction, AsyncActionList
from ._results import UnknownResult

__all__ = [
    "converter",
    "decode_async_action",
    "decode_async_action_list",
    "structure_async_action",
]

#: How many problems a ResponseDecodeError message lists before "... and N more".
_MAX_LISTED_ERRORS = 5


# --- the converter -----------------------------------------------------------------------


def _make_converter() -> tuple[cattrs.Converter, ModelHooks]:
    conv = cattrs.Converter(detailed_validation=True)
    hooks = ModelHooks(conv)
    conv.register_structure_hook(str, lambda value, _: strict_str(value))
    conv.register_structure_hook(int, lambda value, _: strict_int(value))
    conv.register_structure_hook(float, lambda value, _: strict_float(value))
    conv.register_structure_hook(bool, lambda value, _: strict_bool(value))
    conv.register_structure_hook(datetime, lambda value, _: parse_datetime(value))
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_structure_hook(UnknownResult, lambda value, _: structure_unknown(value))
    conv.register_unstructure_hook(UnknownResult, unstructure_unknown)

    def structure_factory(cls: type[Any]) -> Callable[[Any, Any], Any]:
        hook = hooks.structure_hook(cls)
        return lambda value, _: hook(value)

    conv.register_structure_hook_factory(is_model, structure_factory)
    conv.register_unstructure_hook_factory(is_model, hooks.unstructure_hook)
    return conv, hooks


#: The converter between the API's JSON (dicts) and the models. Strict about types:
#: its ``int``, ``float``, ``str`` and ``bool`` hooks never coerce.
converter, _hooks = _make_converter()

_structure_action = _hooks.structure_hook(AsyncAction)
_structure_action_list = _hooks.structure_hook(AsyncActionList)


# --- decoding responses ------------------------------------------------------------------


def _format_problem(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, WrongTypeError | BadValueError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    return format_exception(exc, tp)


def _decode_error(
    exc: BaseException, what: str, *, status: int | None, body: bytes | str | None
) -> ResponseDecodeError:
    problems = cattrs.transform_error(exc, "$", _format_problem)
    path = problems[0].rpartition(" @ ")[2] if problems else "$"
    listed = "; ".join(problems[:_MAX_LISTED_ERRORS])
    if len(problems) > _MAX_LISTED_ERRORS:
        listed += f"; ... and {len(problems) - _MAX_LISTED_ERRORS} more"
    return ResponseDecodeError(f"{what}: {listed}", status=status, body=body, path=path)


def _structure_top(
    payload: Any,
    hook: Hook,
    what: str,
    *,
    status: int | None,
    body: bytes | str | None,
) -> Any:
    if payload.__class__ is not dict and not isinstance(payload, Mapping):
        raise ResponseDecodeError(
            f"{what}: expected a JSON object, got {describe(payload)}",
            status=status,
            body=body,
            path="$",
        )
    try:
        return hook(payload)
    except Exception as exc:
        if body is None:
            body = _json_text(payload)
        raise _decode_error(exc, what, status=status, body=body) from exc


def _json_text(payload: Any) -> str:
    try:
        return _json.dumps(payload).decode("utf-8")
    except Exception:  # only for the error message
        return repr(payload)


def _load(body: bytes, status: int) -> Any:
    try:
        return _json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        if _json.loads is not _json.stdlib_loads and "number" in str(exc):
            # orjson refuses an integer too big for a double as bad JSON; the stdlib takes
            # it, so the models can refuse it naming its path, as with the stdlib backend.
            try:
                return _json.stdlib_loads(body)
            except (ValueError, TypeError, RecursionError):
                pass
        message = f"the response body is not valid JSON: {exc}"
        if isinstance(body, bytes | bytearray):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as utf8_exc:
                message = f"the response body is not valid UTF-8: {utf8_exc}"
        raise ResponseDecodeError(message, status=status, body=body) from exc


_NOT_AN_ACTION = "the response is not an async action"
_NOT_A_LIST = "the response is not a list of async actions"


def decode_async_action(body: bytes, *, status: int = 200) -> AsyncAction:
    """Decode a ``GET /v1/async-actions/{id}`` response body into an :class:`AsyncAction`.

    *status* is the response's HTTP status, kept on the error.

    :raises ResponseDecodeError: the body is not UTF-8 JSON, not an object, lacks ``id``,
        ``type`` or ``status``, or holds a value of the wrong type; the message and
        :attr:`~voucherify_async.ResponseDecodeError.path` name the first failing path.
    """
    payload = _load(body, status)
    action: AsyncAction = _structure_top(
        payload, _structure_action, _NOT_AN_ACTION, status=status, body=body
    )
    return action


def decode_async_action_list(body: bytes, *, status: int = 200) -> AsyncActionList:
    """Decode a ``GET /v1/async-actions`` response body into an :class:`AsyncActionList`.

    :raises ResponseDecodeError: as :func:`decode_async_action`; paths look like
        ``$.async_actions[3].status``.
    """
    payload = _load(body, status)
    page: AsyncActionList = _structure_top(
        payload, _structure_action_list, _NOT_A_LIST, status=status, body=body
    )
    return page


def structure_async_action(
    obj: object, *, status: int | None = None, body: bytes | str | None = None
) -> AsyncAction:
    """Build an :class:`AsyncAction` from JSON already parsed (a dict), e.g. a webhook's.

    *status* and *body* only go into the error, when there is one (by default the error
    keeps *obj* re-serialized).

    :raises ResponseDecodeError: as :func:`decode_async_action`.
    """
    action: AsyncAction = _structure_top(
        obj, _structure_action, _NOT_AN_ACTION, status=status, body=body
    )
    return action
