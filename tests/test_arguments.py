"""Bad arguments get a clear, typed error before anything happens (issue #12 items 6, 14, 15, 17).

The rule (``voucherify_async/_errors.py``): every exception the library raises on purpose is a
``VoucherifyError``; a bad argument is also a ``ValueError`` (``InvalidArgumentError``,
``ConfigurationError``) or, for a wrong type, a ``TypeError`` (``InvalidArgumentTypeError``);
a call on a closed client is also a ``RuntimeError`` (``ClientClosedError``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from _support import APP_ID, APP_TOKEN

from voucherify_async import (
    ClientClosedError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PollPolicy,
    VoucherifyClient,
    VoucherifyError,
    instrumentation,
    register_result_type,
)
from voucherify_async._config import CLUSTERS
from voucherify_async.testing import Delay, VoucherifyEmulator, fast_polling

MakeClient = Callable[..., VoucherifyClient]
NAN = math.nan
INF = math.inf
HUGE = 10**400  # beyond any float: float() of it raises OverflowError
P_HUGE = pytest.param(HUGE, id="10**400")

BAD_SECONDS: list[Any] = [NAN, INF, -INF, -1, -0.001, True, "1", b"1", [1], P_HUGE]


def _misuse(exc: BaseException) -> None:
    """*exc* follows the rule for a bad argument."""
    assert isinstance(exc, VoucherifyError), type(exc)
    assert isinstance(exc, ValueError | TypeError), type(exc)


# --- item 6: time arguments ----------------------------------------------------------------


@pytest.mark.parametrize("timeout", BAD_SECONDS)
async def test_waiting_calls_refuse_bad_timeouts_before_any_request(
    emulator: VoucherifyEmulator, client: VoucherifyClient, timeout: Any
) -> None:
    """result/wait/wait_all/as_completed: a NaN, infinite, negative or non-number timeout is
    refused at once; the event loop's timers stay sane (an unrelated sleep still wakes up)."""
    action_id = emulator.add_action(duration=None)
    actions = client.async_actions
    with pytest.raises(InvalidArgumentError, match="timeout") as info:
        await actions.wait(action_id, timeout=timeout)
    _misuse(info.value)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await actions.wait_all([action_id], timeout=timeout)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        async for _ in actions.as_completed([action_id], timeout=timeout):
            pass
    assert emulator.count() == 0  # refused before any handle or request
    handle = actions.handle(action_id)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await handle.result(timeout=timeout)
    handle.cancel()
    woke = asyncio.Event()
    asyncio.get_running_loop().call_later(0, woke.set)
    async with asyncio.timeout(10):
        await woke.wait()


async def test_zero_timeout_means_do_not_wait(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """timeout=0 is valid: look once, raise PollTimeout if the action has not ended."""
    action_id = emulator.add_action(duration=None)
    with pytest.raises(TimeoutError):
        await client.async_actions.wait(action_id, timeout=0)


@pytest.mark.parametrize("cap", [NAN, INF, -1, True, "0.1", P_HUGE])
def test_fast_polling_refuses_bad_caps_when_called(cap: Any) -> None:
    """fast_polling(max_delay=...) checks its cap at the call, before the ``with``."""
    with pytest.raises(InvalidArgumentError, match="max_delay") as info:
        fast_polling(cap)
    _misuse(info.value)
    with fast_polling(0):  # 0 is a valid cap: no delay at all
        pass


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("budget_window", NAN),
        ("budget_window", INF),
        ("budget_window", 0),
        ("budget_window", -60),
        ("budget_window", True),
        ("budget_window", "60"),
        ("max_concurrency", 2.5),
        ("max_concurrency", 0),
        ("max_concurrency", True),
        ("max_concurrency", "4"),
        ("max_retries", 1.5),
        ("max_retries", -1),
        ("max_retries", "2"),
        ("max_retries", None),
        ("requests_per_minute", "100"),
        ("requests_per_minute", 2.5),
        ("requests_per_minute", 0),
        ("requests_per_minute", True),
        ("timeout", NAN),
        ("timeout", 0),
        pytest.param("timeout", HUGE, id="timeout-10**400"),
        pytest.param("budget_window", HUGE, id="budget_window-10**400"),
        ("budget", 5),
        ("shared_polling", 5),
    ],
)
def test_constructor_refuses_bad_options_by_name(option: str, value: Any) -> None:
    """Every bad option is a ConfigurationError naming it, never a TypeError deep inside."""
    with pytest.raises(ConfigurationError, match=option) as info:
        VoucherifyClient(APP_ID, APP_TOKEN, **{option: value})
    _misuse(info.value)


