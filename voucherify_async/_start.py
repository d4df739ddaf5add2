"""Starting an async action: the request, its body, and the ``async_action_id`` it answers.

Starting is not idempotent (a retried import imports twice), so the request goes through the
transport with ``retry="unsent"``: only a failure that certainly did not reach the server is
retried; any other raises :class:`OutcomeUnknownError`. The body is built anew for each
attempt: JSON bytes, or a multipart upload streamed from a CSV file in chunks.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import PurePath
from typing import IO, Any, Final, TypeAlias

from yarl import URL

from . import _json
from ._errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    OutcomeUnknownError,
    ResponseDecodeError,
)
from ._transport import Transport

__all__ = ["CsvFile", "check_path", "send_start"]

#: A CSV file to upload: a path, or a file object opened in binary mode.
CsvFile: TypeAlias = "str | os.PathLike[str] | IO[bytes]"

#: Methods that start actions (POST for imports and updates, DELETE for deletions).
METHODS: Final = frozenset({"POST", "DELETE", "PUT", "PATCH"})
#: Bytes read from a file per chunk of an upload.
CHUNK_BYTES: Final = 64 * 1024

# One or more segments of RFC 3986 path characters (percent-escapes checked separately).
_PATH: Final = re.compile(r"/v[12](?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)+")
_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


def check_path(path: object) -> str:
    """*path* if it is an API path that can start an action, else an InvalidArgumentError.

    It must start with ``/v1/`` or ``/v2/``, be already percent-encoded (build ids into it with
    the named helpers, or quote them yourself), and hold no query, fragment, empty segment or
    dot-segment: a path can never step out of the API.
    """
    if not isinstance(path, str):
        raise InvalidArgumentTypeError(f"path is a str, got {type(path).__name__}")
    if "?" in path or "#" in path:
        raise InvalidArgumentError(
            f"path must not carry a query or fragment (use params=): {path!r}"
        )
    if not _PATH.fullmatch(path) or _ESCAPE.search(path):
        raise InvalidArgumentError(
            "path must start with /v1/ or /v2/ and hold only percent-encoded segments, "
            f"got {path!r}"
        )
    if any(segment in (".", "..") for segment in path.split("/")):
        raise InvalidArgumentError(f"path must not hold a dot-segment: {path!r}")
    return path


def check_method(method: object) -> str:
    """*method* in upper case if it can start an action (POST, DELETE, PUT, PATCH)."""
    if not isinstance(method, str):
        raise InvalidArgumentTypeError(f"method is a str, got {type(method).__name__}")
    upper = method.upper()
    if upper not in METHODS:
        raise InvalidArgumentError(
            f"method must be one of {', '.join(sorted(METHODS))} to start an action, got {method!r}"
        )
    return upper


class Upload:
    """A CSV file sent as ``multipart/form-data`` (field ``file``), streamed in chunks.

    A path is opened anew for each attempt and closed after it. A file object is read from
    where it stands when the call starts; it is not closed (it is yours). A retry needs to
    read it again: a seekable one is rewound, one that cannot seek can be sent only once.
    """

    def __init__(self, file: object, fields: Mapping[str, str] | None = None) -> None:
        self._path: str | None = None
        self._stream: IO[bytes] | None = None
        self._start: int | None = None
        self._used = False
        if isinstance(file, str | os.PathLike):
            path = os.fspath(file)
            if not isinstance(path, str):
                raise InvalidArgumentTypeError("file must be a str path, not bytes")
            if not os.path.isfile(path):
                raise InvalidArgumentError(f"file {path!r} is not a readable file")
            self._path = path
            name = PurePath(path).name
        elif isinstance(file, io.TextIOBase):
            raise InvalidArgumentTypeError("file must be opened in binary mode ('rb'), not text")
        elif callable(getattr(file, "read", None)):
            self._stream = file  # type: ignore[assignment]
            try:
                self._start = file.tell() if file.seekable() else None  # type: ignore[attr-defined]
            except (AttributeError, OSError, ValueError):
                self._start = None
            raw_name = getattr(file, "name", None)
            name = PurePath(raw_name).name if isinstance(raw_name, str) else "upload.csv"
        else:
            raise InvalidArgumentTypeError(
                f"file must be a path or a binary file object, got {type(file).__name__}"
            )
        self._name = name or "upload.csv"
        self._fields = dict(fields or {})
        for key, value in self._fields.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgumentTypeError("fields must map str to str")
            if "\r" in value or "\n" in value:
                raise InvalidArgumentError(f"the value of field {key!r} must be one line")
        self._boundary = "voucherify-async-" + secrets.token_hex(12)
        self._first: bytes | None = None  # the first chunk, read by check() before sending
        #: The typed error of a read that failed while the body was sent (None: none).
        self.error: InvalidArgumentError | InvalidArgumentTypeError | None = None

    async def check(self) -> None:
        """Read the first chunk before anything is sent: a file object whose ``read()``
        fails or gives ``str`` is refused here, not halfway through the request. A path
        that cannot be opened for reading is refused too."""
        if self._stream is None:
            assert self._path is not None
            if not os.access(self._path, os.R_OK):
                raise InvalidArgumentError(f"file {self._path!r} is not a readable file")
            return
        self._first = await self._read(self._stream)

    async def _read(self, stream: IO[bytes]) -> bytes:
        try:
            chunk: object = await asyncio.to_thread(stream.read, CHUNK_BYTES)
        except Exception as exc:
            self.error = InvalidArgumentError(f"file could not be read: {exc!r}")
            raise self.error from exc
        if chunk is None:  # a non-blocking stream with nothing ready
            chunk = b""
        if not isinstance(chunk, bytes | bytearray):
            self.error = InvalidArgumentTypeError(
                f"file must give bytes, got {type(chunk).__name__}: open it in 'rb' mode"
            )
            raise self.error
        return bytes(chunk)

    @property
    def content_type(self) -> str:
        """The request's ``Content-Type``, with this upload's boundary."""
        return f"multipart/form-data; boundary={self._boundary}"

    def body(self) -> AsyncIterator[bytes]:
        """The multipart body for one attempt (aiohttp sends it chunked, as it is read)."""
        if self._used and self._start is None:
            raise InvalidArgumentError(
                "the file object cannot seek, so it can be sent only once, and this call "
                "needs to send it again: pass a path (or a seekable file) instead"
            )
        return self._chunks()

    def _head(self) -> bytes:
        parts = []
        for key, value in self._fields.items():
            parts.append(
                f'--{self._boundary}\r\nContent-Disposition: form-data; name="{_quoted(key)}"'
                f"\r\n\r\n{value}\r\n"
            )
        parts.append(
            f'--{self._boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{_quoted(self._name)}"\r\nContent-Type: text/csv\r\n\r\n'
        )
        return "".join(parts).encode("utf-8")

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield self._head()
        stream = self._stream
        owned: IO[bytes] | None = None
        try:
            if stream is None:
                assert self._path is not None
                stream = owned = await asyncio.to_thread(open, self._path, "rb")
            elif self._start is not None and self._first is None:
                await asyncio.to_thread(stream.seek, self._start)
            self._used = stream is not owned  # a file object read from: it moved on
            first, self._first = self._first, None
            while True:
                chunk = first if first is not None else await self._read(stream)
                first = None
                if not chunk:
                    break
                yield chunk
        finally:
            if owned is not None:
                owned.close()
        yield f"\r\n--{self._boundary}--\r\n".encode()


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


def _json_body(payload: object) -> Callable[[], bytes]:
    # The stdlib encoder, whatever the backend: orjson writes NaN and +-inf as null (a
    # silent change of the caller's data) and takes datetimes and dataclasses the stdlib
    # refuses; a start body is built once per action, so its speed does not matter.
    try:
        data = _json.stdlib_dumps(payload)
    except ValueError as exc:  # NaN, +-inf, a circular reference
        raise InvalidArgumentError(f"json must be valid JSON: {exc}") from None
    except TypeError as exc:
        raise InvalidArgumentTypeError(f"json must be JSON-serializable: {exc}") from None
    except RecursionError:
        raise InvalidArgumentError("json is nested too deeply to send") from None
    return lambda: data


async def send_start(
    transport: Transport,
    method: str,
    path: str,
    *,
    json: object = None,
    file: object = None,
    fields: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> str:
    """Send the request that starts an action, once unless it certainly never arrived.

    Returns the ``async_action_id`` of the 2xx answer (200 or 202, depending on the
    endpoint). Raises :class:`OutcomeUnknownError` when the request may have reached the
    server and its answer was lost, the :class:`APIError` of a non-2xx answer, and
    :class:`ResponseDecodeError` for a 2xx body without an ``async_action_id``.
    """
    method = check_method(method)
    path = check_path(path)
    if json is not None and file is not None:
        raise InvalidArgumentError("pass json or file, not both")
    if fields is not None and file is None:
        raise InvalidArgumentError("fields go with a file upload")
    headers: dict[str, str] = {}
    data: Callable[[], Any] | None = None
    upload: Upload | None = None
    if file is not None:
        upload = Upload(file, fields)
        await upload.check()
        data = upload.body
        headers["Content-Type"] = upload.content_type
    elif json is not None:
        data = _json_body(json)
        headers["Content-Type"] = "application/json"
    url = URL(transport.root + path, encoded=True)
    if params:
        query = {}
        for key, value in params.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgumentTypeError("params must map str to str")
            query[key] = value
        url = url.with_query(query)
    try:
        status, body = await transport.request(
            method, url, path=path, retry="unsent", data=data, headers=headers
        )
    except OutcomeUnknownError as exc:
        if upload is not None and upload.error is not None:
            # The file failed mid-upload: the chunked body never ended, so the server
            # cannot have taken it as a request.
            raise upload.error from exc
        raise
    return action_id_from(body, status)


def action_id_from(body: bytes, status: int) -> str:
    """The ``async_action_id`` of a 2xx answer; a :class:`ResponseDecodeError` if there is none."""
    try:
        payload = _json.loads(body) if body.strip() else None
    except (ValueError, TypeError):
        raise ResponseDecodeError(
            "the answer to a request that starts an async action is not JSON "
            "(the action may have started: look for it with client.async_actions.list())",
            status=status,
            body=body,
        ) from None
    action_id = payload.get("async_action_id") if isinstance(payload, dict) else None
    if action_id is not None and (not isinstance(action_id, str) or not action_id):
        raise ResponseDecodeError(
            "the answer's async_action_id is not a non-empty string (got "
            f"{type(action_id).__name__}): the action may have started, look for it with "
            "client.async_actions.list()",
            status=status,
            body=body,
            path="$.async_action_id",
        )
    if not isinstance(action_id, str) or not action_id:
        raise ResponseDecodeError(
            "the answer holds no async_action_id: this endpoint did not start an async action "
            "(some answer with the object itself, like adding a single voucher)",
            status=status,
            body=body,
            path="$.async_action_id",
        )
    return action_id
