"""Recipe: an ingestion pipeline that waits for 500 async actions under 100 requests a minute.

Three ways to wait for a batch, from the simplest to the most flexible:

- :func:`wait_for_all`: ``wait_all`` and the outcomes in the order of the ids;
- :func:`follow`: ``as_completed`` and a progress line as each action ends;
- :func:`ingest`: an :class:`asyncio.TaskGroup` that stores each result as soon as it is in.

Run it with a file of ids, one per line: ``python pipeline.py ids.txt``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TextIO

import attrs

from voucherify_async import (
    AsyncAction,
    AsyncActionFailed,
    PollPolicy,
    VoucherifyClient,
    VoucherifyError,
)

#: A Business plan allows 100 requests a minute; every get, list and poll of the client counts.
REQUESTS_PER_MINUTE = 100

#: A batch under a tight budget: most jobs end within a second or two, so the first poll
#: waits one second instead of going at once; a poll that finds a job still running spends a
#: request that another action needed.
BATCH_POLICY = PollPolicy(first_poll_after=1.0, initial_delay=2.0, max_delay=60.0)


@attrs.define
class Tally:
    """The outcomes so far: actions that ended DONE, actions that failed, and errors."""

    done: list[AsyncAction] = attrs.Factory(list)
    failed: list[AsyncAction] = attrs.Factory(list)
    errors: list[VoucherifyError] = attrs.Factory(list)

    def add(self, outcome: AsyncAction | BaseException) -> None:
        """File one outcome of a wait: an action, or the exception it raised."""
        if isinstance(outcome, AsyncActionFailed):
            self.failed.append(outcome.action)
        elif isinstance(outcome, VoucherifyError):
            self.errors.append(outcome)  # NotFoundError, PollTimeout...
        elif isinstance(outcome, BaseException):
            raise outcome  # a bug or a cancellation: not ours to swallow
        else:
            self.done.append(outcome)

    @property
    def count(self) -> int:
        return len(self.done) + len(self.failed) + len(self.errors)


class ProgressLine:
    """One line, redrawn in place: ``[ 312/500] 307 done, 5 failed, 0 errors``."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr

    def update(self, tally: Tally) -> None:
        width = len(str(self.total))
        self.stream.write(
            f"\r[{tally.count:>{width}}/{self.total}] {len(tally.done)} done, "
            f"{len(tally.failed)} failed, {len(tally.errors)} errors"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")


async def wait_for_all(client: VoucherifyClient, action_ids: Iterable[str]) -> Tally:
    """The simplest: one call, the outcomes in the order of *action_ids*."""
    tally = Tally()
    for outcome in await client.async_actions.wait_all(action_ids, return_exceptions=True):
        tally.add(outcome)
    return tally


async def follow(
    client: VoucherifyClient, action_ids: Iterable[str], progress: ProgressLine
) -> Tally:
    """Each action as it ends, with a progress line."""
    tally = Tally()
    async for handle in client.async_actions.as_completed(action_ids):
        try:
            tally.add(await handle)  # ended already: no wait
        except VoucherifyError as exc:
            tally.add(exc)
        progress.update(tally)
    progress.close()
    return tally


async def ingest(
    client: VoucherifyClient,
    action_ids: Iterable[str],
    store: Callable[[AsyncAction], Awaitable[None]],
    progress: ProgressLine,
) -> Tally:
    """One task per action: wait, then *store* the result, as soon as that action is in.

    The TaskGroup waits for every task; if *store* raises, it cancels the others, and
    their waits stop their polls on the way out.
    """
    tally = Tally()

    async def one(action_id: str) -> None:
        try:
            action = await client.async_actions.wait(action_id)
        except VoucherifyError as exc:
            tally.add(exc)
        else:
            await store(action)
            tally.add(action)
        progress.update(tally)

    async with asyncio.TaskGroup() as group:
        for action_id in action_ids:
            group.create_task(one(action_id))
    progress.close()
    return tally


async def main(action_ids: list[str]) -> int:
    # 500 actions need 500 GETs at the very least: five minutes at 100 a minute.
    async with VoucherifyClient(
        requests_per_minute=REQUESTS_PER_MINUTE, poll_policy=BATCH_POLICY
    ) as client:
        tally = await follow(client, action_ids, ProgressLine(len(action_ids)))
    for action in tally.failed:
        print(f"{action.id} ({action.type}) ended {action.status}", file=sys.stderr)
    for error in tally.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if tally.failed or tally.errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]).read_text().split())))
