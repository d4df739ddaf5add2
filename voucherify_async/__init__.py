"""voucherify-async: an asyncio-native client for Voucherify's Async Actions API."""

from __future__ import annotations

from . import instrumentation
from ._actions import AsyncActions
from ._client import VoucherifyClient
from ._config import PollPolicy
from ._converter import converter, decode_async_action, decode_async_action_list
from ._errors import (
    APIError,
    AsyncActionFailed,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PollTimeout,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VoucherifyError,
)
from ._handle import AsyncActionHandle
from ._models import (
    AsyncAction,
    AsyncActionList,
    AsyncActionStatus,
    AsyncActionType,
    OperationStatus,
)
from ._registry import register_result_type, result_type_for
from ._results import (
    AsyncActionResult,
    BulkUpdateError,
    CampaignsMetadataKeyPurgeResult,
    CampaignVouchersDeleteResult,
    CampaignVouchersGenerateResult,
    CampaignVouchersImportCsvResult,
    CampaignVouchersImportResult,
    CampaignVouchersUpdateResult,
    CustomerBulkUpdateError,
    CustomerCsvImportFailure,
    CustomersBulkUpdateResult,
    CustomersImportCsvResult,
    CustomersMetadataKeyPurgeResult,
    CustomersMetadataUpdateResult,
    MetadataKeyPurgeResult,
    MetadataUpdateError,
    MetadataUpdateResult,
    OrderImportFailure,
    OrdersImportResult,
    OrdersMetadataKeyPurgeResult,
    ProductBulkUpdateError,
    ProductCsvImportFailure,
    ProductsBulkUpdateResult,
    ProductsImportCsvResult,
    ProductsMetadataKeyPurgeResult,
    ProductsMetadataUpdateResult,
    SkuCsvImportFailure,
    SkusImportCsvResult,
    UnknownResult,
    VoucherBulkUpdateError,
    VoucherCsvImportFailure,
    VoucherImportFailure,
    VouchersBulkUpdateResult,
    VouchersImportCsvResult,
    VouchersImportResult,
    VouchersMetadataKeyPurgeResult,
    VouchersMetadataUpdateResult,
)

__all__ = [
    "APIError",
    "AsyncAction",
    "AsyncActionFailed",
    "AsyncActionHandle",
    "AsyncActionList",
    "AsyncActionResult",
    "AsyncActionStatus",
    "AsyncActionType",
    "AsyncActions",
    "AuthenticationError",
    "BulkUpdateError",
    "CampaignVouchersDeleteResult",
    "CampaignVouchersGenerateResult",
    "CampaignVouchersImportCsvResult",
    "CampaignVouchersImportResult",
    "CampaignVouchersUpdateResult",
    "CampaignsMetadataKeyPurgeResult",
    "ConfigurationError",
    "CustomerBulkUpdateError",
    "CustomerCsvImportFailure",
    "CustomersBulkUpdateResult",
    "CustomersImportCsvResult",
    "CustomersMetadataKeyPurgeResult",
    "CustomersMetadataUpdateResult",
    "MetadataKeyPurgeResult",
    "MetadataUpdateError",
    "MetadataUpdateResult",
    "NotFoundError",
    "OperationStatus",
    "OrderImportFailure",
    "OrdersImportResult",
    "OrdersMetadataKeyPurgeResult",
    "PollPolicy",
    "PollTimeout",
    "ProductBulkUpdateError",
    "ProductCsvImportFailure",
    "ProductsBulkUpdateResult",
    "ProductsImportCsvResult",
    "ProductsMetadataKeyPurgeResult",
    "ProductsMetadataUpdateResult",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "SkuCsvImportFailure",
    "SkusImportCsvResult",
    "TransportError",
    "UnknownResult",
    "VoucherBulkUpdateError",
    "VoucherCsvImportFailure",
    "VoucherImportFailure",
    "VoucherifyClient",
    "VoucherifyError",
    "VouchersBulkUpdateResult",
    "VouchersImportCsvResult",
    "VouchersImportResult",
    "VouchersMetadataKeyPurgeResult",
    "VouchersMetadataUpdateResult",
    "converter",
    "decode_async_action",
    "decode_async_action_list",
    "instrumentation",
    "register_result_type",
    "result_type_for",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("voucherify-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
