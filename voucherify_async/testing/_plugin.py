"""The pytest plugin: ``voucherify_emulator`` and ``voucherify_client`` fixtures.

Registered through the ``pytest11`` entry point, so installing voucherify-async is enough.
Importing it is cheap: the emulator (and aiohttp) and the client load only when a test
asks for a fixture. The fixtures are async, so they need pytest-asyncio; without it this
module still imports and the fixtures fail with a clear message.

Options for the emulator go in a marker::

    @pytest.mark.voucherify_emulator(requests_per_minute=5, rate_limit_window=1.0)
    async def test_budget(voucherify_emulator): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from voucherify_async import VoucherifyClient

    from ._emulator import VoucherifyEmulator

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised in a subprocess
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

__all__ = ["pytest_configure"]

#: The credentials the ``voucherify_client`` fixture uses.
TEST_APP_ID = "test-app-id"
TEST_APP_TOKEN = "test-app-token"

_MARKER = "voucherify_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``voucherify_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): keyword arguments for the VoucherifyEmulator that the "
        "voucherify_emulator fixture starts (requests_per_minute, speed, seed, ...)",
    )


def _emulator_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    return {} if marker is None else dict(marker.kwargs)


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def voucherify_emulator(
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[VoucherifyEmulator]:
        """A started :class:`~voucherify_async.testing.VoucherifyEmulator`, closed after the test.

        Keyword arguments come from a ``@pytest.mark.voucherify_emulator(...)`` marker.
        """
        from ._emulator import VoucherifyEmulator

        async with VoucherifyEmulator(**_emulator_kwargs(request)) as emulator:
            yield emulator

    @pytest_asyncio.fixture
    async def voucherify_client(
        voucherify_emulator: VoucherifyEmulator,
    ) -> AsyncIterator[VoucherifyClient]:
        """A ``VoucherifyClient`` pointed at the ``voucherify_emulator``, closed after the test.

        It uses the app id ``test-app-id`` and the app token ``test-app-token``.
        """
        from voucherify_async import VoucherifyClient

        client = VoucherifyClient(
            app_id=TEST_APP_ID, app_token=TEST_APP_TOKEN, base_url=voucherify_emulator.base_url
        )
        try:
            yield client
        finally:
            await client.close()

else:  # pragma: no cover - exercised in a subprocess
    _MISSING = (
        "the voucherify_emulator and voucherify_client fixtures are async: "
        "install pytest-asyncio (pip install pytest-asyncio)"
    )

    @pytest.fixture
    def voucherify_emulator() -> None:
        """Unavailable: needs pytest-asyncio."""
        pytest.fail(_MISSING, pytrace=False)

    @pytest.fixture
    def voucherify_client() -> None:
        """Unavailable: needs pytest-asyncio."""
        pytest.fail(_MISSING, pytrace=False)
