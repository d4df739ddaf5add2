"""The client against the emulator: requests, errors, retries, pacing, ids, sessions, secrets."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import time
from collections.abc import Callable

import aiohttp
import pytest
from _servers import serve
from _support import APP_ID, APP_TOKEN
from aiohttp import web

from voucherify_async import (
    APIError,
    AsyncAction,
    AsyncActionStatus,
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VoucherifyClient,
    instrumentation,
)
from voucherify_async._actions import TARGETS_KEPT
from voucherify_async.testing import (
    Body,
    Delay,
    Drop,
    DropMidBody,
    Status,
    VoucherifyEmulator,
    fast_polling,
)

MakeClient = Callable[..., VoucherifyClient]


def gets(emulator: VoucherifyEmulator, action_id: str) -> list[float]:
    """Server-side times of the GETs the emulator served for *action_id*."""
    return [r.time for r in emulator.requests if r.action_id == action_id]


async def test_get_returns_typed_action(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A GET of a finished job gives the typed action with its result."""
    action_id = emulator.add_action(type="VOUCHERS.IMPORT", duration=0.01)
    emulator.finish(action_id)
    action = await client.async_actions.get(action_id)
    assert isinstance(action, AsyncAction)
    assert action.id == action_id
    assert action.status is AsyncActionStatus.DONE
    assert action.result is not None
    assert action.created_at is not None and action.created_at.tzinfo is not None


