"""The documentation's code: every recipe runs against the emulator, and the pages stay honest.

The recipes live in ``tests/docs_examples/``; the pages include them with ``literalinclude``,
so what a reader sees is what runs here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import re
import shlex
import sys
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cattrs
import pytest
from aiohttp import test_utils
from docs_examples import (
    aiohttp_app,
    concepts,
    custom_result,
    pipeline,
    quickstart,
    reports,
    watch,
)
from docs_examples import start as start_recipe

# The testing recipe's tests, and the fixture they use, run here as a user's suite runs them.
from docs_examples.testing_recipe import (  # noqa: F401
    instant_polls,
    test_report_gives_up,
    test_report_lists_failed_vouchers,
    test_report_of_a_failed_import,
    test_report_under_a_spent_budget,
    test_report_waits_for_the_end,
)

import voucherify_async
from voucherify_async import (
    AsyncAction,
    AsyncActionStatus,
    PollTimeout,
    UnknownResult,
    VoucherifyClient,
    VouchersImportResult,
    _registry,
    instrumentation,
    result_type_for,
)
from voucherify_async import opentelemetry as vopentelemetry
from voucherify_async import testing as vtesting
from voucherify_async.testing import VoucherifyEmulator, fast_polling

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = Path(__file__).resolve().parent / "docs_examples"


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def polls_fast() -> Iterator[None]:
    """The library's own delays near zero for this test (as the recipe's ``instant_polls``)."""
    with fast_polling():
        yield


@pytest.fixture
def voucherify_env(
    voucherify_emulator: VoucherifyEmulator, monkeypatch: pytest.MonkeyPatch
) -> VoucherifyEmulator:
    """Point ``VoucherifyClient()`` without arguments at the emulator, through the environment."""
    monkeypatch.setenv("VOUCHERIFY_APP_ID", "docs-app-id")
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", "docs-app-token")
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", voucherify_emulator.base_url)
    return voucherify_emulator


@pytest.fixture
def restore_result_types() -> Iterator[None]:
    """Put the result-type registry back as it was (there is no public unregister)."""
    saved = dict(_registry._RESULT_TYPES)
    yield
    _registry._RESULT_TYPES.clear()
    _registry._RESULT_TYPES.update(saved)


# --- the pages ---------------------------------------------------------------------------

#: The narrative pages this suite vouches for (docs/cli.md, testing.md, benchmarks.md and
#: reliability.md belong to other suites).
NARRATIVE = [
    "index.md",
    "why.md",
    "installation.md",
    "quickstart.md",
    "concepts.md",
    "quirks.md",
    "opentelemetry.md",
    "changelog.md",
    *sorted(f"recipes/{p.name}" for p in (DOCS / "recipes").glob("*.md")),
]

_FENCE = re.compile(r"^(`{3,}|~{3,})[ \t]*(.*?)[ \t]*$")
#: What a fenced block may be: a doctest, an included file, a console snippet, or a directive
#: that holds no code.
_ALLOWED_FENCES = {
    "{doctest}",
    "{testsetup}",
    "{testcleanup}",
    "{literalinclude}",
    "console",
    "{toctree}",
    "{include}",
    "{note}",
    "{tip}",
    "{warning}",
    "{important}",
    "{seealso}",
    "{eval-rst}",
}


def _fences(text: str) -> list[str]:
    """The info string of every fenced block in *text*, outer blocks only."""
    infos: list[str] = []
    opening: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match is None:
            continue
        marker, info = match.groups()
        if opening is None:
            opening = marker
            infos.append(info.split()[0] if info else "")
        elif not info and marker[0] == opening[0] and len(marker) >= len(opening):
            opening = None
    return infos


@pytest.mark.parametrize("page", NARRATIVE)
def test_every_code_block_is_tested_or_console(page: str) -> None:
    """A page's code blocks are doctests, included tested files, or console snippets."""
    text = (DOCS / page).read_text(encoding="utf-8")
    bad = [info or "(no language)" for info in _fences(text) if info not in _ALLOWED_FENCES]
    assert not bad, f"{page}: untested code blocks: {bad}"
    if page != "api.md":
        assert "{eval-rst}" not in _fences(text), f"{page}: eval-rst belongs to api.md"


def test_literalincludes_name_tested_files() -> None:
    """Every file a page includes exists, and a test here imports or runs it."""
    this = Path(__file__).read_text(encoding="utf-8")
    for page in NARRATIVE:
        text = (DOCS / page).read_text(encoding="utf-8")
        for target in re.findall(r"```\{literalinclude\}\s+(\S+)", text):
            path = (DOCS / page).parent / target
            assert path.is_file(), f"{page}: {target} does not exist"
            assert path.resolve().parent == EXAMPLES, f"{page}: {target} is not a docs example"
            assert path.stem in this, f"{page}: {target} is not exercised by test_docs.py"


