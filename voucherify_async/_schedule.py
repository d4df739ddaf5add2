"""Compatibility alias: the engine lives in :mod:`voucherify_async._polling.schedule`."""

from ._polling.schedule import *  # noqa: F403
from ._polling.schedule import __all__ as __all__
