"""How long decoding a response body takes: bytes -> AsyncAction, per payload.

Runs over the 22 example responses of the seed (tests/data/seed_examples.json) and times,
in the same process and the same way (``timeit``, several repeats, best and median):

* ``json.loads`` alone on the same bytes (the baseline every ratio is against),
* ``orjson.loads`` alone, when orjson is installed (our decoder's parser then),
* ``decode_async_action``: bytes -> typed AsyncAction with its typed result,
* the same with the stdlib ``json`` parser, and the structuring step alone,
* the same two (bytes, and structuring alone) with a converter built the plain cattrs way
  (:func:`cattrs_converter`: cattrs' own generated hooks, ``make_dict_structure_fn``, for
  the same models and the same output), the figure that says whether the hand-generated
  hooks of ``voucherify_async/_hooks.py`` pay for themselves,
* the official ``voucherify`` SDK's ``AsyncActionGetResponseBody.from_json``, when it is
  importable (its ``result`` stays an untyped dict).

Usage::

    python benchmarks/decode.py [--quick] [--sdk-site DIR]

``--sdk-site`` appends a directory (a throwaway venv's site-packages holding ``voucherify``)
to ``sys.path``, after this environment's own packages.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import json
import statistics
import sys
import timeit
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed_examples.json"

try:
    import voucherify_async  # noqa: F401
except ImportError:  # running from a checkout without installing it
    sys.path.insert(0, str(ROOT))

from voucherify_async import AsyncAction, _json  # noqa: E402
from voucherify_async._converter import (  # noqa: E402
    decode_async_action,
    structure_async_action,
)
from voucherify_async._hooks import (  # noqa: E402
    WrongTypeError,
    copy_extra,
    is_model,
    parse_datetime,
    strict_str,
    structure_unknown,
)
from voucherify_async._registry import _RESULT_TYPES  # noqa: E402
from voucherify_async._results import UnknownResult  # noqa: E402


def _sdk_from_json() -> Callable[[str], Any] | None:
    """The official SDK's decoder, when ``voucherify`` is importable (it is optional)."""
    try:
        module = importlib.import_module("voucherify.models.async_action_get_response_body")
    except ImportError:
        return None
    from_json: Callable[[str], Any] = module.AsyncActionGetResponseBody.from_json
    return from_json


# --- the same models through cattrs' own generated hooks ---------------------------------
#
# voucherify_async/_hooks.py compiles its own structure function per model class. This is
# the converter one would build without it: cattrs generates each class's hook
# (make_dict_structure_fn, detailed validation as the library's converter has it), with the
# library's strict scalar hooks, so the two differ only in the per-class code. What cattrs
# does not do by itself (keep unknown keys, decode ``result`` by ``type``, take ``failed`` as
# one object, remember explicit nulls for unstructure) is done around cattrs' generated hook,
# the way a cattrs user would, so that both give equal models.


def _enum_members(tp: Any) -> dict[str, Any] | None:
    """For ``SomeEnum | str`` (or ``| None``), which cattrs has no hook for: value -> member."""
    if typing.get_origin(tp) not in (UnionType, typing.Union):
        return None
    args = typing.get_args(tp)
    rest = [arg for arg in args if arg is not str and arg is not NoneType]
    if str not in args or len(rest) != 1 or not isinstance(rest[0], type):
        return None
    return {member.value: member for member in rest[0]} if issubclass(rest[0], enum.Enum) else None


def _enum_or_str_hook(tp: Any) -> Callable[[Any, Any], Any]:
    members = _enum_members(tp)
    assert members is not None
    nullable = NoneType in typing.get_args(tp)

    def structure(value: Any, _: Any) -> Any:
        if value is None and nullable:
            return None
        return members.get(strict_str(value), value)  # an unknown value stays a string

    return structure


def _one_or_many_hook(conv: cattrs.Converter, tp: Any) -> Callable[[Any, Any], Any]:
    """``list[X] | None`` that also takes one ``X`` object (the API sends ``failed`` so)."""
    list_type = next(arg for arg in typing.get_args(tp) if arg is not NoneType)
    item_type = typing.get_args(list_type)[0]
    item_hook = conv.get_structure_hook(item_type)
    list_hook = conv.get_structure_hook(list_type)

    def structure(value: Any, _: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, Mapping):
            return [item_hook(value, item_type)]
        return list_hook(value, list_type)

    return structure


