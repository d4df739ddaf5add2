"""Compatibility alias: the engine lives in :mod:`voucherify_async._polling.durations`."""

from ._polling.durations import *  # noqa: F403
from ._polling.durations import __all__ as __all__
