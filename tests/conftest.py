"""Shared fixtures: an emulator per test and a factory of clients that are always closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import _hypothesis_profiles  # noqa: F401 (loads the profile before any test module)
import pytest
from _support import APP_ID, APP_TOKEN

from voucherify_async import VoucherifyClient, instrumentation
from voucherify_async.testing import VoucherifyEmulator


@pytest.fixture(autouse=True)
def _reset_instrumentation() -> Iterator[None]:
    """Every test starts with no instrumentation hooks and leaves none behind."""
    yield
    instrumentation.set_on_poll_hooks([])
    instrumentation.set_on_status_change_hooks([])
    instrumentation.set_on_request_hooks([])
    instrumentation.set_on_start_hooks([])
    instrumentation.set_on_handle_hooks([])
    instrumentation.set_on_server_pause_hooks([])


@pytest.fixture
async def emulator() -> AsyncIterator[VoucherifyEmulator]:
    """A started emulator that accepts APP_ID / APP_TOKEN only."""
    async with VoucherifyEmulator(app_id=APP_ID, app_token=APP_TOKEN, seed=1) as emu:
        yield emu


@pytest.fixture
async def make_client(
    emulator: VoucherifyEmulator,
) -> AsyncIterator[Callable[..., VoucherifyClient]]:
    """Build clients against the emulator; every one is closed after the test."""
    clients: list[VoucherifyClient] = []

    def make(**options: Any) -> VoucherifyClient:
        options.setdefault("app_id", APP_ID)
        options.setdefault("app_token", APP_TOKEN)
        options.setdefault("base_url", emulator.base_url)
        client = VoucherifyClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Callable[..., VoucherifyClient]) -> VoucherifyClient:
    """A client with default options against the emulator."""
    return make_client()
