"""Configuration: defaults as named constants, the polling policy, and the testing switch."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Generator, Iterator
from ipaddress import IPv6Address, ip_address
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import backoff
from yarl import URL

from ._errors import ConfigurationError
from ._validate import check_seconds, finite, shown

__all__ = ["PollPolicy", "fast_polling"]

#: Seconds allowed for one HTTP request (connect, send, read the whole body).
DEFAULT_TIMEOUT: Final = 30.0
#: Extra attempts after a transient failure (connection error, timeout, 429, 5xx).
DEFAULT_MAX_RETRIES: Final = 4
#: HTTP requests in flight at once, client-wide.
DEFAULT_MAX_CONCURRENCY: Final = 16
#: The length of the window ``requests_per_minute`` counts in, in seconds.
DEFAULT_BUDGET_WINDOW: Final = 60.0
#: Clusters that name a Voucherify region.
CLUSTERS: Final = ("api", "us1.api", "as1.api")

#: First retry delay in seconds; the delays grow x2 with full jitter up to RETRY_MAX_DELAY.
RETRY_BASE_DELAY: Final = 0.5
#: The longest single retry delay of our own, in seconds (the server may ask for longer).
RETRY_MAX_DELAY: Final = 8.0
#: The longest a single call spends retrying, in seconds, server-demanded waits included.
RETRY_MAX_TIME: Final = 120.0
#: The longest client-wide pause a rate-limit header can impose, in seconds (guards clock skew).
MAX_SERVER_PAUSE: Final = 3_600.0

ENV_APP_ID: Final = "VOUCHERIFY_APP_ID"
ENV_APP_TOKEN: Final = "VOUCHERIFY_APP_TOKEN"
ENV_BASE_URL: Final = "VOUCHERIFY_BASE_URL"


def resolve_base_url(cluster: str, base_url: str | None, *, allow_insecure_http: bool) -> str:
    """The API root for a client: *base_url*, else ``$VOUCHERIFY_BASE_URL``, else the cluster's.

    *cluster* must be one of :data:`CLUSTERS`; a dedicated region or a proxy is reached with
    *base_url*. An empty (or blank) base URL is refused, never read as "unset". Plain ``http``
    is refused for any host but loopback unless *allow_insecure_http*. Every refusal is a
    :class:`ConfigurationError`.
    """
    if not isinstance(cluster, str) or cluster not in CLUSTERS:
        raise ConfigurationError(
            f"unknown cluster {cluster!r}: use one of {', '.join(map(repr, CLUSTERS))}, "
            "or pass base_url for a dedicated region"
        )
    if base_url is not None and not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be a str, got {type(base_url).__name__}")
    if base_url is not None:
        url: str | None = base_url
        source = "base_url"
    else:
        url = os.environ.get(ENV_BASE_URL)
        source = f"${ENV_BASE_URL}"
    if url is not None and not url.strip():
        # Empty must not quietly mean the production host: a test run would hit live data.
        raise ConfigurationError(
            f"{source} is empty: give a URL such as http://127.0.0.1:8080, or leave it unset "
            "to use the cluster's host"
        )
    if url is None:
        return f"https://{cluster}.voucherify.io"
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # both parse (and may refuse) the netloc
        parsed = URL(url)
        parsed.host, parsed.port  # noqa: B018 (yarl parses the netloc lazily)
    except (ValueError, IndexError, TypeError, UnicodeError) as exc:
        # yarl and urllib raise IndexError/TypeError for some malformed netlocs ("[::1]@").
        raise ConfigurationError(
            f"base_url is not a valid URL: {url!r} ({type(exc).__name__}: {exc})"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host, got {url!r}")
    if parts.query or parts.fragment or parts.username is not None or parts.password:
        raise ConfigurationError("base_url must not carry a query, a fragment or credentials")
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments and segments[-1].lower() in ("v1", "v2"):
        root = url.rstrip("/")[: -len(segments[-1]) - 1]
        raise ConfigurationError(
            f"base_url is the API root, without /{segments[-1]}: the client adds "
            f"/v1/async-actions/... itself; use {root!r}"
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to send credentials over plain http to {host}; "
            "use https, or pass allow_insecure_http=True"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ip_address(host.strip("[]"))
    except ValueError:
        return False
    # Only the plain forms: Python 3.13 counts ::ffff:127.0.0.1 as loopback, 3.11 does not;
    # refusing the mapped form everywhere keeps one rule on every supported Python.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return False
    return address.is_loopback


# fast_polling(): a process-wide cap on every delay of the library's own (polls and retries).
_fast_polling_cap: float | None = None


def fast_polling(max_delay: float = 0.001) -> contextlib.AbstractContextManager[None]:
    """Make every poll and retry delay of the library's own at most *max_delay* seconds.

    For test suites: handles resolve as soon as the server says so, retries are instant.
    Waits that the server demands (``Retry-After``, ``X-Rate-Limit-Retry``) and the
    ``requests_per_minute`` budget are still honoured. Default cap: 0.001 s; 0 makes those
    delays nothing at all. A negative, NaN or infinite cap raises
    :class:`~voucherify_async.InvalidArgumentError` (a ``bool`` or a string,
    :class:`~voucherify_async.InvalidArgumentTypeError`) when called, before the ``with``.
    """
    return _capped(check_seconds(max_delay, "max_delay"))


@contextlib.contextmanager
def _capped(max_delay: float) -> Iterator[None]:
    global _fast_polling_cap
    previous = _fast_polling_cap
    _fast_polling_cap = max_delay
    try:
        yield
    finally:
        _fast_polling_cap = previous


def own_delay(seconds: float) -> float:
    """*seconds*, cut down to the :func:`fast_polling` cap when it is active."""
    cap = _fast_polling_cap
    return seconds if cap is None else min(seconds, cap)


def retry_delays() -> Generator[float, None, None]:
    """Retry waits in seconds: exponential from RETRY_BASE_DELAY, x2, capped, full jitter."""
    gen = backoff.expo(base=2, factor=RETRY_BASE_DELAY, max_value=RETRY_MAX_DELAY)
    next(gen)  # backoff's wait generators are primed with one send(None)
    for value in gen:
        yield own_delay(backoff.full_jitter(value))


def _number(attribute: attrs.Attribute[Any], value: object) -> float:
    """*value* as a finite real number, or :class:`ConfigurationError` naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{attribute.name} must be a number (seconds), got {type(value).__name__}"
        )
    if not finite(value):
        raise ConfigurationError(f"{attribute.name} must be a finite number, got {shown(value)}")
    return float(value)


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if _number(attribute, value) < 0:
        raise ConfigurationError(
            f"{attribute.name} must be a finite number >= 0, got {shown(value)}"
        )


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if _number(attribute, value) <= 0:
        raise ConfigurationError(
            f"{attribute.name} must be a finite number > 0, got {shown(value)}"
        )


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive(instance, attribute, value)  # type: ignore[arg-type]


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{attribute.name} must be True or False, got {type(value).__name__}"
        )


