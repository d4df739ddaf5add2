"""voucherify-async: an asyncio-native client for Voucherify's Async Actions API."""

from __future__ import annotations

from typing import Any

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

__all__ = [
    "APIError",
    "AsyncActionFailed",
    "AuthenticationError",
    "ConfigurationError",
    "NotFoundError",
    "PollTimeout",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "TransportError",
    "VoucherifyError",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("voucherify-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
