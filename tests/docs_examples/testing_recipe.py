"""Recipe (testing): tests of your own code with the pytest fixtures and fast_polling().

In your project this is a test file such as ``tests/test_reports.py``, importing your code
(``from myapp.reports import import_report``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from voucherify_async import PollTimeout, VoucherifyClient
from voucherify_async.testing import VoucherifyEmulator, fast_polling

from .reports import import_report


@pytest.fixture
def instant_polls() -> Iterator[None]:
    """Every poll and retry delay of voucherify-async near zero, for one test.

    Put it in your ``conftest.py`` with ``autouse=True`` to cover a whole suite.
    """
    with fast_polling():
        yield


async def test_report_lists_failed_vouchers(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    instant_polls: None,
) -> None:
    """A finished import is reported with its failed vouchers."""
    # The emulator's VOUCHERS.IMPORT ends with the API's example: 0 imported, 3 failed.
    action_id = voucherify_emulator.add_action("VOUCHERS.IMPORT", duration=0.2)

    report = await import_report(voucherify_client, action_id)

    assert report.splitlines()[0] == f"Import {action_id}: 0 imported, 3 failed."
    assert "- PROMO-CODE31: unit: must be a number" in report


async def test_report_of_a_failed_import(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    instant_polls: None,
) -> None:
    """An import that ends FAILED is reported as failed, not raised."""
    action_id = voucherify_emulator.add_action("VOUCHERS.IMPORT", duration=0.2, status="FAILED")

    assert await import_report(voucherify_client, action_id) == f"Import {action_id} failed."


async def test_report_waits_for_the_end(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    instant_polls: None,
) -> None:
    """The report waits however long the job runs: drive the job by hand, no sleeping."""
    action_id = voucherify_emulator.add_action("VOUCHERS.IMPORT", duration=None)  # never ends
    report = asyncio.create_task(import_report(voucherify_client, action_id))

    await voucherify_emulator.wait_for_requests(3, action_id=action_id)  # polled 3 times...
    assert not report.done()  # ...and still waiting
    voucherify_emulator.finish(
        action_id, result={"message": "2 voucher(s) imported", "done_count": 2, "failed_count": 0}
    )

    assert await report == f"Import {action_id}: 2 imported, 0 failed."


async def test_report_gives_up(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    instant_polls: None,
) -> None:
    """An import that never ends raises PollTimeout after the timeout."""
    action_id = voucherify_emulator.add_action("VOUCHERS.IMPORT", duration=None)

    with pytest.raises(PollTimeout):
        await import_report(voucherify_client, action_id, timeout=0.05)


@pytest.mark.voucherify_emulator(requests_per_minute=3, rate_limit_window=0.2)
async def test_report_under_a_spent_budget(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    instant_polls: None,
) -> None:
    """A budget of 3 requests per 0.2 s: the client pauses when told, and never gets a 429."""
    action_id = voucherify_emulator.add_action("VOUCHERS.IMPORT", duration=0.3)

    report = await import_report(voucherify_client, action_id)

    assert report.startswith(f"Import {action_id}: 0 imported")
    statuses = [request.status for request in voucherify_emulator.requests]
    assert len(statuses) > 3  # it went on polling after the budget was spent...
    assert 429 not in statuses  # ...without ever going over it
