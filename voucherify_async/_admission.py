"""Compatibility alias: the engine lives in :mod:`voucherify_async._polling.admission`."""

from ._polling.admission import *  # noqa: F403
from ._polling.admission import __all__ as __all__
