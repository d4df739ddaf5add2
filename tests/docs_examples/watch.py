"""Recipe: a script that waits for async actions and prints their progress.

    python watch.py aa_0c5559be44d7b63c06 aa_0c5564b67d0e571534 --timeout 600

Exit status: 0 when every action ended DONE, 1 when one failed, 2 on any other error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from voucherify_async import (
    AsyncAction,
    AsyncActionFailed,
    PollPolicy,
    VoucherifyClient,
    VoucherifyError,
)


async def watch(client: VoucherifyClient, action_id: str, policy: PollPolicy) -> AsyncAction:
    """Print each change of status or progress; return the terminal action."""
    handle = client.async_actions.handle(action_id, policy=policy)
    async for snapshot in handle.updates():
        print(f"{action_id}: {snapshot.status} {snapshot.progress or 0}%", flush=True)
    return await handle  # raises AsyncActionFailed if it failed


async def run(action_ids: list[str], timeout: float | None) -> int:
    # Credentials from $VOUCHERIFY_APP_ID and $VOUCHERIFY_APP_TOKEN.
    async with VoucherifyClient() as client:
        policy = PollPolicy(timeout=timeout)  # each handle gives up after *timeout* seconds
        outcomes = await asyncio.gather(
            *(watch(client, action_id, policy) for action_id in action_ids),
            return_exceptions=True,
        )
    status = 0
    for action_id, outcome in zip(action_ids, outcomes, strict=True):
        if isinstance(outcome, AsyncActionFailed):
            print(f"{action_id}: FAILED", file=sys.stderr)
            status = max(status, 1)
        elif isinstance(outcome, VoucherifyError):  # not found, timeout, credentials...
            print(f"{action_id}: {outcome}", file=sys.stderr)
            status = 2
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            print(f"{action_id}: {outcome.status}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait for Voucherify async actions.")
    parser.add_argument("action_ids", nargs="+", metavar="ID")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per action")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.action_ids, args.timeout))
    except VoucherifyError as exc:  # a configuration error: no credentials, a bad URL
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # asyncio.run cancelled run(), which closed the client
        return 130


if __name__ == "__main__":
    sys.exit(main())
