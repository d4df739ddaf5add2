"""The subcommands: each is a coroutine taking the parsed arguments and returning an exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import IO, Final

from voucherify_async import (
    AsyncAction,
    AsyncActionFailed,
    ConfigurationError,
    PollTimeout,
    VoucherifyClient,
    VoucherifyError,
    converter,
)
from voucherify_async._models import one_line

from ._demo import DEMO_SECONDS, DEMO_SECONDS_PER_ROW, start_demo_jobs
from ._exit import EXIT_FAILED, EXIT_OK, EXIT_USAGE, worst
from ._printer import make_printer
from ._view import Outcome, Printer, Tracker, live_pace, summarize

__all__ = [
    "Reporter",
    "client_for",
    "run_demo",
    "run_emulator",
    "run_get",
    "run_list",
    "run_wait",
    "watch",
]

#: How often the live display redraws elapsed times and ETAs, in seconds.
TICK: Final = 0.25
#: How much longer than the seed's the ``emulator --jobs`` demo jobs last: time to paste ids.
DEMO_JOBS_SCALE: Final = 30.0
#: The demo's request budget unless ``--rpm`` says otherwise: a typical paid plan.
DEMO_REQUESTS_PER_MINUTE: Final = 100


def client_for(args: argparse.Namespace) -> VoucherifyClient:
    """The client the connection options describe."""
    # Raises ConfigurationError (exit 2) for missing credentials or a bad URL.
    if args.base_url is not None and not args.base_url.strip():
        raise ConfigurationError(
            "--base-url is empty: give a URL such as http://127.0.0.1:8080, or leave it out "
            "to use --cluster"
        )
    return VoucherifyClient(
        args.app_id,
        args.app_token,
        oauth_token=args.oauth_token,
        cluster=args.cluster,
        base_url=args.base_url,
        requests_per_minute=args.rpm,
    )


def write_json(out: IO[str], action: AsyncAction) -> None:
    """One line of JSON: *action* in the API's own shape."""
    print(json.dumps(converter.unstructure(action)), file=out, flush=True)


# --- waiting ------------------------------------------------------------------------------


class Reporter:
    """Shows what a wait sees: live progress, JSON lines, or nothing; then the outcome."""

    def __init__(
        self,
        ids: Sequence[str],
        out: IO[str],
        err: IO[str],
        *,
        printer: Printer | None,
        as_json: bool = False,
    ) -> None:
        self.tracker = Tracker(ids)
        self.printer = printer
        self._out, self._err = out, err
        self._json = as_json
        self._written: set[str] = set()

    def update(self, action_id: str, snapshot: AsyncAction) -> None:
        row = self.tracker.observe(action_id, snapshot)
        if self.printer is not None:
            self.printer.progress(row)
        if self._json and snapshot.is_terminal and action_id not in self._written:
            self._written.add(action_id)
            write_json(self._out, snapshot)

    def finish(self, ids: Sequence[str], outcomes: Sequence[Outcome]) -> list[int]:
        """Print the summary (or the JSON lines not written yet); return each outcome's code."""
        rows = []
        for action_id, outcome in zip(ids, outcomes, strict=True):
            latest = self.tracker.rows[action_id].action
            rows.append(summarize(action_id, outcome, latest))
            if isinstance(outcome, AsyncActionFailed):
                latest = outcome.action
            elif isinstance(outcome, AsyncAction):
                latest = outcome
            elif isinstance(outcome, PollTimeout):
                latest = outcome.latest or latest
            if self._json and latest is not None and action_id not in self._written:
                self._written.add(action_id)
                write_json(self._out, latest)
            if self.printer is None and not isinstance(outcome, AsyncAction | AsyncActionFailed):
                line = one_line(f"voucherify-async: {action_id}: {outcome}")
                print(line, file=self._err, flush=True)
        if self.printer is not None:
            self.printer.summary(rows)
        return [row.code for row in rows]


