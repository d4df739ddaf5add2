"""The argument parser of ``voucherify-async``: subcommands, options, help and exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable

from voucherify_async.testing import JobSpec, parse_job

from ._commands import DEMO_JOBS_SCALE, run_demo, run_emulator, run_get, run_list, run_wait
from ._exit import EXIT_CODES_HELP
from ._start import KINDS, kinds_help, run_start

__all__ = ["build_parser"]

_DESCRIPTION = (
    "Follow Voucherify async actions (imports, bulk and metadata updates) from the command "
    "line, or try the library against its built-in emulator."
)


def _action_id(value: str) -> str:
    if not value:
        raise argparse.ArgumentTypeError("an async action id must not be empty")
    return value


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return number


def _integer(low: int, high: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer from *low* to *high* (inclusive; None: no upper bound)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f">= {low}" if high is None else f"{low}-{high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value!r}")
        return number

    return parse


_port = _integer(0, 65535, "a port number")
_count = _integer(0)
_positive_int = _integer(1)
_limit = _integer(1, 100)


def _job(value: str) -> JobSpec:
    try:
        return parse_job(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _jobs_file(value: str) -> list[JobSpec]:
    """A JSON file holding a list of job specs (or one spec)."""
    try:
        with open(value, encoding="utf-8") as file:
            data = json.load(file)
        items = data if isinstance(data, list) else [data]
        return [JobSpec.from_json(item) for item in items]
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{value}: {exc}") from None


def _end_date(value: str) -> dt.datetime | dt.date:
    """``2024-05-01`` (a date) or an ISO-8601 date-time; one without an offset is UTC."""
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 date or date-time: {value!r} (e.g. 2024-05-01 or "
            "2024-05-01T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _client_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--app-id", metavar="ID", help="application id (default: $VOUCHERIFY_APP_ID)"
    )
    group.add_argument(
        "--app-token",
        metavar="TOKEN",
        help="secret key (default: $VOUCHERIFY_APP_TOKEN; prefer the variable: "
        "arguments show in the process list)",
    )
    group.add_argument(
        "--oauth-token",
        metavar="TOKEN",
        help="an OAuth access token, instead of the app id and token",
    )
    group.add_argument(
        "--rpm",
        type=_positive_int,
        metavar="N",
        help="at most N requests in any 60 s, like your plan's budget (default: no local cap; "
        "429s and the server's rate-limit headers are obeyed either way)",
    )
    group.add_argument(
        "--cluster",
        default="api",
        metavar="NAME",
        help='"api" (Europe, the default), "us1.api" or "as1.api"',
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API root, overriding --cluster, e.g. http://127.0.0.1:8080 "
        "(default: $VOUCHERIFY_BASE_URL)",
    )
    return parent


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON, one object per line, in the API's own shape",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``voucherify-async`` parser; each subcommand sets ``run`` to its coroutine."""
    parser = argparse.ArgumentParser(
        prog="voucherify-async",
        description=_DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    client = [_client_options()]

    get = _add(commands, "get", "show one async action", "Show one async action (one GET).", client)
    get.add_argument("id", type=_action_id, metavar="ID", help="the async action id (aa_...)")
    _json_option(get, "the action")
    get.set_defaults(run=run_get)

    wait = _add(
        commands,
        "wait",
        "wait for async actions to end",
        "Wait for async actions to end, with live progress, then summarize them.",
        client,
    )
    wait.add_argument("ids", nargs="+", type=_action_id, metavar="ID", help="async action ids")
    wait.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="give up after S seconds (exit 3); default: wait as long as it takes",
    )
    _json_option(wait, "each action when it ends")
    wait.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary: the exit code says"
    )
    wait.set_defaults(run=run_wait)

    start = _add(
        commands,
        "start",
        "start an async action (an import, an update, a deletion)",
        "Start one async action through the client's budget and print its id; with --wait, "
        "follow it with live progress like `wait`. The request is sent once when it may have "
        "reached the server: if its answer is lost the command exits 5 (look for the action "
        "with `list` before trying again).\n\n" + kinds_help(),
        client,
    )
    start.add_argument("kind", choices=sorted(KINDS), metavar="KIND", help="what to start")
    start.add_argument(
        "file", nargs="?", metavar="FILE", help="a .csv file to upload, or a JSON file (the body)"
    )
    start.add_argument("--json", metavar="JSON", help="the request body as inline JSON")
    start.add_argument(
        "--id", type=_action_id, metavar="ID", help="the campaign or loyalty program (id or name)"
    )
    start.add_argument(
        "--count", type=_integer(2, None, "a count"), metavar="N", help="campaign-generate: N >= 2"
    )
    start.add_argument(
        "--force", action="store_true", help="deletions: delete for good, not to the bin"
    )
    start.add_argument("--wait", action="store_true", help="follow the action until it ends")
    start.add_argument(
        "--timeout", type=_positive_float, metavar="S", help="with --wait: give up after S seconds"
    )
    start.add_argument(
        "--print-json",
        dest="json_output",
        action="store_true",
        help='print {"async_action_id": ...}, and with --wait the action, as JSON lines',
    )
    start.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing: the exit code says"
    )
    start.set_defaults(run=run_start)

    listing = _add(
        commands,
        "list",
        "list recent async actions",
        "List async actions, newest first (items carry no result).",
        client,
    )
    listing.add_argument(
        "--limit",
        type=_limit,
        metavar="N",
        help="actions per page, 1-100 (default 50; with --all, 100)",
    )
    listing.add_argument(
        "--end-date",
        type=_end_date,
        metavar="D",
        help="only actions created before D: 2024-05-01 or 2024-05-01T12:00:00Z",
    )
    listing.add_argument("--all", action="store_true", help="every page, not just the first")
    _json_option(listing, "each action")
    listing.set_defaults(run=run_list)

    emulator = _add(
        commands,
        "emulator",
        "serve the built-in emulator",
        "Serve the built-in emulator of the Async Actions API until Ctrl-C or SIGTERM "
        "(then exit 0). It prints its base URL and the ids of the jobs it scheduled. It "
        "accepts any non-empty app id and token unless --app-id/--app-token/--oauth-token say "
        "which, serves the endpoints that start actions, and a control endpoint under "
        "/_emulator/ (see docs/testing.md).",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument(
        "--port", type=_port, default=8080, help="port (default 8080; 0: any free)"
    )
    emulator.add_argument(
        "--jobs", type=_count, default=0, metavar="N", help="schedule N demo jobs (default 0)"
    )
    emulator.add_argument(
        "--jobs-scale",
        type=_positive_float,
        default=DEMO_JOBS_SCALE,
        metavar="X",
        help=f"multiply the demo jobs' durations by X (default {DEMO_JOBS_SCALE:g}: 3-39 s, "
        "long imports minutes, time enough to paste their ids)",
    )
    emulator.add_argument(
        "--job",
        type=_job,
        action="append",
        default=[],
        metavar="SPEC",
        help="add a job: [ID=]TYPE[:SECONDS|never][:DONE|FAILED], e.g. VOUCHERS.IMPORT:600, "
        "ORDERS.IMPORT:never, aa_1=SKUS.IMPORT_CSV:5:FAILED (repeatable)",
    )
    emulator.add_argument(
        "--not-found",
        action="append",
        default=[],
        type=_action_id,
        metavar="ID",
        help="add a job listed under ID whose GET answers 404 (repeatable)",
    )
    emulator.add_argument(
        "--jobs-file",
        type=_jobs_file,
        default=[],
        metavar="FILE",
        help="add the jobs of a JSON file: a list of job specs (see docs/testing.md)",
    )
    emulator.add_argument("--log", action="store_true", help="print each request as it is answered")
    emulator.add_argument("--app-id", metavar="ID", help="accept only this app id")
    emulator.add_argument("--app-token", metavar="TOKEN", help="accept only this app token")
    emulator.add_argument("--oauth-token", metavar="TOKEN", help="accept this bearer token")
    emulator.add_argument(
        "--no-control", action="store_true", help="do not serve the /_emulator/ control endpoint"
    )
    emulator.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (the emulator checks no real credentials)",
    )
    emulator.add_argument(
        "--rpm",
        type=_positive_int,
        metavar="N",
        help="enforce a budget of N requests per minute with 429s (default: none)",
    )
    emulator.set_defaults(run=run_emulator)

    demo = _add(
        commands,
        "demo",
        "watch a mix of simulated jobs on the built-in emulator",
        "Start the emulator on loopback, schedule a realistic mix of jobs across the 22 "
        "action types (short ones, a few long ones, one scripted failure) and wait for all "
        "of them under a request budget. Exits 0 when everything went as scripted.",
    )
    demo.add_argument(
        "--jobs", type=_positive_int, default=25, metavar="N", help="how many jobs (default 25)"
    )
    demo.add_argument(
        "--rpm",
        type=_positive_int,
        metavar="N",
        help="the client's budget in requests per minute (default 100)",
    )
    demo.set_defaults(run=run_demo)
    return parser


def _add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    parents: list[argparse.ArgumentParser] | None = None,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        parents=parents or [],
        help=summary,
        description=description,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voucherify-async")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
