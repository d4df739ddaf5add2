"""Testing kit: a local emulator of Voucherify's Async Actions API, and a pytest plugin.

``VoucherifyEmulator`` is a real aiohttp server on 127.0.0.1 that serves
``GET /v1/async-actions/{id}`` and ``GET /v1/async-actions`` with simulated jobs, the endpoints
that start actions (each creating a job), the real rate-limit headers (and, on request, a
request budget) and injected faults. The pytest
plugin (registered automatically) provides the ``voucherify_emulator`` and
``voucherify_client`` fixtures.

The names load lazily, so that pytest importing the plugin (which lives in this package)
costs nothing until a test uses the emulator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voucherify_async._config import fast_polling

    from ._control import JobSpec, parse_job
    from ._emulator import RecordedRequest, VoucherifyEmulator
    from ._examples import ACTION_TYPES
    from ._faults import Body, Delay, Drop, DropMidBody, Fault, InjectedFault, Status, Truncate
    from ._jobs import ProgressCurve
    from ._serve import serve
    from ._shapes import PROGRESS_SHAPES

__all__ = [  # noqa: RUF022 (plain sorted order, checked by tests/test_public_api.py)
    "ACTION_TYPES",
    "Body",
    "Delay",
    "Drop",
    "DropMidBody",
    "Fault",
    "InjectedFault",
    "JobSpec",
    "PROGRESS_SHAPES",
    "ProgressCurve",
    "RecordedRequest",
    "Status",
    "Truncate",
    "VoucherifyEmulator",
    "fast_polling",
    "parse_job",
    "serve",
]

#: Where each public name lives.
_LOCATIONS = {
    "ACTION_TYPES": "._examples",
    "Body": "._faults",
    "Delay": "._faults",
    "Drop": "._faults",
    "DropMidBody": "._faults",
    "Fault": "._faults",
    "InjectedFault": "._faults",
    "JobSpec": "._control",
    "PROGRESS_SHAPES": "._shapes",
    "ProgressCurve": "._jobs",
    "RecordedRequest": "._emulator",
    "Status": "._faults",
    "Truncate": "._faults",
    "VoucherifyEmulator": "._emulator",
    "parse_job": "._control",
    "serve": "._serve",
    # fast_polling() lives with the library's configuration (it changes its delays).
    "fast_polling": "voucherify_async._config",
}


def __getattr__(name: str) -> Any:
    location = _LOCATIONS.get(name)
    if location is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(location, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
