"""The code blocks of README.md and docs/testing.md run as shown.

The recipes of the other pages are files that the pages include (``tests/docs_examples/``);
these two pages show their code inline, so each block is pulled out of the page and run here:
test functions in a pytest run of their own (with the page's own pytest configuration, so a
warning it causes shows), snippets as the body of a test with the fixtures they name,
programs as programs. A block this file does not know how to run fails the suite.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from _support import APP_ID, APP_TOKEN

from voucherify_async import VoucherifyClient
from voucherify_async.testing import JobSpec, RecordedRequest, VoucherifyEmulator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TESTING = ROOT / "docs" / "testing.md"
INSTALLATION = ROOT / "docs" / "installation.md"


def blocks(path: Path, language: str) -> list[str]:
    """The fenced blocks of *language* in the page at *path*, in order."""
    text = path.read_text(encoding="utf-8")
    return re.findall(rf"^```{re.escape(language)}\n(.*?)^```", text, re.S | re.M)


def _kind(block: str) -> str:
    """How a python block runs: a test file, a program, or a snippet inside a test."""
    if "asyncio.run(" in block:
        return "program"
    if re.search(r"^async def test_", block, re.M):
        return "tests"
    return "snippet"


async def _run_program(block: str) -> str:
    """Run a program block in a thread of its own (it calls asyncio.run); return its stdout."""
    code = compile(block, "<doc block>", "exec")
    output: list[str] = []

    def run() -> None:
        namespace: dict[str, Any] = {"__name__": "__main__", "print": _collect(output)}
        exec(code, namespace)

    async with asyncio.timeout(60):
        await asyncio.to_thread(run)
    return "\n".join(output)


def _collect(into: list[str]) -> Callable[..., None]:
    def print_(*values: object, **_: object) -> None:
        into.append(" ".join(str(value) for value in values))

    return print_


async def _run_snippet(block: str, namespace: dict[str, Any]) -> None:
    """Run a snippet as the body of an async test: top-level await allowed."""
    code = compile(block, "<doc block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        async with asyncio.timeout(30):
            await result


# --- README -------------------------------------------------------------------------------


def test_readme_has_one_python_block() -> None:
    """The README's quick start is its one Python block (the other blocks are commands)."""
    assert len(blocks(README, "python")) == 1
    assert [_kind(block) for block in blocks(README, "python")] == ["program"]


