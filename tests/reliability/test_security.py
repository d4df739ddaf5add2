"""Security: ids stay in their path segment, secrets stay secret, transport stays safe.

Hostile ids and end dates never leave their URL component (checked on the raw request line the
server got); the app token and the OAuth token never show in any log record at any level (ours,
aiohttp's, asyncio's, the root logger's), in reprs, or in errors' str, repr, args, tracebacks or
pickles; credentials never travel over plain http to a host that is not loopback, not even by a
redirect; TLS certificates are verified by default; the emulator listens on loopback only unless
told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import pickle
import re
import shutil
import ssl
import subprocess
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import example as explicit_example
from hypothesis import strategies as st
from yarl import URL

from voucherify_async import (
    APIError,
    AsyncActionFailed,
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    NotFoundError,
    PollPolicy,
    PollTimeout,
    ResponseDecodeError,
    TransportError,
    VoucherifyClient,
)
from voucherify_async._cli import main as cli_main
from voucherify_async.testing import (
    Delay,
    DropMidBody,
    Status,
    Truncate,
    VoucherifyEmulator,
    fast_polling,
    serve,
)

APP_ID = "security-app-id"
#: The secrets under watch; neither may appear anywhere a user or a log aggregator can see.
APP_TOKEN = "tok-SECRET-3c9e1f0a"
OAUTH_TOKEN = "oauth-SECRET-8d2a77b4"
SECRETS = (APP_TOKEN, OAUTH_TOKEN)

HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = PollPolicy(initial_delay=0.01, multiplier=1.0, max_delay=0.01, min_delay=0.01, jitter=0)
PREFIX = "/v1/async-actions"

# --- hostile ids and query values ---------------------------------------------------------

#: Characters that mean something in a URL or an HTTP request, and any other character.
_hostile = st.sampled_from([*"/?#%.\\\r\n\x00 ;&=+@:~[]", "..", "%2F", "%00", "\u2215"])
hostile_text = st.lists(_hostile | st.characters(), min_size=1, max_size=12).map("".join)

#: A percent-encoded path segment: unreserved characters and %XX escapes only.
_ENCODED_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})+")


def run_examples(test: Callable[[asyncio.Runner, VoucherifyEmulator, VoucherifyClient], None]):
    """Run *test* with one loop, one emulator and one client shared by all its examples."""
    with asyncio.Runner() as runner:
        emulator = VoucherifyEmulator(app_id=APP_ID, app_token=APP_TOKEN, seed=9)
        runner.run(emulator.start())
        client = VoucherifyClient(APP_ID, APP_TOKEN, base_url=emulator.base_url)
        try:
            test(runner, emulator, client)
        finally:
            runner.run(client.close())
            runner.run(emulator.close())


def test_hostile_ids_never_leave_their_segment() -> None:
    """Any id reaches the server as one fully percent-encoded segment that decodes to it."""

    def test(runner: asyncio.Runner, emulator: VoucherifyEmulator, client: VoucherifyClient):
        @HYPOTHESIS
        @given(hostile_text)
        @explicit_example("\ud800")  # an exploring run found it: refused, never sent
        def example(action_id: str) -> None:
            seen = len(emulator.requests)
            if not _is_text(action_id):  # a lone surrogate cannot go on the wire at all
                with pytest.raises(InvalidArgumentError, match="valid text"):
                    runner.run(client.async_actions.get(action_id))
                assert len(emulator.requests) == seen
                return
            if action_id in (".", ".."):  # dot-segments: refused, never sent
                with pytest.raises(InvalidArgumentError, match="dot-segment"):
                    runner.run(client.async_actions.get(action_id))
                assert len(emulator.requests) == seen
                return
            with pytest.raises(NotFoundError):
                runner.run(client.async_actions.get(action_id))
            (request,) = emulator.requests[seen:]
            assert request.raw_path.startswith(PREFIX + "/")
            segment = request.raw_path[len(PREFIX) + 1 :]
            assert _ENCODED_SEGMENT.fullmatch(segment), segment
            assert segment.strip(".") != ""  # never a dot-segment a resolver would eat
            assert unquote(segment) == action_id == request.action_id
            assert request.query == {}
            assert not set(request.headers) - set(emulator.requests[0].headers)

        example()

    run_examples(test)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_hostile_end_dates_stay_in_their_query_value() -> None:
    """Any end_date string reaches the server as the end_date value only, the limit untouched."""

    def test(runner: asyncio.Runner, emulator: VoucherifyEmulator, client: VoucherifyClient):
        @HYPOTHESIS
        @given(hostile_text)
        @explicit_example("\ud800")
        def example(end_date: str) -> None:
            seen = len(emulator.requests)
            if not _is_text(end_date):  # a lone surrogate cannot go on the wire at all
                with pytest.raises(ValueError, match="end_date"):
                    runner.run(client.async_actions.list(limit=5, end_date=end_date))
                assert len(emulator.requests) == seen
                return
            with contextlib.suppress(APIError):  # 400 for a date the API cannot read
                runner.run(client.async_actions.list(limit=5, end_date=end_date))
            (request,) = emulator.requests[seen:]
            assert request.raw_path == PREFIX
            assert request.query == {"limit": "5", "end_date": end_date}

        example()

    run_examples(test)


# --- secrets ------------------------------------------------------------------------------

#: Loggers that could see a request: ours, aiohttp's (client and server side), asyncio's.
LOGGERS = (
    "voucherify_async",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.access",
    "aiohttp.internal",
    "aiohttp.web",
    "asyncio",
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.texts += [self.format(record), repr(vars(record))]


@contextlib.contextmanager
def every_log_record() -> Iterator[_Records]:
    """Capture every record at DEBUG and above: on our logger and on the root logger."""
    handler = _Records()
    ours, root = logging.getLogger("voucherify_async"), logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    root_level = root.level
    ours.addHandler(handler)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        ours.removeHandler(handler)
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def error_texts(error: BaseException) -> list[str]:
    """Everything an error shows: str, repr, args, traceback, attributes, down the whole chain."""
    texts = ["".join(traceback.format_exception(error))]
    for link in _chain(error):
        texts += [str(link), repr(link), repr(link.args)]
        texts += [repr(value) for value in vars(link).values()]
    texts.append(pickle.dumps(error).decode("latin-1"))
    return texts


async def _outcome(awaitable: Any) -> BaseException | None:
    try:
        await awaitable
    except Exception as error:
        return error
    return None


async def _exercise(client: VoucherifyClient, slow: VoucherifyClient, emulator: VoucherifyEmulator):
    """Drive *client* through successes, retries and every error kind; return what it saw."""
    errors: list[BaseException | None] = []
    shown: list[str] = [repr(client), repr(slow)]
    never = emulator.add_action(duration=None)
    done = emulator.add_action(duration=0)
    failed = emulator.add_action(duration=0, status="FAILED")
    await client.async_actions.get(done)
    await client.async_actions.list(limit=2)
    emulator.inject(Status(503), action_id=done)
    emulator.inject(
        Status(429, headers={"Retry-After": "0"}, rate_limit_headers=False), action_id=done
    )
    await client.async_actions.get(done)
    for fault, expected in (
        (DropMidBody(), TransportError),
        (Truncate(), ResponseDecodeError),
        (Status(404), NotFoundError),
        (Status(500), APIError),
    ):
        emulator.inject(fault, times=None, action_id=done)
        errors.append(await _outcome(client.async_actions.get(done)))
        assert isinstance(errors[-1], expected), repr(errors[-1])
        emulator.clear_faults()
    emulator.inject(Delay(1.0), times=None, action_id=never)
    errors.append(await _outcome(slow.async_actions.get(never)))
    emulator.clear_faults()
    handle = client.async_actions.handle(failed)
    errors.append(await _outcome(handle))
    shown.append(repr(handle))
    emulator.inject(Status(502), times=3, action_id=done)
    shown.append(repr(await client.async_actions.handle(done)))
    errors.append(await _outcome(client.async_actions.wait(never, timeout=0.05)))
    emulator.inject(Status(503), times=None, action_id=never)
    late = client.async_actions.handle(never, policy=PollPolicy(initial_delay=0.01, timeout=0.1))
    errors.append(await _outcome(late))
    shown.append(repr(late))
    emulator.clear_faults()
    kinds = {type(error) for error in errors}
    assert {AsyncActionFailed, PollTimeout, TransportError, ResponseDecodeError} <= kinds
    return errors, shown


async def test_tokens_never_leak(unused_tcp_port: int) -> None:
    """Neither token shows in any log record, repr, error text, traceback or pickle."""
    texts: list[str] = []
    with every_log_record() as log, fast_polling(0.01):
        async with (
            VoucherifyEmulator(seed=4) as open_door,
            VoucherifyEmulator(app_id="x", app_token="y", oauth_token="z") as closed_door,
        ):
            for credentials in (
                {"app_id": APP_ID, "app_token": APP_TOKEN},
                {"oauth_token": OAUTH_TOKEN},
            ):
                options = {"max_retries": 2, "poll_policy": QUICK, **credentials}
                async with (
                    VoucherifyClient(base_url=open_door.base_url, **options) as client,
                    VoucherifyClient(base_url=open_door.base_url, timeout=0.2, **options) as slow,
                    VoucherifyClient(base_url=closed_door.base_url, **options) as refused,
                    VoucherifyClient(
                        base_url=f"http://127.0.0.1:{unused_tcp_port}", **options
                    ) as nowhere,
                ):
                    errors, shown = await _exercise(client, slow, open_door)
                    errors.append(await _outcome(refused.async_actions.get("aa_1")))
                    assert isinstance(errors[-1], AuthenticationError)
                    errors.append(await _outcome(nowhere.async_actions.get("aa_1")))
                    assert isinstance(errors[-1], TransportError)
                    texts += [*shown, repr(refused), repr(nowhere)]
                    for error in errors:
                        assert error is not None
                        texts += error_texts(error)
    texts += log.texts
    assert "voucherify_async" in {r.name for r in log.records}
    assert {r.levelno for r in log.records} >= {logging.DEBUG, logging.WARNING}
    leaks = [text for text in texts if any(secret in text for secret in SECRETS)]
    assert leaks == []


async def test_poll_timeout_pickles(emulator: VoucherifyEmulator, make_client: Any) -> None:
    """A PollTimeout survives pickling, like every other error (its handle does not travel)."""
    client = make_client(poll_policy=QUICK)
    with pytest.raises(PollTimeout) as info:
        await client.async_actions.wait(emulator.add_action(duration=None), timeout=0.05)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    assert again.latest == info.value.latest


# --- plain http, redirects, base URLs -----------------------------------------------------

REMOTE_HTTP = [
    "http://api.voucherify.io",
    "http://api.example.com:8080",
    "http://0.0.0.0:8080",
    "http://[::]:8080",
    "http://10.0.0.1",
    "http://127.0.0.1.nip.io",
    "http://localhost.example.com",
    "http://127.1",
    "http://2130706433",
    "http://0x7f000001",
    "http://[::ffff:7f00:1]",
    "HTTP://EXAMPLE.COM",
]
LOOPBACK_HTTP = [
    "http://127.0.0.1:1",
    "http://127.255.255.254",
    "http://localhost",
    "http://LOCALHOST:80",
    "http://localhost.",
    "http://[::1]:8080",
]


def _is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.mark.parametrize("url", REMOTE_HTTP)
def test_plain_http_to_remote_hosts_needs_opt_in(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote plain-http base URL, given or from the environment, needs allow_insecure_http."""
    with pytest.raises(ConfigurationError, match="plain http"):
        VoucherifyClient("a", "b", base_url=url)
    monkeypatch.setenv("VOUCHERIFY_BASE_URL", url)
    with pytest.raises(ConfigurationError, match="plain http"):
        VoucherifyClient("a", "b")
    assert VoucherifyClient("a", "b", allow_insecure_http=True).base_url.lower() == url.lower()