async def _follow(action_id: str, updates: AsyncIterator[AsyncAction], reporter: Reporter) -> None:
    # The verdict comes from wait_all; a permanent error just ends this stream early.
    with contextlib.suppress(VoucherifyError):
        async for snapshot in updates:
            reporter.update(action_id, snapshot)


async def _tick(printer: Printer) -> None:
    while True:
        await asyncio.sleep(TICK)
        printer.tick()


async def watch(
    client: VoucherifyClient,
    ids: Sequence[str],
    reporter: Reporter,
    timeout: float | None,
) -> list[Outcome]:
    """Wait for every id with one shared handle each, feeding their updates to *reporter*."""
    handles = [client.async_actions.handle(action_id) for action_id in ids]
    printer = reporter.printer
    # A live view polls at a watcher's pace, so its bars move; JSON output needs only the end.
    every = live_pace(len(handles)) if printer is not None else None
    followers = [
        asyncio.create_task(_follow(h.id, h.updates(every=every), reporter)) for h in handles
    ]
    ticker = asyncio.create_task(_tick(printer)) if printer is not None else None
    if printer is not None:
        printer.start_progress(reporter.tracker)
    try:
        return await client.async_actions.wait_all(handles, timeout=timeout, return_exceptions=True)
    finally:
        # A handle that ended has queued its last snapshot: let its follower show it.
        for handle, follower in zip(handles, followers, strict=True):
            if not handle.done():
                follower.cancel()
        if ticker is not None:
            ticker.cancel()
        await asyncio.gather(*followers, *([ticker] if ticker else []), return_exceptions=True)
        if printer is not None:
            printer.stop_progress()


