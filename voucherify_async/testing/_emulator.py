"""VoucherifyEmulator: a real aiohttp server that serves the Async Actions API for tests.

It simulates jobs on a clock of its own, enforces (on request) a sliding-window request
budget with the real ``X-Rate-Limit-*`` headers, injects faults and records every request.
It builds its JSON itself: it imports nothing of the library's client, models or converter.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from voucherify_async._errors import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from voucherify_async._validate import check_seconds, check_timeout

from ._control import CONTROL_PREFIX, control_reply
from ._errors import EmulatorStateError, UnknownActionError
from ._examples import ACTION_TYPES
from ._faults import Body, Delay, Drop, Fault, InjectedFault, Status
from ._http import PREFIX, Reply, action_segment, authorized, close_connection, fault_reply, send
from ._jobs import Job, JobCurve, ProgressCurve, parse_end_date
from ._log import RecordedRequest, RequestLog, monotonic
from ._ratelimit import RateState, SlidingWindow
from ._shapes import make_shape
from ._start import BadPayload, Endpoint, error_fields, find_endpoint, read_plan

__all__ = ["RecordedRequest", "VoucherifyEmulator"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class VoucherifyEmulator:
    """A local Voucherify Async Actions API with simulated jobs, for tests and demos.

    ``async with VoucherifyEmulator() as emu:`` starts it; ``emu.base_url`` is its address.
    Besides the GET endpoints it serves those that start actions (``POST /v1/vouchers/import``,
    the CSV imports, bulk and metadata updates, deletions...): each creates a job lasting
    :attr:`start_seconds` plus :attr:`start_seconds_per_row` per row of its payload, with a
    result that counts its rows and failed rows.

    *host* must be a loopback address unless *allow_remote* is True (ValueError otherwise);
    *port* 0 (the default) picks a free port. *app_id*/*app_token* and *oauth_token*, when
    given, are the only credentials accepted; when none is given, any non-empty
    ``X-App-Id``/``X-App-Token`` pair or ``Authorization: Bearer`` token is. With
    *requests_per_minute* N, at most N requests are admitted in any sliding window of
    *rate_limit_window* seconds (default 60.0, real time) and the next gets a 429; None (the
    default) enforces nothing but still sends the headers, with a limit of 1,000,000.
    *speed* (default 1.0) scales the job clock: at 10.0 a 1-second job ends after 0.1 s of
    real time; every time the emulator reports (``created_at``, ``updated_at``,
    ``processing_time``, ``end_date`` filtering) is on that clock. *seed* seeds the random
    generator behind ids and fault probabilities. *control* (default False) serves the HTTP
    control endpoint under ``/_emulator/`` (add jobs, finish them, read the request log),
    behind the same credential check as the API.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        app_id: str | None = None,
        app_token: str | None = None,
        oauth_token: str | None = None,
        requests_per_minute: int | None = None,
        rate_limit_window: float = 60.0,
        speed: float = 1.0,
        allow_remote: bool = False,
        seed: int | None = None,
        control: bool = False,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ConfigurationError(
                f"refusing to listen on non-loopback host {host!r}; pass allow_remote=True"
            )
        if check_seconds(speed, "speed") <= 0:
            raise ConfigurationError(f"speed must be > 0, got {speed!r}")
        self._host = host
        self._port = port
        self._app_id = app_id
        self._app_token = app_token
        self._oauth_token = oauth_token
        self._budget = SlidingWindow(requests_per_minute, rate_limit_window)
        self._speed = float(speed)
        self._rng = random.Random(seed)
        self._mono0 = monotonic()
        self._wall0 = time.time()
        self._offset = 0.0
        self._jobs: dict[str, Job] = {}
        self._last_created_ms = 0
        self._faults: list[InjectedFault] = []
        self._log = RequestLog()
        self._closing = asyncio.Event()
        self._runner: web.ServerRunner | None = None
        self._base_url: str | None = None
        self._control = control
        #: Called with each API request once it is answered (or dropped), for a live log.
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self._start_seconds = 0.2
        self._start_seconds_per_row = 0.002
        #: The largest start payload read, in bytes; a larger one is answered with 413.
        self.max_upload_bytes = 64 * 1024 * 1024

    @property
    def start_seconds(self) -> float:
        """Seconds (job clock) every job started through the API lasts, plus
        :attr:`start_seconds_per_row` per row of its payload. Default 0.2; settable."""
        return self._start_seconds

    @start_seconds.setter
    def start_seconds(self, seconds: float) -> None:
        self._start_seconds = check_seconds(seconds, "start_seconds")

    @property
    def start_seconds_per_row(self) -> float:
        """Seconds (job clock) each row of a start request's payload adds to its job.
        Default 0.002; settable."""
        return self._start_seconds_per_row

    @start_seconds_per_row.setter
    def start_seconds_per_row(self, seconds: float) -> None:
        self._start_seconds_per_row = check_seconds(seconds, "start_seconds_per_row")

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; :attr:`base_url` is set once this returns."""
        if self._runner is not None:
            raise EmulatorStateError("the emulator is already started")
        # A bare server, no router: every request-target reaches _handle exactly as sent.
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._closing = asyncio.Event()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving and close open connections; pending delays end at once."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> VoucherifyEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """The address to point a client at, like ``http://127.0.0.1:54321``."""
        if self._base_url is None:
            raise EmulatorStateError("the emulator is not started")
        return self._base_url

    # -- the job clock ---------------------------------------------------------------

    @property
    def speed(self) -> float:
        """How many times faster than real time the job clock runs."""
        return self._speed

    def _now_ms(self) -> float:
        elapsed = (monotonic() - self._mono0) * self._speed + self._offset
        return (self._wall0 + elapsed) * 1000

    def _real_time(self, job_ms: float) -> float:
        return self._mono0 + (job_ms / 1000 - self._wall0 - self._offset) / self._speed

    def advance(self, seconds: float) -> None:
        """Move the job clock forward by *seconds* (job-clock seconds): jobs jump ahead.

        Jobs that end in the jump count as finished now for :meth:`finished_at`. *seconds* is
        finite and >= 0 (0 changes nothing); anything else is
        :class:`~voucherify_async.InvalidArgumentError`.
        """
        check_seconds(seconds, "seconds")
        before = self._now_ms()
        for job in self._jobs.values():
            if job.finished_real is None and job.terminal_ms is not None:
                if job.is_terminal(before):
                    job.finished_real = self._real_time(job.terminal_ms)
                elif job.is_terminal(before + seconds * 1000):
                    job.finished_real = monotonic()
        self._offset += seconds

    # -- jobs ------------------------------------------------------------------------

    def _hex_id(self, prefix: str) -> str:
        return prefix + f"{self._rng.getrandbits(72):018x}"

    def add_action(
        self,
        type: str = "VOUCHERS.IMPORT",
        *,
        duration: float | None = 1.0,
        enqueued: float | None = None,
        progress: ProgressCurve = "linear",
        status: str = "DONE",
        operation_status: str | None = None,
        result: Mapping[str, Any] | None = None,
        id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Schedule a simulated async action now and return its id.

        It spends *enqueued* seconds ENQUEUED (default ``min(0.05 * duration, 0.5)``), then
        is IN_PROGRESS with *progress* rising: a shape's name (``"linear"``, ``"steps"``,
        ``"coarse"``, ``"fast-then-slow"``, ``"slow-then-fast"``, ``"stall"``, ``"noisy"``,
        ``"stages"``, ``"mixed"``, ``"none"``; see ``PROGRESS_SHAPES``), a function of the elapsed
        fraction (0.0-1.0) returning 0-100, or ``(fraction, progress)`` points joined by
        straight lines, such as
        ``[(0.0, 0), (0.5, 5), (1.0, 100)]``. It ends with *status* (``"DONE"`` or
        ``"FAILED"``) *duration* seconds (default 1.0, job clock) after it was created;
        ``duration=None`` never ends, ``duration=0`` ends at once; a negative, NaN or
        infinite time is :class:`~voucherify_async.InvalidArgumentError`. *operation_status*
        defaults to ``"SUCCESS"``/``"FAILED"`` for bulk and metadata updates and is absent for
        other types; *result* defaults to a realistic result for *type* and status. *id*
        defaults to ``aa_`` and 18 hex digits; *extra* keys (such as ``user`` or ``log_id``)
        are added to every response and win over the standard keys. Each action's
        ``created_at`` is at least 1 ms after the previous one's; ``processing_time`` is the
        time (ms) from adding it to its end.
        """
        if duration is not None:
            check_seconds(duration, "duration")
        if enqueued is None:
            enqueued = 0.0 if duration is None else min(0.05 * duration, 0.5)
        if check_seconds(enqueued, "enqueued") < 0 or (
            duration is not None and enqueued > duration
        ):
            raise InvalidArgumentError(f"enqueued must be between 0 and duration, got {enqueued!r}")
        if status not in ("DONE", "FAILED"):
            raise InvalidArgumentError(f"status must be 'DONE' or 'FAILED', got {status!r}")
        for name, value in (("result", result), ("extra", extra)):
            if value is not None and not isinstance(value, Mapping):
                raise InvalidArgumentTypeError(
                    f"{name} must be a mapping or None, got {value.__class__.__name__}"
                )
        if operation_status is not None and not isinstance(operation_status, str):
            raise InvalidArgumentTypeError(
                f"operation_status must be a str or None, got {operation_status.__class__.__name__}"
            )
        curve: JobCurve
        if progress == "linear":
            curve = "linear"
        elif progress == "steps":
            curve = "steps"
        else:
            try:
                curve = make_shape(progress, self._rng)
            except TypeError:
                raise InvalidArgumentError(
                    f"progress must be a shape's name, a function or points: {progress!r}"
                ) from None
        if id is None:
            id = self._hex_id("aa_")
            while id in self._jobs:
                id = self._hex_id("aa_")
        elif not id or id in self._jobs:
            raise InvalidArgumentError(f"id must be non-empty and new, got {id!r}")
        now_ms = self._now_ms()
        created_ms = max(math.floor(now_ms), self._last_created_ms + 1)
        self._last_created_ms = created_ms
        self._jobs[id] = Job.planned(
            id=id,
            type=type,
            seq=len(self._jobs),
            now_ms=now_ms,
            created_ms=created_ms,
            enqueued=enqueued,
            duration=duration,
            curve=curve,
            status=status,
            operation_status=operation_status,
            result=result,
            request_id=self._hex_id("v-"),
            extra=extra,
        )
        return id

    def add_demo_jobs(
        self, n: int, *, rng: random.Random | None = None, scale: float = 1.0
    ) -> list[str]:
        """Schedule *n* realistic jobs across the 22 types and return their ids.

        Most last 0.1-1.3 s like the seed's examples; every tenth is a long import (5-15 s,
        progress in steps); one (when *n* >= 2) ends FAILED. *scale* (default 1.0)
        multiplies every duration. *rng* defaults to the emulator's own seeded generator.
        """
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise InvalidArgumentError(f"scale must be a number > 0, got {scale!r}")
        rng = self._rng if rng is None else rng
        types = list(ACTION_TYPES)
        rng.shuffle(types)
        # Every tenth job is long: put import types there, so the long ones are imports.
        for slot in range(9, len(types), 10):
            if "IMPORT" not in types[slot]:
                swap = next(j for j, t in enumerate(types) if "IMPORT" in t and j % 10 != 9)
                types[slot], types[swap] = types[swap], types[slot]
        failed = rng.randrange(n) if n >= 2 else -1
        ids = []
        for i in range(n):
            long = i % 10 == 9
            duration = rng.uniform(5.0, 15.0) if long else rng.uniform(0.1, 1.3)
            ids.append(
                self.add_action(
                    types[i % len(types)],
                    duration=round(duration * scale, 3),
                    progress="steps" if long else "linear",
                    status="FAILED" if i == failed else "DONE",
                )
            )
        return ids

    def _job(self, action_id: str) -> Job:
        try:
            return self._jobs[action_id]
        except KeyError:
            raise UnknownActionError(f"no async action {action_id!r} in this emulator") from None

    @property
    def action_ids(self) -> list[str]:
        """The ids of every action added, oldest first."""
        return list(self._jobs)

    def action(self, action_id: str) -> dict[str, Any]:
        """The action's JSON as ``GET /v1/async-actions/{id}`` would serve it now."""
        return self._job(action_id).to_json(self._now_ms())

    def finish(
        self,
        action_id: str,
        status: str = "DONE",
        *,
        operation_status: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """End the action now with *status* (``"DONE"`` or ``"FAILED"``).

        *operation_status* and *result* default to the ones planned by :meth:`add_action`
        when *status* is the planned one, else to the defaults for *status*. ValueError if
        the action has already ended.
        """
        job = self._job(action_id)
        job.finish(self._now_ms(), status, operation_status, result)
        job.finished_real = monotonic()

    def set_progress(self, action_id: str, progress: int) -> None:
        """Pin the action's progress (0-100) from now on; an ENQUEUED action starts now."""
        self._job(action_id).set_progress(progress, self._now_ms())

    def hold(self, action_id: str) -> None:
        """Freeze the action where it is now: it never ends until :meth:`finish`."""
        self._job(action_id).hold(self._now_ms())

    def finished_at(self, action_id: str) -> float | None:
        """The event loop time (seconds) at which the action ended, or None if it has not."""
        job = self._job(action_id)
        if not job.is_terminal(self._now_ms()):
            return None
        if job.finished_real is not None:
            return job.finished_real
        assert job.terminal_ms is not None
        return self._real_time(job.terminal_ms)

    # -- faults ----------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        probability: float | None = None,
        action_id: str | None = None,
    ) -> InjectedFault:
        """Answer upcoming requests with *fault*.

        It hits the next *times* matching requests (default 1; None: every one). With
        *probability* (0-1) each matching request is hit at random (the emulator's seeded
        generator) until *times* hits are spent. *action_id* restricts it to
        ``GET /v1/async-actions/{action_id}``; otherwise every request matches. When several
        faults match, the one injected first answers.
        """
        injected = InjectedFault(fault, times, probability, action_id)
        self._faults.append(injected)
        return injected

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        self._faults.clear()

    def _pick_fault(self, action_id: str | None) -> Fault | None:
        self._faults = [f for f in self._faults if f.active]
        for injected in self._faults:
            if injected.matches(action_id, self._rng):
                return injected.fault
        return None

    # -- the request log -------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (the live list)."""
        return self._log.requests

    def count(self, action_id: str | None = None) -> int:
        """How many requests arrived for *action_id*, or in total when it is None."""
        return len(self._log.matching(action_id))

    async def wait_for_requests(
        self,
        n: int,
        timeout: float | None = 5.0,
        *,
        action_id: str | None = None,
    ) -> list[RecordedRequest]:
        """Wait until *n* requests (for *action_id*, when given) have arrived; return them.

        Raises :class:`TimeoutError` (a ``VoucherifyError`` too) after *timeout* seconds
        (default 5.0; None waits forever; finite and >= 0).
        """
        return await self._log.wait(n, check_timeout(timeout), action_id)

    # -- serving ---------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path = request.raw_path.partition("?")[0]
        if self._control and raw_path.startswith(CONTROL_PREFIX):
            return await self._control_reply(request)
        record = self._log.record(request, raw_path, action_segment(raw_path))
        fault = self._pick_fault(record.action_id)
        if fault is not None:
            record.fault = type(fault).__name__
        while isinstance(fault, Delay):
            if not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), fault.seconds)
            fault = fault.then
        if isinstance(fault, Drop):
            close_connection(request)
            self._tell(record)
            return web.Response()
        if isinstance(fault, Status | Body):
            state = self._budget.peek(monotonic())
            reply = fault_reply(fault, state, time.time(), self._hex_id("v-"))
        else:
            reply = await self._api_reply(request, record)
        record.status = reply.status
        self._tell(record)
        return await send(request, reply, fault)

    def _tell(self, record: RecordedRequest) -> None:
        if self.on_request is not None:
            self.on_request(record)

    async def _control_reply(self, request: web.BaseRequest) -> web.StreamResponse:
        keys = {"app_id": self._app_id, "app_token": self._app_token}
        if not authorized(request.headers, **keys, oauth_token=self._oauth_token):
            body = {"code": 401, "key": "unauthorized", "message": "Unauthorized"}
            return web.json_response(body, status=401)
        return await control_reply(self, request)

    def _error(self, status: int, state: RateState, **fields: str) -> Reply:
        body = {"code": status, **fields, "request_id": self._hex_id("v-")}
        return Reply.json(status, body, state.headers(time.time()))

    async def _api_reply(self, request: web.BaseRequest, record: RecordedRequest) -> Reply:
        now = monotonic()
        if not authorized(
            request.headers,
            app_id=self._app_id,
            app_token=self._app_token,
            oauth_token=self._oauth_token,
        ):
            return self._error(
                401, self._budget.peek(now), key="unauthorized", message="Unauthorized"
            )
        admitted, state = self._budget.admit(now)
        if not admitted:
            body = {"code": 429, "message": "Too many requests hit the API too quickly."}
            retry_after = str(max(1, math.ceil(state.refill_in)))
            return Reply.json(429, body, state.headers(time.time()), **{"Retry-After": retry_after})
        endpoint = find_endpoint(request.method, record.raw_path)
        if endpoint is not None:
            return await self._start_action(endpoint, request, record, state)
        if record.raw_path not in (PREFIX, PREFIX + "/") and record.raw_action_id is None:
            details = f"Cannot {request.method} {record.path}"
            return self._error(
                404, state, key="not_found", message="Resource not found", details=details
            )
        if request.method not in ("GET", "HEAD"):
            details = f"{request.method} is not allowed on {record.path}"
            return self._error(
                405, state, key="method_not_allowed", message="Method Not Allowed", details=details
            )
        if record.action_id is None:
            return self._list(record, state)
        job = self._jobs.get(record.action_id)
        if job is None:
            return self._error(
                404,
                state,
                key="not_found",
                message="Resource not found",
                details=f"Cannot find async_action with id {record.action_id}",
                resource_id=record.action_id,
                resource_type="async_action",
            )
        return Reply.json(200, job.to_json(self._now_ms()), state.headers(time.time()))

    async def _start_action(
        self,
        endpoint: Endpoint,
        request: web.BaseRequest,
        record: RecordedRequest,
        state: RateState,
    ) -> Reply:
        """A request that starts an action: plan its job from the payload, answer its id."""
        try:
            plan = await read_plan(endpoint, request, self.max_upload_bytes)
        except BadPayload as exc:
            return self._error(exc.status, state, **error_fields(exc))
        if plan.answer is not None:
            return Reply.json(200, plan.answer, state.headers(time.time()))
        action_id = self.add_action(
            endpoint.type,
            duration=self.start_seconds + self.start_seconds_per_row * plan.rows,
            progress="linear",
            status=plan.status,
            operation_status=plan.operation_status,
            result=plan.result,
        )
        record.started_id = action_id
        body = {"async_action_id": action_id}
        return Reply.json(endpoint.status, body, state.headers(time.time()))

    def _list(self, record: RecordedRequest, state: RateState) -> Reply:
        bad = {"key": "invalid_query_params", "message": "Invalid query params"}
        limit_text = record.query.get("limit", "10")
        if not (limit_text.isascii() and limit_text.isdigit() and 1 <= int(limit_text) <= 100):
            details = "Property .limit must be an integer between 1 and 100"
            return self._error(400, state, **bad, details=details)
        end_ms = math.inf
        if "end_date" in record.query:
            try:
                end_ms = parse_end_date(record.query["end_date"])
            except ValueError:
                details = "Property .end_date cannot be recognized as a ISO-8601 compliant date"
                return self._error(400, state, **bad, details=details)
        limit = int(limit_text)
        now_ms = self._now_ms()
        jobs = sorted(
            (job for job in self._jobs.values() if job.created_ms < end_ms),
            key=lambda job: (job.created_ms, job.seq),
            reverse=True,
        )
        body = {
            "object": "list",
            "data_ref": "async_actions",
            "async_actions": [job.to_json(now_ms, list_item=True) for job in jobs[:limit]],
            "has_more": len(jobs) > limit,
        }
        return Reply.json(200, body, state.headers(time.time()))
