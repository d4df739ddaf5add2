"""Recipe (testing): the code under test, a function of your own that uses the client."""

from __future__ import annotations

from voucherify_async import AsyncActionFailed, VoucherifyClient


async def import_report(client: VoucherifyClient, action_id: str, *, timeout: float = 600) -> str:
    """A short report of a voucher import (``VOUCHERS.IMPORT``), for a chat message or a mail.

    Raises :class:`~voucherify_async.PollTimeout` when the import runs longer than *timeout*
    seconds.
    """
    try:
        action = await client.async_actions.wait(action_id, timeout=timeout)
    except AsyncActionFailed:
        return f"Import {action_id} failed."
    result = action.result
    lines = [f"Import {action_id}: {result.done_count} imported, {result.failed_count} failed."]
    lines += [f"- {row.code}: {row.reason}" for row in result.failed or []]
    return "\n".join(lines)
