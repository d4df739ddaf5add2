"""The async action as your code sees it: :class:`AsyncAction`, its list page and its enums.

Every model is an attrs frozen class built from the API's JSON by
:data:`voucherify_async.converter`; ``converter.unstructure(model)`` gives that JSON back.
Models keep what they do not know: unknown keys land in :attr:`AsyncAction.extra` (and in
the ``extra`` of every result and item class) and are written back on unstructure; an
unknown ``type``, ``status`` or ``operation_status`` stays a plain :class:`str`.

This module imports no aiohttp: it is plain data, usable to decode a webhook or a file.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

import attrs

__all__ = [
    "AsyncAction",
    "AsyncActionList",
    "AsyncActionStatus",
    "AsyncActionType",
    "OperationStatus",
]


def _read_only(*_: object, **__: object) -> NoReturn:
    raise TypeError("a model's extra mapping is read-only; use attrs.evolve(model, extra=...)")


class FrozenDict(dict[str, Any]):
    """A read-only dict: a model's ``extra``. Compares, prints, pickles and serializes as a dict."""

    __slots__ = ()

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return repr(dict(self))


#: The shared, read-only ``extra`` of a model that came without unknown keys.
EMPTY_EXTRA: Mapping[str, Any] = FrozenDict()
EMPTY_KEYS: frozenset[str] = frozenset()


class JsonModel:
    """Marks the classes whose hooks the converter builds itself (models, results, items)."""

    __slots__ = ()


def extra_field() -> Any:
    """The ``extra`` field: the keys the API sent that the class does not declare.

    Part of equality, not of the hash (a dict cannot be hashed): a list page's actions,
    which carry no result, can go in a set.
    """
    return attrs.field(default=EMPTY_EXTRA, kw_only=True, hash=False)


def present_field() -> Any:
    """A private field: the JSON keys the payload held, when that matters for unstructure.

    ``None`` (the default, and what a hand-built model has) means "emit every field that is
    not ``None``". The converter sets it only when the payload held explicit ``null`` values
    or left out a field whose default is not ``None``, so a round trip keeps both.
    It takes no part in equality, hashing or repr.
    """
    return attrs.field(default=None, eq=False, repr=False, alias="_present", kw_only=True)


class AsyncActionStatus(enum.StrEnum):
    """Where an async action is in its life; ``DONE`` and ``FAILED`` are final."""

    DONE = "DONE"
    ENQUEUED = "ENQUEUED"
    FAILED = "FAILED"
    IN_PROGRESS = "IN_PROGRESS"


class OperationStatus(enum.StrEnum):
    """How the work went, on bulk and metadata updates (the official SDKs wait on it)."""

    FAILED = "FAILED"
    SUCCESS = "SUCCESS"
    UNKNOWN = "UNKNOWN"


class AsyncActionType(enum.StrEnum):
    """The 22 kinds of async action the API documents; each has its own result class."""

    CAMPAIGN_VOUCHERS_IMPORT = "CAMPAIGN.VOUCHERS_IMPORT"
    CAMPAIGN_VOUCHERS_IMPORT_CSV = "CAMPAIGN.VOUCHERS_IMPORT_CSV"
    CAMPAIGN_VOUCHERS_UPDATE = "CAMPAIGN.VOUCHERS_UPDATE"
    CAMPAIGN_VOUCHERS_DELETE = "CAMPAIGN.VOUCHERS_DELETE"
    CAMPAIGN_VOUCHERS_GENERATE = "CAMPAIGN.VOUCHERS_GENERATE"
    CAMPAIGNS_METADATA_KEY_PURGE = "CAMPAIGNS.METADATA_KEY_PURGE"
    CUSTOMERS_IMPORT_CSV = "CUSTOMERS.IMPORT_CSV"
    CUSTOMERS_BULK_UPDATE = "CUSTOMERS.BULK_UPDATE"
    CUSTOMERS_METADATA_UPDATE = "CUSTOMERS.METADATA_UPDATE"
    CUSTOMERS_METADATA_KEY_PURGE = "CUSTOMERS.METADATA_KEY_PURGE"
    PRODUCTS_BULK_UPDATE = "PRODUCTS.BULK_UPDATE"
    PRODUCTS_METADATA_UPDATE = "PRODUCTS.METADATA_UPDATE"
    PRODUCTS_METADATA_KEY_PURGE = "PRODUCTS.METADATA_KEY_PURGE"
    PRODUCTS_IMPORT_CSV = "PRODUCTS.IMPORT_CSV"
    SKUS_IMPORT_CSV = "SKUS.IMPORT_CSV"
    VOUCHERS_IMPORT = "VOUCHERS.IMPORT"
    VOUCHERS_IMPORT_CSV = "VOUCHERS.IMPORT_CSV"
    VOUCHERS_BULK_UPDATE = "VOUCHERS.BULK_UPDATE"
    VOUCHERS_METADATA_UPDATE = "VOUCHERS.METADATA_UPDATE"
    VOUCHERS_METADATA_KEY_PURGE = "VOUCHERS.METADATA_KEY_PURGE"
    ORDERS_IMPORT = "ORDERS.IMPORT"
    ORDERS_METADATA_KEY_PURGE = "ORDERS.METADATA_KEY_PURGE"


