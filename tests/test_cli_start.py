"""``voucherify-async start``: start an action from the command line, and follow it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voucherify_async._cli import main
from voucherify_async.testing import Status, VoucherifyEmulator

CREDENTIALS = ["--app-id", "cli-app", "--app-token", "cli-token-SECRET"]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN", "VOUCHERIFY_BASE_URL", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
async def emu() -> AsyncIterator[VoucherifyEmulator]:
    """An emulator whose started jobs end at once."""
    async with VoucherifyEmulator(seed=3) as emulator:
        emulator.start_seconds = emulator.start_seconds_per_row = 0.0
        yield emulator


async def run(emu: VoucherifyEmulator, *argv: str) -> int:
    """Run the command in a thread (it runs an event loop of its own) against *emu*."""
    args = [*argv, "--base-url", emu.base_url, *CREDENTIALS]
    return await asyncio.to_thread(main, args)


def _starts(emu: VoucherifyEmulator) -> list[tuple[str, str]]:
    return [(r.method, r.raw_path) for r in emu.requests if r.method != "GET"]


async def test_start_a_csv_import_and_wait(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's example: start vouchers-import vouchers.csv --wait, then a summary."""
    code = await run(emu, "start", "vouchers-import", str(DATA / "vouchers.csv"), "--wait")
    out = capsys.readouterr().out
    assert code == 0
    (action_id,) = emu.action_ids
    assert f"Started async action {action_id}" in out
    assert "VOUCHERS.IMPORT_CSV" in out
    assert "Duplicate code FALL-1" in out
    assert _starts(emu) == [("POST", "/v1/vouchers/importCSV")]


async def test_start_prints_the_id_as_json(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without --wait the command prints the id and leaves; JSON bodies come from a file."""
    body = tmp_path / "orders.json"
    body.write_text(json.dumps([{"source_id": "o1"}, {"source_id": "o2"}]))
    assert await run(emu, "start", "orders-import", str(body), "--print-json") == 0
    line = json.loads(capsys.readouterr().out)
    assert line == {"async_action_id": emu.action_ids[0]}
    assert _starts(emu) == [("POST", "/v1/orders/import")]
    assert emu.action(emu.action_ids[0])["type"] == "ORDERS.IMPORT"


async def test_start_with_inline_json_and_an_id(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json gives the body, --id the campaign (encoded as one path segment)."""
    argv = ["start", "campaign-import", "--id", "camp 1", "--json", '[{"code": "A"}]', "--wait"]
    assert await run(emu, *argv, "--print-json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["status"] == "DONE"
    assert _starts(emu) == [("POST", "/v1/campaigns/camp%201/import")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["start", "campaign-delete"], "needs --id"),
        (["start", "vouchers-import"], "needs a FILE or --json"),
        (["start", "orders-import", "x.csv"], "takes JSON"),
        (["start", "skus-import", "--json", "[]"], "takes a .csv file"),
        (["start", "vouchers-import", "--json", "{nope"], "not valid"),
        (["start", "campaign-generate", "--id", "c"], "needs --count"),
    ],
)
async def test_usage_errors_exit_2(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Arguments that cannot make a request exit 2 with one line, and send nothing."""
    assert await run(emu, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert emu.count() == 0


async def test_a_lost_answer_exits_5(
    emu: VoucherifyEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the answer is lost the command says so, exits 5, and never sends it twice."""
    emu.inject(Status(502))
    assert await run(emu, "start", "campaign-delete", "--id", "c1", "--force") == 5
    assert "client.async_actions.list()" in capsys.readouterr().err
    assert emu.count() == 1
    assert emu.requests[0].query == {"force": "true"}


async def test_start_wait_draws_the_live_view_with_rich(
    emu: VoucherifyEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a colour terminal, --wait shows rich's live progress and summary table."""
    pytest.importorskip("rich")
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert await run(emu, "start", "skus-import", str(DATA / "vouchers.csv"), "--wait") == 0
    out = capsys.readouterr().out
    assert "Summary" in out and "SKUS.IMPORT_CSV" in out
    assert "┃" in out  # a rich table, not plain columns
