"""The ``voucherify-async`` command: ``get``, ``wait``, ``list``, ``emulator`` and ``demo``.

It uses only the library's public API. Human output is drawn with rich when it is installed
(the ``cli`` extra) and stdout is a colour terminal, and is plain text lines otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import IO

from voucherify_async import VoucherifyError
from voucherify_async._models import one_line

from ._exit import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exit_code_for
from ._parser import build_parser

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command with *argv* (default: ``sys.argv[1:]``) and return its exit code.

    0 all done, 1 an action failed, 2 usage or configuration error, 3 timeout, 4 API or
    transport error, 130 interrupted; see ``voucherify-async --help``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 after --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out, err = sys.stdout, sys.stderr
    try:
        with _warnings_to_stderr():
            return asyncio.run(_run(args, out, err))
    except KeyboardInterrupt:
        # asyncio.run has cancelled the command, which closed its client and emulator.
        if args.command == "emulator":  # Ctrl-C is how a server is meant to stop
            print("voucherify-async: emulator stopped", file=err, flush=True)
            return EXIT_OK
        print("voucherify-async: interrupted", file=err, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence(out)  # the reader went away (`| head`): no second error at exit
        return 1


async def _run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    try:
        code: int = await args.run(args, out, err)
    except VoucherifyError as exc:
        error_code = exit_code_for(exc)
        if error_code is None:
            raise
        print(one_line(f"voucherify-async: error: {exc}"), file=err, flush=True)
        return error_code
    return code


#: Said once, after the first failed poll of a host that never answered.
_NEVER_ANSWERED_HINT = (
    "voucherify-async: polls go on until the action ends: --timeout S gives up after S "
    "seconds (exit 3), Ctrl-C stops at once"
)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time, so a live display can redirect it."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self._hinted = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Log lines quote server-sent text (an error page): no control sequence gets out
            # (line by line: a traceback keeps its lines).
            text = "\n".join(one_line(line) for line in self.format(record).splitlines())
            print(text, file=sys.stderr, flush=True)
            message = record.getMessage()
            if not self._hinted and "will poll again" in message and "no response" in message:
                self._hinted = True
                print(_NEVER_ANSWERED_HINT, file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show the library's warnings (retries, polls that failed) unless logging is set up."""
    logger = logging.getLogger("voucherify_async")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = _StderrHandler(logging.WARNING)
    handler.setFormatter(logging.Formatter("voucherify-async: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _silence(out: IO[str]) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    except (OSError, ValueError, AttributeError):
        pass