async def test_readme_quick_start_runs_as_written(
    emulator: VoucherifyEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the environment the README says to export, its quick start runs to the end."""
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", emulator.base_url)
    monkeypatch.setenv("VOUCHERIFY_APP_ID", APP_ID)
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", APP_TOKEN)
    earlier = emulator.add_action("ORDERS.IMPORT", duration=0.1)
    (block,) = blocks(README, "python")
    out = (await _run_program(block)).splitlines()
    started = next(r.started_id for r in emulator.requests if r.started_id)
    progress = out[: out.index("2 imported, 1 failed")]
    assert progress[-1] == f"{started} DONE 100"
    assert all(line.startswith(f"{started} ") for line in progress)
    assert out[len(progress) + 1 :] == [
        "  SUMMER-10 Duplicate code SUMMER-10",
        f"{started} DONE",
        f"{earlier} DONE",
    ]


def test_readme_mentions_the_environment_it_needs() -> None:
    """The README says which variables to export for the emulator."""
    text = README.read_text(encoding="utf-8")
    for name in ("VOUCHERIFY_BASE_URL", "VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN"):
        assert name in text


# --- docs/testing.md ----------------------------------------------------------------------


def test_every_testing_block_is_run_here() -> None:
    """Every block of docs/testing.md is of a kind this file runs (or a console command)."""
    text = TESTING.read_text(encoding="utf-8")
    fences = re.findall(r"^```(\S*)$", text, re.M)
    languages = [fence for fence in fences if fence]
    assert set(languages) <= {"python", "toml", "json", "console"}, languages
    assert len(blocks(TESTING, "toml")) == 1
    assert len(blocks(TESTING, "json")) == 1


def test_testing_page_lists_every_recorded_request_field() -> None:
    """The page names every field of RecordedRequest."""
    text = TESTING.read_text(encoding="utf-8")
    section = text[text.index("## Watching the traffic") :]
    section = section[: section.index("```")]
    for field in attrs.fields(RecordedRequest):
        assert f"`{field.name}`" in section, field.name


def test_job_file_block_is_valid() -> None:
    """The page's job file holds specs the emulator accepts."""
    (block,) = blocks(TESTING, "json")
    specs = [JobSpec.from_json(item) for item in json.loads(block)]
    assert any(spec.duration is None for spec in specs)
    assert any(spec.not_found for spec in specs)


@pytest.mark.slow
def test_test_blocks_pass_with_the_pages_configuration(tmp_path: Path) -> None:
    """The page's test functions pass in a project configured as the page says, warning-free."""
    (config,) = blocks(TESTING, "toml")
    tests = [block for block in blocks(TESTING, "python") if _kind(block) == "tests"]
    assert len(tests) >= 3
    (tmp_path / "pyproject.toml").write_text(config)
    for number, block in enumerate(tests):
        (tmp_path / f"test_page_{number}.py").write_text(block)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERIFY_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout
    assert re.search(rf"\b{len(tests)} passed\b", result.stdout), result.stdout


@pytest.fixture
async def page_namespace(emulator: VoucherifyEmulator, client: VoucherifyClient) -> dict[str, Any]:
    """What the page's snippets take for granted: the two fixtures and a running job's id."""
    action_id = emulator.add_action("VOUCHERS.IMPORT", duration=30.0)
    return {
        "voucherify_emulator": emulator,
        "voucherify_client": client,
        "action_id": action_id,
        "__name__": "doc_block",
    }


def _snippets() -> list[str]:
    return [block for block in blocks(TESTING, "python") if _kind(block) == "snippet"]


@pytest.mark.parametrize("number", range(len(_snippets())))
async def test_snippets_run(page_namespace: dict[str, Any], number: int) -> None:
    """Each snippet runs as the body of a test with the fixtures it names."""
    from voucherify_async.testing import fast_polling

    with fast_polling():
        await _run_snippet(_snippets()[number], page_namespace)


def _programs() -> list[str]:
    return [block for block in blocks(TESTING, "python") if _kind(block) == "program"]


@pytest.mark.parametrize("number", range(len(_programs())))
async def test_programs_run(number: int) -> None:
    """Each program block runs to its end and prints the emulator's address."""
    out = await _run_program(_programs()[number])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", out.strip()), out


def test_every_python_block_is_run() -> None:
    """Tests, snippets and programs together are every Python block of the page."""
    kinds = [_kind(block) for block in blocks(TESTING, "python")]
    assert kinds.count("snippet") == len(_snippets()) >= 4
    assert kinds.count("program") == len(_programs()) == 2


# --- docs/installation.md -----------------------------------------------------------------


def test_installation_lists_each_extra_as_pyproject_does() -> None:
    """The extras table names every package of each extra, as pyproject.toml declares them."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    text = INSTALLATION.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, re.M))
    for extra in ("cli", "speed", "otel", "test", "docs"):
        declared = [re.split(r"[<>=\[ ]", item)[0] for item in extras[extra]]
        listed = [name.strip() for name in rows[extra].split(",")]
        assert listed == declared, extra


def test_installation_does_not_promise_pypi() -> None:
    """Until the package is on PyPI, the page says how to install from a checkout."""
    text = INSTALLATION.read_text(encoding="utf-8")
    assert "pip install voucherify-async\n" not in text
    assert "python -m pip install ." in text


# --- every documented command line parses -------------------------------------------------


def _command_lines() -> list[tuple[str, str]]:
    """(page, command) for every ``voucherify-async`` line of a console block in the docs."""
    found = []
    for page in [README, *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in blocks(page, "console"):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                command = line.removeprefix("$ ").split(" | ")[0].split(" && ")[-1].strip()
                if command.startswith("voucherify-async "):
                    found.append((page.name, command))
    return found


def test_documented_commands_are_found() -> None:
    """The pages show the command at work: get, wait, list, start, emulator, demo."""
    shown = {shlex.split(command)[1] for _, command in _command_lines()}
    assert {"get", "wait", "list", "start", "emulator", "demo"} <= shown


@pytest.mark.parametrize(("page", "command"), _command_lines())
def test_documented_commands_parse(
    page: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command line the docs show is one the command accepts (flags and all).

    The job file testing.md shows is there, as jobs.json, for the command that reads it.
    """
    from voucherify_async._cli._parser import build_parser

    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.json").write_text(blocks(TESTING, "json")[0])

    argv = shlex.split(command)[1:]
    if argv == ["--help"]:
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse refused it
        raise AssertionError(f"{page}: `{command}` does not parse") from exc
