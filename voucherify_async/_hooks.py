"""The structure and unstructure functions of the models, built once per class.

Why this module exists: it hand-generates code that cattrs can generate too, and is kept
only while the decode benchmark shows that it pays. ``python benchmarks/decode.py`` (15 x
1000 loops over the 22 seed payloads; the median of 5 runs on 2 busy cores, 2026-12-01)
times the same models built by a converter of cattrs' own generated hooks
(``make_dict_structure_fn``, the same strict scalar hooks, detailed validation, the
same output, checked equal in tests/test_benchmarks.py):

* structuring a dict: 2.47 us per payload here, 7.44 us with cattrs-generated hooks
  (0.90x and 2.66x ``json.loads``): these hooks take 0.33x cattrs' time;
* bytes -> AsyncAction (orjson): 3.45 us here, 8.26 us with cattrs' hooks (0.42x).

The rule: keep this module while that structuring ratio (the line "hand-generated hooks
(_hooks.py) / cattrs-generated hooks" the benchmark prints) shows it pays; once
cattrs-generated hooks come within 15 % of these (a ratio above 0.87x), delete the
generated code (``ModelHooks`` and the fast path) and let cattrs generate the hooks as the
benchmark's converter does; the strict scalar hooks stay.

Strict scalar hooks (no coercion: ``"5"`` is no int, ``true`` is no int, ``5`` is no
string), ISO-8601 datetimes, and per-class hooks generated from the class's fields:

* the fast path is straight-line code compiled once per class: exact type checks inlined,
  no reflection per call, one ``cls(...)`` call;
* anything unusual (a wrong type, a missing required key, ``failed`` given as one object,
  a str subclass) falls back to the slow path, a generic loop that accepts what the fast
  path would not and collects every error as cattrs does (``ClassValidationError`` and
  ``IterableValidationError`` with notes), so ``cattrs.transform_error`` names each path.

This module imports no aiohttp.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import NoneType, UnionType
from typing import Any, Final

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

from ._models import EMPTY_EXTRA, FrozenDict, JsonModel
from ._registry import _RESULT_TYPES
from ._results import UnknownResult

Hook = Callable[[Any], Any]


# --- strict scalar hooks -----------------------------------------------------------------


class WrongTypeError(TypeError):
    """A JSON value of the wrong type; its message says what was expected and what came."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {describe(value)}")


class BadValueError(ValueError):
    """A JSON value of the right type that still does not parse (a malformed date-time)."""


def describe(value: Any) -> str:
    """A short description of a JSON value for error messages: its JSON type, and a peek."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def strict_str(value: Any) -> str:
    """A JSON string, as is; anything else is an error (no ``str(5)``)."""
    if isinstance(value, str):
        return value
    raise WrongTypeError("string", value)


#: The range of a JSON integer the models take: signed 64 bits, which both JSON backends
#: parse as an integer (below it orjson gives a float, which an integer field refuses too), so
#: they agree. A bigger one (a 400-digit ``progress``) is a decode error naming its path,
#: never an ``OverflowError`` in whatever does arithmetic with it later.
INT_LIMIT: Final = 2**63 - 1
INT_MIN: Final = -(2**63)


def strict_int(value: Any) -> int:
    """A JSON integer within signed 64 bits; a bool, a float or a numeric string is an error."""
    if isinstance(value, int) and not isinstance(value, bool):
        if INT_MIN <= value <= INT_LIMIT:
            return value
        raise BadValueError("integer out of range: outside signed 64 bits (-2**63 to 2**63 - 1)")
    raise WrongTypeError("integer", value)


def strict_float(value: Any) -> float:
    """A JSON number (an integer is fine); a bool, a string or an integer too big for a
    float is an error."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # only an int can be too big for a float
            raise BadValueError("number out of range: an integer too big for a float") from None
    raise WrongTypeError("number", value)


def strict_bool(value: Any) -> bool:
    """A JSON boolean; ``0``, ``1`` or ``"true"`` are errors."""
    if isinstance(value, bool):
        return value
    raise WrongTypeError("boolean", value)


