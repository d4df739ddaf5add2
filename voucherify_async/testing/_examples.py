# ruff: noqa: E501  (the seed's messages are kept verbatim)
"""Default results the emulator serves, one per async action type.

``DONE_RESULTS`` are the results of the seed's example responses (Voucherify's OpenAPI
document), copied here so the package never reads test data at run time. The example the
seed files under ``CAMPAIGN.VOUCHERS_IMPORT_CSV`` actually holds a ``CUSTOMERS.IMPORT_CSV``
action, so that type gets a result written to its own schema (failed rows with ``code``,
``row`` and ``reason``). ``FAILED_RESULTS`` follow the same schemas for actions that end
``FAILED``.
"""

from __future__ import annotations

import copy
from typing import Any, Final

__all__ = [
    "ACTION_TYPES",
    "DONE_RESULTS",
    "FAILED_RESULTS",
    "OPERATION_STATUS_TYPES",
    "SEED_PROCESSING_MS",
    "default_result",
]

#: The 22 async action types of the seed's enum, in its order.
ACTION_TYPES: Final[tuple[str, ...]] = (
    "CAMPAIGN.VOUCHERS_IMPORT",
    "CAMPAIGN.VOUCHERS_IMPORT_CSV",
    "CAMPAIGN.VOUCHERS_UPDATE",
    "CAMPAIGN.VOUCHERS_DELETE",
    "CAMPAIGN.VOUCHERS_GENERATE",
    "CAMPAIGNS.METADATA_KEY_PURGE",
    "CUSTOMERS.IMPORT_CSV",
    "CUSTOMERS.BULK_UPDATE",
    "CUSTOMERS.METADATA_UPDATE",
    "CUSTOMERS.METADATA_KEY_PURGE",
    "PRODUCTS.BULK_UPDATE",
    "PRODUCTS.METADATA_UPDATE",
    "PRODUCTS.METADATA_KEY_PURGE",
    "PRODUCTS.IMPORT_CSV",
    "SKUS.IMPORT_CSV",
    "VOUCHERS.IMPORT",
    "VOUCHERS.IMPORT_CSV",
    "VOUCHERS.BULK_UPDATE",
    "VOUCHERS.METADATA_UPDATE",
    "VOUCHERS.METADATA_KEY_PURGE",
    "ORDERS.IMPORT",
    "ORDERS.METADATA_KEY_PURGE",
)

#: Types whose terminal responses carry ``operation_status`` (bulk and metadata updates).
OPERATION_STATUS_TYPES: Final[frozenset[str]] = frozenset(
    {
        "CUSTOMERS.BULK_UPDATE",
        "CUSTOMERS.METADATA_UPDATE",
        "PRODUCTS.BULK_UPDATE",
        "PRODUCTS.METADATA_UPDATE",
        "VOUCHERS.BULK_UPDATE",
        "VOUCHERS.METADATA_UPDATE",
    }
)

