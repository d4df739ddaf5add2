"""The voucherify-async command: subcommands, output modes and exit codes, against the emulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voucherify_async import AsyncAction, UnknownResult, converter
from voucherify_async._cli import main
from voucherify_async._cli._exit import worst
from voucherify_async._cli._printer import make_printer
from voucherify_async._cli._view import (
    ActionRow,
    PlainPrinter,
    result_facts,
    summarize,
)
from voucherify_async.testing import Status, VoucherifyEmulator, fast_polling

CREDENTIALS = ["--app-id", "cli-app", "--app-token", "cli-token-SECRET"]
ENV_NAMES = ("VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN", "VOUCHERIFY_BASE_URL")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or colour settings leak in from the environment running the tests."""
    for name in (*ENV_NAMES, "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
async def emu() -> AsyncIterator[VoucherifyEmulator]:
    """An emulator that accepts any credentials."""
    async with VoucherifyEmulator(seed=7) as emulator:
        yield emulator


async def run(*argv: str) -> int:
    """Run ``main`` in a thread: it runs an event loop of its own."""
    return await asyncio.to_thread(main, list(argv))


def against(emu: VoucherifyEmulator, *argv: str) -> list[str]:
    return [*argv, "--base-url", emu.base_url, *CREDENTIALS]


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*ENV_NAMES, "FORCE_COLOR")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", **extra)
    return env


def entry_point() -> str:
    """The installed console script, next to this interpreter when it is a venv's."""
    script = shutil.which("voucherify-async", path=str(Path(sys.executable).parent))
    script = script or shutil.which("voucherify-async")
    if script is None:
        pytest.fail("the voucherify-async console script is not installed (pip install -e .)")
    return script


# --- wait -----------------------------------------------------------------------------------


