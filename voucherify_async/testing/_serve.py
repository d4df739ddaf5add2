"""``serve()``: run an emulator until cancelled, as ``voucherify-async emulator`` does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ._control import JobSpec
from ._emulator import VoucherifyEmulator
from ._log import RecordedRequest

__all__ = ["serve"]


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    jobs: int = 0,
    allow_remote: bool = False,
    ready: Callable[[VoucherifyEmulator], object] | None = None,
    app_id: str | None = None,
    app_token: str | None = None,
    oauth_token: str | None = None,
    requests_per_minute: int | None = None,
    rate_limit_window: float = 60.0,
    speed: float = 1.0,
    seed: int | None = None,
    control: bool = False,
    job_specs: Sequence[JobSpec] = (),
    jobs_scale: float = 1.0,
    on_request: Callable[[RecordedRequest], None] | None = None,
) -> None:
    """Run an emulator until cancelled, with *jobs* demo jobs (default 0).

    *jobs_scale* (default 1.0) multiplies the demo jobs' durations; *job_specs* are more
    jobs to add (see ``docs/testing.md``); *on_request* is called with each request answered.
    *ready* (default None) is called with the started emulator, for instance to print
    ``emu.base_url``; this function prints nothing itself. The other arguments are those
    of :class:`VoucherifyEmulator`.
    """
    emulator = VoucherifyEmulator(
        host=host,
        port=port,
        app_id=app_id,
        app_token=app_token,
        oauth_token=oauth_token,
        requests_per_minute=requests_per_minute,
        rate_limit_window=rate_limit_window,
        speed=speed,
        allow_remote=allow_remote,
        seed=seed,
        control=control,
    )
    emulator.on_request = on_request
    async with emulator:
        if jobs:
            emulator.add_demo_jobs(jobs, scale=jobs_scale)
        for spec in job_specs:
            spec.add_to(emulator)
        if ready is not None:
            ready(emulator)
        await asyncio.Event().wait()