@pytest.mark.parametrize(("option", "value"), [("max_concurrency", 2.5), ("budget_window", NAN)])
def test_options_are_checked_before_a_shared_budget_is_asked(option: str, value: Any) -> None:
    """With budget=..., options are still checked, before the factory builds a gate."""

    class Factory:
        def make_gate(self, **_: Any) -> Any:
            raise AssertionError("make_gate must not be reached")

    with pytest.raises(ConfigurationError, match=option):
        VoucherifyClient(APP_ID, APP_TOKEN, budget=Factory(), **{option: value})  # type: ignore[arg-type]


_POLICY_SWITCHES = ("adaptive", "learn_durations", "warm_start")
_POLICY_FLOATS = [f.name for f in attrs.fields(PollPolicy) if f.name not in _POLICY_SWITCHES]


@pytest.mark.parametrize("field", _POLICY_FLOATS)
@pytest.mark.parametrize("value", [NAN, INF, -INF, True, "1", None, P_HUGE])
def test_policy_fields_refuse_nonsense(field: str, value: Any) -> None:
    """NaN, infinity, bool or str in any PollPolicy field: ConfigurationError (a ValueError)."""
    if value is None and field in ("timeout", "stall_timeout", "max_lateness"):
        assert getattr(PollPolicy(**{field: None}), field) is None  # None: no limit
        return
    with pytest.raises(ConfigurationError, match=field) as info:
        PollPolicy(**{field: value})
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("field", _POLICY_SWITCHES)
def test_policy_switches_are_bools(field: str) -> None:
    """adaptive="yes" (or learn_durations) is refused: a string is not a switch."""
    with pytest.raises(ConfigurationError, match=field):
        PollPolicy(**{field: "yes"})


def test_policy_min_delay_above_max_delay_is_refused() -> None:
    """A floor above the cap is a contradiction; an initial delay above the cap is just capped."""
    with pytest.raises(ConfigurationError, match="min_delay"):
        PollPolicy(min_delay=5, max_delay=1)
    with pytest.raises(ConfigurationError, match="min_delay"):
        attrs.evolve(PollPolicy(), max_delay=0.1)  # evolve passes min_delay=0.25 explicitly
    capped = PollPolicy(initial_delay=50, max_delay=1, min_delay=0.5, jitter=0)
    delays = capped.delays()
    assert [next(delays) for _ in range(3)] == [1, 1, 1]


@pytest.mark.parametrize("max_delay", [0.05, 0.25, 1e-6])
def test_a_default_min_delay_follows_a_low_max_delay(max_delay: float) -> None:
    """min_delay left to its default follows a max_delay below it; only an explicit conflict
    is an error."""
    policy = PollPolicy(max_delay=max_delay)
    assert policy.min_delay == max_delay
    assert PollPolicy(max_delay=0.05, min_delay=0.01).min_delay == 0.01
    assert PollPolicy().min_delay == 0.25
    assert PollPolicy(max_delay=10).min_delay == 0.25
    with pytest.raises(ConfigurationError, match="min_delay"):
        PollPolicy(max_delay=0.05, min_delay=0.25)


@pytest.mark.parametrize("max_delay", ["x", None, float("nan"), True, -1])
def test_a_bad_max_delay_is_still_its_own_error(max_delay: Any) -> None:
    """The default min_delay never hides a bad max_delay behind another error."""
    with pytest.raises(ConfigurationError, match="max_delay"):
        PollPolicy(max_delay=max_delay)


