"""Reliability and security tests: the fault matrix, the soak, fuzzing and secrets.

The fixtures of ``tests/conftest.py`` (``emulator``, ``make_client``, ``client``) apply here too.

The full soak (2,000 handles over about a minute) runs with ``VOUCHERIFY_SOAK=1`` in the
environment (``nox -s soak``); without it the soak is the bounded CI version (300 handles,
about 10 s). Shared constants live in ``tests/_support.py``: import them from there, never
from a conftest (pytest imports every conftest as the module ``conftest``).
"""
