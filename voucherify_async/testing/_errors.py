"""The emulator's own misuse errors: each a VoucherifyError and the built-in type it stands for.

They follow the package's rule (see :mod:`voucherify_async._errors`): catch them as
``VoucherifyError`` or as the built-in type (``RuntimeError``, ``KeyError``, ``TimeoutError``).
"""

from __future__ import annotations

from voucherify_async._errors import InvalidArgumentError, VoucherifyError

__all__ = ["EmulatorStateError", "RequestsTimeout", "UnknownActionError"]


class EmulatorStateError(VoucherifyError, RuntimeError):
    """The emulator is not in the state the call needs (not started, or started twice)."""


class UnknownActionError(InvalidArgumentError, KeyError):
    """No async action with that id in this emulator. Also a ``KeyError`` and a ``ValueError``."""


class RequestsTimeout(VoucherifyError, TimeoutError):
    """``wait_for_requests`` saw fewer requests than asked within its timeout."""