def test_emulator_time_arguments_are_checked() -> None:
    """The emulator's seconds (speed, windows, durations, delays, waits) follow the same rule."""
    for build in (
        lambda: VoucherifyEmulator(speed=NAN),
        lambda: VoucherifyEmulator(speed=0),
        lambda: VoucherifyEmulator(rate_limit_window=NAN),
        lambda: VoucherifyEmulator(requests_per_minute=2.5),  # type: ignore[arg-type]
        lambda: Delay(NAN),
        lambda: Delay(-1),
    ):
        with pytest.raises(ValueError) as info:
            build()
        _misuse(info.value)
    emulator = VoucherifyEmulator()
    for call in (
        lambda: emulator.advance(NAN),
        lambda: emulator.add_action(duration=INF),
        lambda: emulator.add_action(duration=1, enqueued=NAN),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


async def test_emulator_wait_for_requests_refuses_nan(emulator: VoucherifyEmulator) -> None:
    """wait_for_requests(timeout=nan) is refused instead of corrupting the loop's timers."""
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await emulator.wait_for_requests(1, timeout=NAN)


# --- item 14: clusters ----------------------------------------------------------------------


@pytest.mark.parametrize("cluster", ["us1", "eu", "eu1.api", "", "API", "us1.api.", None, 1])
def test_unknown_cluster_is_refused_with_the_valid_ones(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cluster="us1" would build a host that does not exist: refuse it and list the valid ones."""
    monkeypatch.delenv("VOUCHERIFY_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="cluster") as info:
        VoucherifyClient(APP_ID, APP_TOKEN, cluster=cluster)
    for valid in CLUSTERS:
        assert repr(valid) in str(info.value)
    assert "base_url" in str(info.value)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_listed_cluster_builds(cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each valid cluster picks its regional https host."""
    monkeypatch.delenv("VOUCHERIFY_BASE_URL", raising=False)
    client = VoucherifyClient(APP_ID, APP_TOKEN, cluster=cluster)
    assert client.base_url == f"https://{cluster}.voucherify.io"


def test_dedicated_region_is_reached_with_base_url() -> None:
    """A dedicated region (not in CLUSTERS) stays reachable through base_url."""
    client = VoucherifyClient(APP_ID, APP_TOKEN, base_url="https://acme.eu2.voucherify.io")
    assert client.base_url == "https://acme.eu2.voucherify.io"


# --- item 15: a bare str where ids are expected ------------------------------------------------


@pytest.mark.parametrize("ids", ["aa_abc", b"aa_abc", 5])
async def test_helpers_refuse_a_bare_string_of_ids(
    emulator: VoucherifyEmulator, client: VoucherifyClient, ids: Any
) -> None:
    """wait_all("aa_abc") must not wait on "a", "a", "_"...: a TypeError before any request."""
    emulator.add_action("VOUCHERS.IMPORT", id="aa_abc", duration=0)
    with pytest.raises(InvalidArgumentTypeError, match="ids") as info:
        await client.async_actions.wait_all(ids)
    _misuse(info.value)
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidArgumentTypeError, match="ids_or_handles"):
        async for _ in client.async_actions.as_completed(ids):
            pass
    assert emulator.count() == 0


# --- item 17: the rule, across the package ------------------------------------------------------


class _Result:
    pass


def _sync_misuse() -> Iterator[tuple[str, Callable[[], object]]]:
    yield "policy jitter", lambda: PollPolicy(jitter=2)
    yield "policy type", lambda: PollPolicy(max_delay="30")  # type: ignore[arg-type]
    yield "unknown cluster", lambda: VoucherifyClient(APP_ID, APP_TOKEN, cluster="eu")
    yield "no credentials", lambda: VoucherifyClient(APP_ID, "")
    yield "bad base_url", lambda: VoucherifyClient(APP_ID, APP_TOKEN, base_url="http://[::1]@")
    yield "empty type name", lambda: register_result_type("", _Result)
    yield "type name not str", lambda: register_result_type(5, _Result)  # type: ignore[arg-type]
    yield "cls not a class", lambda: register_result_type("X.Y", _Result())  # type: ignore[arg-type]
    yield "one hook, no list", lambda: instrumentation.set_on_poll_hooks(print)  # type: ignore[arg-type]
    yield "hook not callable", lambda: instrumentation.set_on_status_change_hooks([1])  # type: ignore[list-item]
    yield "emulator remote", lambda: VoucherifyEmulator(host="0.0.0.0")
    yield "emulator unknown id", lambda: VoucherifyEmulator().action("aa_nope")
    yield "emulator bad status", lambda: VoucherifyEmulator().add_action(status="MAYBE")
    yield "fast_polling", lambda: fast_polling(-1)


@pytest.mark.parametrize(("case", "call"), list(_sync_misuse()), ids=[c for c, _ in _sync_misuse()])
def test_misuse_is_a_voucherify_error_and_a_builtin_type(
    case: str, call: Callable[[], object]
) -> None:
    """Each representative misuse raises a VoucherifyError that is also a ValueError/TypeError."""
    with pytest.raises(VoucherifyError) as info:
        call()
    _misuse(info.value)
    assert instrumentation.get_on_poll_hooks() == ()  # a refused setter changed nothing


async def test_async_misuse_follows_the_rule(
    emulator: VoucherifyEmulator, make_client: MakeClient
) -> None:
    """Bad ids, limits and dates are argument errors; a closed client is a ClientClosedError."""
    client = make_client()
    actions = client.async_actions
    for call in (
        lambda: actions.get(""),
        lambda: actions.get(5),  # type: ignore[arg-type]
        lambda: actions.list(limit=0),
        lambda: actions.list(limit="5"),  # type: ignore[arg-type]
        lambda: actions.list(end_date=5),  # type: ignore[arg-type]
        lambda: actions.wait("aa_x", timeout=NAN),
    ):
        with pytest.raises(VoucherifyError) as info:
            await call()
        _misuse(info.value)
    assert emulator.count() == 0
    await client.close()
    with pytest.raises(ClientClosedError) as closed:
        await actions.get("aa_x")
    assert isinstance(closed.value, VoucherifyError) and isinstance(closed.value, RuntimeError)
    with pytest.raises(ClientClosedError):
        actions.handle("aa_x")


async def test_emulator_state_errors_follow_the_rule() -> None:
    """base_url before start, start twice: VoucherifyError and RuntimeError."""
    emulator = VoucherifyEmulator()
    with pytest.raises(RuntimeError, match="not started") as info:
        _ = emulator.base_url
    assert isinstance(info.value, VoucherifyError)
    async with emulator:
        with pytest.raises(RuntimeError, match="already started") as again:
            await emulator.start()
        assert isinstance(again.value, VoucherifyError)
        with pytest.raises(TimeoutError) as waited:
            await emulator.wait_for_requests(1, timeout=0)
        assert isinstance(waited.value, VoucherifyError)


async def test_far_end_dates_and_bad_saved_durations_are_typed_errors(
    emulator: VoucherifyEmulator, client: VoucherifyClient
) -> None:
    """An end_date past 9999 in UTC, a huge every=, and saved durations that are not a mapping
    (or hold a huge number) are typed errors or skipped, never a bare OverflowError or
    AttributeError."""
    far = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    with pytest.raises(InvalidArgumentError, match="end_date") as info:
        await client.async_actions.list(end_date=far)
    _misuse(info.value)
    handle = client.async_actions.handle(emulator.add_action(duration=None))
    with pytest.raises(InvalidArgumentError, match="every"):
        async for _ in handle.updates(every=HUGE):
            pass
    handle.cancel()
    durations = client.async_actions.durations
    with pytest.raises(InvalidArgumentTypeError, match="mapping"):
        durations.update(None)  # type: ignore[arg-type]
    durations.update({"VOUCHERS.IMPORT": [HUGE, 12.0], "X": 5})  # type: ignore[dict-item]
    assert durations.to_dict().get("VOUCHERS.IMPORT") == [12.0]
    assert emulator.count() == 0