def _documented_names() -> set[str]:
    """Fully qualified names of every autodoc directive in docs/api.md."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    names: set[str] = set()
    module = ""
    for kind, name in re.findall(
        r"^\s*\.\.\s+(module|currentmodule|automodule|auto\w+)::\s*([\w.]+)", text, re.MULTILINE
    ):
        if kind in ("module", "currentmodule"):
            module = name
        elif kind == "automodule":
            module = name
            names.add(name)
        else:
            names.add(name if name.startswith("voucherify_async") else f"{module}.{name}")
    return names


@pytest.mark.parametrize(
    ("module", "public"),
    [
        ("voucherify_async", voucherify_async.__all__),
        ("voucherify_async.testing", vtesting.__all__),
        ("voucherify_async.instrumentation", instrumentation.__all__),
        ("voucherify_async.opentelemetry", vopentelemetry.__all__),
    ],
)
def test_api_page_documents_every_public_name(module: str, public: list[str]) -> None:
    """docs/api.md has an autodoc entry for every name in the three ``__all__`` lists."""
    documented = _documented_names()
    missing = [name for name in public if f"{module}.{name}" not in documented]
    assert not missing, f"not in docs/api.md: {missing}"


def test_index_toctree_lists_every_section() -> None:
    """The home page's table of contents reaches every section the docs promise."""
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    entries = [
        line.strip()
        for toctree in text.split("```{toctree}")[1:]
        for line in toctree.split("```", 1)[0].splitlines()
        if line.strip() and not line.strip().startswith(":")
    ]
    for section in (
        "why", "installation", "quickstart", "concepts", "cli", "testing", "opentelemetry",
        "recipes/index", "quirks", "benchmarks", "reliability", "api", "changelog",
    ):  # fmt: skip
        assert section in entries, f"{section} missing from the toctree"


# --- quick start and concepts ------------------------------------------------------------