@pytest.mark.parametrize("url", LOOPBACK_HTTP)
def test_plain_http_to_loopback_is_fine(url: str) -> None:
    """Loopback hosts take plain http without the opt-in."""
    client = VoucherifyClient("a", "b", base_url=url)
    assert _is_loopback_host(URL(client.base_url).host)


_host_parts = st.sampled_from(
    ["127.0.0.1", "localhost", "[::1]", "evil.com", "0", "@", ":", "%2e", ".", "\t", "\\", "#", "/"]
)
hosts = st.lists(_host_parts | st.text(max_size=4), min_size=1, max_size=5).map("".join)


@HYPOTHESIS
@given(hosts)
def test_plain_http_is_accepted_for_loopback_only(host: str) -> None:
    """Whatever the base URL, one accepted for plain http without opt-in points at loopback."""
    try:
        client = VoucherifyClient("a", "b", base_url=f"http://{host}")
    except ConfigurationError:
        return
    # yarl parses the URL the requests go to: it must agree with the check.
    assert _is_loopback_host(URL(client._transport.root).host), client.base_url


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]evil.com",
        "http://[::1",
        "http://[evil.com]",
        "http://127.0.0.1:99999",
        "http://[::1]@",
        "http://[::1]@/v1",
        "https://[::1]@:443",
    ],
)
def test_malformed_base_url_is_configuration_error(url: str) -> None:
    """A base URL that cannot be parsed is a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        VoucherifyClient("a", "b", base_url=url)


_netloc_parts = st.sampled_from(
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "[",
        "]",
        "::1",
        "[::ffff:127.0.0.1]",
        "[fe80::1%25eth0]",
        "evil.com",
        "xn--",
        "\u0130",
        "\uff0e",
        "@",
        ":",
        ":0",
        ":65536",
        ":-1",
        "%",
        "%00",
        "%2e",
        ".",
        " ",
        "\t",
        "\\",
        "#",
        "?",
        "/",
    ]
)
netlocs = st.lists(_netloc_parts | st.text(max_size=3), min_size=0, max_size=6).map("".join)


@HYPOTHESIS
@given(st.sampled_from(["http", "https", "HTTP", "ftp", ""]), netlocs, st.booleans())
def test_odd_base_urls_are_configuration_errors(scheme: str, netloc: str, insecure: bool) -> None:
    """Whatever the netloc, building a client ends in a client or a ConfigurationError.

    Never another exception type (yarl and urllib raise IndexError, TypeError or
    UnicodeError for some malformed netlocs).
    """
    url = f"{scheme}://{netloc}"
    try:
        client = VoucherifyClient("a", "b", base_url=url, allow_insecure_http=insecure)
    except ConfigurationError:
        return
    assert URL(client._transport.root).host


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_never_followed(
    status: int, emulator: VoucherifyEmulator, make_client: Any
) -> None:
    """A redirect to another host is an APIError: the credentials never reach that host."""
    async with VoucherifyEmulator() as elsewhere:
        action_id = emulator.add_action(duration=None)
        target = f"{elsewhere.base_url}{PREFIX}/{action_id}"
        emulator.inject(Status(status, headers={"Location": target}), times=None)
        client = make_client(poll_policy=QUICK)
        with pytest.raises(APIError) as info:
            await client.async_actions.get(action_id)
        assert type(info.value) is APIError and info.value.status == status
        with pytest.raises(APIError):
            await client.async_actions.handle(action_id)
        assert elsewhere.requests == []
        assert emulator.count(action_id) == 2


# --- TLS ----------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key, as PEM files.

    Made with the ``cryptography`` package when it is installed, else with the ``openssl``
    command; the test is skipped when neither is there.
    """
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    try:
        cert_pem, key_pem = _self_signed_with_cryptography()
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("needs the cryptography package or the openssl command")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(key_file), "-out", str(cert_file), "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True,
            capture_output=True,
        )  # fmt: skip
    else:
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
    return cert_file, key_file


