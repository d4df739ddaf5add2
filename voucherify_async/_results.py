"""The typed ``result`` of each async action type, and the rows and errors inside them.

One attrs frozen class per type (``VOUCHERS.IMPORT`` -> :class:`VouchersImportResult`...),
following the type's schema in Voucherify's OpenAPI document. Every field is optional
(``None`` when the API left it out) and every class keeps the keys it does not declare in
``extra``. Counts are ints, ``reports_available_till`` is a timezone-aware UTC datetime,
failed rows and errors are lists of small item classes.

Where the documents disagree with the API, the classes follow what the API sends:
``failed`` may come as one object instead of a list (it becomes a one-item list, and is
written back as an object); ``*.METADATA_UPDATE`` results carry the counts and reports of
bulk updates beyond their schema's ``errors``.

A type nobody registered gives an :class:`UnknownResult` holding the decoded JSON.

This module imports no aiohttp: it is plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ._models import EMPTY_KEYS, JsonModel, extra_field, present_field

__all__ = [
    "AsyncActionResult",
    "BulkUpdateError",
    "CampaignVouchersDeleteResult",
    "CampaignVouchersGenerateResult",
    "CampaignVouchersImportCsvResult",
    "CampaignVouchersImportResult",
    "CampaignVouchersUpdateResult",
    "CampaignsMetadataKeyPurgeResult",
    "CustomerBulkUpdateError",
    "CustomerCsvImportFailure",
    "CustomersBulkUpdateResult",
    "CustomersImportCsvResult",
    "CustomersMetadataKeyPurgeResult",
    "CustomersMetadataUpdateResult",
    "MetadataKeyPurgeResult",
    "MetadataUpdateError",
    "MetadataUpdateResult",
    "OrderImportFailure",
    "OrdersImportResult",
    "OrdersMetadataKeyPurgeResult",
    "ProductBulkUpdateError",
    "ProductCsvImportFailure",
    "ProductsBulkUpdateResult",
    "ProductsImportCsvResult",
    "ProductsMetadataKeyPurgeResult",
    "ProductsMetadataUpdateResult",
    "SkuCsvImportFailure",
    "SkusImportCsvResult",
    "UnknownResult",
    "VoucherBulkUpdateError",
    "VoucherCsvImportFailure",
    "VoucherImportFailure",
    "VouchersBulkUpdateResult",
    "VouchersImportCsvResult",
    "VouchersImportResult",
    "VouchersMetadataKeyPurgeResult",
    "VouchersMetadataUpdateResult",
]


#: Marks a list that the API sometimes sends as one object: the converter accepts both.
_ONE_OR_MANY = {"one_or_many": True}


def _singular_field() -> Any:
    # Which one-or-many fields came as a single object, to write them back that way.
    return attrs.field(default=EMPTY_KEYS, eq=False, repr=False, alias="_singular", kw_only=True)


# --- items: failed rows and errors -------------------------------------------------------


@attrs.frozen(kw_only=True)
class VoucherImportFailure(JsonModel):
    """A voucher that an import (``VOUCHERS.IMPORT``, ``CAMPAIGN.VOUCHERS_IMPORT``) rejected."""

    code: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class VoucherCsvImportFailure(JsonModel):
    """A CSV row of vouchers that failed; ``row`` counts from 1, the header excluded."""

    code: str | None = None
    row: int | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class CustomerCsvImportFailure(JsonModel):
    """A CSV row of customers that failed; ``row`` counts from 1, the header excluded."""

    source_id: str | None = None
    row: int | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class ProductCsvImportFailure(JsonModel):
    """A CSV row of products that failed; ``row`` counts from 1, the header excluded."""

    row: int | None = None
    source_id: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class SkuCsvImportFailure(JsonModel):
    """A CSV row of SKUs that failed; ``row`` counts from 1, the header excluded."""

    row: int | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class OrderImportFailure(JsonModel):
    """An order that ``ORDERS.IMPORT`` rejected; ``source_id`` may be ``None``."""

    source_id: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class BulkUpdateError(JsonModel):
    """The base of the per-record errors of bulk updates; see its subclasses."""


@attrs.frozen(kw_only=True)
class CustomerBulkUpdateError(BulkUpdateError):
    """A customer that ``CUSTOMERS.BULK_UPDATE`` could not update (``source_id``)."""

    message: str | None = None
    details: str | None = None
    key: str | None = None
    source_id: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class ProductBulkUpdateError(BulkUpdateError):
    """A product that ``PRODUCTS.BULK_UPDATE`` could not update (``source_id``)."""

    message: str | None = None
    details: str | None = None
    key: str | None = None
    source_id: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class VoucherBulkUpdateError(BulkUpdateError):
    """A voucher that ``VOUCHERS.BULK_UPDATE`` could not update (``code``)."""

    message: str | None = None
    details: str | None = None
    key: str | None = None
    code: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class MetadataUpdateError(JsonModel):
    """A record that a ``*.METADATA_UPDATE`` could not update."""

    message: str | None = None
    details: str | None = None
    key: str | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


# --- results -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AsyncActionResult(JsonModel):
    """The base of every built-in result class (``isinstance(r, AsyncActionResult)``)."""


@attrs.frozen(kw_only=True)
class UnknownResult:
    """The result of a type no class is registered for: ``raw`` is the decoded JSON as sent.

    Unstructuring gives ``raw`` back unchanged. Register a class with
    :func:`~voucherify_async.register_result_type` to get a typed result instead.
    """

    raw: Any


@attrs.frozen(kw_only=True)
class _VoucherImport(AsyncActionResult):
    message: str | None = None
    failed: list[VoucherImportFailure] | None = attrs.field(default=None, metadata=_ONE_OR_MANY)
    done_count: int | None = None
    failed_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
    _singular: frozenset[str] = _singular_field()


@attrs.frozen(kw_only=True)
class CampaignVouchersImportResult(_VoucherImport):
    """``CAMPAIGN.VOUCHERS_IMPORT``: vouchers imported into a campaign; failures by code."""


@attrs.frozen(kw_only=True)
class VouchersImportResult(_VoucherImport):
    """``VOUCHERS.IMPORT``: vouchers imported; failures by code."""


@attrs.frozen(kw_only=True)
class _VoucherCsvImport(AsyncActionResult):
    message: str | None = None
    failed: list[VoucherCsvImportFailure] | None = attrs.field(default=None, metadata=_ONE_OR_MANY)
    done_count: int | None = None
    failed_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
    _singular: frozenset[str] = _singular_field()


@attrs.frozen(kw_only=True)
class CampaignVouchersImportCsvResult(_VoucherCsvImport):
    """``CAMPAIGN.VOUCHERS_IMPORT_CSV``: a CSV of vouchers for a campaign; failures by row."""


@attrs.frozen(kw_only=True)
class VouchersImportCsvResult(_VoucherCsvImport):
    """``VOUCHERS.IMPORT_CSV``: a CSV of vouchers; failures by code and row."""


@attrs.frozen(kw_only=True)
class CustomersImportCsvResult(AsyncActionResult):
    """``CUSTOMERS.IMPORT_CSV``: a CSV of customers; failures by source id and row."""

    message: str | None = None
    failed: list[CustomerCsvImportFailure] | None = attrs.field(default=None, metadata=_ONE_OR_MANY)
    done_count: int | None = None
    failed_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
    _singular: frozenset[str] = _singular_field()


@attrs.frozen(kw_only=True)
class ProductsImportCsvResult(AsyncActionResult):
    """``PRODUCTS.IMPORT_CSV``: a CSV of products; failures by row."""

    message: str | None = None
    failed: list[ProductCsvImportFailure] | None = attrs.field(default=None, metadata=_ONE_OR_MANY)
    done_count: int | None = None
    failed_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
    _singular: frozenset[str] = _singular_field()


@attrs.frozen(kw_only=True)
class SkusImportCsvResult(AsyncActionResult):
    """``SKUS.IMPORT_CSV``: a CSV of SKUs; failures by row."""

    message: str | None = None
    failed: list[SkuCsvImportFailure] | None = attrs.field(default=None, metadata=_ONE_OR_MANY)
    done_count: int | None = None
    failed_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
    _singular: frozenset[str] = _singular_field()


@attrs.frozen(kw_only=True)
class OrdersImportResult(AsyncActionResult):
    """``ORDERS.IMPORT``: orders imported; failures by source id."""

    message: str | None = None
    failed: list[OrderImportFailure] | None = attrs.field(default=None, metadata=_ONE_OR_MANY)
    done_count: int | None = None
    failed_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()
    _singular: frozenset[str] = _singular_field()


@attrs.frozen(kw_only=True)
class _MessageAndCount(AsyncActionResult):
    message: str | None = None
    done_count: int | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class CampaignVouchersUpdateResult(_MessageAndCount):
    """``CAMPAIGN.VOUCHERS_UPDATE``: ``done_count`` vouchers of a campaign updated."""


@attrs.frozen(kw_only=True)
class CampaignVouchersDeleteResult(_MessageAndCount):
    """``CAMPAIGN.VOUCHERS_DELETE``: ``done_count`` vouchers of a campaign deleted."""


@attrs.frozen(kw_only=True)
class CampaignVouchersGenerateResult(_MessageAndCount):
    """``CAMPAIGN.VOUCHERS_GENERATE``: ``done_count`` vouchers generated for a campaign."""


@attrs.frozen(kw_only=True)
class MetadataKeyPurgeResult(_MessageAndCount):
    """The base of the five ``*.METADATA_KEY_PURGE`` results: ``done_count`` records updated."""


@attrs.frozen(kw_only=True)
class CampaignsMetadataKeyPurgeResult(MetadataKeyPurgeResult):
    """``CAMPAIGNS.METADATA_KEY_PURGE``: a metadata key removed from campaigns."""


@attrs.frozen(kw_only=True)
class CustomersMetadataKeyPurgeResult(MetadataKeyPurgeResult):
    """``CUSTOMERS.METADATA_KEY_PURGE``: a metadata key removed from customers."""


@attrs.frozen(kw_only=True)
class ProductsMetadataKeyPurgeResult(MetadataKeyPurgeResult):
    """``PRODUCTS.METADATA_KEY_PURGE``: a metadata key removed from products."""


@attrs.frozen(kw_only=True)
class VouchersMetadataKeyPurgeResult(MetadataKeyPurgeResult):
    """``VOUCHERS.METADATA_KEY_PURGE``: a metadata key removed from vouchers."""


@attrs.frozen(kw_only=True)
class OrdersMetadataKeyPurgeResult(MetadataKeyPurgeResult):
    """``ORDERS.METADATA_KEY_PURGE``: a metadata key removed from orders."""


@attrs.frozen(kw_only=True)
class CustomersBulkUpdateResult(AsyncActionResult):
    """``CUSTOMERS.BULK_UPDATE``: counts, report links (placeholders in the docs) and errors.

    ``reports`` are kept as sent: the seed's ``{{voucherify-link-to-report}}`` is no URL.
    """

    done_count: int | None = None
    failed_count: int | None = None
    reports: list[str] | None = None
    reports_available_till: datetime | None = None
    errors: list[CustomerBulkUpdateError] | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class ProductsBulkUpdateResult(AsyncActionResult):
    """``PRODUCTS.BULK_UPDATE``: counts, report links and per-product errors."""

    done_count: int | None = None
    failed_count: int | None = None
    reports: list[str] | None = None
    reports_available_till: datetime | None = None
    errors: list[ProductBulkUpdateError] | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class VouchersBulkUpdateResult(AsyncActionResult):
    """``VOUCHERS.BULK_UPDATE``: counts, report links and per-voucher errors."""

    done_count: int | None = None
    failed_count: int | None = None
    reports: list[str] | None = None
    reports_available_till: datetime | None = None
    errors: list[VoucherBulkUpdateError] | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class MetadataUpdateResult(AsyncActionResult):
    """The base of the three ``*.METADATA_UPDATE`` results.

    The schemas declare only ``errors``; the API also sends the counts and report links
    of a bulk update, typed here too.
    """

    done_count: int | None = None
    failed_count: int | None = None
    reports: list[str] | None = None
    reports_available_till: datetime | None = None
    errors: list[MetadataUpdateError] | None = None
    extra: Mapping[str, Any] = extra_field()
    _present: frozenset[str] | None = present_field()


@attrs.frozen(kw_only=True)
class CustomersMetadataUpdateResult(MetadataUpdateResult):
    """``CUSTOMERS.METADATA_UPDATE``: metadata of many customers updated."""


@attrs.frozen(kw_only=True)
class ProductsMetadataUpdateResult(MetadataUpdateResult):
    """``PRODUCTS.METADATA_UPDATE``: metadata of many products updated."""


@attrs.frozen(kw_only=True)
class VouchersMetadataUpdateResult(MetadataUpdateResult):
    """``VOUCHERS.METADATA_UPDATE``: metadata of many vouchers updated."""