#: ``result`` of a ``DONE`` action, per type (the seed's examples).
DONE_RESULTS: Final[dict[str, dict[str, Any]]] = {
    "CAMPAIGN.VOUCHERS_IMPORT": {
        "message": "0 voucher(s) imported successfully, 3 failed.",
        "failed": [
            {
                "code": "CODE9",
                "reason": "unit: must be a number, property is required (actual value is 'EUR')",
            },
            {
                "code": "CODE8",
                "reason": "unit: must be a number, property is required (actual value is 'EUR')",
            },
            {
                "code": "CODE7",
                "reason": "unit: must be a number, property is required (actual value is 'EUR')",
            },
        ],
        "done_count": 0,
        "failed_count": 3,
    },
    "CAMPAIGN.VOUCHERS_IMPORT_CSV": {
        "message": "1 voucher(s) imported successfully, 2 failed.",
        "failed": [
            {"code": "SUMMER-10", "row": 2, "reason": "Duplicate voucher code"},
            {
                "code": "SUMMER-11",
                "row": 3,
                "reason": "discount.percent_off: must be a number (actual value is 'ten')",
            },
        ],
        "done_count": 1,
        "failed_count": 2,
    },
    "CAMPAIGN.VOUCHERS_UPDATE": {"message": "Updated 1 vouchers.", "done_count": 1},
    "CAMPAIGN.VOUCHERS_DELETE": {"message": "Deleted 2 vouchers.", "done_count": 2},
    "CAMPAIGN.VOUCHERS_GENERATE": {"message": "Generated 2 vouchers.", "done_count": 2},
    "CAMPAIGNS.METADATA_KEY_PURGE": {"message": "Updated 0 campaigns.", "done_count": 0},
    "CUSTOMERS.IMPORT_CSV": {
        "message": "0 customer(s) imported successfully, 2 failed.",
        "failed": [
            {
                "source_id": "test-user@voucherify.io",
                "row": 1,
                "reason": "acquisition_channel: must be a string, property is required, must be equal to one of Facebook,Twitter,Website (actual value is 'snap')",
            },
            {
                "source_id": "",
                "row": 2,
                "reason": "acquisition_channel: must be a string, property is required, must be equal to one of Facebook,Twitter,Website (actual value is 'insta')",
            },
        ],
        "done_count": 0,
        "failed_count": 2,
    },
    "CUSTOMERS.BULK_UPDATE": {
        "done_count": 3,
        "failed_count": 0,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": "2024-11-06T08:26:13.304Z",
        "errors": [],
    },
    "CUSTOMERS.METADATA_UPDATE": {
        "done_count": 3,
        "failed_count": 0,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": "2024-11-06T08:26:13.304Z",
        "errors": [],
    },
    "CUSTOMERS.METADATA_KEY_PURGE": {"message": "Updated 0 customers.", "done_count": 0},
    "PRODUCTS.BULK_UPDATE": {
        "done_count": 3,
        "failed_count": 0,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": "2024-11-06T08:26:13.304Z",
        "errors": [],
    },
    "PRODUCTS.METADATA_UPDATE": {
        "done_count": 3,
        "failed_count": 0,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": "2024-11-06T08:26:13.304Z",
        "errors": [],
    },
    "PRODUCTS.METADATA_KEY_PURGE": {"message": "Updated 2 products.", "done_count": 2},
    "PRODUCTS.IMPORT_CSV": {
        "message": "1 product(s) imported successfully, 1 failed.",
        "failed": [
            {
                "row": 1,
                "reason": "vendor: must be a string, property is required, must be equal to one of Vendor 1,Vendor 2 (actual value is 'Vendor 3')",
            }
        ],
        "done_count": 1,
        "failed_count": 1,
    },
    "SKUS.IMPORT_CSV": {
        "message": "4 sku(s) imported successfully, 0 failed.",
        "failed": [],
        "done_count": 4,
        "failed_count": 0,
    },
    "VOUCHERS.IMPORT": {
        "message": "0 voucher(s) imported successfully, 3 failed.",
        "failed": [
            {
                "code": "PROMO-CODE31",
                "reason": "unit: must be a number, must be equal to one of 1,2 (actual value is 'EUR')",
            },
            {
                "code": "PROMO-CODE21",
                "reason": "unit: must be a number, must be equal to one of 1,2 (actual value is 'EUR')",
            },
            {
                "code": "GIFT-CARD-100-1",
                "reason": "unit: must be a number, must be equal to one of 1,2 (actual value is 'EUR')",
            },
        ],
        "done_count": 0,
        "failed_count": 3,
    },
    "VOUCHERS.IMPORT_CSV": {
        "message": "0 voucher(s) imported successfully, 2 failed.",
        "failed": [
            {"code": "FALL2023", "row": 1, "reason": "Voucher Type is required"},
            {"code": "FALL2024", "row": 2, "reason": "Voucher Type is required"},
        ],
        "done_count": 0,
        "failed_count": 2,
    },
    "VOUCHERS.BULK_UPDATE": {
        "done_count": 3,
        "failed_count": 0,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": "2024-11-06T08:26:13.304Z",
        "errors": [],
    },
    "VOUCHERS.METADATA_UPDATE": {
        "done_count": 3,
        "failed_count": 0,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": "2024-11-06T08:26:13.304Z",
        "errors": [],
    },
    "VOUCHERS.METADATA_KEY_PURGE": {"message": "Updated 9 vouchers.", "done_count": 9},
    "ORDERS.IMPORT": {
        "message": "1 order(s) imported successfully, 1 failed.",
        "failed": [{"source_id": None, "reason": "Internal error"}],
        "done_count": 1,
        "failed_count": 1,
    },
    "ORDERS.METADATA_KEY_PURGE": {"message": "Updated 1 orders.", "done_count": 1},
}
#: ``processing_time`` (milliseconds) of the seed's example for each type.
SEED_PROCESSING_MS: Final[dict[str, int]] = {
    "CAMPAIGN.VOUCHERS_IMPORT": 755,
    "CAMPAIGN.VOUCHERS_IMPORT_CSV": 130,
    "CAMPAIGN.VOUCHERS_UPDATE": 828,
    "CAMPAIGN.VOUCHERS_DELETE": 480,
    "CAMPAIGN.VOUCHERS_GENERATE": 675,
    "CAMPAIGNS.METADATA_KEY_PURGE": 965,
    "CUSTOMERS.IMPORT_CSV": 130,
    "CUSTOMERS.BULK_UPDATE": 725,
    "CUSTOMERS.METADATA_UPDATE": 743,
    "CUSTOMERS.METADATA_KEY_PURGE": 275,
    "PRODUCTS.BULK_UPDATE": 102,
    "PRODUCTS.METADATA_UPDATE": 854,
    "PRODUCTS.METADATA_KEY_PURGE": 969,
    "PRODUCTS.IMPORT_CSV": 860,
    "SKUS.IMPORT_CSV": 650,
    "VOUCHERS.IMPORT": 939,
    "VOUCHERS.IMPORT_CSV": 173,
    "VOUCHERS.BULK_UPDATE": 153,
    "VOUCHERS.METADATA_UPDATE": 335,
    "VOUCHERS.METADATA_KEY_PURGE": 1246,
    "ORDERS.IMPORT": 1186,
    "ORDERS.METADATA_KEY_PURGE": 336,
}