def _self_signed_with_cryptography() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@contextlib.asynccontextmanager
async def https_server(tmp_path: Path) -> Any:
    """A local HTTPS server with a self-signed certificate serving one async action."""
    cert_file, key_file = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    served: list[str] = []

    async def action(request: web.Request) -> web.Response:
        served.append(request.path)
        body = {"id": request.match_info["id"], "type": "VOUCHERS.IMPORT", "status": "DONE"}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get(PREFIX + "/{id}", action)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    trusting = ssl.create_default_context(cafile=str(cert_file))
    try:
        yield f"https://127.0.0.1:{port}", trusting, served
    finally:
        await runner.cleanup()


async def test_tls_certificates_are_verified_by_default(tmp_path: Path) -> None:
    """A self-signed certificate is a TransportError caused by a certificate error; no request."""
    async with https_server(tmp_path) as (url, trusting, served):
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=url) as client:
            with pytest.raises(TransportError) as info:
                await client.async_actions.get("aa_1")
        cause = info.value.__cause__
        assert isinstance(cause, aiohttp.ClientConnectorCertificateError), repr(cause)
        assert isinstance(cause.certificate_error, ssl.SSLCertVerificationError)
        assert served == []  # the credentials never went out
        # Control: the same server, trusted, answers: the failure above was the verification.
        connector = aiohttp.TCPConnector(ssl=trusting)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            VoucherifyClient(APP_ID, APP_TOKEN, base_url=url, session=session) as client,
        ):
            assert (await client.async_actions.get("aa_1")).id == "aa_1"
        assert served == [f"{PREFIX}/aa_1"]


