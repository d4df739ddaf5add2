"""Recipe: one VoucherifyClient per FastAPI application, from its lifespan.

``GET /imports/{action_id}?wait=20`` answers once the async action has ended (200), or after
*wait* seconds with its progress so far (202). Run it with ``uvicorn fastapi_app:app``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response

from voucherify_async import (
    AsyncActionFailed,
    NotFoundError,
    PollTimeout,
    VoucherifyClient,
    converter,
)

#: The longest a request may wait for an action, in seconds.
MAX_WAIT = 20.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Credentials from $VOUCHERIFY_APP_ID and $VOUCHERIFY_APP_TOKEN. Closing the client on
    # shutdown stops every poll still running.
    async with VoucherifyClient(requests_per_minute=100) as client:
        app.state.voucherify = client
        yield


app = FastAPI(lifespan=lifespan)


def voucherify(request: Request) -> VoucherifyClient:
    """The application's client, as a dependency."""
    client: VoucherifyClient = request.app.state.voucherify
    return client


Voucherify = Annotated[VoucherifyClient, Depends(voucherify)]


@app.get("/imports/{action_id}")
async def import_status(
    action_id: str,
    client: Voucherify,
    response: Response,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = MAX_WAIT,
) -> dict[str, Any]:
    """The async action's outcome, or its progress when it has not ended within *wait*."""
    try:
        # Concurrent requests for one id share one handle, so one poll serves them all.
        action = await client.async_actions.wait(action_id, timeout=wait)
    except PollTimeout as exc:
        response.status_code = 202
        latest = exc.latest
        return {
            "id": action_id,
            "status": latest.status if latest else None,
            "progress": latest.progress if latest else None,
        }
    except AsyncActionFailed as exc:
        action = exc.action
    except NotFoundError:
        raise HTTPException(404, f"no async action {action_id}") from None
    return {
        "id": action.id,
        "status": action.status,
        "failed": action.is_failed,
        "result": converter.unstructure(action.result),
    }
