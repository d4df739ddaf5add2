"""Quick start: read an async action, wait for it, watch one, and wait for many."""

from __future__ import annotations

import asyncio
import sys

from voucherify_async import AsyncActionFailed, VoucherifyClient, VouchersImportResult


async def main(action_ids: list[str]) -> None:
    # The app id and token come from $VOUCHERIFY_APP_ID and $VOUCHERIFY_APP_TOKEN.
    # 100 requests per minute is a Business plan: every call and poll below shares it.
    async with VoucherifyClient(requests_per_minute=100) as client:
        first = action_ids[0]

        # One GET: the action as it is now.
        action = await client.async_actions.get(first)
        print(f"{action.id} is a {action.type}, {action.status} at {action.progress}%")

        # Wait until it ends: polls on a schedule, returns the terminal snapshot.
        action = await client.async_actions.wait(first, timeout=600)
        if isinstance(action.result, VouchersImportResult):
            print(f"{action.result.done_count} imported, {action.result.failed_count} failed")
            for row in action.result.failed or []:
                print(f"  {row.code}: {row.reason}")

        # Watch one action's progress as it runs.
        handle = client.async_actions.handle(action_ids[1])
        async for snapshot in handle.updates():
            print(f"{snapshot.id}: {snapshot.status} {snapshot.progress}%")

        # Wait for many at once: one poll per id, all under the same budget.
        outcomes = await client.async_actions.wait_all(action_ids, return_exceptions=True)
        for action_id, outcome in zip(action_ids, outcomes, strict=True):
            if isinstance(outcome, AsyncActionFailed):
                print(f"{action_id} failed: {outcome.action.status}")
            elif isinstance(outcome, BaseException):
                print(f"{action_id}: {outcome!r}")
            else:
                print(f"{action_id} ended {outcome.status}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