async def test_request_headers(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """Requests carry the app keys, our User-Agent and channel, Accept and the API version."""
    client = make_client(api_version="v2018-08-01", user_agent="my-app/1.2")
    action_id = emulator.add_action(duration=None)
    await client.async_actions.get(action_id)
    headers = emulator.requests[-1].headers
    assert headers["X-App-Id"] == APP_ID
    assert headers["X-App-Token"] == "***"  # the emulator's log redacts it
    assert headers["User-Agent"].startswith("voucherify-async/")
    assert headers["User-Agent"].endswith(" my-app/1.2")
    assert headers["X-Voucherify-Channel"].startswith("voucherify-async/")
    assert headers["X-Voucherify-API-Version"] == "v2018-08-01"
    assert headers["Accept"] == "application/json"


async def test_oauth_token_sent_as_bearer(
    make_client: MakeClient, emulator: VoucherifyEmulator
) -> None:
    """An oauth_token goes out as Authorization: Bearer, with no app keys."""
    async with VoucherifyEmulator(oauth_token="oauth-SECRET") as emu:
        client = make_client(
            app_id=None, app_token=None, oauth_token="oauth-SECRET", base_url=emu.base_url
        )
        action_id = emu.add_action(duration=None)
        await client.async_actions.get(action_id)
        assert emu.requests[-1].headers["Authorization"] == "***"
        assert "X-App-Id" not in emu.requests[-1].headers


async def test_not_found(emulator: VoucherifyEmulator, client: VoucherifyClient) -> None:
    """404 is a NotFoundError with the body's key, request_id and resource fields; no retry."""
    with pytest.raises(NotFoundError) as info:
        await client.async_actions.get("aa_missing")
    error = info.value
    assert error.status == 404
    assert error.key == "not_found"
    assert error.request_id
    assert error.resource_id == "aa_missing"
    assert error.resource_type == "async_action"
    assert "404" in str(error) and error.request_id in str(error)
    assert emulator.count("aa_missing") == 1


async def test_wrong_token_is_authentication_error_without_retry(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """401 raises AuthenticationError after exactly one request."""
    client = make_client(app_token="wrong-token-SECRET")
    action_id = emulator.add_action(duration=None)
    with pytest.raises(AuthenticationError) as info:
        await client.async_actions.get(action_id)
    assert info.value.status == 401
    assert len(emulator.requests) == 1
    assert "wrong-token-SECRET" not in str(info.value) + repr(info.value)


async def test_bad_request_is_api_error(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A 400 is a plain APIError with the body's fields; never retried."""
    action_id = emulator.add_action(duration=None)
    body = (
        b'{"code":400,"key":"invalid_query_params","message":"Invalid query params",'
        b'"request_id":"v-1"}'
    )
    emulator.inject(Status(400, body=body), times=1)
    with pytest.raises(APIError) as info:
        await client.async_actions.get(action_id)
    assert type(info.value) is APIError
    assert (info.value.status, info.value.key, info.value.request_id) == (
        400,
        "invalid_query_params",
        "v-1",
    )
    assert emulator.count(action_id) == 1


async def test_html_502_then_success(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A proxy's HTML 502 is retried and the next 200 wins."""
    action_id = emulator.add_action(duration=None)
    emulator.inject(
        Status(502, body=b"<html><body>Bad Gateway</body></html>", content_type="text/html")
    )
    with fast_polling():
        action = await client.async_actions.get(action_id)
    assert action.id == action_id
    assert emulator.count(action_id) == 2


async def test_persistent_503_exhausts_retries(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """A 503 that never ends is a ServerError after exactly max_retries + 1 requests."""
    client = make_client(max_retries=3)
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(503), times=100)
    with fast_polling(), pytest.raises(ServerError) as info:
        await client.async_actions.get(action_id)
    assert info.value.status == 503
    assert emulator.count(action_id) == 4


async def test_429_retry_after_is_obeyed(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """After a 429 with Retry-After: 1, the next request reaches the server at least 1 s later."""
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(429, headers={"Retry-After": "1"}))
    with fast_polling():  # our own delays vanish; the server's demand does not
        await client.async_actions.get(action_id)
    first, second = gets(emulator, action_id)
    assert second - first >= 1.0


async def test_429_pauses_the_whole_client(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A 429 for one request holds back every other request of the client until Retry-After."""
    limited = emulator.add_action(duration=None)
    other = emulator.add_action(duration=None)
    emulator.inject(Status(429, headers={"Retry-After": "1"}), action_id=limited)
    with fast_polling():
        await client.async_actions.get(limited)
        await client.async_actions.get(other)
    first_429 = gets(emulator, limited)[0]
    assert gets(emulator, other)[0] - first_429 >= 1.0


async def test_remaining_zero_pauses_until_retry(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """X-Rate-Limit-Remaining: 0 pauses the client until X-Rate-Limit-Retry, even on a 200."""
    action_id = emulator.add_action(duration=None)
    retry_at = int(time.time()) + 2
    emulator.inject(
        Status(200, headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Retry": str(retry_at)}),
        times=1,
    )
    with pytest.raises(ResponseDecodeError):  # the injected 200 has no action body
        await client.async_actions.get(action_id)
    await client.async_actions.get(action_id)
    walls = [r.wall for r in emulator.requests if r.action_id == action_id]
    assert walls[1] >= retry_at - 0.05


async def test_rate_limit_error_when_retries_run_out(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """Persistent 429s end in RateLimitError with retry_after from the header."""
    client = make_client(max_retries=1)
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(429, headers={"Retry-After": "0"}), times=10)
    with fast_polling(), pytest.raises(RateLimitError) as info:
        await client.async_actions.get(action_id)
    assert info.value.retry_after == 0
    assert info.value.message == "Too many requests hit the API too quickly."


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "1e20"},
        {"Retry-After": "1e308"},
        {"Retry-After": "99999999999"},
    ],
    ids=["1e20", "1e308", "11-digits"],
)
async def test_huge_retry_after_is_capped_in_the_error(
    emulator: VoucherifyEmulator, client: VoucherifyClient, headers: dict[str, str]
) -> None:
    """A 429 asking for an absurd pause is a RateLimitError whose retry_after and retry_at
    stop at the cap of the client's own pause (3600 s), never an OverflowError."""
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(429, headers=headers))
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(RateLimitError) as info:
        await client.async_actions.get(action_id)
    error = info.value
    assert error.retry_after is None or 0 < error.retry_after <= 3600
    assert error.retry_at is not None
    assert error.retry_at - before <= dt.timedelta(seconds=3600 + 60)
    assert emulator.count(action_id) == 1  # a pause longer than one call waits: no retry


@pytest.mark.parametrize(
    "body",
    [b'{"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "DO', b"not json at all", b"[1, 2, 3]"],
    ids=["truncated", "invalid", "not-an-object"],
)
async def test_undecodable_2xx_body(
    emulator: VoucherifyEmulator, client: VoucherifyClient, body: bytes
) -> None:
    """A 2xx body that is not an async action is a ResponseDecodeError, not retried."""
    action_id = emulator.add_action(duration=None)
    emulator.inject(Body(body))
    with pytest.raises(ResponseDecodeError) as info:
        await client.async_actions.get(action_id)
    assert info.value.status in (None, 200)
    assert emulator.count(action_id) == 1


async def test_dropped_connection_mid_body_is_retried(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A connection that drops mid-body, or before the headers, is retried."""
    action_id = emulator.add_action(duration=None)
    emulator.inject(DropMidBody())
    emulator.inject(Drop())
    with fast_polling():
        action = await client.async_actions.get(action_id)
    assert action.id == action_id
    assert emulator.count(action_id) == 3


async def test_connection_refused_is_transport_error(unused_tcp_port: int) -> None:
    """Nothing listening: a TransportError after the retries, the aiohttp error chained."""
    async with VoucherifyClient(
        APP_ID, APP_TOKEN, base_url=f"http://127.0.0.1:{unused_tcp_port}", max_retries=1
    ) as client:
        with fast_polling(), pytest.raises(TransportError) as info:
            await client.async_actions.get("aa_1")
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_budget_window_never_exceeded(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """70 concurrent gets under 60 per window: no window on the server ever holds more than 60."""
    window = 1.5  # time-scaled: the same limiter as 60 s, checked in seconds
    client = make_client(requests_per_minute=60, budget_window=window, max_concurrency=100)
    action_id = emulator.add_action(duration=None)
    await asyncio.gather(*(client.async_actions.get(action_id) for _ in range(70)))
    times = sorted(gets(emulator, action_id))
    assert len(times) == 70
    worst = max(sum(1 for t in times if start <= t < start + window) for start in times)
    assert worst <= 60
    assert times[60] - times[0] >= window  # the 61st waited for the first to leave the window


async def test_max_concurrency(emulator: VoucherifyEmulator, make_client: MakeClient) -> None:
    """With max_concurrency=3, a 4th request starts only after one of the first three answered."""
    client = make_client(max_concurrency=3)
    action_id = emulator.add_action(duration=None)
    emulator.inject(Delay(0.1), times=9)
    await asyncio.gather(*(client.async_actions.get(action_id) for _ in range(9)))
    arrivals = sorted(gets(emulator, action_id))
    assert all(
        later - earlier >= 0.09 for earlier, later in zip(arrivals, arrivals[3:], strict=False)
    )


@pytest.mark.parametrize(
    "action_id", ["../vouchers", "a/b?c#d", "%2F", "ąę-ü-日本", "x\r\nX-Injected: 1", "...", ".a"]
)
async def test_ids_stay_in_their_segment(
    emulator: VoucherifyEmulator, client: VoucherifyClient, action_id: str
) -> None:
    """Hostile ids reach the server as one encoded segment under /v1/async-actions/."""
    with pytest.raises(NotFoundError):
        await client.async_actions.get(action_id)
    (request,) = emulator.requests
    segment = request.raw_path.removeprefix("/v1/async-actions/")
    assert request.raw_path.startswith("/v1/async-actions/")
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert request.action_id == action_id
    assert "X-Injected" not in request.headers
    assert request.query == {}


@pytest.mark.parametrize("action_id", [".", ".."])
async def test_dot_segment_ids_are_refused_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient, action_id: str
) -> None:
    """ "." and ".." are refused: a normalising proxy may resolve them even percent-encoded."""
    with pytest.raises(InvalidArgumentError, match="dot-segment"):
        await client.async_actions.get(action_id)
    with pytest.raises(InvalidArgumentError, match="dot-segment"):
        await client.async_actions.delete_campaign(action_id)
    assert emulator.requests == []


async def test_empty_id_is_value_error_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """An empty id raises ValueError and sends nothing."""
    with pytest.raises(ValueError, match="empty"):
        await client.async_actions.get("")
    with pytest.raises(ValueError, match="valid text"):
        await client.async_actions.get("aa_\ud800")
    assert emulator.requests == []


async def test_an_ids_url_is_built_once_and_the_kept_ones_are_bounded(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """A second get() of an id asks the same path (its URL kept); a str subclass works; the
    URLs kept stay within TARGETS_KEPT ids, and a bad id is still a typed error."""

    class Id(str):
        pass

    action_id = emulator.add_action(duration=0)
    for asked in (action_id, action_id, Id(action_id)):
        assert (await client.async_actions.get(asked)).id == action_id
    assert [r.raw_path for r in emulator.requests] == [f"/v1/async-actions/{action_id}"] * 3
    actions = client.async_actions
    for n in range(TARGETS_KEPT + 10):
        actions._target(f"aa_{n}")
    assert len(actions._targets) == TARGETS_KEPT
    assert "aa_0" not in actions._targets and f"aa_{TARGETS_KEPT + 9}" in actions._targets
    with pytest.raises(InvalidArgumentTypeError):
        await actions.get(["aa_1"])  # type: ignore[arg-type]
    assert len(emulator.requests) == 3


async def test_list_and_limits(emulator: VoucherifyEmulator, client: VoucherifyClient) -> None:
    """list() gives a page without results; a limit outside 1-100 is refused before any request."""
    for _ in range(3):
        emulator.add_action(duration=None)
    page = await client.async_actions.list(limit=2)
    assert len(page.async_actions) == 2 and page.has_more is True
    assert all(item.result is None for item in page.async_actions)
    for bad in (0, 101):
        with pytest.raises(ValueError, match="limit"):
            await client.async_actions.list(limit=bad)
    assert len(emulator.requests) == 1


async def test_iterate_neither_skips_nor_repeats(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """iterate() pages by end_date and yields every action once, newest first."""
    ids = [emulator.add_action(duration=None) for _ in range(23)]
    seen = [action.id async for action in client.async_actions.iterate(page_size=5)]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    created = [emulator.action(i)["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)


async def test_borrowed_session_stays_open(emulator: VoucherifyEmulator) -> None:
    """A borrowed session is left open by close(); the client's own one is closed."""
    async with aiohttp.ClientSession() as session:
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url, session=session)
        await client.async_actions.get(emulator.add_action(duration=None))
        await client.close()
        assert not session.closed
    owned = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url)
    await owned.async_actions.get(emulator.add_action(duration=None))
    session = owned._transport._session
    assert session is not None
    await owned.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await owned.async_actions.get("aa_1")


async def test_tokens_never_leak(
    emulator: VoucherifyEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither token shows in repr(client), in DEBUG logs, or in any exception text."""
    caplog.set_level(logging.DEBUG, logger="voucherify_async")
    secret = "tok-SECRET-do-not-print"
    wrong = make_client(app_token=secret, max_retries=1)
    bearer = make_client(app_id=None, app_token=None, oauth_token=secret)
    action_id = emulator.add_action(duration=None)
    emulator.inject(Status(503), times=1)
    errors: list[BaseException] = []
    with fast_polling():
        for c in (wrong, bearer):
            try:
                await c.async_actions.get(action_id)
            except Exception as exc:
                errors.append(exc)
    assert errors
    texts = [repr(wrong), repr(bearer), caplog.text, *(str(e) + repr(e) for e in errors)]
    texts += [str(r.args) + r.getMessage() for r in caplog.records]
    assert not [t for t in texts if secret in t]
    assert "voucherify_async" in {r.name for r in caplog.records}


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No app keys and no oauth token is a ConfigurationError naming what is missing."""
    monkeypatch.delenv("VOUCHERIFY_APP_ID", raising=False)
    monkeypatch.delenv("VOUCHERIFY_APP_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="app_token"):
        VoucherifyClient("id-only")
    with pytest.raises(ConfigurationError, match="app_id and app_token"):
        VoucherifyClient()


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """App keys and the base URL default to the environment."""
    monkeypatch.setenv("VOUCHERIFY_APP_ID", "env-id")
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", "env-token")
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", "http://127.0.0.1:9")
    client = VoucherifyClient()
    assert client.base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("cluster", "url"),
    [("api", "https://api.voucherify.io"), ("us1.api", "https://us1.api.voucherify.io")],
)
def test_cluster_urls(cluster: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster picks the regional https host."""
    monkeypatch.delenv("VOUCHERIFY_BASE_URL", raising=False)
    assert VoucherifyClient("a", "b", cluster=cluster).base_url == url


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_base_url_is_refused(empty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty base URL, passed or from the environment, never means the production host."""
    monkeypatch.delenv("VOUCHERIFY_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="base_url is empty"):
        VoucherifyClient("a", "b", base_url=empty)
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", empty)
    with pytest.raises(ConfigurationError, match=r"\$VOUCHERIFY_BASE_URL is empty"):
        VoucherifyClient("a", "b")
    # A base_url given wins over the environment, empty or not.
    assert VoucherifyClient("a", "b", base_url="http://127.0.0.1:9").base_url.endswith(":9")


def test_plain_http_only_to_loopback() -> None:
    """Credentials never go over plain http to another host unless the user opts in."""
    with pytest.raises(ConfigurationError, match="plain http"):
        VoucherifyClient("a", "b", base_url="http://api.example.com")
    assert VoucherifyClient("a", "b", base_url="http://api.example.com", allow_insecure_http=True)
    assert VoucherifyClient("a", "b", base_url="http://[::1]:8080")
    assert VoucherifyClient("a", "b", base_url="http://localhost:8080")


def test_header_injection_in_credentials_is_refused() -> None:
    """A credential with CR/LF is refused at construction, without echoing it."""
    with pytest.raises(ConfigurationError) as info:
        VoucherifyClient("a", "tok\r\nX-Evil: 1")
    assert "X-Evil" not in str(info.value)


def test_a_plain_with_says_use_async_with() -> None:
    """`with VoucherifyClient()` is a typed error that says to use `async with`."""
    client = VoucherifyClient("a", "b", base_url="http://127.0.0.1:9")
    with pytest.raises(InvalidArgumentTypeError, match="use `async with"):  # noqa: SIM117
        with client:  # type: ignore[attr-defined]
            pass
    assert isinstance(InvalidArgumentTypeError("x"), TypeError)


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        ("https://api.voucherify.io/v1", "https://api.voucherify.io"),
        ("https://api.voucherify.io/v1/", "https://api.voucherify.io"),
        ("http://127.0.0.1:8080/proxy/v1", "http://127.0.0.1:8080/proxy"),
        ("http://127.0.0.1:8080/V2", "http://127.0.0.1:8080"),
    ],
)
def test_a_base_url_ending_in_a_version_is_refused_with_the_root(base_url: str, root: str) -> None:
    """A base_url ending in /v1 would send /v1/v1/...: refused, naming the root to use."""
    with pytest.raises(ConfigurationError, match=r"(?i)without /v") as info:
        VoucherifyClient("a", "b", base_url=base_url)
    assert repr(root) in str(info.value)


def test_a_base_url_with_a_path_of_its_own_is_kept() -> None:
    """A proxy prefix that is not a version stays part of the root."""
    client = VoucherifyClient("a", "b", base_url="http://127.0.0.1:8080/proxy/v1x")
    assert client.base_url == "http://127.0.0.1:8080/proxy/v1x"


async def test_a_host_never_reached_is_named_in_the_error() -> None:
    """A connection failure to a host that never answered says so (is base_url right?); once
    the host has answered, a later failure does not claim it never did."""
    import socket

    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with VoucherifyClient(
        "a", "b", base_url=f"http://127.0.0.1:{port}", max_retries=0
    ) as client:
        with pytest.raises(TransportError, match=r"no response from .* since this client started"):
            await client.async_actions.get("aa_1")

    async with VoucherifyEmulator() as emulator:
        action_id = emulator.add_action(duration=0.01)
        url = emulator.base_url
        client = VoucherifyClient("a", "b", base_url=url, max_retries=0)
        await client.async_actions.get(action_id)
    try:
        with pytest.raises(TransportError) as info:
            await client.async_actions.get(action_id)  # the emulator is gone now
        assert "no response from" not in str(info.value)
    finally:
        await client.close()


async def test_two_concurrent_closes_end_calls_in_flight_with_client_closed_error(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """close() twice at once: each call in flight still gets ClientClosedError, never a bare
    CancelledError (a second cancel that one uncancel() could not undo)."""
    client = make_client(requests_per_minute=600)  # a budget: no probe, all three go at once
    emulator.inject(Delay(60.0), times=3)
    calls = [asyncio.create_task(client.async_actions.get(f"aa_{i}")) for i in range(3)]
    await emulator.wait_for_requests(3)
    await asyncio.gather(client.close(), client.close())
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["ClientClosedError"] * 3


async def test_an_error_page_echoing_the_request_headers_does_not_leak_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy's error page that echoes the request's headers: the client's token shows in no
    error text, repr, body or log line (a 503 is retried and logged first, then a 400)."""
    answers = iter([503, 400])

    async def echo(request: web.Request) -> web.Response:
        body = {"message": "bad request", "details": f"headers: {dict(request.headers)}"}
        return web.json_response(body, status=next(answers))

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", echo)
    async with serve(app) as url:
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url, max_retries=1)
        async with client:
            with (
                caplog.at_level(logging.DEBUG, logger="voucherify_async"),
                pytest.raises(APIError) as caught,
            ):
                await client.async_actions.get("aa_1")
    error = caught.value
    assert error.status == 400 and "[token]" in str(error)
    for text in (str(error), repr(error), error.body or "", caplog.text):
        assert APP_TOKEN not in text


@pytest.mark.parametrize("skew", [3600.0, -30.0])
async def test_the_retry_epoch_is_read_against_the_servers_date(skew: float) -> None:
    """X-Rate-Limit-Retry is the server's epoch: read against the same answer's Date, a server
    clock an hour ahead asks 2 s (not an hour), one 30 s behind still asks 2 s (not nothing)."""

    async def limited(request: web.Request) -> web.Response:
        server_now = time.time() + skew
        headers = {
            "Date": email.utils.formatdate(server_now, usegmt=True),
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Retry": str(int(server_now) + 2),
        }
        return web.json_response({"code": 429, "message": "slow down"}, status=429, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", limited)
    async with serve(app) as url:
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=url, max_retries=0)
        async with client:
            with pytest.raises(RateLimitError) as caught:
                await client.async_actions.get("aa_1")
    retry_at = caught.value.retry_at
    assert retry_at is not None
    seconds = (retry_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 0 < seconds <= 3.0  # 2 s, plus up to 1 s as Date drops the fraction


async def test_remaining_zero_without_a_renewal_time_pauses_the_client() -> None:
    """X-Rate-Limit-Remaining: 0 with no X-Rate-Limit-Retry (nor Retry-After): the limit is
    spent and its renewal unknown, so the client pauses (a minute) instead of sending on."""
    pauses: list[instrumentation.ServerPauseEvent] = []
    instrumentation.set_on_server_pause_hooks([pauses.append])

    async def spent(request: web.Request) -> web.Response:
        body = {"id": "aa_1", "type": "VOUCHERS.IMPORT", "status": "IN_PROGRESS"}
        return web.json_response(body, headers={"X-Rate-Limit-Remaining": "0"})

    app = web.Application()
    app.router.add_get("/v1/async-actions/{id}", spent)
    async with serve(app) as url, VoucherifyClient(APP_ID, APP_TOKEN, base_url=url) as client:
        await client.async_actions.get("aa_1")
    assert [(p.seconds, p.cause) for p in pauses] == [(60.0, "rate_limit_remaining")]
