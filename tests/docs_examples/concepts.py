"""Small, tested snippets that the Concepts page shows one function at a time."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt

import aiohttp

from voucherify_async import (
    AsyncAction,
    AsyncActionFailed,
    AsyncActionStatus,
    AuthenticationError,
    NotFoundError,
    PollPolicy,
    PollTimeout,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VoucherifyClient,
    instrumentation,
)


async def shared_poll(client: VoucherifyClient, action_id: str) -> list[AsyncAction]:
    """Three waiters of one action: one handle, one GET per poll."""
    handle = client.async_actions.handle(action_id)
    assert client.async_actions.handle(action_id) is handle  # the live handle, not a new one
    return await asyncio.gather(
        handle,
        handle.result(timeout=60),
        client.async_actions.wait(action_id),  # joins the same handle
    )


async def progress_or_result(client: VoucherifyClient, action_id: str, wait: float = 2.0) -> str:
    """Wait *wait* seconds at most; if the action is still running, say how far it got."""
    handle = client.async_actions.handle(action_id)
    try:
        action = await handle.result(timeout=wait)
    except PollTimeout as exc:
        # Only this wait timed out: the handle keeps polling; await it again later.
        latest = exc.latest
        return f"still {latest.status} at {latest.progress}%" if latest else "no answer yet"
    return f"ended {action.status}"


#: For a big import: give up after an hour, or after ten minutes without any progress.
BIG_IMPORT = PollPolicy(timeout=3600, stall_timeout=600, max_delay=60)


async def watch_big_import(client: VoucherifyClient, action_id: str) -> AsyncAction:
    """A handle with its own policy, and a progress line on each change."""
    handle = client.async_actions.handle(action_id, policy=BIG_IMPORT)
    async for snapshot in handle.updates():
        print(f"{snapshot.status} {snapshot.progress}%")
    return await handle  # the verdict: the action, or AsyncActionFailed, or PollTimeout


async def outcome(client: VoucherifyClient, action_id: str) -> str:
    """Terminal semantics: failure raises, partial failure is data."""
    try:
        action = await client.async_actions.wait(action_id)
    except AsyncActionFailed as exc:
        # status FAILED, or DONE with operation_status FAILED; exc.action is the snapshot.
        return f"failed: {exc.action.status}, operation {exc.action.operation_status}"
    failed = getattr(action.result, "failed_count", None) or 0
    return f"done with {failed} failed record(s)" if failed else "done"


async def explain(client: VoucherifyClient, action_id: str) -> str:
    """Every error the library raises, by what a caller does about it."""
    try:
        await client.async_actions.get(action_id)  # one GET (retried if transient)
        await client.async_actions.wait(action_id, timeout=300)
    except AsyncActionFailed as exc:  # the job ran and failed
        return f"failed: {exc.action.id}"
    except PollTimeout:  # still running when the deadline passed
        return "timeout"
    except NotFoundError as exc:  # 404: no such id (exc.key == "not_found")
        return f"unknown id ({exc.key})"
    except AuthenticationError:  # 401/403: wrong keys, or a token without the scope
        return "credentials"
    except (ServerError, RateLimitError, TransportError) as exc:
        # Only from get() and list(), after every retry: a handle keeps polling instead.
        return f"transient: {exc}"
    except ResponseDecodeError as exc:  # a 2xx body that is no async action
        return f"bad body at {exc.path}"
    return "done"


def count_polls() -> collections.Counter[str]:
    """Count polls by the reason of their next delay, with an instrumentation hook."""
    reasons: collections.Counter[str] = collections.Counter()

    def on_poll(event: instrumentation.PollEvent) -> None:
        reasons[event.reason] += 1

    instrumentation.set_on_poll_hooks([*instrumentation.get_on_poll_hooks(), on_poll])
    return reasons


async def borrowed_session(base_url: str, action_id: str) -> AsyncAction:
    """Share your own aiohttp session; the client never closes a session it borrowed."""
    async with aiohttp.ClientSession() as session:
        async with VoucherifyClient(session=session, base_url=base_url) as client:
            action = await client.async_actions.wait(action_id)
        assert not session.closed
    return action


async def recent_failures(client: VoucherifyClient, since: dt.datetime) -> list[AsyncAction]:
    """Every action created since *since* that ended FAILED, newest first, page by page."""
    failed: list[AsyncAction] = []
    # aclosing: breaking out of the loop closes the generator at once.
    async with contextlib.aclosing(client.async_actions.iterate()) as actions:
        async for action in actions:  # list items carry no result
            if action.created_at is not None and action.created_at < since:
                break
            if action.status == AsyncActionStatus.FAILED:
                failed.append(action)
    return failed