async def run_wait(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``wait ID...``: follow each action to its end, then summarize."""
    ids = list(dict.fromkeys(args.ids))
    printer = None if args.json or args.quiet else make_printer(out)
    reporter = Reporter(ids, out, err, printer=printer, as_json=args.json)
    async with client_for(args) as client:
        outcomes = await watch(client, ids, reporter, args.timeout)
    return worst(reporter.finish(ids, outcomes))


# --- one-shot requests ----------------------------------------------------------------------


async def run_get(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``get ID``: one GET; exit 0 whatever the action's status."""
    async with client_for(args) as client:
        action = await client.async_actions.get(args.id)
    if args.json:
        write_json(out, action)
    else:
        make_printer(out).action(action)
    return EXIT_OK


async def run_list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``list``: one page of actions, newest first, or every page with ``--all``."""
    async with client_for(args) as client:
        if args.all:
            actions: list[AsyncAction] = []
            pages = client.async_actions.iterate(args.end_date, page_size=args.limit or 100)
            async for action in pages:
                if args.json:
                    write_json(out, action)
                else:
                    actions.append(action)
            more = False
        else:
            page = await client.async_actions.list(limit=args.limit or 50, end_date=args.end_date)
            actions, more = page.async_actions, page.has_more
            if args.json:
                for action in actions:
                    write_json(out, action)
    if not args.json:
        printer = make_printer(out)
        if actions:
            printer.actions(actions)
        else:
            printer.message("No async actions.")
        if more:
            printer.message("More actions are older: add --all, or --end-date to page back.")
    return EXIT_OK


# --- the emulator -----------------------------------------------------------------------------


async def run_demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``demo``: a realistic mix of jobs started on a local emulator, watched under a budget."""
    from voucherify_async.testing import VoucherifyEmulator

    rpm = args.rpm or DEMO_REQUESTS_PER_MINUTE
    printer = make_printer(out)
    async with VoucherifyEmulator() as emulator:
        # The emulator makes a job's duration grow with its payload: this sets the pace.
        emulator.start_seconds = DEMO_SECONDS
        emulator.start_seconds_per_row = DEMO_SECONDS_PER_ROW
        started = time.monotonic()
        async with VoucherifyClient(
            "demo-app-id", "demo-app-token", base_url=emulator.base_url, requests_per_minute=rpm
        ) as client:
            handles = await start_demo_jobs(client.async_actions, args.jobs, random.Random())
            ids = [handle.id for handle in handles]
            kinds = len({emulator.action(action_id)["type"] for action_id in ids})
            printer.message(
                f"Voucherify emulator at {emulator.base_url}: started {len(ids)} demo jobs of "
                f"{kinds} types through the API"
                + (", one scripted to fail" if len(ids) >= 2 else "")
                + f"; budget {rpm} requests/minute"
            )
            reporter = Reporter(ids, out, err, printer=printer)
            outcomes = await watch(client, ids, reporter, None)
        codes = reporter.finish(ids, outcomes)
        requests = emulator.count()
    printer.message(
        f"{requests} requests for {len(ids)} jobs in {time.monotonic() - started:.1f} s"
    )
    # The scripted failure is part of the show; anything else is not.
    return worst([EXIT_OK if code == EXIT_FAILED else code for code in codes])


async def run_emulator(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``emulator``: serve until Ctrl-C (or SIGTERM), then exit 0."""
    from voucherify_async.testing import JobSpec, RecordedRequest, VoucherifyEmulator, serve

    if not args.allow_remote and not _loopback(args.host):
        print(
            f"voucherify-async: error: refusing to listen on non-loopback host {args.host!r}: "
            "add --allow-remote (anyone who can reach it can use the emulator)",
            file=err,
            flush=True,
        )
        return EXIT_USAGE

    def ready(emulator: VoucherifyEmulator) -> None:
        url = emulator.base_url
        print(f"Voucherify emulator serving at {url}", file=out, flush=True)
        ids = emulator.action_ids
        if ids:
            print(f"{len(ids)} jobs scheduled:", file=out)
            for action_id in ids:
                print(f"  {action_id}  {emulator.action(action_id)['type']}", file=out)
            out.flush()
        credentials = (
            f"--app-id {args.app_id or 'demo'} --app-token {'...' if args.app_token else 'demo'}"
        )
        print(
            f"Try: voucherify-async list --base-url {url} {credentials}\nPress Ctrl-C to stop.",
            file=err,
            flush=True,
        )

    def log(record: RecordedRequest) -> None:
        started = f" started {record.started_id}" if record.started_id else ""
        status = record.status if record.status is not None else "dropped"
        print(f"{record.method} {record.raw_path} -> {status}{started}", file=out, flush=True)

    specs: list[JobSpec] = [*args.job, *args.jobs_file]
    specs += [JobSpec(id=action_id, not_found=True) for action_id in args.not_found]
    server = asyncio.create_task(
        serve(
            args.host,
            args.port,
            jobs=args.jobs,
            jobs_scale=args.jobs_scale,
            job_specs=specs,
            allow_remote=args.allow_remote,
            requests_per_minute=args.rpm,
            app_id=args.app_id,
            app_token=args.app_token,
            oauth_token=args.oauth_token,
            control=not args.no_control,
            on_request=log if args.log else None,
            ready=ready,
        )
    )
    with _stop_on_sigterm() as stopped:
        waiter = asyncio.create_task(stopped.wait())
        try:
            done, _ = await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.cancel()
            waiter.cancel()
            await asyncio.gather(server, waiter, return_exceptions=True)
    if server in done and not server.cancelled() and server.exception() is not None:
        error = server.exception()
        if isinstance(error, ValueError | OSError):  # a port in use, a job id given twice
            print(f"voucherify-async: error: {error}", file=err, flush=True)
            return EXIT_USAGE
        server.result()  # anything else is a bug: let it show
    return EXIT_OK


def _loopback(host: str) -> bool:
    """The emulator's own rule, so the flag is named before the emulator refuses the host."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM, where the platform and thread allow a handler."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = False
    if sys.platform != "win32":
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGTERM, stopped.set)
            installed = True
    try:
        yield stopped
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)
