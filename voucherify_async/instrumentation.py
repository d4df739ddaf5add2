"""Hooks that observe polling: feed metrics, traces or your own logs.

Register plain callables, in the manner of stamina's instrumentation::

    from voucherify_async import instrumentation

    def count(event: instrumentation.PollEvent) -> None:
        POLLS.labels(event.status).inc()

    instrumentation.set_on_poll_hooks([count])

A hook runs on the event loop, right after the poll it describes; it must be quick and must
not block. An exception in a hook is logged and swallowed: instrumentation never breaks a wait.
The same events are logged at DEBUG on the ``voucherify_async`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ._errors import InvalidArgumentTypeError

if TYPE_CHECKING:
    from ._models import AsyncAction

__all__ = [
    "OnPollHook",
    "OnStatusChangeHook",
    "PollEvent",
    "PollReason",
    "StatusChangeEvent",
    "get_on_poll_hooks",
    "get_on_status_change_hooks",
    "set_on_poll_hooks",
    "set_on_status_change_hooks",
]

logger: Final = logging.getLogger("voucherify_async")

#: Why a handle chose its next delay: the growth schedule, a finish predicted from progress,
#: a shortened wait before a deadline, or none because the handle is done.
PollReason = Literal["backoff", "learned", "adaptive", "bounded", "watched", "deadline", "done"]


@attrs.frozen
class PollEvent:
    """One poll of one handle and what the handle decided next."""

    #: The async action's id.
    action_id: str
    #: 1 for the first poll of this handle, then 2, 3...
    attempt: int
    #: The status seen (``None`` when the poll failed).
    status: str | None
    #: The progress seen, 0-100 (``None`` when unknown or the poll failed).
    progress: int | None
    #: Seconds until the next poll (0.0 when the handle is done).
    delay: float
    #: Why that delay.
    reason: PollReason
    #: The transient error this poll ended with after its retries, if any.
    error: BaseException | None = None


@attrs.frozen
class StatusChangeEvent:
    """A handle saw a new status or progress."""

    action_id: str
    #: The snapshot before (``None`` on the first one).
    previous: AsyncAction | None
    #: The new snapshot.
    current: AsyncAction


OnPollHook = Callable[[PollEvent], object]
OnStatusChangeHook = Callable[[StatusChangeEvent], object]

_on_poll: tuple[OnPollHook, ...] = ()
_on_status_change: tuple[OnStatusChangeHook, ...] = ()


def _callables(hooks: object, name: str) -> tuple[Any, ...]:
    """*hooks* as a tuple of callables, or :class:`InvalidArgumentTypeError` before any change."""
    if callable(hooks) or isinstance(hooks, str | bytes):
        raise InvalidArgumentTypeError(
            f"{name} takes an iterable of callables, not a single {type(hooks).__name__} "
            "(wrap one hook in a list)"
        )
    try:
        found: tuple[Any, ...] = tuple(hooks)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentTypeError(
            f"{name} takes an iterable of callables, got {type(hooks).__name__}"
        ) from None
    for hook in found:
        if not callable(hook):
            raise InvalidArgumentTypeError(f"{name}: a hook must be callable, got {hook!r}")
    return found


def set_on_poll_hooks(hooks: Iterable[OnPollHook]) -> None:
    """Replace the hooks called after every poll of every handle.

    Raises :class:`~voucherify_async.InvalidArgumentTypeError` (also a ``TypeError``) for
    anything but an iterable of callables, leaving the hooks as they were.
    """
    global _on_poll
    _on_poll = _callables(hooks, "set_on_poll_hooks")


def get_on_poll_hooks() -> tuple[OnPollHook, ...]:
    """The hooks called after every poll."""
    return _on_poll


def set_on_status_change_hooks(hooks: Iterable[OnStatusChangeHook]) -> None:
    """Replace the hooks called when a handle sees a new status or progress.

    Raises :class:`~voucherify_async.InvalidArgumentTypeError` (also a ``TypeError``) for
    anything but an iterable of callables, leaving the hooks as they were.
    """
    global _on_status_change
    _on_status_change = _callables(hooks, "set_on_status_change_hooks")


def get_on_status_change_hooks() -> tuple[OnStatusChangeHook, ...]:
    """The hooks called on every status or progress change."""
    return _on_status_change


def emit_poll(event: PollEvent) -> None:
    """Log *event* at DEBUG and pass it to every poll hook."""
    if logger.isEnabledFor(logging.DEBUG):
        error = "" if event.error is None else str(event.error)
        # Name the action once: a TransportError's text holds the request's path already.
        subject = "poll" if event.action_id in error else f"poll {event.action_id}"
        logger.debug(
            "%s #%d: status=%s progress=%s; next in %.3f s (%s)%s",
            subject, event.attempt, event.status, event.progress, event.delay,
            event.reason, f"; error: {error}" if error else "",
        )  # fmt: skip
    for hook in _on_poll:
        _call(hook, event)


def emit_status_change(event: StatusChangeEvent) -> None:
    """Log *event* at DEBUG and pass it to every status-change hook."""
    if logger.isEnabledFor(logging.DEBUG):
        before = event.previous
        logger.debug(
            "async action %s: %s/%s -> %s/%s",
            event.action_id,
            before.status if before else None, before.progress if before else None,
            event.current.status, event.current.progress,
        )  # fmt: skip
    for hook in _on_status_change:
        _call(hook, event)


def _call(hook: Callable[[Any], object], event: object) -> None:
    try:
        hook(event)
    except Exception:
        logger.exception("a voucherify_async instrumentation hook raised; ignored")
