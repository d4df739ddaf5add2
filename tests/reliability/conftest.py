"""Reliability and security tests: the fault matrix, the soak, fuzzing and secrets.

The fixtures of ``tests/conftest.py`` (``emulator``, ``make_client``, ``client``) apply here too.

The full soak (2,000 handles over about a minute) runs with ``VOUCHERIFY_SOAK=1`` in the
environment; without it the soak is the bounded CI version (300 handles, about 10 s).
There is no ``--soak`` option: pytest only takes ``pytest_addoption`` from the rootdir's
conftest and from plugins, and a plain ``pytest`` run loads this file too late for that.

This file is imported as the module ``conftest`` after ``tests/conftest.py``, and replaces it
in ``sys.modules`` (pytest does that for every conftest outside a package): so that
``from conftest import APP_ID`` keeps working in every test module, whichever is imported
after this one, the constants (UPPER_CASE names) of ``tests/conftest.py`` are re-exported here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: Set to "1" for the full soak.
SOAK_ENV = "VOUCHERIFY_SOAK"


def _parent_constants() -> dict[str, object]:
    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("_voucherify_tests_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: value for name, value in vars(module).items() if name.isupper()}


globals().update(_parent_constants())


def full_soak() -> bool:
    """True when the environment asks for the full soak (``VOUCHERIFY_SOAK=1``)."""
    return os.environ.get(SOAK_ENV, "").strip().lower() in ("1", "true", "yes")
