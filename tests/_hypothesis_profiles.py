"""Hypothesis profiles: reproducible in CI, exploring everywhere else.

``ci`` (chosen when the environment has ``CI`` set, as CI services and ``.ci/run`` do):
derandomized, so every CI run tries the same examples and a failure reproduces from the
commit alone; no example database; the failing example's blob is printed.

``explore`` (local and soak runs): random examples, the example database on, so new inputs
are found and a failure found once is retried first on the next run.

Both set ``deadline=None``: on a busy machine a slow example is not a failure. Pick another
with ``HYPOTHESIS_PROFILE=ci|explore``. Imported by ``tests/conftest.py`` before any test
module, so the ``settings(...)`` objects those modules build inherit the profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "explore")
settings.load_profile(PROFILE)
