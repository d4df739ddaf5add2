"""Quick start, part two: start a CSV import through the client and follow it to its end."""

from __future__ import annotations

import asyncio
import sys

from voucherify_async import OutcomeUnknownError, VoucherifyClient, VouchersImportCsvResult


async def main(csv_path: str) -> None:
    async with VoucherifyClient(requests_per_minute=100) as client:
        try:
            # One POST /v1/vouchers/importCSV, the file streamed; the live handle back.
            handle = await client.async_actions.start_vouchers_import_csv(csv_path)
        except OutcomeUnknownError as exc:
            # The import may have started: never send it again blindly.
            print(f"unknown outcome: look for the action created after {exc.sent_at}")
            raise
        print(f"{handle.id} started")

        async for snapshot in handle.updates():  # each change of status or progress
            print(f"{handle.id}: {snapshot.type} {snapshot.status} {snapshot.progress}%")
        action = await handle
        if isinstance(action.result, VouchersImportCsvResult):
            print(f"{action.result.done_count} imported, {action.result.failed_count} failed")
            for row in action.result.failed or []:
                print(f"  row {row.row}: {row.reason}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