async def test_quickstart(
    voucherify_env: VoucherifyEmulator, polls_fast: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quick start runs from top to bottom, credentials from the environment."""
    emu = voucherify_env
    imported = emu.add_action("VOUCHERS.IMPORT", duration=0.1)
    watched = emu.add_action("CUSTOMERS.BULK_UPDATE", duration=0.1, progress="steps")
    failing = emu.add_action("PRODUCTS.BULK_UPDATE", duration=0.05, status="FAILED")

    await quickstart.main([imported, watched, failing])

    out = capsys.readouterr().out
    assert f"{imported} is a VOUCHERS.IMPORT" in out
    assert "0 imported, 3 failed" in out
    assert "  PROMO-CODE31: unit: must be a number" in out
    assert f"{watched}: DONE 100%" in out
    assert f"{watched} ended DONE" in out
    assert f"{failing} failed: FAILED" in out


def _console(page: str, command: str) -> tuple[list[str], list[str]]:
    """The arguments of the ``$ <command> ...`` line of *page*, and the output lines after it."""
    text = (DOCS / page).read_text(encoding="utf-8")
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(f"$ {command} "):
                output = []
                for after in lines[index + 1 :]:
                    if after.startswith("$ "):
                        break
                    output.append(after)
                return shlex.split(line[2:])[len(command.split()) :], output
    raise AssertionError(f"{page}: no `$ {command}` line")


@pytest.mark.voucherify_emulator(speed=100.0)
async def test_quickstart_page_ids_work_on_the_emulator(
    voucherify_env: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's emulator command schedules the very ids its program is run with.

    The default schedule, not fast_polling(): the program's budget (100 requests a minute)
    would make a busy poller wait out the minute.
    """
    from voucherify_async._cli._parser import build_parser

    emulator_args, listed = _console("quickstart.md", "voucherify-async emulator")
    args = build_parser().parse_args(["emulator", *emulator_args])
    for spec in args.job:
        spec.add_to(voucherify_env)
    program_args, shown = _console("quickstart.md", "python quickstart.py")
    assert [line.split()[0] for line in listed[2:]] == program_args
    await quickstart.main(program_args)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{program_args[0]} is a VOUCHERS.IMPORT, ")
    steady = [line for line in shown if "IN_PROGRESS" not in line and " is a " not in line]
    assert [line for line in out if "IN_PROGRESS" not in line and " is a " not in line] == steady


async def test_start_recipe(
    voucherify_env: VoucherifyEmulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page's printf makes the CSV; the recipe starts it and prints what the page shows."""
    printf, _ = _console("quickstart.md", "printf")
    monkeypatch.chdir(tmp_path)
    content = printf[0].encode().decode("unicode_escape")
    (tmp_path / "vouchers.csv").write_text(content)
    args, shown = _console("quickstart.md", "python start.py")
    await start_recipe.main(args[0])
    out = capsys.readouterr().out.splitlines()
    (action_id,) = voucherify_env.action_ids
    page_id = shown[0].split()[0]
    shown = [line.replace(page_id, action_id) for line in shown]
    assert out[0] == shown[0]
    assert out[-4:] == shown[-4:]  # the last snapshot and the result, as the page shows them
    assert voucherify_env.requests[0].raw_path == "/v1/vouchers/importCSV"


async def test_shared_poll(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient, polls_fast: None
) -> None:
    """Three waiters get the same terminal action through one handle."""
    action_id = voucherify_emulator.add_action(duration=None)
    task = asyncio.create_task(concepts.shared_poll(voucherify_client, action_id))
    await voucherify_emulator.wait_for_requests(3, action_id=action_id)
    voucherify_emulator.finish(action_id)
    first, second, third = await task
    assert first is second is third  # one handle settled once: the very same snapshot
    assert first.status == AsyncActionStatus.DONE


async def test_progress_or_result(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient, polls_fast: None
) -> None:
    """A wait that times out reports progress; the handle keeps polling and ends later."""
    emu = voucherify_emulator
    slow = emu.add_action(duration=None)
    emu.set_progress(slow, 40)
    handle = voucherify_client.async_actions.handle(slow)
    await emu.wait_for_requests(2, action_id=slow)  # the handle has seen a snapshot
    answer = await concepts.progress_or_result(voucherify_client, slow, wait=0.05)
    assert answer == "still IN_PROGRESS at 40%"
    assert not handle.done()  # still polling after the wait timed out
    emu.finish(slow)
    assert (await handle).status == AsyncActionStatus.DONE
    quick_id = emu.add_action(duration=0.05)
    assert await concepts.progress_or_result(voucherify_client, quick_id) == "ended DONE"


async def test_watch_big_import(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    polls_fast: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A handle with its own policy prints each change and returns the terminal action."""
    action_id = voucherify_emulator.add_action(
        "PRODUCTS.IMPORT_CSV", duration=0.2, progress="steps"
    )
    action = await concepts.watch_big_import(voucherify_client, action_id)
    assert action.status == AsyncActionStatus.DONE
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "DONE 100%"
    assert "IN_PROGRESS 50%" in lines


async def test_outcome(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient, polls_fast: None
) -> None:
    """FAILED and operation_status FAILED raise; failed rows are data."""
    emu = voucherify_emulator
    partial = emu.add_action("VOUCHERS.IMPORT", duration=0.05)
    clean = emu.add_action("CAMPAIGN.VOUCHERS_GENERATE", duration=0.05)
    failed = emu.add_action("VOUCHERS.BULK_UPDATE", duration=0.05, status="FAILED")
    op_failed = emu.add_action(
        "CUSTOMERS.METADATA_UPDATE", duration=0.05, operation_status="FAILED"
    )
    client = voucherify_client
    assert await concepts.outcome(client, partial) == "done with 3 failed record(s)"
    assert await concepts.outcome(client, clean) == "done"
    assert await concepts.outcome(client, failed) == "failed: FAILED, operation FAILED"
    assert await concepts.outcome(client, op_failed) == "failed: DONE, operation FAILED"


async def test_explain(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient, polls_fast: None
) -> None:
    """Each error class lands in its own branch."""
    emu = voucherify_emulator
    client = voucherify_client
    assert await concepts.explain(client, emu.add_action(duration=0.05)) == "done"
    failed = emu.add_action(duration=0.05, status="FAILED")
    assert await concepts.explain(client, failed) == f"failed: {failed}"
    assert await concepts.explain(client, "aa_nope") == "unknown id (not_found)"
    emu.inject(vtesting.Status(401))
    assert await concepts.explain(client, "aa_any") == "credentials"
    emu.inject(vtesting.Status(503), times=5)
    assert (await concepts.explain(client, "aa_any")).startswith("transient: HTTP 503")
    emu.inject(vtesting.Body(b'{"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": 5}'))
    assert await concepts.explain(client, "aa_any") == "bad body at $.status"


async def test_count_polls(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient, polls_fast: None
) -> None:
    """The hook sees every poll, the last one with reason 'done'."""
    reasons = concepts.count_polls()
    action_id = voucherify_emulator.add_action(duration=0.05)
    await voucherify_client.async_actions.wait(action_id)
    assert reasons["done"] == 1
    assert sum(reasons.values()) == voucherify_emulator.count(action_id)


async def test_borrowed_session(voucherify_env: VoucherifyEmulator, polls_fast: None) -> None:
    """A borrowed session stays open after the client closes."""
    action_id = voucherify_env.add_action(duration=0.05)
    action = await concepts.borrowed_session(voucherify_env.base_url, action_id)
    assert action.id == action_id


# --- recipe: web applications ------------------------------------------------------------


@pytest.fixture
async def aiohttp_server(
    voucherify_emulator: VoucherifyEmulator,
) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    """The aiohttp recipe's application served on 127.0.0.1, with an HTTP client for it."""
    app = aiohttp_app.create_app(
        app_id="web-app-id", app_token="web-app-token", base_url=voucherify_emulator.base_url
    )
    server = test_utils.TestServer(app, host="127.0.0.1")
    async with test_utils.TestClient(server) as http:
        yield http


async def test_aiohttp_handler(
    voucherify_emulator: VoucherifyEmulator,
    aiohttp_server: test_utils.TestClient[Any, Any],
    polls_fast: None,
) -> None:
    """The handler answers 200 with the typed result, 202 with progress, 404, and 400."""
    emu, http = voucherify_emulator, aiohttp_server
    done = emu.add_action("VOUCHERS.IMPORT", duration=0.05)
    response = await http.get(f"/imports/{done}")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "DONE"
    assert body["failed"] is False
    assert body["result"]["failed_count"] == 3

    running = emu.add_action(duration=None)
    emu.set_progress(running, 60)
    # Hold a handle until it has a snapshot, so the request's short wait surely sees one.
    http.server.app[aiohttp_app.VOUCHERIFY].async_actions.handle(running)
    await emu.wait_for_requests(2, action_id=running)
    response = await http.get(f"/imports/{running}", params={"wait": "0.05"})
    assert response.status == 202
    assert await response.json() == {"id": running, "status": "IN_PROGRESS", "progress": 60}

    failed = emu.add_action("VOUCHERS.BULK_UPDATE", duration=0.05, status="FAILED")
    body = await (await http.get(f"/imports/{failed}")).json()
    assert (body["status"], body["failed"]) == ("FAILED", True)

    assert (await http.get("/imports/aa_unknown")).status == 404
    assert (await http.get(f"/imports/{done}", params={"wait": "soon"})).status == 400


async def test_aiohttp_waiters_share_one_poll(
    voucherify_emulator: VoucherifyEmulator,
    aiohttp_server: test_utils.TestClient[Any, Any],
    polls_fast: None,
) -> None:
    """Ten concurrent requests for one action share one handle, hence one poll loop."""
    emu, http = voucherify_emulator, aiohttp_server
    action_id = emu.add_action(duration=None)
    first_polls: list[instrumentation.PollEvent] = []  # each handle's poll number 1

    def on_poll(event: instrumentation.PollEvent) -> None:
        if event.attempt == 1:
            first_polls.append(event)

    instrumentation.set_on_poll_hooks([on_poll])

    async def ask() -> int:
        # Each waits up to 0.3 s: all ten are in the handler together, on one handle.
        response = await http.get(f"/imports/{action_id}", params={"wait": "0.3"})
        return response.status

    assert await asyncio.gather(*(ask() for _ in range(10))) == [202] * 10
    assert len(first_polls) == 1  # one handle served all ten requests


async def test_aiohttp_cleanup_closes_the_client(voucherify_emulator: VoucherifyEmulator) -> None:
    """The client lives from the application's startup to its cleanup."""
    app = aiohttp_app.create_app(
        app_id="web-app-id", app_token="web-app-token", base_url=voucherify_emulator.base_url
    )
    runner = aiohttp_app.web.AppRunner(app)
    await runner.setup()
    client = app[aiohttp_app.VOUCHERIFY]
    assert not client.closed
    await runner.cleanup()
    assert client.closed


async def test_fastapi_endpoint(voucherify_env: VoucherifyEmulator) -> None:
    """The FastAPI endpoint answers 200, 202, 404 and 422; the lifespan closes the client.

    No fast_polling() here, and no wait on the machine's speed: the actions that must end are
    ended before they are asked for (the first poll sees them), and the 202 comes after the
    running action's first snapshot was seen, so no poll schedule can spend the budget first.
    """
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from docs_examples import fastapi_app

    emu = voucherify_env
    app = fastapi_app.app
    async with app.router.lifespan_context(app):
        client = app.state.voucherify
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            done = emu.add_action("ORDERS.IMPORT", duration=None)
            emu.finish(done)
            response = await http.get(f"/imports/{done}")
            assert response.status_code == 200
            assert response.json()["result"]["failed"] == [
                {"source_id": None, "reason": "Internal error"}
            ]

            running = emu.add_action(duration=None)
            emu.set_progress(running, 10)
            handle = client.async_actions.handle(running)
            async for _ in handle.updates():
                break  # the handle has its first snapshot: the wait below can report it
            response = await http.get(f"/imports/{running}", params={"wait": 0.05})
            assert response.status_code == 202
            assert response.json() == {"id": running, "status": "IN_PROGRESS", "progress": 10}
            handle.cancel()

            failed = emu.add_action("VOUCHERS.BULK_UPDATE", duration=None, status="FAILED")
            emu.finish(failed, "FAILED")
            assert (await http.get(f"/imports/{failed}")).json()["status"] == "FAILED"
            assert (await http.get("/imports/aa_unknown")).status_code == 404
            assert (await http.get(f"/imports/{done}", params={"wait": 99})).status_code == 422
    assert client.closed


# --- recipe: observability (OpenTelemetry) ------------------------------------------------


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects the SDK's console exporters printed one after another."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return found
        value, at = decoder.raw_decode(text, at)
        found.append(value)


async def test_observability_recipe(voucherify_env: VoucherifyEmulator, polls_fast: None) -> None:
    """The FastAPI app prints its spans and metrics: the handle's span is a child of the
    endpoint's, its polls' GETs children of the handle's; no token and no body printed."""
    pytest.importorskip("opentelemetry.sdk")
    httpx = pytest.importorskip("httpx")
    from docs_examples import observability

    emu = voucherify_env
    out = io.StringIO()
    app = observability.create_app(out)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            started = await http.post("/imports", json=[{"code": "OBS-SECRET-BODY"}])
            assert started.status_code == 202
            action_id = started.json()["id"]
            done = await http.get(f"/imports/{action_id}", params={"wait": 10})
            assert done.status_code == 200
            assert done.json() == {"id": action_id, "status": "DONE", "progress": 100}
            assert (await http.get("/imports/aa_unknown")).status_code == 404
    printed = out.getvalue()
    assert "docs-app-token" not in printed
    assert "OBS-SECRET-BODY" not in printed
    objects = _json_objects(printed)
    spans = [o for o in objects if "span_id" in o.get("context", {})]
    metrics = {
        metric["name"]
        for o in objects
        for resource in o.get("resource_metrics", [])
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
    }

    def named(name: str) -> list[dict[str, Any]]:
        return [span for span in spans if span["name"] == name]

    (post,) = named("POST /imports")
    (start,) = named("start /v1/vouchers/import")
    assert start["parent_id"] == post["context"]["span_id"]
    endpoint = named("GET /imports/{action_id}")
    waited = [
        span
        for span in named("voucherify.async_action")
        if span["attributes"]["voucherify.async_action.outcome"] == "done"
    ]
    (handle,) = waited
    assert handle["parent_id"] in {span["context"]["span_id"] for span in endpoint}
    polls = [
        span
        for span in named("GET /v1/async-actions/{asyncActionId}")
        if span["parent_id"] == handle["context"]["span_id"]
    ]
    assert len(polls) == handle["attributes"]["voucherify.async_action.requests"] >= 1
    assert len(handle["events"]) == handle["attributes"]["voucherify.poll.count"]
    assert {
        "http.client.request.duration",
        "voucherify.handles.pending",
        "voucherify.async_action.duration",
        "voucherify.async_action.requests",
        "voucherify.budget.usage",
        "voucherify.budget.limit",
    } <= metrics
    assert emu.count(action_id) >= len(polls)


# --- recipe: the ingestion pipeline ------------------------------------------------------

#: The recipe's scale, and the test's time scale: 100 requests per 50 ms instead of a minute.
BATCH = 500
WINDOW = 0.05


@pytest.fixture
async def budget_emulator() -> AsyncIterator[VoucherifyEmulator]:
    """An emulator that answers 429 to the 101st request in any 50 ms."""
    async with VoucherifyEmulator(
        requests_per_minute=pipeline.REQUESTS_PER_MINUTE, rate_limit_window=WINDOW, seed=7
    ) as emu:
        yield emu


@pytest.fixture
async def budget_client(budget_emulator: VoucherifyEmulator) -> AsyncIterator[VoucherifyClient]:
    """The recipe's client, time-scaled: its 100-request budget counts per 50 ms."""
    async with VoucherifyClient(
        "pipeline-id",
        "pipeline-token",
        base_url=budget_emulator.base_url,
        requests_per_minute=pipeline.REQUESTS_PER_MINUTE,
        budget_window=WINDOW,
        poll_policy=pipeline.BATCH_POLICY,
    ) as client:
        yield client


def _batch(emu: VoucherifyEmulator, n: int = BATCH) -> tuple[list[str], set[str]]:
    """*n* short jobs of every type; every 50th ends FAILED. Returns the ids and the failed."""
    ids: list[str] = []
    failed: set[str] = set()
    for i in range(n):
        status = "FAILED" if i % 50 == 7 else "DONE"
        action_id = emu.add_action(
            vtesting.ACTION_TYPES[i % len(vtesting.ACTION_TYPES)],
            duration=0.002 * (i % 10),
            status=status,
        )
        ids.append(action_id)
        if status == "FAILED":
            failed.add(action_id)
    return ids, failed


def _assert_within_budget(emu: VoucherifyEmulator) -> None:
    statuses = {request.status for request in emu.requests}
    assert 429 not in statuses, "the client exceeded its budget"


async def test_pipeline_wait_for_all(
    budget_emulator: VoucherifyEmulator, budget_client: VoucherifyClient, polls_fast: None
) -> None:
    """wait_all: 500 outcomes, failures filed apart, never over the budget."""
    ids, failed = _batch(budget_emulator)
    tally = await pipeline.wait_for_all(budget_client, ids)
    assert {a.id for a in tally.failed} == failed
    assert len(tally.done) == BATCH - len(failed)
    assert tally.errors == []
    _assert_within_budget(budget_emulator)


async def test_pipeline_follow(
    budget_emulator: VoucherifyEmulator, budget_client: VoucherifyClient, polls_fast: None
) -> None:
    """as_completed: a progress line that ends at 500/500, never over the budget."""
    ids, failed = _batch(budget_emulator)
    ids.append("aa_not_there")
    stream = io.StringIO()
    tally = await pipeline.follow(budget_client, ids, pipeline.ProgressLine(len(ids), stream))
    assert {a.id for a in tally.failed} == failed
    assert [type(e).__name__ for e in tally.errors] == ["NotFoundError"]
    last = stream.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    assert (
        last
        == f"[{BATCH + 1}/{BATCH + 1}] {BATCH - len(failed)} done, {len(failed)} failed, 1 errors"
    )
    _assert_within_budget(budget_emulator)


async def test_pipeline_ingest(
    budget_emulator: VoucherifyEmulator, budget_client: VoucherifyClient, polls_fast: None
) -> None:
    """TaskGroup: every DONE action is stored once, as soon as it is in."""
    ids, failed = _batch(budget_emulator)
    stored: list[str] = []

    async def store(action: AsyncAction) -> None:
        stored.append(action.id)

    stream = io.StringIO()
    tally = await pipeline.ingest(
        budget_client, ids, store, pipeline.ProgressLine(len(ids), stream)
    )
    assert sorted(stored) == sorted(set(ids) - failed)
    assert len(tally.failed) == len(failed)
    _assert_within_budget(budget_emulator)


async def test_pipeline_ingest_stops_every_poll_when_store_fails(
    budget_emulator: VoucherifyEmulator, budget_client: VoucherifyClient, polls_fast: None
) -> None:
    """A failing store cancels the other tasks, and their waits leave no poll behind."""
    quick = budget_emulator.add_action(duration=0.0)
    never = [budget_emulator.add_action(duration=None) for _ in range(5)]

    async def store(action: AsyncAction) -> None:
        raise OSError("the database is down")

    with pytest.raises(ExceptionGroup) as info:
        await pipeline.ingest(
            budget_client, [quick, *never], store, pipeline.ProgressLine(6, io.StringIO())
        )
    assert info.group_contains(OSError)
    assert budget_client.async_actions._handles == {}  # no handle left polling


async def test_pipeline_main(
    voucherify_env: VoucherifyEmulator, polls_fast: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The script's main: exit status 1 when an action failed, the failure on stderr."""
    ids = [voucherify_env.add_action(duration=0.0) for _ in range(5)]
    ids.append(voucherify_env.add_action("ORDERS.IMPORT", duration=0.0, status="FAILED"))
    assert await pipeline.main(ids) == 1
    err = capsys.readouterr().err
    assert "[6/6] 5 done, 1 failed, 0 errors" in err
    assert f"{ids[-1]} (ORDERS.IMPORT) ended FAILED" in err


# --- recipe: several workers, one account (Redis) -----------------------------------------


@pytest.fixture(scope="module")
def docs_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real redis-server for the workers recipe (skipped locally when none is installed)."""
    from _redis_server import RedisServer, redis_server_binary

    server = RedisServer(redis_server_binary(), tmp_path_factory.mktemp("docs-redis"))
    server.start()
    yield server
    server.stop()


async def test_workers_pipeline(voucherify_env: VoucherifyEmulator, docs_redis: Any) -> None:
    """The workers recipe's main: two processes, one budget and shared polls, every outcome."""
    from docs_examples import workers

    ids = [voucherify_env.add_action(duration=0.0) for _ in range(5)]
    failed = voucherify_env.add_action("ORDERS.IMPORT", duration=0.0, status="FAILED")
    report = await asyncio.to_thread(
        workers.main,
        [*ids, failed, "aa_not_there"],
        workers=2,
        redis_url=docs_redis.url,
        hold_after_restart=False,  # the test's redis-server is new, not restarted
    )
    assert report == {
        **dict.fromkeys(ids, "DONE"),
        failed: "FAILED",
        "aa_not_there": "NotFoundError",
    }
    assert 429 not in {request.status for request in voucherify_env.requests}


async def test_workers_lifespan(
    voucherify_env: VoucherifyEmulator, docs_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web shape: one client per worker, built at startup, closed at shutdown."""
    from docs_examples import workers

    monkeypatch.setattr(workers, "REDIS_URL", docs_redis.url)
    monkeypatch.setattr(workers, "HOLD_AFTER_RESTART", False)  # a new redis-server
    action_id = voucherify_env.add_action(duration=0.0)
    app = types.SimpleNamespace(state=types.SimpleNamespace())
    async with workers.lifespan(app):
        client = app.state.voucherify
        assert (await client.async_actions.wait(action_id, timeout=30)).status == "DONE"
    assert client.closed


# --- recipe: a script ----------------------------------------------------------------------


async def test_watch_script(voucherify_emulator: VoucherifyEmulator) -> None:
    """``python watch.py ID...`` prints progress and exits 1 when an action failed."""
    emu = voucherify_emulator
    done = emu.add_action("VOUCHERS.IMPORT", duration=0.3, progress="steps")
    failed = emu.add_action("ORDERS.IMPORT", duration=0.1, status="FAILED")
    env = {
        **os.environ,
        "VOUCHERIFY_APP_ID": "script-id",
        "VOUCHERIFY_APP_TOKEN": "script-token",
        "VOUCHERIFY_BASE_URL": emu.base_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "watch.py"),
        done,
        failed,
        "--timeout",
        "30",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1, err.decode()
    lines = out.decode().splitlines()
    assert f"{done}: DONE 100%" in lines
    assert lines[-1] == f"{done}: DONE"
    assert f"{failed}: FAILED" in err.decode()


def test_watch_script_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials: exit status 2 and a message, before any request."""
    for name in ("VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert watch.main(["aa_0c5559be44d7b63c06"]) == 2


async def test_watch_script_timeout(
    voucherify_env: VoucherifyEmulator, polls_fast: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An action that outlives --timeout is reported, exit status 2."""
    never = voucherify_env.add_action(duration=None)
    assert await watch.run([never], timeout=0.05) == 2
    assert f"{never}: async action {never}: the polling policy's timeout passed" in (
        capsys.readouterr().err
    )


# --- recipe: a custom result type ----------------------------------------------------------

MEMBERS_PAYLOAD: dict[str, Any] = {
    "id": "aa_0c5a1f2b3c4d5e6f70",
    "type": "LOYALTY.MEMBERS_BATCH",
    "status": "DONE",
    "result": {
        "message": "2 member(s) added, 1 failed.",
        "done_count": 2,
        "failed_count": 1,
        "failed": [{"source_id": "cust_9", "reason": "customer not found"}],
    },
    "created_at": "2026-08-03T10:00:00.000Z",
    "updated_at": "2026-08-03T10:00:01.250Z",
    "request_id": "v-0c5a1f2b3c4d5e6f71",
    "processing_time": 1250,
    "progress": 100,
    "object": "async_action",
}


def test_custom_result_decodes_after_registration(restore_result_types: None) -> None:
    """Unknown before, typed after: the registry decides at decode time."""
    before = custom_result.decode(MEMBERS_PAYLOAD)
    assert isinstance(before.result, UnknownResult)
    assert before.result.raw == MEMBERS_PAYLOAD["result"]
    assert result_type_for(custom_result.MEMBERS_BATCH) is UnknownResult

    custom_result.register()

    action = custom_result.decode(MEMBERS_PAYLOAD)
    assert action.type == "LOYALTY.MEMBERS_BATCH"  # an unknown type stays a str
    assert action.result == custom_result.MembersBatchResult(
        message="2 member(s) added, 1 failed.",
        done_count=2,
        failed_count=1,
        failed=[custom_result.MemberFailure(source_id="cust_9", reason="customer not found")],
    )
    assert voucherify_async.converter.unstructure(action) == MEMBERS_PAYLOAD


def test_custom_result_is_strict_about_types(restore_result_types: None) -> None:
    """A registered attrs class is checked as strictly as the built-in ones."""
    custom_result.register()
    bad = json.loads(json.dumps(MEMBERS_PAYLOAD))
    bad["result"]["done_count"] = "two"
    with pytest.raises(cattrs.ClassValidationError) as info:
        custom_result.decode(bad)
    assert any("$.result.done_count" in line for line in cattrs.transform_error(info.value))


async def test_custom_result_through_the_client(
    voucherify_emulator: VoucherifyEmulator,
    voucherify_client: VoucherifyClient,
    polls_fast: None,
    restore_result_types: None,
) -> None:
    """An action of the new type, served by the emulator, arrives typed."""
    custom_result.register()
    action_id = voucherify_emulator.add_action(
        custom_result.MEMBERS_BATCH, duration=0.05, result=MEMBERS_PAYLOAD["result"]
    )
    assert await custom_result.failed_members(voucherify_client, action_id) == [
        "cust_9: customer not found"
    ]


def test_registry_restored() -> None:
    """No test leaves the recipe's type registered (runs after the ones above)."""
    assert result_type_for(custom_result.MEMBERS_BATCH) is UnknownResult


# --- the testing recipe's function, outside its own tests -----------------------------------


async def test_reports_module_is_the_one_documented(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient, polls_fast: None
) -> None:
    """``reports.import_report`` reads a typed ``VouchersImportResult``."""
    action_id = voucherify_emulator.add_action("VOUCHERS.IMPORT", duration=0.0)
    action = await voucherify_client.async_actions.wait(action_id)
    assert isinstance(action.result, VouchersImportResult)
    report = await reports.import_report(voucherify_client, action_id)
    assert report.count("\n") == 3


def test_poll_timeout_is_a_timeout_error() -> None:
    """What the concepts page says of PollTimeout holds."""
    assert issubclass(PollTimeout, TimeoutError)


async def test_recent_failures(
    voucherify_emulator: VoucherifyEmulator, voucherify_client: VoucherifyClient
) -> None:
    """iterate() pages through every action; the snippet keeps the failed ones since a date."""
    emu = voucherify_emulator
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    failing = {i for i in range(250) if i % 40 == 3}  # 7 of 250: three pages of 100
    ids = [
        emu.add_action(duration=0.0, status="FAILED" if i in failing else "DONE")
        for i in range(250)
    ]
    failed = await concepts.recent_failures(voucherify_client, since)
    assert [a.id for a in failed] == [ids[i] for i in sorted(failing, reverse=True)]
    assert all(a.result is None for a in failed)


def test_the_test_extra_installs_what_the_tests_skip_without() -> None:
    """`pip install -e ".[test]"` then pytest skips nothing for want of a package: every
    module a test imports with importorskip is in the test extra."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    extra = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["test"]
    names = {re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in extra}
    skipped_without = set()
    for path in (root / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for module in re.findall(r"""importorskip\(\s*["']([\w.]+)["']""", text):
            skipped_without.add(module.split(".")[0].lower())
    assert "matplotlib" in skipped_without
    # A module's distributions (`opentelemetry` comes from opentelemetry-api and -sdk).
    from importlib.metadata import packages_distributions

    providers = packages_distributions()
    missing = {
        module
        for module in skipped_without
        if not {name.lower() for name in providers.get(module, [module])} & names
    }
    assert not missing, missing


def test_recipe_pages_show_whole_files() -> None:
    """A recipe page includes whole tested files (a reader can copy a runnable program), never
    fragments cut out with :pyobject:, :lines: and the like; :start-at: may skip the module
    docstring only."""
    import ast

    pattern = r"```\{literalinclude\}\s+(\S+)\n((?::[^\n]*\n)*)"
    for page in sorted((DOCS / "recipes").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target, options in re.findall(pattern, text):
            found = dict(re.findall(r"^:([\w-]+):\s*(.*)$", options, re.MULTILINE))
            extra = set(found) - {"language", "caption", "start-at"}
            assert not extra, f"{page.name}: {target} is cut to a fragment ({extra})"
            if "start-at" in found:
                source = ((DOCS / "recipes") / target).read_text(encoding="utf-8")
                skipped = source[: source.index(found["start-at"].strip("\"'"))]
                body = ast.parse(skipped).body
                assert len(body) <= 1 and all(
                    isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                    for node in body
                ), f"{page.name}: {target} skips more than its docstring"


def test_install_commands_work_from_a_checkout() -> None:
    """The package is not on PyPI: README and docs never tell to pip install it by name."""
    root = DOCS.parent
    pages = [root / "README.md", *DOCS.rglob("*.md")]
    for page in pages:
        if "_build" in page.parts:
            continue
        text = page.read_text(encoding="utf-8")
        wrong = re.findall(r"pip install [\"']?voucherify-async\b[^\n`]*", text)
        assert not wrong, f"{page.name}: {wrong}"
    workers = (DOCS / "recipes" / "workers.md").read_text(encoding="utf-8")
    assert 'python -m pip install -e ".[redis]"' in workers


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the modules *path* imports at module level (not relative ones)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_docs_session_installs_what_autodoc_imports() -> None:
    """`nox -s docs` installs the extra of every optional package that a module documented on
    the API page imports: autodoc's import failures are warnings, and warnings are errors."""
    import tomllib

    root = DOCS.parent
    noxfile = (root / "noxfile.py").read_text(encoding="utf-8")
    session = noxfile[noxfile.index("def docs(") :]
    session = session[: session.find("\n@nox.session")]  # the docs session alone
    installed = re.search(r'session\.install\(.*"-e", "\.\[([\w,]+)\]"\)', session)
    assert installed is not None, "the docs session installs the package with extras"
    extras = set(installed.group(1).split(","))
    optional = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    package_extra = {
        re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower(): extra
        for extra in ("cli", "speed", "redis")
        for requirement in optional[extra]
    }
    documented = set(
        re.findall(
            r"^\s*\.\.\s+(?:module|currentmodule|automodule)::\s*([\w.]+)",
            (DOCS / "api.md").read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    )
    assert "voucherify_async.redis" in documented
    needed = set()
    for module in documented:
        base = root / Path(*module.split("."))
        files = [*base.glob("*.py")] if base.is_dir() else [base.with_suffix(".py")]
        for path in files:
            needed |= {package_extra[n] for n in _third_party_imports(path) if n in package_extra}
    assert needed <= extras, f"the docs session lacks {needed - extras}"


async def test_the_testing_page_says_the_emulator_remembers_no_codes() -> None:
    """The emulator imports the same codes again on a second import (it keeps no project
    state, unlike Voucherify), and docs/testing.md says so plainly."""
    async with (
        VoucherifyEmulator(seed=3) as emu,
        VoucherifyClient("a", "b", base_url=emu.base_url) as client,
    ):
        emu.start_seconds = emu.start_seconds_per_row = 0.0
        rows = [{"code": "SUMMER-10"}, {"code": "SUMMER-20"}]
        with fast_polling():
            first = await (await client.async_actions.start_vouchers_import(rows))
            second = await (await client.async_actions.start_vouchers_import(rows))
    assert first.result.done_count == second.result.done_count == 2
    assert second.result.failed_count == 0
    text = " ".join((DOCS / "testing.md").read_text(encoding="utf-8").split())
    assert "The emulator keeps no project state" in text
    assert "remembers no codes between imports" in text
