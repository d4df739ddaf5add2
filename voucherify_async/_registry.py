"""Which class the ``result`` of each async action type decodes into.

Pre-filled with the 22 types Voucherify documents. :func:`register_result_type` adds a
type (a new one the API started sending) or replaces a class; the converter looks the
class up each time it decodes an action, so a registration takes effect at once.

This module imports no aiohttp: it is plain data.
"""

from __future__ import annotations

from typing import Any

from ._errors import InvalidArgumentError, InvalidArgumentTypeError
from ._models import AsyncActionType
from ._results import (
    CampaignsMetadataKeyPurgeResult,
    CampaignVouchersDeleteResult,
    CampaignVouchersGenerateResult,
    CampaignVouchersImportCsvResult,
    CampaignVouchersImportResult,
    CampaignVouchersUpdateResult,
    CustomersBulkUpdateResult,
    CustomersImportCsvResult,
    CustomersMetadataKeyPurgeResult,
    CustomersMetadataUpdateResult,
    OrdersImportResult,
    OrdersMetadataKeyPurgeResult,
    ProductsBulkUpdateResult,
    ProductsImportCsvResult,
    ProductsMetadataKeyPurgeResult,
    ProductsMetadataUpdateResult,
    SkusImportCsvResult,
    UnknownResult,
    VouchersBulkUpdateResult,
    VouchersImportCsvResult,
    VouchersImportResult,
    VouchersMetadataKeyPurgeResult,
    VouchersMetadataUpdateResult,
)

__all__ = ["register_result_type", "result_type_for"]

_T = AsyncActionType

#: type name -> result class. Keys are plain strings, so a lookup is one dict get.
_RESULT_TYPES: dict[str, type[Any]] = {
    _T.CAMPAIGN_VOUCHERS_IMPORT.value: CampaignVouchersImportResult,
    _T.CAMPAIGN_VOUCHERS_IMPORT_CSV.value: CampaignVouchersImportCsvResult,
    _T.CAMPAIGN_VOUCHERS_UPDATE.value: CampaignVouchersUpdateResult,
    _T.CAMPAIGN_VOUCHERS_DELETE.value: CampaignVouchersDeleteResult,
    _T.CAMPAIGN_VOUCHERS_GENERATE.value: CampaignVouchersGenerateResult,
    _T.CAMPAIGNS_METADATA_KEY_PURGE.value: CampaignsMetadataKeyPurgeResult,
    _T.CUSTOMERS_IMPORT_CSV.value: CustomersImportCsvResult,
    _T.CUSTOMERS_BULK_UPDATE.value: CustomersBulkUpdateResult,
    _T.CUSTOMERS_METADATA_UPDATE.value: CustomersMetadataUpdateResult,
    _T.CUSTOMERS_METADATA_KEY_PURGE.value: CustomersMetadataKeyPurgeResult,
    _T.PRODUCTS_BULK_UPDATE.value: ProductsBulkUpdateResult,
    _T.PRODUCTS_METADATA_UPDATE.value: ProductsMetadataUpdateResult,
    _T.PRODUCTS_METADATA_KEY_PURGE.value: ProductsMetadataKeyPurgeResult,
    _T.PRODUCTS_IMPORT_CSV.value: ProductsImportCsvResult,
    _T.SKUS_IMPORT_CSV.value: SkusImportCsvResult,
    _T.VOUCHERS_IMPORT.value: VouchersImportResult,
    _T.VOUCHERS_IMPORT_CSV.value: VouchersImportCsvResult,
    _T.VOUCHERS_BULK_UPDATE.value: VouchersBulkUpdateResult,
    _T.VOUCHERS_METADATA_UPDATE.value: VouchersMetadataUpdateResult,
    _T.VOUCHERS_METADATA_KEY_PURGE.value: VouchersMetadataKeyPurgeResult,
    _T.ORDERS_IMPORT.value: OrdersImportResult,
    _T.ORDERS_METADATA_KEY_PURGE.value: OrdersMetadataKeyPurgeResult,
}


def register_result_type(type_name: str, cls: type[Any]) -> None:
    """Decode the ``result`` of actions of type *type_name* into *cls* from now on.

    Adds a mapping, or replaces the one there was. *cls* is any class the converter can
    structure from a dict: an attrs class (its fields are checked as strictly as the
    built-in ones: ``"5"`` is no ``int``), or one you registered a cattrs hook for.
    *type_name* may be an :class:`~voucherify_async.AsyncActionType` member or any string.

    :raises InvalidArgumentTypeError: *type_name* is not a string or *cls* is not a class
        (also a ``TypeError``).
    :raises InvalidArgumentError: *type_name* is empty (also a ``ValueError``).
    """
    if not isinstance(type_name, str):
        raise InvalidArgumentTypeError(f"type_name must be a str, not {type(type_name).__name__}")
    if not type_name:
        raise InvalidArgumentError("type_name must not be empty")
    if not isinstance(cls, type):
        raise InvalidArgumentTypeError(f"cls must be a class, not {cls!r}")
    _RESULT_TYPES[str(type_name)] = cls


def result_type_for(type_name: str) -> type[Any]:
    """The class the ``result`` of an action of type *type_name* decodes into.

    :class:`~voucherify_async.UnknownResult` for a type nobody registered.
    """
    return _RESULT_TYPES.get(type_name, UnknownResult)