def parse_datetime(value: Any) -> datetime:
    """An ISO-8601 date-time string as an aware UTC datetime (no offset means UTC)."""
    if not isinstance(value, str):
        raise WrongTypeError("an ISO-8601 date-time string", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadValueError(f"expected an ISO-8601 date-time, got {describe(value)}") from None
    return parsed if parsed.tzinfo is UTC else to_utc(parsed)


def to_utc(value: datetime) -> datetime:
    """*value* in UTC; a naive datetime is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """*value* as the API writes it: UTC, milliseconds, ``Z`` (naive means UTC)."""
    if value.tzinfo is not UTC:
        value = to_utc(value)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def _enum_members(tp: Any) -> dict[str, Any] | None:
    """For ``SomeStrEnum | str``: value -> member (unknown values stay strings); else None."""
    if typing.get_origin(tp) not in (UnionType, typing.Union):
        return None
    args = [arg for arg in typing.get_args(tp) if arg is not str]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], enum.Enum):
        return {member.value: member for member in args[0]}
    return None


def _enum_or_str(members: dict[str, Any]) -> Hook:
    def structure(value: Any) -> Any:
        if isinstance(value, str):
            return members.get(value, value)
        raise WrongTypeError("string", value)

    return structure


def _identity(value: Any) -> Any:
    return value


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts and lists copied, the rest shared: immutable)."""
    cls = value.__class__
    if cls is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if cls is list:
        return [copy_json(item) for item in value]
    return value


def copy_extra(obj: Mapping[str, Any], known: frozenset[str]) -> FrozenDict:
    """The keys of *obj* not in *known*, copied: a model never shares its input's containers."""
    return FrozenDict({key: copy_json(item) for key, item in obj.items() if key not in known})


def structure_unknown(value: Any) -> UnknownResult:
    """Any JSON value as an :class:`UnknownResult` (a copy: the model owns its data)."""
    return UnknownResult(raw=copy_json(value))


def unstructure_unknown(value: UnknownResult) -> Any:
    """An :class:`UnknownResult` back to (a copy of) the JSON it holds."""
    return copy_json(value.raw)


def is_model(cls: Any) -> bool:
    """Whether *cls* is one of the models whose hooks :class:`ModelHooks` builds."""
    return isinstance(cls, type) and issubclass(cls, JsonModel) and attrs.has(cls)


# --- field tables ------------------------------------------------------------------------


@attrs.frozen
class _Field:
    name: str  # the JSON key and the attribute name
    alias: str  # the __init__ argument
    type: Any
    structure: Hook | None  # None: deferred (the result, decoded by type)
    unstructure: Hook | None  # None: the value is JSON already
    nullable: bool
    required: bool
    default: Any
    item_structure: Hook | None  # set for lists the API may send as one object
    inline: str | None  # "str", "int", "bool", "datetime", "enum": inlined in the fast path
    members: dict[str, Any] | None  # for "enum"


def _note(exc: Exception, cls: type[Any], field: _Field) -> Exception:
    exc.add_note(
        AttributeValidationNote(
            f"Structuring class {cls.__qualname__} @ attribute {field.name}", field.name, field.type
        )
    )
    return exc


_INLINE_KINDS = {str: "str", int: "int", bool: "bool", datetime: "datetime"}

#: type -> (structure, unstructure); ``None`` unstructure: the value is JSON already.
_SCALAR_HOOKS: dict[Any, tuple[Hook, Hook | None]] = {
    str: (strict_str, None),
    int: (strict_int, None),
    bool: (strict_bool, None),
    float: (strict_float, None),
    datetime: (parse_datetime, format_datetime),
    Any: (_identity, None),
}


class _Fallback(Exception):
    """Raised by generated fast paths to hand over to the slow one."""


_MISSING = object()


class ModelHooks:
    """Builds and caches the hooks of the models; *converter* serves every other type."""

    def __init__(self, converter: cattrs.Converter) -> None:
        self._converter = converter
        self._structure: dict[type[Any], Hook] = {}
        self._unstructure: dict[type[Any], Hook] = {UnknownResult: unstructure_unknown}

    # -- lookups --------------------------------------------------------------------------

    def structure_hook(self, cls: type[Any]) -> Hook:
        """The one-argument structure function for *cls*: ours for models, cattrs' otherwise."""
        hook = self._structure.get(cls)
        if hook is not None:
            return hook
        if is_model(cls):
            hook = self._structure[cls] = self._make_structure(cls)
            return hook
        if cls is UnknownResult:
            return structure_unknown
        # A user's class: cattrs' hook, looked up each time so that hooks registered later
        # on the converter apply (cattrs caches its dispatch itself).
        cattrs_hook = self._converter.get_structure_hook(cls)
        return lambda value: cattrs_hook(value, cls)

    def unstructure_hook(self, cls: type[Any]) -> Hook:
        """The unstructure function for a model class."""
        hook = self._unstructure.get(cls)
        if hook is None:
            hook = self._unstructure[cls] = self._make_unstructure(cls)
        return hook

    def unstructure_any(self, value: Any) -> Any:
        """Unstructure *value* by its runtime class (the ``result`` of an action)."""
        hook = self._unstructure.get(value.__class__)
        if hook is None:
            return self._converter.unstructure(value)
        return hook(value)

    def structure_result(self, type_name: Any, value: Any) -> Any:
        """Structure a ``result`` with the class registered for *type_name*, now."""
        if not isinstance(type_name, str):
            return structure_unknown(value)  # the bad ``type`` is reported on its own
        return self.structure_hook(_RESULT_TYPES.get(type_name, UnknownResult))(value)

    # -- building -------------------------------------------------------------------------

    def _value_hooks(self, tp: Any) -> tuple[Hook, Hook | None]:
        """(structure, unstructure) for a non-``None`` type; ``None`` unstructure: as is."""
        if tp in _SCALAR_HOOKS:
            return _SCALAR_HOOKS[tp]
        if typing.get_origin(tp) is list:
            return self._list_hooks(typing.get_args(tp)[0])
        members = _enum_members(tp)
        if members is not None:
            return _enum_or_str(members), str
        if is_model(tp):
            # Built now: the models nest without cycles (a result is looked up per call).
            return self.structure_hook(tp), self.unstructure_hook(tp)
        conv = self._converter
        return (lambda value: conv.structure(value, tp)), conv.unstructure

    def _list_hooks(self, item_type: Any) -> tuple[Hook, Hook]:
        item_hook, item_unhook = self._value_hooks(item_type)

        def structure(value: Any) -> list[Any]:
            if value.__class__ is not list:
                raise WrongTypeError("array", value)
            try:
                return [item_hook(item) for item in value]
            except Exception:  # redone below, slowly, to collect every error with its index
                pass
            out: list[Any] = []
            errors: list[Exception] = []
            for index, item in enumerate(value):
                try:
                    out.append(item_hook(item))
                except Exception as exc:
                    note = f"Structuring list @ index {index}"
                    exc.add_note(IterableValidationNote(note, index, item_type))
                    errors.append(exc)
            if errors:
                raise IterableValidationError("While structuring a list", errors, list)
            return out  # pragma: no cover - the fast path failed, so this one does too

        if item_unhook is None:
            return structure, list
        unhook = item_unhook
        return structure, lambda value: [unhook(item) for item in value]

    def _field_table(self, cls: type[Any]) -> list[_Field]:
        hints = typing.get_type_hints(cls)
        table = []
        for field in attrs.fields(cls):
            if field.name == "extra" or field.name.startswith("_"):
                continue
            tp = hints[field.name]
            union = typing.get_origin(tp) in (UnionType, typing.Union)
            args = typing.get_args(tp) if union else ()
            nullable = NoneType in args
            if nullable:
                rest = [arg for arg in args if arg is not NoneType]
                tp = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
            structure: Hook | None
            unstructure: Hook | None
            item_structure: Hook | None = None
            if field.metadata.get("by_type"):
                structure, unstructure = None, self.unstructure_any
                nullable = True
            else:
                structure, unstructure = self._value_hooks(tp)
                if field.metadata.get("one_or_many"):
                    item_structure = self._value_hooks(typing.get_args(tp)[0])[0]
            members = _enum_members(tp)
            inline = _INLINE_KINDS.get(tp) if members is None else "enum"
            table.append(
                _Field(
                    name=field.name,
                    alias=field.alias or field.name,
                    type=tp,
                    structure=structure,
                    unstructure=unstructure,
                    nullable=nullable,
                    required=field.default is attrs.NOTHING,
                    default=None if field.default is attrs.NOTHING else field.default,
                    item_structure=item_structure,
                    inline=inline,
                    members=members,
                )
            )
        return table

    def _make_structure(self, cls: type[Any]) -> Hook:
        table = self._field_table(cls)
        slow = self._make_slow_structure(cls, table)
        return _generate_fast_structure(cls, table, slow, self)

    def _make_slow_structure(self, cls: type[Any], table: list[_Field]) -> Hook:
        fields = {field.name: field for field in table}
        known = frozenset(fields)
        required = [field for field in table if field.required]
        defaulted = [field.name for field in table if field.default is not None]
        deferred = [field for field in table if field.structure is None]
        structure_result = self.structure_result

        def structure(obj: Any) -> Any:
            if not isinstance(obj, Mapping):
                raise WrongTypeError("object", obj)
            kwargs: dict[str, Any] = {}
            errors: list[Exception] = []
            singular: list[str] = []
            for key, value in obj.items():
                field = fields.get(key)
                if field is None:
                    continue
                if value is None and field.nullable:
                    kwargs[field.alias] = None
                elif field.structure is not None:
                    try:
                        if field.item_structure is not None and isinstance(value, Mapping):
                            kwargs[field.alias] = [field.item_structure(value)]
                            singular.append(key)
                        else:
                            kwargs[field.alias] = field.structure(value)
                    except Exception as exc:
                        errors.append(_note(exc, cls, field))
            for field in deferred:
                value = obj.get(field.name)
                if value is not None:
                    try:
                        kwargs[field.alias] = structure_result(obj.get("type"), value)
                    except Exception as exc:
                        errors.append(_note(exc, cls, field))
            errors.extend(
                _note(KeyError(field.name), cls, field)
                for field in required
                if field.name not in obj
            )
            if errors:
                raise ClassValidationError(f"While structuring {cls.__name__}", errors, cls)
            if len(obj) > len(known & obj.keys()):
                kwargs["extra"] = copy_extra(obj, known)
            if None in obj.values() or any(name not in obj for name in defaulted):
                kwargs["_present"] = frozenset(obj)
            if singular:
                kwargs["_singular"] = frozenset(singular)
            return cls(**kwargs)

        return structure

    def _make_unstructure(self, cls: type[Any]) -> Hook:
        table = [(f.name, f.unstructure, f.default) for f in self._field_table(cls)]
        has_singular = "_singular" in attrs.fields_dict(cls)

        def unstructure(obj: Any) -> dict[str, Any]:
            present = obj._present
            out: dict[str, Any] = {}
            for name, unhook, default in table:
                value = getattr(obj, name)
                if value is None:
                    if present is not None and name in present:
                        out[name] = None
                    continue
                if present is not None and name not in present and value == default:
                    continue
                out[name] = value if unhook is None else unhook(value)
            if has_singular and obj._singular:
                for name in obj._singular:
                    items = out.get(name)
                    if isinstance(items, list) and len(items) == 1:
                        out[name] = items[0]
            extra = obj.extra
            if extra:
                for key, value in extra.items():
                    if key not in out:
                        out[key] = copy_json(value)
            return out

        return unstructure


# --- the generated fast path -------------------------------------------------------------

_INLINE_CHECKS = {
    "str": "if v.__class__ is not str: raise _Fallback",
    "int": "if v.__class__ is not int or not _IM <= v <= _IL: raise _Fallback",
    "bool": "if v.__class__ is not bool: raise _Fallback",
}


def _generate_fast_structure(
    cls: type[Any], table: list[_Field], slow: Hook, hooks: ModelHooks
) -> Hook:
    """Compile ``structure(obj)`` for *cls*: straight-line code, the slow path as fallback."""
    env: dict[str, Any] = {
        "_cls": cls,
        "_IL": INT_LIMIT,
        "_IM": INT_MIN,
        "_slow": slow,
        "_Fallback": _Fallback,
        "_M": _MISSING,
        "_EMPTY": EMPTY_EXTRA,
        "_known": frozenset(field.name for field in table),
        "_copy_extra": copy_extra,
        "_fromiso": datetime.fromisoformat,
        "_UTC": UTC,
        "_to_utc": to_utc,
        # The result's class is looked up per call: a registration takes effect at once.
        "_types": _RESULT_TYPES,
        "_built": hooks._structure,
        "_Unknown": UnknownResult,
        "_structure_result": hooks.structure_result,
    }
    lines = [
        "def structure(o):",
        "    if o.__class__ is not dict:",
        "        return _slow(o)",
        "    try:",
        "        get = o.get",
        "        n = 0",
        "        odd = False",  # an explicit null, or a defaulted field left out
    ]
    deferred = [(i, field) for i, field in enumerate(table) if field.structure is None]
    for i, field in enumerate(table):
        if field.structure is not None:
            lines += _field_lines(i, field, env)
    for i, field in deferred:
        lines += [
            f"        v = get({field.name!r})",
            "        if v is None:",
            f"            f{i} = None",
            f"            if {field.name!r} in o:",
            "                n += 1",
            "                odd = True",
            "        else:",
            "            n += 1",
            "            t = get('type')",
            "            h = _built.get(_types.get(t, _Unknown)) if t.__class__ is str else None",
            f"            f{i} = _structure_result(t, v) if h is None else h(v)",
        ]
    lines += [
        "        extra = _EMPTY",
        "        if n != len(o):",
        "            extra = _copy_extra(o, _known)",
        "        present = frozenset(o) if odd else None",
    ]
    lines += _construction(cls, table, env)
    lines += ["    except Exception:", "        return _slow(o)"]
    source = "\n".join(lines)
    exec(compile(source, f"<voucherify_async structure {cls.__qualname__}>", "exec"), env)
    fast: Hook = env["structure"]
    return fast


def _field_lines(i: int, field: _Field, env: dict[str, Any]) -> list[str]:
    """The lines that read field *i* into ``f{i}``: exact type checks inline, else its hook."""
    var = f"f{i}"
    env[f"h{i}"] = field.structure
    env[f"d{i}"] = field.default
    lines = [f"        v = get({field.name!r}, _M)", "        if v is _M:"]
    if field.required:
        lines.append("            raise _Fallback")
    else:
        lines.append(f"            {var} = d{i}")
        if field.default is not None:
            lines.append("            odd = True")
    if field.nullable:
        lines += ["        elif v is None:", f"            {var} = None", "            odd = True"]
        lines.append("            n += 1")
    lines += ["        else:", "            n += 1"]
    if field.inline == "enum":
        env[f"m{i}"] = field.members
        lines.append("            " + _INLINE_CHECKS["str"])
        lines.append(f"            {var} = m{i}.get(v, v)")
    elif field.inline == "datetime":
        lines.append("            " + _INLINE_CHECKS["str"])
        lines.append(f"            {var} = _fromiso(v)")
        lines.append(f"            if {var}.tzinfo is not _UTC: {var} = _to_utc({var})")
    elif field.inline in _INLINE_CHECKS:
        lines.append("            " + _INLINE_CHECKS[field.inline])
        lines.append(f"            {var} = v")
    else:
        lines.append(f"            {var} = h{i}(v)")
    return lines


def _construction(cls: type[Any], table: list[_Field], env: dict[str, Any]) -> list[str]:
    """The lines that build the instance from ``f0..fN``, ``extra`` and ``present``.

    A frozen attrs ``__init__`` sets each slot through ``object.__setattr__``; setting the
    slots through their descriptors builds the same object about three times faster. That
    is only equivalent without validators, converters or init hooks, so a class with any
    (a user's subclass, say) gets its ``__init__`` called.
    """
    values = {field.alias: f"f{i}" for i, field in enumerate(table)}
    values.update({"extra": "extra", "_present": "present"})
    attributes = attrs.fields(cls)
    plain = not (
        hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or any(a.validator is not None or a.converter is not None for a in attributes)
        or any(isinstance(a.default, attrs.Factory) for a in attributes)  # type: ignore[arg-type]
        or "__slots__" not in cls.__dict__
    )
    if not plain:
        args = ", ".join(f"{alias}={var}" for alias, var in values.items())
        return [f"        return _cls({args})"]
    env["_new"] = object.__new__
    lines = ["        self = _new(_cls)"]
    for i, attribute in enumerate(attributes):
        env[f"s{i}"] = getattr(cls, attribute.name).__set__
        alias = attribute.alias or attribute.name
        if alias in values:
            lines.append(f"        s{i}(self, {values[alias]})")
        else:
            env[f"default{i}"] = attribute.default
            lines.append(f"        s{i}(self, default{i})")
    lines.append("        return self")
    return lines