@attrs.frozen(kw_only=True)
class AsyncAction(JsonModel):
    """One snapshot of an async action, as ``GET /v1/async-actions/{id}`` returns it.

    ``type``, ``status`` and ``operation_status`` are enum members when the value is one the
    API documents, and the plain string otherwise (a new value never breaks decoding).
    ``created_at`` and ``updated_at`` are timezone-aware UTC datetimes. ``result`` is an
    instance of the class registered for ``type`` (see
    :func:`~voucherify_async.result_type_for`; :class:`~voucherify_async.UnknownResult`
    for a type nobody registered), or ``None`` while the action runs and in list pages.
    ``processing_time`` is in milliseconds, ``progress`` in percent (0-100).
    ``extra`` holds the keys this class does not declare (``user``, ``log_id``...).
    ``str(action)`` (what ``print`` shows) is one line: id, type, status, progress and the
    result's counts; ``repr(action)`` has every field.
    """

    id: str
    type: AsyncActionType | str
    status: AsyncActionStatus | str
    operation_status: OperationStatus | str | None = None
    #: The typed result; see :func:`voucherify_async.result_type_for`.
    result: Any = attrs.field(default=None, metadata={"by_type": True})
    created_at: datetime | None = None
    updated_at: datetime | None = None
    request_id: str | None = None
    processing_time: int | None = None
    progress: int | None = None
    object: str | None = "async_action"
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()

    def __str__(self) -> str:
        """One line for people: id, type, status, progress and the result's counts, e.g.
        ``aa_0c55 VOUCHERS.IMPORT DONE 100% (done 2, failed 1)``; ``repr()`` has every field.

        A ``DONE`` action whose operation failed reads ``DONE (operation FAILED)``.
        """
        words = [one_line(self.id), one_line(_text(self.type)), one_line(_text(self.status))]
        if self.operation_status == OperationStatus.FAILED:
            words.append("(operation FAILED)")
        if self.progress is not None:
            words.append(f"{self.progress}%")
        counts = _counts(self.result)
        if counts:
            words.append(f"({counts})")
        return " ".join(words)

    @property
    def is_terminal(self) -> bool:
        """``True`` once the status is ``DONE`` or ``FAILED``; an unknown status is not final."""
        return self.status == AsyncActionStatus.DONE or self.status == AsyncActionStatus.FAILED

    @property
    def is_failed(self) -> bool:
        """``True`` for ``FAILED``, and for ``DONE`` with ``operation_status == FAILED``.

        Partial failures (``result.failed_count > 0``) do not count: they are in
        :attr:`result`.
        """
        if self.status == AsyncActionStatus.FAILED:
            return True
        return (
            self.status == AsyncActionStatus.DONE
            and self.operation_status == OperationStatus.FAILED
        )


def one_line(text: str) -> str:
    """*text* with control characters and line breaks (``\\n``, U+2028, ESC...) escaped the
    way ``repr()`` shows them: server-sent text can forge no log line or terminal sequence."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def _text(value: object) -> str:
    """An enum member's value, or the string the API sent."""
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _counts(result: object) -> str:
    """``done N, failed M`` from a result that has those counts (typed, or a raw dict)."""
    raw = getattr(result, "raw", None)
    found = []
    for name in ("done_count", "failed_count"):
        count = raw.get(name) if isinstance(raw, Mapping) else getattr(result, name, None)
        if isinstance(count, int) and not isinstance(count, bool):
            found.append(f"{name.removesuffix('_count')} {count}")
    return ", ".join(found)


@attrs.frozen(kw_only=True)
class AsyncActionList(JsonModel):
    """One page of ``GET /v1/async-actions``, newest first.

    ``async_actions`` carry no ``result``. ``has_more`` tells whether older actions exist;
    ask for them with ``end_date`` at the oldest ``created_at`` of this page.
    """

    async_actions: list[AsyncAction]
    has_more: bool = False
    object: str | None = "list"
    data_ref: str | None = "async_actions"
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
