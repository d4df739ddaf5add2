"""Picking the printer: rich on a colour terminal when it is installed, plain lines otherwise.

It lives apart from ``_view`` (which ``_rich`` builds on) so the two never import each other.
"""

from __future__ import annotations

import os
from typing import IO

from ._view import PlainPrinter, Printer

__all__ = ["make_printer", "wants_color"]


def wants_color(out: IO[str]) -> bool:
    """True when *out* is a terminal and ``NO_COLOR`` is unset (or ``FORCE_COLOR`` is set)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def make_printer(out: IO[str]) -> Printer:
    """A rich printer on a colour terminal when rich is installed, plain lines otherwise."""
    if wants_color(out):
        try:
            from ._rich import RichPrinter
        except ImportError:  # the "cli" extra is not installed
            pass
        else:
            return RichPrinter(out)
    return PlainPrinter(out)
