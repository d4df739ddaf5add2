"""JSON in and out: orjson when it is installed (the ``speed`` extra), the stdlib otherwise.

Both backends behave the same on what matters here: the input must be UTF-8, and
``NaN``/``Infinity`` (not JSON) are rejected. Errors are :class:`ValueError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "dumps", "loads"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# A \uD800-\uDFFF escape: the stdlib decodes an unpaired one to a lone surrogate, which orjson
# refuses (it is not text); seen, the parsed value is checked as orjson would.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def stdlib_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON with the stdlib; bytes must be UTF-8 (no BOM), and no string may hold a lone
    surrogate (``"\\ud800"`` unpaired), as with orjson."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    value = _decoder.decode(text)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            _encoder.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff unpaired)") from None
    return value


def stdlib_dumps(obj: Any) -> bytes:
    """Serialize *obj* compactly to UTF-8 JSON bytes with the stdlib."""
    return _encoder.encode(obj).encode("utf-8")


loads: Callable[[bytes | bytearray | memoryview | str], Any]
dumps: Callable[[Any], bytes]

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    BACKEND = "json"
    loads = stdlib_loads
    dumps = stdlib_dumps
else:
    BACKEND = "orjson"
    loads = orjson.loads  # called directly: no wrapper on the hot path
    dumps = orjson.dumps