_REPORTS_TILL = "2024-11-06T08:26:13.304Z"


def _bulk_failed(id_key: str, ids: tuple[str, str]) -> dict[str, Any]:
    return {
        "done_count": 0,
        "failed_count": 2,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": _REPORTS_TILL,
        "errors": [
            {
                "message": "Resource not found",
                "details": f"Cannot find resource with id {ident}",
                "key": "not_found",
                id_key: ident,
            }
            for ident in ids
        ],
    }


def _metadata_failed() -> dict[str, Any]:
    return {
        "done_count": 0,
        "failed_count": 2,
        "reports": ["{{voucherify-link-to-report}}"],
        "reports_available_till": _REPORTS_TILL,
        "errors": [
            {
                "message": "Invalid payload",
                "details": "metadata.tier: must be a string (actual value is '7')",
                "key": "invalid_payload",
            },
            {
                "message": "Invalid payload",
                "details": "metadata.region: must be equal to one of EU,US (actual value is 'XX')",
                "key": "invalid_payload",
            },
        ],
    }


def _count_failed(message: str) -> dict[str, Any]:
    return {"message": message, "done_count": 0}


_INTERNAL = "Internal error"

#: ``result`` of a ``FAILED`` action, per type (same schemas as ``DONE_RESULTS``).
FAILED_RESULTS: Final[dict[str, dict[str, Any]]] = {
    "CAMPAIGN.VOUCHERS_IMPORT": {
        "message": "0 voucher(s) imported successfully, 2 failed.",
        "failed": [{"code": "CODE1", "reason": _INTERNAL}, {"code": "CODE2", "reason": _INTERNAL}],
        "done_count": 0,
        "failed_count": 2,
    },
    "CAMPAIGN.VOUCHERS_IMPORT_CSV": {
        "message": "0 voucher(s) imported successfully, 2 failed.",
        "failed": [
            {"code": "CODE1", "row": 1, "reason": _INTERNAL},
            {"code": "CODE2", "row": 2, "reason": _INTERNAL},
        ],
        "done_count": 0,
        "failed_count": 2,
    },
    "CAMPAIGN.VOUCHERS_UPDATE": _count_failed("Updated 0 vouchers."),
    "CAMPAIGN.VOUCHERS_DELETE": _count_failed("Deleted 0 vouchers."),
    "CAMPAIGN.VOUCHERS_GENERATE": _count_failed("Generated 0 vouchers."),
    "CAMPAIGNS.METADATA_KEY_PURGE": _count_failed("Updated 0 campaigns."),
    "CUSTOMERS.IMPORT_CSV": {
        "message": "0 customer(s) imported successfully, 2 failed.",
        "failed": [
            {"source_id": "customer-1", "row": 1, "reason": _INTERNAL},
            {"source_id": "customer-2", "row": 2, "reason": _INTERNAL},
        ],
        "done_count": 0,
        "failed_count": 2,
    },
    "CUSTOMERS.BULK_UPDATE": _bulk_failed("source_id", ("customer-1", "customer-2")),
    "CUSTOMERS.METADATA_UPDATE": _metadata_failed(),
    "CUSTOMERS.METADATA_KEY_PURGE": _count_failed("Updated 0 customers."),
    "PRODUCTS.BULK_UPDATE": _bulk_failed("source_id", ("product-1", "product-2")),
    "PRODUCTS.METADATA_UPDATE": _metadata_failed(),
    "PRODUCTS.METADATA_KEY_PURGE": _count_failed("Updated 0 products."),
    "PRODUCTS.IMPORT_CSV": {
        "message": "0 product(s) imported successfully, 2 failed.",
        "failed": [{"row": 1, "reason": _INTERNAL}, {"row": 2, "reason": _INTERNAL}],
        "done_count": 0,
        "failed_count": 2,
    },
    "SKUS.IMPORT_CSV": {
        "message": "0 sku(s) imported successfully, 2 failed.",
        "failed": [{"row": 1, "reason": _INTERNAL}, {"row": 2, "reason": _INTERNAL}],
        "done_count": 0,
        "failed_count": 2,
    },
    "VOUCHERS.IMPORT": {
        "message": "0 voucher(s) imported successfully, 2 failed.",
        "failed": [{"code": "CODE1", "reason": _INTERNAL}, {"code": "CODE2", "reason": _INTERNAL}],
        "done_count": 0,
        "failed_count": 2,
    },
    "VOUCHERS.IMPORT_CSV": {
        "message": "0 voucher(s) imported successfully, 2 failed.",
        "failed": [
            {"code": "CODE1", "row": 1, "reason": _INTERNAL},
            {"code": "CODE2", "row": 2, "reason": _INTERNAL},
        ],
        "done_count": 0,
        "failed_count": 2,
    },
    "VOUCHERS.BULK_UPDATE": _bulk_failed("code", ("CODE1", "CODE2")),
    "VOUCHERS.METADATA_UPDATE": _metadata_failed(),
    "VOUCHERS.METADATA_KEY_PURGE": _count_failed("Updated 0 vouchers."),
    "ORDERS.IMPORT": {
        "message": "0 order(s) imported successfully, 2 failed.",
        "failed": [
            {"source_id": "order-1", "reason": _INTERNAL},
            {"source_id": "order-2", "reason": _INTERNAL},
        ],
        "done_count": 0,
        "failed_count": 2,
    },
    "ORDERS.METADATA_KEY_PURGE": _count_failed("Updated 0 orders."),
}


def default_result(action_type: str, status: str) -> dict[str, Any]:
    """Return a fresh copy of the default ``result`` for *action_type* ending in *status*.

    *status* is ``"DONE"`` or ``"FAILED"``; a type outside the seed's enum gets ``{}``.
    """
    table = FAILED_RESULTS if status == "FAILED" else DONE_RESULTS
    return copy.deepcopy(table.get(action_type, {}))