async def test_own_session_keeps_certificate_verification(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """The session the client creates verifies certificates (aiohttp's connector ssl=True)."""
    await client.async_actions.get(emulator.add_action(duration=None))
    session = client._transport._session
    assert session is not None
    ssl_setting = session.connector._ssl  # type: ignore[union-attr]
    assert ssl_setting is True, ssl_setting


# --- the emulator binds loopback ----------------------------------------------------------


async def test_emulator_listens_on_loopback_by_default() -> None:
    """A default emulator binds 127.0.0.1 and nothing else."""
    async with VoucherifyEmulator() as emulator:
        url = URL(emulator.base_url)
        assert url.host == "127.0.0.1"
        runner = emulator._runner
        assert runner is not None
        assert all(ipaddress.ip_address(a[0]).is_loopback for a in runner.addresses)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.0.2.10", "10.1.2.3", "example.com", "localhost.example"]
)
async def test_emulator_refuses_remote_hosts(host: str) -> None:
    """A non-loopback host is a ValueError without allow_remote=True, before anything binds."""
    with pytest.raises(ValueError, match="allow_remote"):
        VoucherifyEmulator(host=host)
    with pytest.raises(ValueError, match="allow_remote"):
        await serve(host=host)
    VoucherifyEmulator(host=host, allow_remote=True)  # the opt-in constructs (not started here)


def test_cli_emulator_refuses_remote_host(capsys: pytest.CaptureFixture[str]) -> None:
    """``voucherify-async emulator --host 0.0.0.0`` exits with a usage error, naming the flag."""
    assert cli_main(["emulator", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


async def test_a_handle_ends_on_a_certificate_that_does_not_verify(tmp_path: Path) -> None:
    """get() and a handle agree: a TLS verification failure is final (TransportError.permanent)."""
    async with https_server(tmp_path) as (url, _, served):
        async with VoucherifyClient(APP_ID, APP_TOKEN, base_url=url) as client:
            with pytest.raises(TransportError) as got:
                await client.async_actions.get("aa_1")
            assert got.value.permanent
            async with asyncio.timeout(20):
                with pytest.raises(TransportError) as polled:
                    await client.async_actions.handle("aa_2")
            assert polled.value.permanent
        assert served == []