def _model_hook(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    """cattrs' generated hook for *cls*, and what the library's models need around it."""
    hints = typing.get_type_hints(cls)
    overrides: dict[str, Any] = {}  # field name -> cattrs override
    declared, defaulted, one_or_many, by_type = [], [], [], []
    for field in attrs.fields(cls):
        if field.name == "extra" or field.name.startswith("_"):
            overrides[field.name] = override(omit=True)  # set below, as the library sets them
            continue
        declared.append(field.name)
        if field.default not in (None, attrs.NOTHING):
            defaulted.append(field.name)
        if field.metadata.get("by_type"):
            overrides[field.name] = override(omit=True)  # decoded by ``type``, below
            by_type.append(field.name)
        elif field.metadata.get("one_or_many"):
            hook = _one_or_many_hook(conv, hints[field.name])
            overrides[field.name] = override(struct_hook=hook)
            one_or_many.append(field.name)
    generated = make_dict_structure_fn(cls, conv, **overrides)
    known, needed = frozenset(declared), frozenset(defaulted)
    set_slot = object.__setattr__  # what a frozen attrs class's own __init__ uses
    result_hooks: dict[type[Any], Callable[[Any, Any], Any]] = {}  # result class -> hook

    def structure(obj: Any, _: Any) -> Any:
        instance = generated(obj, cls)
        for name in by_type:
            value = obj.get(name)
            if value is not None:
                # The class is looked up in the registry per call, as the library does.
                kind = obj.get("type")
                result_cls = (
                    _RESULT_TYPES.get(kind, UnknownResult)
                    if kind.__class__ is str
                    else UnknownResult
                )
                hook = result_hooks.get(result_cls)
                if hook is None:
                    hook = result_hooks[result_cls] = conv.get_structure_hook(result_cls)
                set_slot(instance, name, hook(value, result_cls))
        if not known.issuperset(obj):
            set_slot(instance, "extra", copy_extra(obj, known))
        if None in obj.values() or not needed <= obj.keys():
            set_slot(instance, "_present", frozenset(obj))
        if one_or_many:
            singular = [name for name in one_or_many if isinstance(obj.get(name), Mapping)]
            if singular:
                set_slot(instance, "_singular", frozenset(singular))
        return instance

    return structure


# The library's strict scalar checks written as two-argument cattrs hooks (no wrapper call).


def _strict_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise WrongTypeError("string", value)


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise WrongTypeError("integer", value)


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise WrongTypeError("number", value)


def _strict_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise WrongTypeError("boolean", value)


def _datetime(value: Any, _: Any) -> datetime:
    return parse_datetime(value)


def cattrs_converter() -> cattrs.Converter:
    """A converter for the library's models whose per-class hooks cattrs generates.

    Same strictness as the library's converter where cattrs offers it: the same strict
    ``str``/``int``/``float``/``bool``/datetime hooks, detailed validation (every error
    collected, with its path), missing required keys rejected. Unlike the library, a list
    field takes any iterable (cattrs' list hook), not only a JSON array.
    """
    conv = cattrs.Converter(detailed_validation=True)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(datetime, _datetime)
    conv.register_structure_hook(UnknownResult, lambda value, _: structure_unknown(value))
    conv.register_structure_hook_factory(
        lambda tp: _enum_members(tp) is not None, _enum_or_str_hook
    )
    conv.register_structure_hook_factory(is_model, lambda cls: _model_hook(conv, cls))
    return conv


def cattrs_structure_action() -> Callable[[Any], AsyncAction]:
    """dict -> AsyncAction through :func:`cattrs_converter`'s hook (looked up once)."""
    hook = cattrs_converter().get_structure_hook(AsyncAction)

    def structure(payload: Any) -> AsyncAction:
        action: AsyncAction = hook(payload, AsyncAction)
        return action

    return structure


def _measure(
    rows: list[tuple[str, Callable[[Any], Any], list[Any]]], number: int, repeat: int
) -> dict[str, list[float]]:
    """Microseconds per payload of each row, *repeat* times each.

    The rows take turns (row 1, row 2, ..., then again) so that a noisy machine slows
    them all alike and the ratios stay fair.
    """
    runs = {}
    for name, decode, inputs in rows:

        def run(decode: Callable[[Any], Any] = decode, inputs: list[Any] = inputs) -> None:
            for item in inputs:
                decode(item)

        run()  # warm up: hooks are built on first use
        runs[name] = (run, len(inputs))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (run, count) in runs.items():
            total = timeit.timeit(run, number=number)
            times[name].append(total / number / count * 1e6)
    return times


Row = tuple[str, Callable[[Any], Any], list[Any]]


def rows() -> list[Row]:
    """What is timed: (name, decoder, inputs), the stdlib ``json.loads`` baseline first.

    The official SDK's ``from_json`` comes last when it is importable (after a check that it
    accepts every example).
    """
    payloads = list(json.loads(SEED.read_text(encoding="utf-8")).values())
    bodies = [json.dumps(payload).encode() for payload in payloads]
    timed: list[Row] = [("json.loads (stdlib)", json.loads, bodies)]
    if _json.BACKEND == "orjson":
        timed.append(("orjson.loads", _json.loads, bodies))
    timed += [
        (f"decode_async_action ({_json.BACKEND})", decode_async_action, bodies),
        (
            "decode_async_action (stdlib json)",
            lambda body: structure_async_action(_json.stdlib_loads(body)),
            bodies,
        ),
        (STRUCTURE_ROW, structure_async_action, payloads),
    ]
    cattrs_structure = cattrs_structure_action()
    loads = _json.loads
    timed += [
        (
            f"{CATTRS_DECODE_ROW} ({_json.BACKEND})",
            lambda body: cattrs_structure(loads(body)),
            bodies,
        ),
        (CATTRS_STRUCTURE_ROW, cattrs_structure, payloads),
    ]
    sdk = _sdk_from_json()
    if sdk is not None:
        texts = [body.decode() for body in bodies]
        for text in texts:  # it must accept every example before it is timed
            sdk(text)
        timed.append((SDK_ROW, sdk, texts))
    return timed


#: The name of the official SDK's row.
SDK_ROW = "official voucherify SDK from_json"
#: The rows of the cattrs-generated hooks (the decode row is followed by the JSON backend).
CATTRS_DECODE_ROW = "cattrs-generated hooks, bytes"
CATTRS_STRUCTURE_ROW = "structure only, cattrs-generated hooks"


#: The row of the library's structuring step alone.
STRUCTURE_ROW = "structure only (dict -> AsyncAction)"


def hooks_vs_cattrs(results: dict[str, tuple[float, float]]) -> str:
    """The line that says whether ``_hooks.py`` pays: its time / cattrs-generated hooks' time.

    *results* maps row names to (best, median) microseconds per payload.
    """
    hand, generated = results[STRUCTURE_ROW], results[CATTRS_STRUCTURE_ROW]
    decoded = results[f"decode_async_action ({_json.BACKEND})"]
    decoded_cattrs = results[f"{CATTRS_DECODE_ROW} ({_json.BACKEND})"]
    return (
        f"hand-generated hooks (_hooks.py) / cattrs-generated hooks: structuring "
        f"{hand[0] / generated[0]:.2f}x best, {hand[1] / generated[1]:.2f}x median; "
        f"bytes -> AsyncAction {decoded[0] / decoded_cattrs[0]:.2f}x best (lower is faster)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer loops and repeats")
    parser.add_argument("--sdk-site", type=Path, help="a site-packages dir holding voucherify")
    args = parser.parse_args(argv)
    if args.sdk_site:
        sys.path.append(str(args.sdk_site))

    number, repeat = (200, 3) if args.quick else (1000, 15)
    timed = rows()
    bodies = timed[0][2]

    print(
        f"{len(bodies)} seed payloads, {sum(map(len, bodies)) // len(bodies)} bytes on average; "
        f"best and median of {repeat} x {number} loops; Python {sys.version.split()[0]}"
    )
    print(f"{'':40} {'best us':>9} {'median us':>10} {'x json.loads':>13}")
    results: dict[str, tuple[float, float]] = {}
    baseline = 0.0
    for name, per_payload in _measure(timed, number, repeat).items():
        best, median = min(per_payload), statistics.median(per_payload)
        baseline = baseline or best
        results[name] = (best, median)
        print(f"{name:40} {best:9.2f} {median:10.2f} {best / baseline:12.2f}x")

    ours = results[f"decode_async_action ({_json.BACKEND})"]
    print(hooks_vs_cattrs(results))
    if SDK_ROW in results:
        theirs = results[SDK_ROW]
        print(
            f"decode_async_action / SDK from_json: {ours[0] / theirs[0]:.2f}x best, "
            f"{ours[1] / theirs[1]:.2f}x median (lower is faster)"
        )
    else:
        print("voucherify SDK not importable: no SDK figure (see --sdk-site)")


if __name__ == "__main__":
    main()
