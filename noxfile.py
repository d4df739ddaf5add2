"""Developer sessions: tests on every supported Python, lint, type checks, docs."""

from __future__ import annotations

import glob
import os
import re
import tempfile
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_lowest", "lint", "mypy", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent
#: Pinned versions of the lint, type-check and docs tools and of everything they import (the
#: optional dependencies mypy checks against, Sphinx's autodoc): a release elsewhere cannot turn
#: CI red. Updated on purpose with ``nox -s constraints``. The tests never use it: they run
#: against the newest versions pyproject.toml allows (``tests``) and the lowest (``tests_lowest``).
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"
#: The distributions whose lowest allowed version ``tests_lowest`` installs: the runtime
#: dependencies and the optional ones the tests import.
LOWEST_OF = ("aiohttp", "attrs", "cattrs", "backoff", "redis")


def _expose_pyenv_interpreters() -> None:
    """Let nox find pyenv's other Pythons (``python3.12``) without changing ``python3``.

    pyenv's shims answer only for the versions that are active; its installed versions live
    in ``~/.pyenv/versions/X.Y.Z/bin``. Link each ``pythonX.Y`` there into a folder at the
    front of PATH.
    """
    links = tempfile.mkdtemp(prefix="nox-pythons-")
    for version in PYTHONS:
        found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin")))
        executable = os.path.join(found[-1], f"python{version}") if found else ""
        if executable and os.path.exists(executable):
            os.symlink(executable, os.path.join(links, f"python{version}"))
    os.environ["PATH"] = links + os.pathsep + os.environ.get("PATH", "")


_expose_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


def lowest_pins() -> list[str]:
    """``name==X`` for every ``name>=X`` that pyproject.toml declares for :data:`LOWEST_OF`.

    A requirement of another form (``~=``, ``>=`` with an upper bound, none at all) is an
    error: the session must test what the package allows, so the floor has to be explicit.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared.extend(extra)
    pins: dict[str, str] = {}
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", requirement.strip())
        if match and match[1].lower() in LOWEST_OF:
            pins[match[1].lower()] = f"{match[1].lower()}=={match[2]}"
    missing = sorted(set(LOWEST_OF) - set(pins))
    if missing:
        raise ValueError(f"pyproject.toml declares no plain '>=' floor for {missing}")
    return sorted(pins.values())


@nox.session(python=PYTHONS[0])
def tests_lowest(session: nox.Session) -> None:
    """Run the test suite against the lowest versions pyproject.toml allows, on the oldest Python.

    aiohttp, attrs, cattrs, backoff and redis are installed at their declared floors (what a
    user with an older lock file gets); the test tools stay at their newest.
    """
    # Not session.create_tmp(): it points TMPDIR inside the checkout, where tests that run
    # pytest on a tmp_path of their own would pick up this project's pytest configuration.
    pins = os.path.join(tempfile.mkdtemp(prefix="nox-lowest-"), "lowest.txt")
    with open(pins, "w") as out:
        out.write("\n".join(lowest_pins()) + "\n")
    session.install("-c", pins, "-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def constraints(session: nox.Session) -> None:
    """Rewrite .ci/constraints.txt with today's newest versions of the lint, type and docs tools.

    Run it on purpose (a new ruff, mypy or Sphinx release, a new optional dependency), then
    run ``nox -s lint mypy docs`` and fix what the new versions find, in the same commit.
    """
    session.install("-e", ".[test,docs,cli,speed,redis,otel]", "ruff", "mypy")
    frozen = session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=True)
    assert isinstance(frozen, str)
    lines = sorted(
        line
        for line in frozen.splitlines()
        if line and not line.startswith(("#", "-e", "voucherify-async", "voucherify_async"))
    )
    header = (
        "# Pinned lint, type-check and docs environment: .ci/run and `nox -s lint mypy docs`\n"
        "# install with `-c .ci/constraints.txt`. The tests never use it.\n"
        "# Update on purpose: `nox -s constraints`, then `nox -s lint mypy docs`.\n"
    )
    CONSTRAINTS.write_text(header + "\n".join(lines) + "\n")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and format check, at the pinned version."""
    session.install("-c", str(CONSTRAINTS), "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def mypy(session: nox.Session) -> None:
    """mypy --strict over the package and the public typing pins, at the pinned versions."""
    session.install("-c", str(CONSTRAINTS), "-e", ".[test,speed,redis,otel]", "mypy")
    session.run("mypy", "voucherify_async")
    session.run("mypy", "--strict", "tests/typing/api.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs with warnings as errors and run their doctests.

    Installs every extra whose package the API page's autodoc imports (``redis`` for
    ``voucherify_async.redis``): a module that fails to import is a warning, hence an error.
    """
    session.install("-c", str(CONSTRAINTS), "-e", ".[docs,cli,redis,otel]")
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build", "-W", "--keep-going", "-b", builder, "docs", f"docs/_build/{builder}"
        )


@nox.session
def soak(session: nox.Session) -> None:
    """The full soak: 2,000 handles over about a minute under 10 % random faults.

    ``python tests/reliability/report.py`` runs it too, with the fault matrix, and rewrites
    docs/reliability.md from the results.
    """
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "slow",
        "tests/reliability/test_soak.py",
        *session.posargs,
        env={"VOUCHERIFY_SOAK": "1"},
    )
