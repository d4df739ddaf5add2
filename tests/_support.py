"""Constants shared by the tests (import them from here, never from a conftest)."""

from __future__ import annotations

import os

APP_ID = "test-app-id"
APP_TOKEN = "test-app-token-SECRET-7f3a"

#: Set to "1" in the environment for the full soak (2,000 handles over about a minute).
SOAK_ENV = "VOUCHERIFY_SOAK"


def full_soak() -> bool:
    """True when the environment asks for the full soak (``VOUCHERIFY_SOAK=1``)."""
    return os.environ.get(SOAK_ENV, "").strip().lower() in ("1", "true", "yes")
