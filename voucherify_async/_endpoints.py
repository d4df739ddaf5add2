"""Starting async actions from ``client.async_actions``: ``start()`` and one helper per endpoint.

Every helper is one line over :meth:`StartActions.start`, the one mechanism: the request goes
through the client's gate and budget, is sent once when it may have reached the server, and
gives the action's live handle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from . import instrumentation
from ._config import PollPolicy
from ._errors import ClientClosedError, InvalidArgumentError, InvalidArgumentTypeError
from ._handle import AsyncActionHandle
from ._routes import route_template
from ._start import CsvFile, send_start
from ._transport import Transport
from ._validate import path_segment

__all__ = ["StartActions"]

#: A JSON object, as a mapping of str keys.
JsonObject = Mapping[str, Any]


def _rows(value: object, what: str) -> list[Any]:
    """A non-empty sequence of JSON objects (a list or tuple, never a lone str or dict)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise InvalidArgumentTypeError(f"{what} must be a list of objects")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    for index, row in enumerate(value):
        if not isinstance(row, Mapping):
            raise InvalidArgumentTypeError(
                f"{what}[{index}] must be an object (a dict), got {type(row).__name__}"
            )
    return list(value)


def _object(value: object, what: str) -> dict[str, Any]:
    """A JSON object given as a mapping with str keys, copied into a dict."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(
            f"{what} must be an object (a dict), got {type(value).__name__}"
        )
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentTypeError(f"{what}'s keys must be str, got {key!r}")
    return dict(value)


def _names(value: object, what: str) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidArgumentTypeError(f"{what} must be a list of str")
    if not value or not all(isinstance(item, str) and item for item in value):
        raise InvalidArgumentError(f"{what} must be a non-empty list of non-empty str")
    return list(value)


class StartActions:
    """The part of ``client.async_actions`` that starts actions (mixed into AsyncActions)."""

    _transport: Transport
    _closing: bool

    def _adopt(
        self,
        action_id: str,
        policy: PollPolicy | None,
        started_at: float,
        action_type: str | None = None,
    ) -> AsyncActionHandle:
        raise NotImplementedError  # AsyncActions registers the handle

    async def start(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        file: CsvFile | None = None,
        fields: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        policy: PollPolicy | None = None,
        action_type: str | None = None,
    ) -> AsyncActionHandle:
        """Start an async action with one request and return its live handle.

        *method* is ``"POST"`` or ``"DELETE"`` (PUT and PATCH are allowed too); *path* an API
        path starting with ``/v1/`` or ``/v2/``, already percent-encoded (the named helpers
        encode ids for you). The body is *json* (any JSON value), or *file*, a CSV sent as a
        ``multipart/form-data`` upload (field ``file``, plus any *fields*), streamed from a
        path or a binary file object in 64 KiB chunks, never read whole into memory. A file
        object is read from where it stands and left open; one that cannot seek can be sent
        only once. *params* is the query string. *policy* applies to the handle (default: the
        client's poll_policy). *action_type* is the type the action will have, if you know it
        (the named helpers do): the handle plans its first poll from the durations the client
        learned for that type, instead of waiting for a snapshot to tell the type.

        The request passes the client's gate and budget like any other. It is retried only
        when it certainly did not reach the server (the connection was refused, or a 429
        said it was not processed); any other failure raises :class:`OutcomeUnknownError`,
        since sending it again could start the action twice. A non-2xx answer raises its
        :class:`APIError`; a 2xx answer without ``async_action_id`` a
        :class:`ResponseDecodeError`. The handle knows when the action started
        (:attr:`AsyncActionHandle.started_at`).
        """
        if self._closing:
            raise ClientClosedError("this VoucherifyClient is closed: nothing was sent")
        if action_type is not None and not isinstance(action_type, str):
            raise InvalidArgumentTypeError(
                f"action_type is a str such as 'VOUCHERS.IMPORT', got {type(action_type).__name__}"
            )
        hooks = instrumentation.on_start
        if hooks:
            action_id = await self._observed_start(
                hooks, method, path, action_type, json, file, fields, params
            )
        else:
            action_id = await send_start(
                self._transport, method, path, json=json, file=file, fields=fields, params=params
            )
        return self._adopt(action_id, policy, asyncio.get_running_loop().time(), action_type)

    async def _observed_start(
        self,
        hooks: tuple[instrumentation.OnStartHook, ...],
        method: str,
        path: str,
        action_type: str | None,
        json: object,
        file: CsvFile | None,
        fields: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
    ) -> str:
        """:func:`send_start` between the start hooks and their finishers."""
        event = instrumentation.StartEvent(
            method.upper() if isinstance(method, str) else str(method),
            route_template(path) if isinstance(path, str) else "",
            action_type,
        )
        finishers = instrumentation.emit_scoped(hooks, event)
        try:
            action_id = await send_start(
                self._transport, method, path, json=json, file=file, fields=fields, params=params
            )
        except BaseException as exc:
            instrumentation.finish_scoped(finishers, instrumentation.StartOutcome(None, exc))
            raise
        instrumentation.finish_scoped(finishers, instrumentation.StartOutcome(action_id, None))
        return action_id

    # -- vouchers ------------------------------------------------------------------------

    async def start_vouchers_import(
        self, vouchers: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/vouchers/import``: import standalone vouchers (``VOUCHERS.IMPORT``)."""
        body = _rows(vouchers, "vouchers")
        return await self.start(
            "POST", "/v1/vouchers/import", json=body, policy=policy, action_type="VOUCHERS.IMPORT"
        )

    async def start_vouchers_import_csv(
        self, file: CsvFile, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/vouchers/importCSV``: import vouchers from a CSV (``VOUCHERS.IMPORT_CSV``)."""
        return await self.start(
            "POST",
            "/v1/vouchers/importCSV",
            file=file,
            policy=policy,
            action_type="VOUCHERS.IMPORT_CSV",
        )

    async def start_vouchers_bulk_update(
        self, updates: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/vouchers/bulk/async``: update vouchers' metadata one by one
        (``VOUCHERS.BULK_UPDATE``); each item is ``{"code": ..., "metadata": {...}}``."""
        body = _rows(updates, "updates")
        return await self.start(
            "POST",
            "/v1/vouchers/bulk/async",
            json=body,
            policy=policy,
            action_type="VOUCHERS.BULK_UPDATE",
        )

    async def start_vouchers_metadata_update(
        self, codes: Sequence[str], metadata: JsonObject, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/vouchers/metadata/async``: set the same *metadata* on every voucher of
        *codes* (``VOUCHERS.METADATA_UPDATE``)."""
        body = {"codes": _names(codes, "codes"), "metadata": _object(metadata, "metadata")}
        return await self.start(
            "POST",
            "/v1/vouchers/metadata/async",
            json=body,
            policy=policy,
            action_type="VOUCHERS.METADATA_UPDATE",
        )

    # -- campaigns -----------------------------------------------------------------------

    async def start_campaign_vouchers_import(
        self, campaign_id: str, vouchers: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/campaigns/{id}/import``: import vouchers into a campaign (id or name)
        (``CAMPAIGN.VOUCHERS_IMPORT``)."""
        path = f"/v1/campaigns/{path_segment(campaign_id, 'campaign_id')}/import"
        return await self.start(
            "POST",
            path,
            json=_rows(vouchers, "vouchers"),
            policy=policy,
            action_type="CAMPAIGN.VOUCHERS_IMPORT",
        )

    async def start_campaign_vouchers_import_csv(
        self, campaign_id: str, file: CsvFile, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/campaigns/{id}/importCSV``: import vouchers into a campaign from a CSV
        (``CAMPAIGN.VOUCHERS_IMPORT_CSV``)."""
        path = f"/v1/campaigns/{path_segment(campaign_id, 'campaign_id')}/importCSV"
        return await self.start(
            "POST", path, file=file, policy=policy, action_type="CAMPAIGN.VOUCHERS_IMPORT_CSV"
        )

    async def start_campaign_vouchers_generate(
        self,
        campaign_id: str,
        count: int,
        voucher: JsonObject | None = None,
        *,
        policy: PollPolicy | None = None,
    ) -> AsyncActionHandle:
        """``POST /v1/campaigns/{id}/vouchers?vouchers_count=N``: add *count* (>= 2) generated
        vouchers to a campaign (``CAMPAIGN.VOUCHERS_GENERATE``), *voucher* overriding the
        campaign's defaults. A count of 1 answers the voucher itself, not an action."""
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidArgumentTypeError(f"count is an int, got {type(count).__name__}")
        if count < 2:
            raise InvalidArgumentError(
                f"count must be >= 2 (one voucher is created at once, no action), got {count}"
            )
        if count >= 2**63:
            raise InvalidArgumentError("count must fit in 64 bits (the API's integers)")
        path = f"/v1/campaigns/{path_segment(campaign_id, 'campaign_id')}/vouchers"
        body = {} if voucher is None else _object(voucher, "voucher")
        params = {"vouchers_count": str(count)}
        return await self.start(
            "POST",
            path,
            json=body,
            params=params,
            policy=policy,
            action_type="CAMPAIGN.VOUCHERS_GENERATE",
        )

    async def delete_campaign(
        self, campaign_id: str, *, force: bool = False, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``DELETE /v1/campaigns/{id}``: delete a campaign and its vouchers; to the bin unless
        *force* (default False) (``CAMPAIGN.VOUCHERS_DELETE``)."""
        path = f"/v1/campaigns/{path_segment(campaign_id, 'campaign_id')}"
        params = {"force": "true"} if force else None
        return await self.start(
            "DELETE", path, params=params, policy=policy, action_type="CAMPAIGN.VOUCHERS_DELETE"
        )

    # -- customers, products, SKUs, orders ------------------------------------------------

    async def start_customers_import_csv(
        self, file: CsvFile, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/customers/importCSV``: import customers from a CSV
        (``CUSTOMERS.IMPORT_CSV``)."""
        return await self.start(
            "POST",
            "/v1/customers/importCSV",
            file=file,
            policy=policy,
            action_type="CUSTOMERS.IMPORT_CSV",
        )

    async def start_customers_bulk_update(
        self, customers: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/customers/bulk/async``: upsert customers by ``source_id``
        (``CUSTOMERS.BULK_UPDATE``)."""
        body = _rows(customers, "customers")
        return await self.start(
            "POST",
            "/v1/customers/bulk/async",
            json=body,
            policy=policy,
            action_type="CUSTOMERS.BULK_UPDATE",
        )

    async def start_customers_metadata_update(
        self, source_ids: Sequence[str], metadata: JsonObject, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/customers/metadata/async``: set *metadata* on the customers of
        *source_ids* (``CUSTOMERS.METADATA_UPDATE``)."""
        body = {
            "source_ids": _names(source_ids, "source_ids"),
            "metadata": _object(metadata, "metadata"),
        }
        return await self.start(
            "POST",
            "/v1/customers/metadata/async",
            json=body,
            policy=policy,
            action_type="CUSTOMERS.METADATA_UPDATE",
        )

    async def start_products_bulk_update(
        self, products: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/products/bulk/async``: upsert products by ``source_id``
        (``PRODUCTS.BULK_UPDATE``)."""
        body = _rows(products, "products")
        return await self.start(
            "POST",
            "/v1/products/bulk/async",
            json=body,
            policy=policy,
            action_type="PRODUCTS.BULK_UPDATE",
        )

    async def start_products_metadata_update(
        self, source_ids: Sequence[str], metadata: JsonObject, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/products/metadata/async``: set *metadata* on the products of
        *source_ids* (``PRODUCTS.METADATA_UPDATE``)."""
        body = {
            "source_ids": _names(source_ids, "source_ids"),
            "metadata": _object(metadata, "metadata"),
        }
        return await self.start(
            "POST",
            "/v1/products/metadata/async",
            json=body,
            policy=policy,
            action_type="PRODUCTS.METADATA_UPDATE",
        )

    async def start_products_import_csv(
        self, file: CsvFile, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/products/importCSV``: import products from a CSV (``PRODUCTS.IMPORT_CSV``)."""
        return await self.start(
            "POST",
            "/v1/products/importCSV",
            file=file,
            policy=policy,
            action_type="PRODUCTS.IMPORT_CSV",
        )

    async def start_skus_import_csv(
        self, file: CsvFile, *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/skus/importCSV``: import SKUs from a CSV (``SKUS.IMPORT_CSV``)."""
        return await self.start(
            "POST", "/v1/skus/importCSV", file=file, policy=policy, action_type="SKUS.IMPORT_CSV"
        )

    async def start_orders_import(
        self, orders: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v1/orders/import``: import orders (``ORDERS.IMPORT``)."""
        body = _rows(orders, "orders")
        return await self.start(
            "POST", "/v1/orders/import", json=body, policy=policy, action_type="ORDERS.IMPORT"
        )

    # -- loyalty programs ------------------------------------------------------------------

    async def start_loyalty_members_batch(
        self, program_id: str, members: Sequence[JsonObject], *, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``POST /v2/loyalties/programs/{id}/members/batch``: add members to a loyalty program.

        Its action type is not among the 22 the API documents: the handle's action decodes
        with the type as a plain ``str`` and an :class:`UnknownResult`.
        """
        path = f"/v2/loyalties/programs/{path_segment(program_id, 'program_id')}/members/batch"
        return await self.start("POST", path, json=_rows(members, "members"), policy=policy)

    async def delete_loyalty_program(
        self, campaign_id: str, *, force: bool = False, policy: PollPolicy | None = None
    ) -> AsyncActionHandle:
        """``DELETE /v1/loyalties/{id}``: delete a loyalty program (id or name) and its cards;
        to the bin unless *force* (default False)."""
        path = f"/v1/loyalties/{path_segment(campaign_id, 'campaign_id')}"
        params = {"force": "true"} if force else None
        return await self.start("DELETE", path, params=params, policy=policy)
