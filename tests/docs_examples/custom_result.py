"""Recipe: a typed ``result`` for an action type that voucherify-async does not know.

``POST /v2/loyalties/programs/{id}/members/batch`` starts an async action whose type is not
in the API's documented enum. Until it is, its result decodes into an ``UnknownResult``
holding the raw JSON; register a class and it decodes into that instead.
"""

from __future__ import annotations

from typing import Any

import attrs

from voucherify_async import (
    AsyncAction,
    VoucherifyClient,
    converter,
    register_result_type,
    result_type_for,
)

#: The type name, hypothetical here: use the one your account's actions carry.
MEMBERS_BATCH = "LOYALTY.MEMBERS_BATCH"


@attrs.frozen(kw_only=True)
class MemberFailure:
    """A member the batch could not add."""

    source_id: str | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class MembersBatchResult:
    """The result of a ``LOYALTY.MEMBERS_BATCH`` action."""

    message: str | None = None
    done_count: int | None = None
    failed_count: int | None = None
    failed: list[MemberFailure] | None = None


def register() -> None:
    """Call once at start-up, before the first such action is decoded."""
    register_result_type(MEMBERS_BATCH, MembersBatchResult)
    assert result_type_for(MEMBERS_BATCH) is MembersBatchResult


def decode(payload: dict[str, Any]) -> AsyncAction:
    """Decode a payload you already have (a webhook's, a file's): no HTTP involved."""
    return converter.structure(payload, AsyncAction)


async def failed_members(client: VoucherifyClient, action_id: str) -> list[str]:
    """Wait for a members batch and list the members it could not add."""
    action = await client.async_actions.wait(action_id)
    result: MembersBatchResult = action.result
    return [f"{row.source_id}: {row.reason}" for row in result.failed or []]
