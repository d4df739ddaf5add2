"""A small aiohttp server of a test's own on 127.0.0.1, for answers the emulator never gives."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run *app* on an ephemeral loopback port; yield its base URL; stop it afterwards."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def action_json(action_id: str, created_at: str, status: str = "DONE") -> dict[str, object]:
    """A list item of ``GET /v1/async-actions`` as the API sends it."""
    return {
        "id": action_id,
        "type": "CAMPAIGN.VOUCHERS_IMPORT",
        "status": status,
        "created_at": created_at,
        "updated_at": created_at,
        "request_id": "v-req",
        "processing_time": 10,
        "progress": 100,
        "object": "async_action",
    }