#: The default ``PollPolicy.min_delay`` (seconds) when ``max_delay`` is not below it.
DEFAULT_MIN_DELAY: Final = 0.25


def _default_min_delay(max_delay: object) -> float:
    """min_delay when not given: the default, lowered to a (valid) max_delay below it."""
    if isinstance(max_delay, bool) or not isinstance(max_delay, int | float):
        return DEFAULT_MIN_DELAY  # refused by max_delay's own check
    if finite(max_delay) and 0 < max_delay < DEFAULT_MIN_DELAY:
        return float(max_delay)
    return DEFAULT_MIN_DELAY


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How a handle polls: when, how often, and for how long.

    The default schedule polls an action this client started after 0.6 s (one met by id at
    once), then on the growth schedule (x1.5, capped at 120 s; jitter only ever brings a
    poll earlier): a job of the usual 0.1-1.3 s costs one or two GETs. Once a job reports
    progress, the adaptive mode polls at the earliest finish the pace this client measured
    allows, closing in on the end, so a twenty-minute import costs a few dozen GETs, not a
    thousand. Whatever progress does, no
    gap is longer than ``max_lateness`` times what the user has waited (since the handle met
    the action, or since the last poll that saw it ENQUEUED once it runs; at least
    ``initial_delay``): the end of an action is seen at most that late. Where progress says
    nothing, gaps are at most half that. Once the client has seen five actions of a type
    finish, it uses their durations (``learn_durations=False`` turns this off): the first
    poll of a new one waits for their median, and for an action this client started the
    bound counts the wait as at least their 5th percentile (less the time since its start);
    a fresh client learns them from one ``list()`` page once a handle of an action it
    started waits past a short job's time (``warm_start``). See
    the polling reference page
    of the documentation for the rule and its constants.

    All times are in seconds, finite real numbers (``bool`` is refused). A field out of range,
    NaN, infinite or of the wrong type raises :class:`ConfigurationError` (also a
    ``ValueError``) at construction, as does a ``min_delay`` given above ``max_delay`` (one
    left to its default follows a ``max_delay`` below 0.25 s). An ``initial_delay`` above
    ``max_delay`` is allowed: every delay is capped at ``max_delay``.
    """

    #: Delay before the first GET (>= 0). Default 0: the schedule decides (at once for an
    #: action met by id; for one this client started, ``initial_delay``, or the learned median
    #: of its type, at most ``2 * initial_delay``).
    first_poll_after: float = attrs.field(default=0.0, validator=_non_negative)
    #: Delay after the first GET; later delays grow from it (> 0, capped at max_delay).
    #: Default 0.6 s.
    initial_delay: float = attrs.field(default=0.6, validator=_positive)
    #: Growth factor of the delays (a ``backoff.expo`` generator underneath). Default 1.5.
    multiplier: float = attrs.field(default=1.5)
    #: The longest delay between two polls (> 0). Default 120 s (the lateness bound keeps
    #: the delays of a young action far shorter).
    max_delay: float = attrs.field(default=120.0, validator=_positive)
    #: The shortest delay the adaptive mode may choose (> 0, at most max_delay). Default
    #: 0.25 s, or max_delay when that is lower: only a min_delay given above max_delay is
    #: refused.
    min_delay: float = attrs.field(
        default=attrs.Factory(lambda self: _default_min_delay(self.max_delay), takes_self=True),
        validator=_positive,
    )
    #: Each delay is multiplied by a random factor in ``[1 - jitter, 1]`` (a poll only ever
    #: comes earlier, so the lateness bound holds). Default 0.1.
    jitter: float = attrs.field(default=0.1)
    #: Overall deadline from the handle's start (monotonic clock), > 0; ``None`` (default) waits
    #: forever.
    timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    #: Give up when neither status nor progress changed for this long (> 0); ``None`` (default):
    #: never.
    stall_timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    #: Aim polls at the earliest finish the pace this client measured allows. Default True.
    adaptive: bool = attrs.field(default=True, validator=_flag)
    #: The lateness bound, as a fraction of what the user has waited (> 0): no gap between two
    #: polls is longer than ``max(max_lateness * max(wait, floor), initial_delay)``, the wait
    #: counted from the handle's start, or from the last poll that saw the action ENQUEUED
    #: once a poll saw it running; so an action is seen at most that long after its end,
    #: whatever its progress does, however long it queued before the handle met it. The
    #: floor is the 5th percentile of the durations learned for the action's type (they run
    #: from the creation), less the time from the action's start to the wait's start, for
    #: an action this client started (else 0, and 0 until five are learned, or with
    #: ``learn_durations=False``). ``created_at`` plays no part.
    #: ``None`` turns the bound off. Default 0.5.
    max_lateness: float | None = attrs.field(default=0.5, validator=_positive_or_none)
    #: Use the durations the client learned from finished actions of the same type: the
    #: first poll waits for the type's median, and the lateness bound's floor. Default True.
    learn_durations: bool = attrs.field(default=True, validator=_flag)
    #: Let a client that has learned nothing of an action's type fetch one ``list()`` page
    #: (100 items: the recent actions' durations per type) the first time a handle of an
    #: action it started, of that type, is still unfinished ``2 * initial_delay`` after the
    #: start (so short jobs, and
    #: scripts that never wait, send no such request): at most once per client, through the
    #: same gate, and never after the user gave the client learned state (``list()``,
    #: ``durations.update()``/``learn_from_list()``), after ``close()``, while anything
    #: waits in the gate, or while the budget is short. Its durations give the lateness
    #: bound its learned floor at once. Needs ``learn_durations``. Default True.
    warm_start: bool = attrs.field(default=True, validator=_flag)

    @multiplier.validator
    def _check_multiplier(self, attribute: attrs.Attribute[float], value: float) -> None:
        if _number(attribute, value) < 1:
            raise ConfigurationError(f"multiplier must be a finite number >= 1, got {value!r}")

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= _number(attribute, value) < 1:
            raise ConfigurationError(f"jitter must be in [0, 1), got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.min_delay > self.max_delay:
            raise ConfigurationError(
                f"min_delay ({self.min_delay!r} s) must not exceed max_delay "
                f"({self.max_delay!r} s): lower min_delay too"
            )

    def delays(self) -> Generator[float, None, None]:
        """The plain growth schedule: the delays after each poll, in seconds, before jitter."""
        gen = backoff.expo(
            base=self.multiplier, factor=self.initial_delay, max_value=self.max_delay
        )
        next(gen)  # prime: backoff's wait generators expect one send(None) first
        yield from gen

    def jittered(self, delay: float, rng: random.Random | None = None) -> float:
        """*delay* with this policy's jitter applied, never above :attr:`max_delay`."""
        if self.jitter:
            delay *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(delay, self.max_delay)
