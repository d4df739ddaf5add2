"""Developer sessions: tests on every supported Python, lint, type checks, docs."""

from __future__ import annotations

import glob
import os
import tempfile

import nox

nox.options.sessions = ["tests", "lint", "mypy", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12", "3.13"]


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


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff>=0.4")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def mypy(session: nox.Session) -> None:
    """mypy --strict over the package and the public typing pins."""
    session.install("-e", ".[test,speed,redis]", "mypy>=1.8")
    session.run("mypy", "voucherify_async")
    session.run("mypy", "--strict", "tests/typing/api.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs with warnings as errors and run their doctests."""
    session.install("-e", ".[docs,cli]")
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
