"""The command's exit codes, and which one an outcome or an exception gives."""

from __future__ import annotations

from typing import Final

from voucherify_async import (
    APIError,
    AsyncActionFailed,
    ConfigurationError,
    InvalidArgumentError,
    OutcomeUnknownError,
    PollTimeout,
    ResponseDecodeError,
    TransportError,
)

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNKNOWN",
    "EXIT_USAGE",
    "exit_code_for",
    "worst",
]

#: Every action ended DONE (``get`` and ``list``: the API answered).
EXIT_OK: Final = 0
#: An action failed: FAILED, or DONE with ``operation_status`` FAILED.
EXIT_FAILED: Final = 1
#: Bad arguments, or a configuration error such as missing credentials.
EXIT_USAGE: Final = 2
#: ``--timeout`` passed before every action ended.
EXIT_TIMEOUT: Final = 3
#: The API answered with an error (404...), the connection failed, or a body was undecodable.
EXIT_API_ERROR: Final = 4
#: ``start``: the request may have reached the server and its answer was lost; not retried.
EXIT_UNKNOWN: Final = 5
#: Interrupted with Ctrl-C (SIGINT).
EXIT_INTERRUPTED: Final = 130

# When several actions end differently, the most alarming code wins, in this order.
_SEVERITY: Final = (EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT, EXIT_API_ERROR, EXIT_UNKNOWN)

EXIT_CODES_HELP: Final = """\
exit codes:
  0    every action ended DONE (get, list: the API answered)
  1    an action failed: FAILED, or DONE with operation_status FAILED
  2    usage or configuration error (bad arguments, missing credentials)
  3    timeout: --timeout passed before every action ended
  4    API or transport error (HTTP 4xx/5xx such as 404, connection failure,
       undecodable response)
  5    start: the outcome is unknown (the request may have started the action
       and its answer was lost): look for it with `list` before trying again
  130  interrupted with Ctrl-C
  When actions end differently, the highest of 4, 3, 1 wins.

credentials: --app-id and --app-token, or $VOUCHERIFY_APP_ID and
$VOUCHERIFY_APP_TOKEN; --base-url or $VOUCHERIFY_BASE_URL overrides --cluster.
Output is plain text when stdout is not a terminal, when $NO_COLOR is set, or
when rich is not installed (from a checkout: pip install -e '.[cli]').
"""


def exit_code_for(error: BaseException) -> int | None:
    """The exit code for a library *error*, or None when it is not one the command expects."""
    if isinstance(error, AsyncActionFailed):
        return EXIT_FAILED
    if isinstance(error, PollTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, ConfigurationError | InvalidArgumentError):
        return EXIT_USAGE
    if isinstance(error, OutcomeUnknownError):
        return EXIT_UNKNOWN
    if isinstance(error, APIError | TransportError | ResponseDecodeError):
        return EXIT_API_ERROR
    return None


def worst(codes: list[int]) -> int:
    """The most alarming of *codes* (4 over 3 over 1 over 0); 0 for none."""
    return max(codes, key=_SEVERITY.index, default=EXIT_OK)
