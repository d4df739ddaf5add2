"""Compatibility alias: the engine lives in :mod:`voucherify_async._polling.timeleft`."""

from ._polling.timeleft import *  # noqa: F403
from ._polling.timeleft import __all__ as __all__
