"""The public surface: every exported name exists, __all__ is sorted, walls hold."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import voucherify_async
import voucherify_async.testing
from voucherify_async import instrumentation
from voucherify_async import opentelemetry as voucherify_opentelemetry

API_NAMES = {
    "VoucherifyClient", "PollPolicy", "AsyncActionHandle", "AsyncAction", "AsyncActionList",
    "AsyncActionStatus", "OperationStatus", "AsyncActionType", "UnknownResult", "converter",
    "register_result_type", "result_type_for", "VoucherifyError", "ConfigurationError",
    "APIError", "AuthenticationError", "NotFoundError", "RateLimitError", "ServerError",
    "TransportError", "ResponseDecodeError", "AsyncActionFailed", "PollTimeout",
}  # fmt: skip


@pytest.mark.parametrize(
    "module",
    [voucherify_async, voucherify_async.testing, instrumentation, voucherify_opentelemetry],
)
def test_all_is_sorted_and_complete(module: object) -> None:
    """__all__ is sorted, has no duplicates, and every name in it exists."""
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(module, name) is not None, name


def test_api_md_names_are_exported() -> None:
    """Every name API.md promises is importable from the package."""
    assert set(voucherify_async.__all__) >= API_NAMES
    assert {"VoucherifyEmulator", "fast_polling"} <= set(voucherify_async.testing.__all__)


def test_version_and_missing_names() -> None:
    """__version__ comes from the installed metadata; an unknown name is an AttributeError."""
    assert voucherify_async.__version__
    with pytest.raises(AttributeError):
        _ = voucherify_async.NoSuchThing  # type: ignore[attr-defined]


def test_data_layer_imports_no_aiohttp() -> None:
    """Models, registry, converter and errors import no aiohttp (they decode webhooks and files)."""
    package = Path(voucherify_async.__file__).parent
    for name in ("_converter", "_errors", "_registry", "_models", "_results", "_hooks", "_json"):
        source = (package / f"{name}.py").read_text(encoding="utf-8")
        assert not re.search(
            r"^\s*(import|from)\s+(aiohttp|\.+_(client|transport))", source, re.M
        ), name


def test_core_does_not_import_testing_or_cli() -> None:
    """Importing the package loads neither the emulator nor the CLI."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, voucherify_async; "
         "print(sorted(m for m in sys.modules if m.startswith('voucherify_async.')))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    loaded = set(ast.literal_eval(out))
    assert "voucherify_async.testing._emulator" not in loaded
    assert not {m for m in loaded if m.startswith("voucherify_async._cli")} - {
        "voucherify_async._client"
    }


def test_core_does_not_import_opentelemetry() -> None:
    """The package works without the [otel] extra: nothing imports opentelemetry until
    voucherify_async.opentelemetry is imported."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys, voucherify_async, voucherify_async.testing; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert ast.literal_eval(out) == []


def test_decode_async_action_is_public() -> None:
    """decode_async_action turns bytes (a webhook, a file) into a model, or a typed error."""
    body = b'{"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "DONE", "progress": 100}'
    action = voucherify_async.decode_async_action(body)
    assert (action.id, action.status, action.progress) == ("aa_1", "DONE", 100)
    bad = b'{"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "DONE", "progress": "all"}'
    with pytest.raises(voucherify_async.ResponseDecodeError) as info:
        voucherify_async.decode_async_action(bad)
    assert info.value.path == "$.progress"
    page = voucherify_async.decode_async_action_list(b'{"async_actions": [], "has_more": false}')
    assert page.async_actions == []
