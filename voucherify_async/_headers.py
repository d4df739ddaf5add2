"""What the transport reads from a response's headers besides rates: the server's clock,
and which of the client's own request headers are secrets to scrub from an error page."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Final

__all__ = ["secrets_of", "server_now"]


def server_now(headers: Mapping[str, str]) -> float:
    """The server's Unix time when it answered: its ``Date`` header, else our clock.

    Epochs the server sends (``X-Rate-Limit-Retry``, a dated ``Retry-After``) are read against
    its own clock, so a client clock that is off does not stretch or drop the pause. ``Date``
    is truncated to the second, so the pause comes out up to 1 s long, never short.
    """
    value = headers.get("Date")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            stamp = when.timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
        else:
            if math.isfinite(stamp):
                return stamp
    return time.time()


# A token shorter than this is not scrubbed from error pages: replacing every "ab" of a page
# would garble it for a secret that weak (real tokens are far longer).
_MIN_SCRUBBED: Final = 6


def secrets_of(headers: Mapping[str, str]) -> tuple[bytes, ...]:
    """The tokens among the client's own *headers*, as an error page may echo them."""
    secrets = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "authorization":
            value = value.partition(" ")[2] or value
        elif lowered != "x-app-token":
            continue
        if len(value) >= _MIN_SCRUBBED:
            secrets.append(value.encode("utf-8", "replace"))
    return tuple(secrets)
