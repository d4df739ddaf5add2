"""VoucherifyClient: configuration, the session's lifetime, and the async actions resource."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Future
from types import TracebackType
from typing import Final, NoReturn, Self

import aiohttp
from yarl import URL

from ._actions import AsyncActions
from ._config import (
    DEFAULT_BUDGET_WINDOW,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ENV_APP_ID,
    ENV_APP_TOKEN,
    PollPolicy,
    resolve_base_url,
)
from ._errors import ConfigurationError, InvalidArgumentTypeError
from ._learning import Learning
from ._pacing import ABANDONED_HOLD, Budget, LocalGate
from ._shared import SharedPolling
from ._transport import Transport
from ._validate import finite, shown

__all__ = ["VoucherifyClient"]

_DEFAULT_POLICY: Final = PollPolicy()


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voucherify-async")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


USER_AGENT: Final = f"voucherify-async/{_library_version()}"


class VoucherifyClient:
    """An asyncio client for Voucherify's async actions.

    Use it as an async context manager, or call :meth:`close` yourself. Every request of the
    client, gets, lists and polls alike, passes one gate: at most *max_concurrency* in flight,
    at most *requests_per_minute* in any sliding window of *budget_window* seconds, and
    paused whenever the server says the budget is spent.

    :param app_id: The application id; default ``$VOUCHERIFY_APP_ID``.
    :param app_token: The secret key; default ``$VOUCHERIFY_APP_TOKEN``. Never logged or shown.
    :param oauth_token: An OAuth access token, sent as ``Authorization: Bearer``, instead of keys.
    :param cluster: ``"api"`` (EU, default), ``"us1.api"`` or ``"as1.api"``; any other value
        is a :class:`ConfigurationError`. Reach a dedicated region with *base_url*.
    :param base_url: Overrides *cluster*; default ``$VOUCHERIFY_BASE_URL``. The API root
        (``http://127.0.0.1:8080``), without ``/v1``: one ending in ``/v1`` or ``/v2`` is
        refused, as every path the client sends starts with its version.
    :param session: An :class:`aiohttp.ClientSession` to borrow; it is never closed here.
    :param timeout: Seconds per HTTP request, finite and > 0 (default 30), or an
        :class:`aiohttp.ClientTimeout`.
    :param max_retries: Extra attempts on connection errors, timeouts, 429 and 5xx, an integer
        >= 0 (default 4; 0: no retry).
    :param max_concurrency: HTTP requests in flight at once, an integer >= 1 (default 16).
    :param requests_per_minute: The client-wide budget, an integer >= 1; ``None`` (default):
        no local cap (the server's ``X-Rate-Limit-*`` headers still pace every request, see
        :doc:`concepts`).
    :param requests_per_hour: The same as a budget per hour (a Sandbox project allows 100):
        at most this many in any sliding window of ``60 * budget_window`` seconds. Give one
        of *requests_per_minute*, *requests_per_hour* and *budget*, or none.
    :param budget: A budget shared with other processes (``voucherify_async.redis.RedisBudget``);
        replaces *requests_per_minute*. Default ``None``: the in-process gate.
    :param budget_window: The window of that budget in seconds, finite and > 0 (default 60;
        change it only to time-scale tests and benchmarks).
    :param shared_polling: Polls shared with other processes
        (``voucherify_async.redis.RedisPolling``): one process polls each action id and the
        others follow its snapshots. Default ``None``: every client polls for itself.
    :param learning: Learned durations shared with other processes
        (``voucherify_async.redis.RedisLearning``): loaded when the client starts (``async
        with``, or its first handle), merged as it learns. Default ``None``: per process.
    :param poll_policy: The default :class:`PollPolicy` of handles.
    :param api_version: Sent as ``X-Voucherify-API-Version`` when set.
    :param allow_insecure_http: Allow credentials over plain http to hosts other than loopback.
    :param user_agent: Appended to ``voucherify-async/<version>`` in the User-Agent.

    Every bad option raises :class:`ConfigurationError` (also a ``ValueError``) naming it,
    before anything is opened.
    """

    def __init__(
        self,
        app_id: str | None = None,
        app_token: str | None = None,
        *,
        oauth_token: str | None = None,
        cluster: str = "api",
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        requests_per_minute: int | None = None,
        budget: Budget | None = None,
        budget_window: float = DEFAULT_BUDGET_WINDOW,
        shared_polling: SharedPolling | None = None,
        learning: Learning | None = None,
        poll_policy: PollPolicy = _DEFAULT_POLICY,
        requests_per_hour: int | None = None,
        api_version: str | None = None,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
    ) -> None:
        headers = _auth_headers(app_id, app_token, oauth_token)
        _check_int("max_retries", max_retries, minimum=0)
        _check_int("max_concurrency", max_concurrency, minimum=1)
        if requests_per_minute is not None:
            _check_int("requests_per_minute", requests_per_minute, minimum=1)
        if (
            isinstance(budget_window, bool)
            or not isinstance(budget_window, int | float)
            or not finite(budget_window)
            or budget_window <= 0
        ):
            raise ConfigurationError(
                f"budget_window must be a finite number of seconds > 0, got {shown(budget_window)}"
            )
        if not isinstance(poll_policy, PollPolicy):
            raise ConfigurationError("poll_policy must be a PollPolicy")
        if budget is not None and not callable(getattr(budget, "make_gate", None)):
            raise ConfigurationError(
                f"budget must be a Budget (like RedisBudget), got {type(budget).__name__}"
            )
        if shared_polling is not None and not callable(getattr(shared_polling, "poller", None)):
            raise ConfigurationError(
                "shared_polling must be a SharedPolling (like RedisPolling), "
                f"got {type(shared_polling).__name__}"
            )
        self._base_url = resolve_base_url(
            cluster, base_url, allow_insecure_http=allow_insecure_http
        )
        agent = f"{USER_AGENT} {user_agent}" if user_agent else USER_AGENT
        headers.update(
            {
                "Accept": "application/json",
                "User-Agent": agent,
                "X-Voucherify-Channel": USER_AGENT,
            }
        )
        if api_version is not None:
            headers["X-Voucherify-API-Version"] = api_version
        for name, value in headers.items():
            _check_header(name, value)
        client_timeout = _client_timeout(timeout)
        # A request without an answer may reach the server as late as its timeout allows,
        # and a stalled server may read one the client gave up on even later.
        hold = max(client_timeout.total or DEFAULT_TIMEOUT, ABANDONED_HOLD)
        account = _account_key(headers, self._base_url)
        try:
            given = [requests_per_minute, requests_per_hour, budget]
            if sum(option is not None for option in given) > 1:
                raise ConfigurationError(
                    "pass one of requests_per_minute, requests_per_hour and budget, not several"
                )
            if budget is not None:
                gate = budget.make_gate(
                    concurrency=max_concurrency,
                    unanswered_hold=hold,
                    account=account,
                )
            else:
                hourly = requests_per_hour is not None
                limit = requests_per_hour if hourly else requests_per_minute
                gate = LocalGate(
                    concurrency=max_concurrency,
                    limit=limit,
                    window=budget_window * 60 if hourly else budget_window,
                    unanswered_hold=hold,
                    # Without a budget of its own, only the server's allowance protects the
                    # account: the first request goes alone, and its answer says how many
                    # may follow.
                    probe_first=limit is None,
                )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self._auth_kind = "oauth" if "Authorization" in headers else "app keys"
        self._gate = gate
        self._transport = Transport(
            base_url=self._base_url,
            headers=headers,
            timeout=client_timeout,
            max_retries=max_retries,
            gate=gate,
            concurrency=max_concurrency,
            session=session,
        )
        self._poll_policy = poll_policy
        #: The async actions resource: get, list, iterate, handle, wait, wait_all, as_completed.
        try:
            self.async_actions = AsyncActions(
                self._transport,
                poll_policy,
                shared=shared_polling,
                account=account,
                learning=learning,
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    @property
    def poll_policy(self) -> PollPolicy:
        """The default :class:`PollPolicy` of the handles this client starts."""
        return self._poll_policy

    @property
    def base_url(self) -> str:
        """The API root the client talks to, e.g. ``https://api.voucherify.io``."""
        return self._base_url

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._transport.closed

    def __repr__(self) -> str:
        closed = " closed" if self.closed else ""
        return f"<VoucherifyClient {self._base_url} auth={self._auth_kind}{closed}>"

    async def __aenter__(self) -> Self:
        await self.async_actions._load_learned()
        return self

    def __enter__(self) -> NoReturn:
        raise InvalidArgumentTypeError(
            "VoucherifyClient is an async context manager: use `async with "
            "VoucherifyClient(...) as client:` inside async code"
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ raises
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every handle's polling, end every pending call, and close an owned session.

        Awaiters of handles still polling get :class:`ClientClosedError`; so do plain calls
        (``get``, ``list``...) still waiting for the gate, in flight or between retries. When it
        returns, nothing of the client runs any more. Calling it twice is fine, and it works
        from any event loop.

        From a loop other than the client's own: while that loop runs (in another thread), the
        close runs there and this waits for it; while it is stopped but not closed, it runs
        that loop in a worker thread until the close is done; once it is closed, nothing of
        it can run again, so this only marks the client closed and closes the session.
        """
        owner = self._transport.loop
        running = asyncio.get_running_loop()
        if owner is not None and owner is not running and not owner.is_closed():
            if owner.is_running():
                done = asyncio.run_coroutine_threadsafe(self.close(), owner)
                if await _finished_on(owner, done):
                    return
                # The owner loop was closed before running the close to its end.
            else:
                await asyncio.to_thread(owner.run_until_complete, self.close())
                return
        await self.async_actions._close()
        await self._transport.close()
        # Let aiohttp finish closing its transports before the loop moves on.
        await asyncio.sleep(0)


# How often a close() sent to another loop checks that this loop still runs: a loop has no
# "stopped" callback, and ``run_until_complete()`` stops it as soon as its own coroutine ends,
# maybe before the close sent to it ran to its end. Longer delays a close() that finds its
# owner loop stopped by that much; shorter costs wake-ups of the closing loop while it waits.
_OWNER_CHECK_S: Final = 0.05


async def _finished_on(owner: asyncio.AbstractEventLoop, done: Future[None]) -> bool:
    """Wait for *done*, a close sent to the *owner* loop; True once it finished there.

    When the owner stops before finishing it (``run_until_complete()`` returned), run the
    owner in a worker thread until it does; False when the owner was closed meanwhile
    (nothing of it can run again).
    """
    waiter = asyncio.wrap_future(done)
    while True:
        finished, _ = await asyncio.wait({waiter}, timeout=_OWNER_CHECK_S)
        if finished:
            waiter.result()
            return True
        if owner.is_closed():
            waiter.cancel()
            return False
        if owner.is_running():
            continue
        try:
            await asyncio.to_thread(_run_until, owner, done)
        except RuntimeError:  # its thread started it again (or closed it) meanwhile
            continue


def _run_until(owner: asyncio.AbstractEventLoop, done: Future[None]) -> None:
    """Run the stopped *owner* loop until *done* (a future of another thread) is set."""

    async def wait() -> None:
        await asyncio.wrap_future(done)

    owner.run_until_complete(wait())


def _auth_headers(
    app_id: str | None, app_token: str | None, oauth_token: str | None
) -> dict[str, str]:
    if oauth_token is not None:
        if not oauth_token:
            raise ConfigurationError("oauth_token is empty")
        if app_id is not None or app_token is not None:
            raise ConfigurationError("pass either app_id and app_token, or oauth_token, not both")
        return {"Authorization": f"Bearer {oauth_token}"}
    app_id = app_id if app_id is not None else os.environ.get(ENV_APP_ID)
    app_token = app_token if app_token is not None else os.environ.get(ENV_APP_TOKEN)
    missing = [name for name, value in (("app_id", app_id), ("app_token", app_token)) if not value]
    if missing:
        raise ConfigurationError(
            f"missing credentials: {' and '.join(missing)} (pass them, set {ENV_APP_ID} and "
            f"{ENV_APP_TOKEN}, or pass oauth_token)"
        )
    assert app_id is not None and app_token is not None
    return {"X-App-Id": app_id, "X-App-Token": app_token}


def _client_timeout(timeout: object) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if (
        isinstance(timeout, int | float)
        and not isinstance(timeout, bool)
        and finite(timeout)
        and timeout > 0
    ):
        return aiohttp.ClientTimeout(total=float(timeout))
    raise ConfigurationError(
        f"timeout must be a finite number of seconds > 0 or a ClientTimeout, got {shown(timeout)}"
    )


def _account_key(headers: dict[str, str], base_url: str) -> str | None:
    """A name for the account a shared budget counts for: the host and the app id.

    Never a token: with an OAuth token (which changes every 15 minutes) there is no stable
    name, and the budget must be given one of its own.
    """
    app_id = headers.get("X-App-Id")
    return None if app_id is None else f"{URL(base_url).host}:{app_id}"


def _check_int(name: str, value: object, *, minimum: int) -> None:
    """An integer option: ``bool``, floats (even ``2.0``) and strings are refused by name."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_header(name: str, value: str) -> None:
    if not isinstance(value, str) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        # Never echo the value: it may be a secret.
        raise ConfigurationError(
            f"the value for header {name} must be text without control characters"
        )