async def test_wait_done_exits_0_with_summary(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wait on actions that end DONE exits 0 and ends with a summary naming each one."""
    ids = [
        emu.add_action("VOUCHERS.IMPORT", duration=0.2),
        emu.add_action("ORDERS.IMPORT", duration=0.1),
    ]
    assert await run(*against(emu, "wait", *ids)) == 0
    out = capsys.readouterr().out
    assert all(action_id in out for action_id in ids)
    assert "DONE" in out and out.rstrip().endswith("2 actions: 2 done")


@pytest.mark.parametrize(
    ("action_type", "status", "operation_status"),
    [("VOUCHERS.IMPORT", "FAILED", None), ("VOUCHERS.BULK_UPDATE", "DONE", "FAILED")],
)
async def test_wait_failed_exits_1(
    emu: VoucherifyEmulator,
    capsys: pytest.CaptureFixture[str],
    action_type: str,
    status: str,
    operation_status: str | None,
) -> None:
    """FAILED, and DONE with operation_status FAILED, exit 1 and show why in the summary."""
    action_id = emu.add_action(
        action_type, duration=0.1, status=status, operation_status=operation_status
    )
    assert await run(*against(emu, "wait", action_id)) == 1
    out = capsys.readouterr().out
    assert "1 action: 1 failed" in out
    if status == "FAILED":
        assert "CODE1: Internal error; CODE2: Internal error" in out
    else:
        assert "DONE (operation FAILED)" in out


async def test_wait_timeout_exits_3(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--timeout on an action that never ends exits 3 and shows its last status."""
    action_id = emu.add_action(duration=None)
    assert await run(*against(emu, "wait", action_id, "--timeout", "0.3")) == 3
    assert "TIMEOUT (IN_PROGRESS 0%)" in capsys.readouterr().out


async def test_wait_with_oauth_token_and_budget(capsys: pytest.CaptureFixture[str]) -> None:
    """--oauth-token authenticates as Bearer and --rpm caps the requests of the wait."""
    async with VoucherifyEmulator(oauth_token="cli-oauth-SECRET") as emulator:
        action_id = emulator.add_action(duration=0.1)
        argv = ["wait", action_id, "--base-url", emulator.base_url]
        code = await run(*argv, "--oauth-token", "cli-oauth-SECRET", "--rpm", "50", "--quiet")
        assert code == 0
        assert emulator.requests[-1].headers["Authorization"] == "***"
    assert "cli-oauth-SECRET" not in capsys.readouterr().out


async def test_wait_unknown_id_exits_4(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id the API does not know (404) exits 4, even next to an action that ended DONE."""
    known = emu.add_action(duration=0.1)
    assert await run(*against(emu, "wait", known, "aa_does_not_exist")) == 4
    out = capsys.readouterr().out
    assert "HTTP 404" in out and "1 done, 1 error" in out


async def test_wait_bad_credentials_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    """Credentials the API refuses (401) are an API error: exit 4, a message, no traceback."""
    async with VoucherifyEmulator(app_id="right", app_token="right") as emulator:
        action_id = emulator.add_action(duration=0.1)
        code = await run(*against(emulator, "wait", action_id, "--quiet"))
    captured = capsys.readouterr()
    assert code == 4
    assert "HTTP 401" in captured.err and "Traceback" not in captured.err
    assert "cli-token-SECRET" not in captured.err + captured.out


async def test_an_empty_base_url_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--base-url ""`` and an empty ``VOUCHERIFY_BASE_URL`` are refused, not production."""
    assert await run("get", "aa_1", "--base-url", "", *CREDENTIALS) == 2
    assert "--base-url is empty" in capsys.readouterr().err
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", "")
    assert await run("get", "aa_1", *CREDENTIALS) == 2
    assert "$VOUCHERIFY_BASE_URL is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["wait", "aa_1"], ["get", "aa_1"], ["list"]], ids=["wait", "get", "list"]
)
async def test_missing_credentials_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without credentials (arguments or environment) the command exits 2 with one line."""
    assert await run(*argv, "--base-url", "http://127.0.0.1:9") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and "missing credentials" in err


async def test_credentials_from_environment(
    emu: VoucherifyEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """VOUCHERIFY_APP_ID, VOUCHERIFY_APP_TOKEN and VOUCHERIFY_BASE_URL stand in for options."""
    monkeypatch.setenv("VOUCHERIFY_APP_ID", "env-app")
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", "env-token")
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", emu.base_url)
    action_id = emu.add_action(duration=0.1)
    assert await run("wait", action_id, "--quiet") == 0
    assert capsys.readouterr().out == ""
    assert emu.requests[0].headers["X-App-Id"] == "env-app"


async def test_wait_json_round_trips(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one line per action, each the API's JSON, which the converter round-trips."""
    done = emu.add_action("CUSTOMERS.BULK_UPDATE", duration=0.1)
    failed = emu.add_action("PRODUCTS.IMPORT_CSV", duration=0.2, status="FAILED")
    assert await run(*against(emu, "wait", done, failed, "--json")) == 1
    lines = json_lines(capsys.readouterr().out)
    assert sorted(line["id"] for line in lines) == sorted([done, failed])
    for line in lines:
        assert converter.unstructure(converter.structure(line, AsyncAction)) == line
        assert line == emu.action(line["id"])
    assert {line["id"]: line["status"] for line in lines} == {done: "DONE", failed: "FAILED"}


async def test_wait_json_timeout_prints_latest(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --json, an action that timed out is printed as last seen, and stderr says why."""
    action_id = emu.add_action(duration=None)
    assert await run(*against(emu, "wait", action_id, "--json", "--timeout", "0.3")) == 3
    captured = capsys.readouterr()
    [line] = json_lines(captured.out)
    assert line["id"] == action_id and line["status"] == "IN_PROGRESS"
    assert action_id in captured.err and "did not end" in captured.err


async def test_wait_quiet_prints_nothing(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quiet prints neither progress nor summary: the exit code tells."""
    action_id = emu.add_action(duration=0.1)
    assert await run(*against(emu, "wait", action_id, "-q")) == 0
    assert capsys.readouterr() == ("", "")


async def test_wait_shares_one_poll_per_id(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id given twice is waited for once: one row, one polling loop."""
    action_id = emu.add_action(duration=0.1, enqueued=0.0)
    assert await run(*against(emu, "wait", action_id, action_id)) == 0
    assert capsys.readouterr().out.rstrip().endswith("1 action: 1 done")
    assert emu.count(action_id) <= 3


@posix_only
async def test_sigint_during_wait_exits_130(emu: VoucherifyEmulator) -> None:
    """Ctrl-C during a wait cancels it cleanly: exit 130, no traceback."""
    action_id = emu.add_action(duration=None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voucherify_async",
        *against(emu, "wait", action_id),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )
    try:
        # Generous hang detectors: a loaded machine starts a Python process slowly.
        await emu.wait_for_requests(1, timeout=120, action_id=action_id)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err and b"interrupted" in err


# --- get and list ---------------------------------------------------------------------------


async def test_get_json(emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    """get --json prints the action exactly as the API serves it."""
    action_id = emu.add_action("VOUCHERS.METADATA_UPDATE", duration=0.0)
    assert await run(*against(emu, "get", action_id, "--json")) == 0
    [line] = json_lines(capsys.readouterr().out)
    assert line == emu.action(action_id)
    assert converter.unstructure(converter.structure(line, AsyncAction)) == line


async def test_get_human(emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    """get shows the fields, the counts and the first failure reasons, one per line."""
    action_id = emu.add_action("VOUCHERS.IMPORT", duration=0.0, status="FAILED")
    assert await run(*against(emu, "get", action_id)) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^id:\s+{action_id}$", out, re.M)
    assert re.search(r"^status:\s+FAILED$", out, re.M)
    assert re.search(r"^done / failed:\s+0 / 2$", out, re.M)
    assert "CODE1: Internal error" in out


async def test_get_unknown_id_exits_4(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """get on an unknown id exits 4 with the API's error on one line."""
    assert await run(*against(emu, "get", "aa_missing")) == 4
    err = capsys.readouterr().err
    assert "HTTP 404 [not_found]" in err and "Traceback" not in err


async def test_list_json(emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    """list --json prints one page, newest first, each line round-tripping."""
    ids = [emu.add_action(duration=0.1) for _ in range(4)]
    assert await run(*against(emu, "list", "--limit", "3", "--json")) == 0
    lines = json_lines(capsys.readouterr().out)
    assert [line["id"] for line in lines] == ids[::-1][:3]
    for line in lines:
        assert converter.unstructure(converter.structure(line, AsyncAction)) == line
    assert emu.requests[-1].query == {"limit": "3"}


async def test_list_all_pages_through(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """list --all fetches every page: each action once, newest first."""
    ids = [emu.add_action(duration=0.1) for _ in range(5)]
    assert await run(*against(emu, "list", "--all", "--limit", "2", "--json")) == 0
    assert [line["id"] for line in json_lines(capsys.readouterr().out)] == ids[::-1]
    assert emu.count() >= 3


async def test_list_human_and_end_date(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """list prints a table, says when more actions are older, and passes --end-date on."""
    ids = [emu.add_action(duration=0.1) for _ in range(3)]
    assert await run(*against(emu, "list", "--limit", "2", "--end-date", "2999-01-01")) == 0
    out = capsys.readouterr().out
    assert out.startswith("ID") and ids[2] in out and ids[1] in out and ids[0] not in out
    assert "--all" in out
    assert emu.requests[-1].query["end_date"] == "2999-01-01"


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--limit", "101"],
        ["list", "--end-date", "yesterday"],
        ["wait", "aa_1", "--timeout", "-1"],
        ["wait", ""],
        ["wait"],
        ["nonsense"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments exit 2 with argparse's usage message, before any request."""
    assert main(argv) == 2
    assert "usage: voucherify-async" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the subcommands and every exit code, and exits 0."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("get", "wait", "list", "start", "emulator", "demo"):
        assert word in out
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert re.search(rf"^  {code} ", out, re.M)


# --- emulator and demo ----------------------------------------------------------------------


@pytest.mark.slow
def test_demo_through_entry_point() -> None:
    """``voucherify-async demo --jobs 5`` ends with the summary and exits 0 despite its failure."""
    result = subprocess.run(
        [entry_point(), "demo", "--jobs", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.rstrip().splitlines()
    assert lines[-2] == "5 actions: 4 done, 1 failed"
    assert re.fullmatch(r"\d+ requests for 5 jobs in [\d.]+ s", lines[-1])
    assert "FAILED" in result.stdout


@pytest.mark.slow
@posix_only
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_emulator_command_serves_until_stopped(stop: signal.Signals) -> None:
    """``emulator`` prints its URL and job ids, serves them, and exits 0 on Ctrl-C or SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voucherify_async",
        "emulator",
        "--port",
        "0",
        "--jobs",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        listed = [(await proc.stdout.readline()).decode() for _ in range(4)]
        ids = re.findall(r"aa_[0-9a-f]{18}", "".join(listed))
        assert len(ids) == 3
        code = await asyncio.to_thread(
            main, ["get", ids[0], "--json", "--base-url", match.group(), *CREDENTIALS]
        )
        assert code == 0
        proc.send_signal(stop)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err


def test_emulator_refuses_remote_host_without_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-loopback --host without --allow-remote is a usage error (exit 2) naming the flag."""
    assert main(["emulator", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_docs_page_covers_the_command() -> None:
    """docs/cli.md documents every subcommand and exit code, in console blocks only."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text("utf-8")
    fences = re.findall(r"^```(\S*)", page, re.M)
    assert set(fences) == {"console", ""}
    for command in ("get", "wait", "list", "start", "emulator", "demo"):
        assert re.search(rf"^### `{command}\b", page, re.M), command
    documented = re.findall(r"^\| (\d+) \|", page, re.M)
    assert documented == ["0", "1", "2", "3", "4", "5", "130"]


# --- output modes and helpers ---------------------------------------------------------------


async def test_rich_output_when_forced(
    emu: VoucherifyEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With FORCE_COLOR (and no NO_COLOR) the rich printer draws the summary table."""
    pytest.importorskip("rich")
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    action_id = emu.add_action("SKUS.IMPORT_CSV", duration=0.1)
    assert await run(*against(emu, "wait", action_id)) == 0
    out = ANSI.sub("", capsys.readouterr().out)
    assert "Summary" in out and action_id in out and "1 action: 1 done" in out
    assert "┃" in out  # a rich table, not plain columns


def test_plain_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rich installed the command falls back to plain lines, even on a colour terminal."""
    for name in [n for n in sys.modules if n == "rich" or n.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    monkeypatch.delitem(sys.modules, "voucherify_async._cli._rich", raising=False)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert isinstance(make_printer(sys.stdout), PlainPrinter)


def test_no_color_means_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR wins over FORCE_COLOR."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert isinstance(make_printer(sys.stdout), PlainPrinter)


def action(**fields: Any) -> AsyncAction:
    payload = {"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "IN_PROGRESS", **fields}
    return converter.structure(payload, AsyncAction)


def test_eta_from_progress_rate() -> None:
    """The ETA extrapolates the progress rate seen between two snapshots."""
    row = ActionRow("aa_1")
    wall = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    row.observe(action(progress=10), now=100.0, wall=wall)
    row.observe(action(progress=30), now=104.0, wall=wall)  # 5 %/s: 70 % left is 14 s
    assert row.eta(104.0) == pytest.approx(14.0)
    assert row.eta(110.0) == pytest.approx(8.0)
    row.observe(action(status="DONE", progress=100, processing_time=15_000), now=118.0, wall=wall)
    assert row.eta(118.0) is None and row.elapsed(wall) == 15.0


async def test_the_live_line_says_when_the_operation_failed(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The live line of a DONE action whose operation FAILED says so, as the summary does
    (never a bare "DONE 100%")."""
    action_id = emu.add_action(
        "VOUCHERS.BULK_UPDATE", duration=0.1, status="DONE", operation_status="FAILED"
    )
    assert await run(*against(emu, "wait", action_id)) == 1
    out = capsys.readouterr().out
    live = [line for line in out.splitlines() if line.startswith("[") and " DONE" in line]
    assert live, out
    assert all("DONE (operation FAILED)" in line for line in live), live
    row = ActionRow(action_id)
    wall = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    row.observe(action(status="DONE", operation_status="FAILED", progress=100), 1.0, wall)
    assert row.status == "DONE (operation FAILED)"


def test_result_facts_read_any_result_shape() -> None:
    """Counts and reasons come from typed results, unknown types' dicts, and single objects."""
    typed = action(
        status="DONE",
        result={"done_count": 1, "failed_count": 1, "failed": [{"code": "C1", "reason": "dup"}]},
    )
    assert result_facts(typed.result) == result_facts(
        {"done_count": 1, "failed_count": 1, "failed": {"code": "C1", "reason": "dup"}}
    )
    facts = result_facts(typed.result)
    assert (facts.done, facts.failed, facts.reasons) == (1, 1, ("C1: dup",))
    unknown = result_facts(UnknownResult(raw={"errors": [{"details": "bad row", "row": 3}]}))
    assert unknown.reasons == ("row 3: bad row",) and unknown.done is None
    assert result_facts(UnknownResult(raw=["not", "a", "dict"])) == result_facts(None)


def test_summary_counts_more_reasons() -> None:
    """A summary row shows the first two reasons and how many more there are."""
    failed = [{"code": f"C{i}", "reason": "dup"} for i in range(5)]
    done = action(status="DONE", progress=100, result={"failed_count": 7, "failed": failed})
    row = summarize("aa_1", done)
    assert row.reasons == "C0: dup; C1: dup (+5 more)" and row.code == 0


def test_worst_exit_code() -> None:
    """API errors outrank timeouts, which outrank failures."""
    assert worst([]) == 0
    assert worst([0, 1]) == 1
    assert worst([1, 3, 0]) == 3
    assert worst([3, 4, 1]) == 4


def test_cli_modules_import_no_cycle() -> None:
    """The view never imports the rich printer that builds on it (no import cycle)."""
    import ast
    from pathlib import Path

    import voucherify_async._cli as cli

    package = Path(cli.__file__).parent
    tree = ast.parse((package / "_view.py").read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "_rich" not in imported and "_printer" not in imported


async def test_wait_on_a_host_never_reached_says_so_and_points_at_timeout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait whose host never answered says no response came since it started, and how to
    bound the wait (--timeout); --timeout ends it with exit 3."""
    # The command shows the library's warnings only when logging is not set up; pytest's
    # capture handler on the root logger would count as set up.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["wait", "aa_1", "--base-url", f"http://127.0.0.1:{port}", *CREDENTIALS]
    with fast_polling():
        assert await run(*argv, "--timeout", "1") == 3
    err = capsys.readouterr().err
    assert f"no response from http://127.0.0.1:{port} since this client started" in err
    assert err.count("--timeout S gives up after S seconds") == 1


@pytest.mark.parametrize("command", ["get", "wait"])
async def test_human_output_escapes_control_sequences_from_the_server(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A failure reason or type holding ANSI escapes or line breaks is printed escaped, on one
    line: the server's text can neither drive the terminal nor forge output lines."""
    hostile = "\x1b[2J\x1b]0;pwned\x07bad\nFORGED LINE\u2028x"
    result = {
        "done_count": 0,
        "failed_count": 1,
        "failed": [{"code": "C1", "reason": hostile}],
    }
    action_id = emu.add_action("VOUCHERS.IMPORT", duration=0.0, status="FAILED", result=result)
    await run(*against(emu, command, action_id))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u2028" not in out
    assert not [line for line in out.splitlines() if line.startswith("FORGED")]
    assert "\\x1b[2J" in out and "bad\\nFORGED LINE" in out


def test_str_of_an_action_is_always_one_line() -> None:
    """str(action) escapes line breaks and control characters of server-sent fields."""
    for field in ("id", "type", "status"):
        payload = {"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "DONE"}
        payload[field] = payload[field] + "\r\nFAKE aa_2 DONE\u2028\x1b[31m"
        text = str(converter.structure(payload, AsyncAction))
        assert len(text.splitlines()) == 1 and "\x1b" not in text, text
        assert "\\r\\nFAKE aa_2 DONE\\u2028\\x1b[31m" in text


async def test_error_text_from_the_server_is_escaped_on_stderr(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error page whose message holds ANSI escapes: the CLI's error line shows them escaped."""
    emu.inject(Status(404, body={"code": 404, "message": "\x1b[2J\x1b]0;pwned\x07gone\nFAKE"}))
    assert await run(*against(emu, "get", "aa_1")) == 4
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J" in err and "gone\\nFAKE" in err
