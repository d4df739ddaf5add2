"""Recipe: one VoucherifyClient per aiohttp.web application, awaited inside a handler.

``GET /imports/{action_id}?wait=20`` answers once the async action has ended (200), or after
*wait* seconds with its progress so far (202), so a browser or a job runner can long-poll it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from voucherify_async import (
    AsyncActionFailed,
    NotFoundError,
    PollTimeout,
    VoucherifyClient,
    converter,
)

#: Where the application keeps its client.
VOUCHERIFY = web.AppKey("voucherify", VoucherifyClient)

#: The longest a request may wait for an action, in seconds.
MAX_WAIT = 20.0


def create_app(**client_options: Any) -> web.Application:
    """Build the application; *client_options* go to :class:`VoucherifyClient`.

    Without options, the client reads its credentials from ``$VOUCHERIFY_APP_ID`` and
    ``$VOUCHERIFY_APP_TOKEN``.
    """

    async def voucherify_client(app: web.Application) -> AsyncIterator[None]:
        # Created on startup, inside the running loop; closed on cleanup, which stops
        # every poll still running.
        async with VoucherifyClient(**client_options) as client:
            app[VOUCHERIFY] = client
            yield

    app = web.Application()
    app.cleanup_ctx.append(voucherify_client)
    app.router.add_get("/imports/{action_id}", import_status)
    return app


async def import_status(request: web.Request) -> web.Response:
    """The async action's outcome, or its progress when it has not ended within *wait*."""
    client = request.app[VOUCHERIFY]
    action_id = request.match_info["action_id"]
    try:
        wait = min(max(float(request.query.get("wait", MAX_WAIT)), 0.0), MAX_WAIT)
    except ValueError:
        raise web.HTTPBadRequest(text="wait must be a number of seconds") from None
    try:
        # Concurrent requests for one id share one handle, so one poll serves them all.
        action = await client.async_actions.wait(action_id, timeout=wait)
    except PollTimeout as exc:
        latest = exc.latest
        return web.json_response(
            {
                "id": action_id,
                "status": latest.status if latest else None,
                "progress": latest.progress if latest else None,
            },
            status=202,
        )
    except AsyncActionFailed as exc:
        action = exc.action
    except NotFoundError:
        raise web.HTTPNotFound(text=f"no async action {action_id}") from None
    return web.json_response(
        {
            "id": action.id,
            "status": action.status,
            "failed": action.is_failed,
            "result": converter.unstructure(action.result),
        }
    )


if __name__ == "__main__":
    web.run_app(create_app(requests_per_minute=100), host="127.0.0.1", port=8000)
