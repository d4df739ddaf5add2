"""Reading a response body with a cap on its *decoded* size.

The transport asks for ``gzip`` or ``deflate`` and inflates bodies itself (aiohttp's automatic
decompression is off), so that the cap holds for what is inflated, not for what travelled: a
half-megabyte gzip body that inflates to half a gigabyte is refused after the first cap's worth.
A body that does not inflate (corrupt gzip, an encoding we did not ask for) is a
:class:`BodyDecodeError`, never a transport failure.
"""

from __future__ import annotations

import zlib
from typing import Final

import aiohttp

__all__ = ["ACCEPT_ENCODING", "BodyDecodeError", "BodyTooLarge", "read_body"]

#: What the transport tells the server it can decode.
ACCEPT_ENCODING: Final = "gzip, deflate"
#: Bytes read from the connection at a time.
_CHUNK: Final = 256 * 1024


class BodyDecodeError(Exception):
    """The body's Content-Encoding is unknown, or the body does not inflate."""


class BodyTooLarge(Exception):
    """The decoded body is larger than the cap."""


def _inflater(encoding: str) -> zlib._Decompress | None:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        # RFC 9110 deflate is a zlib stream; some servers send raw deflate. 32 + MAX_WBITS
        # reads zlib and gzip headers; raw streams are retried below.
        return zlib.decompressobj(32 + zlib.MAX_WBITS)
    raise BodyDecodeError(
        f"the response has Content-Encoding {encoding!r}, which was not asked for"
    )


async def read_body(response: aiohttp.ClientResponse, limit: int, *, truncate: bool) -> bytes:
    """The body of *response*, decoded, at most *limit* bytes.

    *truncate*: keep the first *limit* bytes and stop reading (error pages); otherwise a body
    whose decoded size passes *limit* raises :class:`BodyTooLarge`.
    """
    declared = response.headers.get("Content-Encoding")
    if declared is None:
        length = response.content_length
        if length is not None and length <= limit:
            # Nothing to inflate, and a declared size within the cap (aiohttp reads no more
            # than Content-Length): one read, as a plain aiohttp caller does it.
            return await response.read()
    encoding = "" if declared is None else declared.strip().lower()
    inflater = _inflater(encoding)
    raw_deflate = False
    out: list[bytes] = []
    size = 0
    stream = response.content
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            break
        if inflater is not None:
            try:
                data = inflater.decompress(chunk, limit + 1 - size)
            except zlib.error as exc:
                if encoding == "deflate" and not raw_deflate and size == 0 and not out:
                    # A raw deflate stream (no zlib header): start again in raw mode.
                    raw_deflate = True
                    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    try:
                        data = inflater.decompress(chunk, limit + 1 - size)
                    except zlib.error as again:
                        raise BodyDecodeError(
                            f"the {encoding} body does not inflate: {again}"
                        ) from None
                else:
                    raise BodyDecodeError(f"the {encoding} body does not inflate: {exc}") from None
        else:
            data = chunk
        size += len(data)
        out.append(data)
        if size > limit:
            if truncate:
                return b"".join(out)[:limit]
            raise BodyTooLarge(f"the response body is larger than {limit} bytes once decoded")
    if inflater is not None:
        try:
            tail = inflater.flush()
        except zlib.error as exc:  # pragma: no cover - flush rarely fails where decompress did not
            raise BodyDecodeError(f"the {encoding} body does not inflate: {exc}") from None
        if not inflater.eof:
            if truncate:
                return b"".join(out)
            raise BodyDecodeError(f"the {encoding} body ends before its compressed stream does")
        size += len(tail)
        out.append(tail)
        if size > limit:
            if truncate:
                return b"".join(out)[:limit]
            raise BodyTooLarge(f"the response body is larger than {limit} bytes once decoded")
    return b"".join(out)
