"""Checks of the public API's arguments: one place, one rule, one error type.

A bad argument raises :class:`InvalidArgumentError` (also a ``ValueError``) or, for a value of
the wrong type, :class:`InvalidArgumentTypeError` (also a ``TypeError``), before any request.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import quote

from ._errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["check_ids", "check_seconds", "check_timeout", "finite", "path_segment", "shown"]

T = TypeVar("T")


def finite(value: float) -> bool:
    """``math.isfinite`` that says False for an int beyond any float instead of raising."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: object) -> str:
    """*value*'s repr for an error message, cut to 40 characters (an int may have 400 digits)."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


def check_seconds(value: object, name: str) -> float:
    """*value* as seconds: a real number, finite and >= 0 (NaN would corrupt the loop's timers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentTypeError(
            f"{name} must be a number of seconds, got {type(value).__name__}"
        )
    if not finite(value) or value < 0:
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds >= 0, got {shown(value)}"
        )
    return float(value)


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """A timeout argument: None (no limit) or seconds as :func:`check_seconds` takes them."""
    return None if value is None else check_seconds(value, name)


def check_ids(items: Iterable[T] | str | bytes, name: str = "ids") -> list[T]:
    """An iterable of ids or handles as a list; a lone str (or bytes) is refused.

    ``wait_all("aa_abc")`` would otherwise wait on the actions ``a``, ``a``, ``_``...
    """
    if isinstance(items, str | bytes | bytearray):
        raise InvalidArgumentTypeError(
            f"{name} must be an iterable of ids or handles, not a single {type(items).__name__} "
            f"(to wait on one action, pass [{items!r}] or use wait())"
        )
    try:
        return list(items)
    except TypeError:
        raise InvalidArgumentTypeError(
            f"{name} must be an iterable of ids or handles, got {type(items).__name__}"
        ) from None


def path_segment(value: object, what: str) -> str:
    """*value* (an id or a name) percent-encoded as exactly one URL path segment.

    An id like ``../vouchers`` or ``a/b?c`` can never reach another endpoint. Raises
    :class:`InvalidArgumentError` for an empty one and for ``.`` and ``..`` (dot-segments,
    which a normalising proxy may resolve even when percent-encoded),
    :class:`InvalidArgumentTypeError` for a value that is not a ``str``.
    """
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} is a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    if value in (".", ".."):
        # Dot-segments: even percent-encoded, a normalising proxy may resolve them.
        raise InvalidArgumentError(f"{what} must not be {value!r} (a dot-segment of a URL path)")
    try:
        segment = quote(value, safe="")
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"{what} must be valid text (it holds a lone surrogate)"
        ) from None
    if segment.strip(".") == "":  # "...": not a dot-segment, but encoded all the same
        segment = segment.replace(".", "%2E")
    return segment
