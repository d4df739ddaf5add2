"""Hooks that observe polling: feed metrics, traces or your own logs.

Register plain callables, in the manner of stamina's instrumentation::

    from voucherify_async import instrumentation

    def count(event: instrumentation.PollEvent) -> None:
        POLLS.labels(event.status).inc()

    instrumentation.set_on_poll_hooks([count])

A hook runs on the event loop, right after the poll it describes; it must be quick and must
not block. An exception in a hook is logged and swallowed: instrumentation never breaks a wait.
The same events are logged at DEBUG on the ``voucherify_async`` logger.

Four more kinds of hooks serve tracing (``voucherify_async.opentelemetry`` is built on them):

* request hooks, called as each HTTP attempt is sent (:class:`RequestEvent`); a hook may
  return a callable, called once with the attempt's :class:`RequestOutcome` when it ends, in
  the same task (so a hook can open a span, or a context, and close it there);
* start hooks, the same around each ``start()`` (:class:`StartEvent`, :class:`StartOutcome`);
* handle hooks, called with each new :class:`~voucherify_async.AsyncActionHandle` inside the
  handle's own copy of the creator's ``contextvars`` context: a context variable a hook
  sets there is seen by every poll of that handle (its background tasks run in it), never by
  the creator;
* server-pause hooks, called when a response pauses the client (:class:`ServerPauseEvent`).

With no hook registered, none of this costs anything but a check of an empty tuple.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import attrs

from ._errors import InvalidArgumentTypeError

if TYPE_CHECKING:
    from ._handle import AsyncActionHandle
    from ._models import AsyncAction

__all__ = [
    "BudgetScope",
    "BudgetUsage",
    "OnHandleHook",
    "OnPollHook",
    "OnRequestHook",
    "OnServerPauseHook",
    "OnStartHook",
    "OnStatusChangeHook",
    "PauseCause",
    "PollEvent",
    "PollReason",
    "RequestEvent",
    "RequestOutcome",
    "ServerPauseEvent",
    "StartEvent",
    "StartOutcome",
    "StatusChangeEvent",
    "get_on_handle_hooks",
    "get_on_poll_hooks",
    "get_on_request_hooks",
    "get_on_server_pause_hooks",
    "get_on_start_hooks",
    "get_on_status_change_hooks",
    "set_on_handle_hooks",
    "set_on_poll_hooks",
    "set_on_request_hooks",
    "set_on_server_pause_hooks",
    "set_on_start_hooks",
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


#: Whose budget: ``"client"`` (``requests_per_minute``, this client's requests),
#: ``"fleet"`` (a ``RedisBudget``: every process sharing it) or ``"server"`` (the account's,
#: from the last ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Limit``).
BudgetScope = Literal["client", "fleet", "server"]


@attrs.frozen
class BudgetUsage:
    """How much of a request budget is in use: *used* of *limit* requests in its window."""

    scope: BudgetScope
    used: int
    limit: int
    #: Which client's gate reported it: 1, 2... in the order this process made the clients
    #: (0 for a gate that does not say). Not part of equality.
    client: int = attrs.field(default=0, eq=False)


@attrs.frozen
class RequestEvent:
    """One HTTP attempt, as it is sent (after the client's gate admitted it).

    Holds no header and no body: neither a token nor a request body can reach a hook.
    """

    #: ``GET``, ``POST``, ``DELETE``...
    method: str
    #: The path as sent, percent-encoded, ids included (``/v1/async-actions/aa_1``).
    path: str
    #: The path with its ids replaced by placeholders (``/v1/async-actions/{asyncActionId}``):
    #: low cardinality, for span names and metric attributes.
    route: str
    #: The URL as sent, query included (the client's URLs carry no credentials).
    url: str
    #: 1 for the first attempt of a call, 2 for its first retry...
    attempt: int
    #: Seconds this attempt waited for the gate: the budget, the concurrency cap, pauses.
    gate_wait: float
    #: How full the budgets were as this attempt was admitted (this one counted).
    budget: tuple[BudgetUsage, ...] = ()


@attrs.frozen
class RequestOutcome:
    """How one HTTP attempt ended."""

    #: The response's status (``None`` when none arrived).
    status: int | None
    #: Why no usable response arrived (a connection error, a timeout, a cancel), if so.
    error: BaseException | None
    #: Seconds from sending to the end of reading the body (or the failure).
    duration: float


@attrs.frozen
class StartEvent:
    """A ``start()`` (or a named start helper) about to send its request."""

    method: str
    #: The path with its ids replaced by placeholders (``/v1/campaigns/{campaignId}/import``).
    route: str
    #: The action type the helper expects (``None`` for a plain ``start()`` without one).
    action_type: str | None


@attrs.frozen
class StartOutcome:
    """How a ``start()`` ended: the new action's id, or the error it raised."""

    action_id: str | None
    error: BaseException | None


#: What a server response demanded: ``"429"`` (Too Many Requests, ``Retry-After``) or
#: ``"rate_limit_remaining"`` (``X-Rate-Limit-Remaining: 0`` until ``X-Rate-Limit-Retry``).
PauseCause = Literal["429", "rate_limit_remaining"]


@attrs.frozen
class ServerPauseEvent:
    """A response paused every request of the client."""

    #: Seconds of the pause (after the client's cap).
    seconds: float
    cause: PauseCause
    #: The response's status.
    status: int


OnPollHook = Callable[[PollEvent], object]
OnStatusChangeHook = Callable[[StatusChangeEvent], object]
#: May return a callable, called once with the attempt's :class:`RequestOutcome`.
OnRequestHook: TypeAlias = Callable[[RequestEvent], "Callable[[RequestOutcome], object] | None"]
#: May return a callable, called once with the start's :class:`StartOutcome`.
OnStartHook: TypeAlias = Callable[[StartEvent], "Callable[[StartOutcome], object] | None"]
OnHandleHook: TypeAlias = "Callable[[AsyncActionHandle], object]"
OnServerPauseHook = Callable[[ServerPauseEvent], object]

_on_poll: tuple[OnPollHook, ...] = ()
_on_status_change: tuple[OnStatusChangeHook, ...] = ()
#: Read directly by the transport, the handle and start(): an empty tuple means "off".
on_request: tuple[OnRequestHook, ...] = ()
on_start: tuple[OnStartHook, ...] = ()
on_handle: tuple[OnHandleHook, ...] = ()
on_server_pause: tuple[OnServerPauseHook, ...] = ()


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


def set_on_request_hooks(hooks: Iterable[OnRequestHook]) -> None:
    """Replace the hooks called as each HTTP attempt is sent (see :class:`RequestEvent`).

    Raises :class:`~voucherify_async.InvalidArgumentTypeError` for anything but an iterable
    of callables, leaving the hooks as they were.
    """
    global on_request
    on_request = _callables(hooks, "set_on_request_hooks")


def get_on_request_hooks() -> tuple[OnRequestHook, ...]:
    """The hooks called as each HTTP attempt is sent."""
    return on_request


def set_on_start_hooks(hooks: Iterable[OnStartHook]) -> None:
    """Replace the hooks called as each ``start()`` sends its request (:class:`StartEvent`).

    Raises :class:`~voucherify_async.InvalidArgumentTypeError` for anything but an iterable
    of callables, leaving the hooks as they were.
    """
    global on_start
    on_start = _callables(hooks, "set_on_start_hooks")


def get_on_start_hooks() -> tuple[OnStartHook, ...]:
    """The hooks called around each ``start()``."""
    return on_start


def set_on_handle_hooks(hooks: Iterable[OnHandleHook]) -> None:
    """Replace the hooks called with each new handle, inside the handle's own context.

    Raises :class:`~voucherify_async.InvalidArgumentTypeError` for anything but an iterable
    of callables, leaving the hooks as they were.
    """
    global on_handle
    on_handle = _callables(hooks, "set_on_handle_hooks")


def get_on_handle_hooks() -> tuple[OnHandleHook, ...]:
    """The hooks called with each new handle."""
    return on_handle


def set_on_server_pause_hooks(hooks: Iterable[OnServerPauseHook]) -> None:
    """Replace the hooks called when a response pauses the client (:class:`ServerPauseEvent`).

    Raises :class:`~voucherify_async.InvalidArgumentTypeError` for anything but an iterable
    of callables, leaving the hooks as they were.
    """
    global on_server_pause
    on_server_pause = _callables(hooks, "set_on_server_pause_hooks")


def get_on_server_pause_hooks() -> tuple[OnServerPauseHook, ...]:
    """The hooks called when a response pauses the client."""
    return on_server_pause


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


def emit_scoped(
    hooks: tuple[Callable[[Any], Any], ...], event: object
) -> list[Callable[[Any], Any]]:
    """Call each of *hooks* with *event*; the callables they returned, to call with the outcome."""
    finishers = []
    for hook in hooks:
        try:
            finish = hook(event)
        except Exception:
            logger.exception("a voucherify_async instrumentation hook raised; ignored")
            continue
        if finish is not None:
            finishers.append(finish)
    return finishers


def finish_scoped(finishers: list[Callable[[Any], Any]], outcome: object) -> None:
    """Call each finisher with *outcome*, newest first (they close what the hooks opened)."""
    for finish in reversed(finishers):
        _call(finish, outcome)


def emit_handle(handle: AsyncActionHandle) -> None:
    """Pass a new *handle* to every handle hook (call it inside the handle's context)."""
    for hook in on_handle:
        _call(hook, handle)


def emit_server_pause(event: ServerPauseEvent) -> None:
    """Pass *event* to every server-pause hook."""
    for hook in on_server_pause:
        _call(hook, event)
