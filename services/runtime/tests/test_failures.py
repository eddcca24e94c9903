"""Failure classification (Appmixer 6.4's lists), the retry policy and the delay tiers."""

from __future__ import annotations

import errno
import json
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jsonschema
import pydantic
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from modyard.runtime.components.base import ComponentError
from modyard.runtime.failures import (
    DELAY_TIERS,
    KIND_UNKNOWN,
    NOT_RETRIED_STATUSES,
    RetryPolicy,
    classify_exception,
    decompose_delay,
    is_retryable_status,
    retry_after_seconds,
    status_error,
    tier_for,
)

APPMIXER_NOT_RETRIED = [400, 401, 403, 404, 405, 406, 409, 410, 411, 422, 451]


def test_the_not_retried_statuses_are_appmixers_list() -> None:
    assert frozenset(APPMIXER_NOT_RETRIED) == NOT_RETRIED_STATUSES


@pytest.mark.parametrize("status", APPMIXER_NOT_RETRIED)
def test_appmixer_client_errors_are_not_retried(status: int) -> None:
    assert is_retryable_status(status) is False
    assert status_error(status, "x").retryable is False


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 507, 599, 429, 408, 425])
def test_server_errors_rate_limits_and_timeouts_are_retried(status: int) -> None:
    assert is_retryable_status(status) is True
    error = status_error(status, "x", details={"body": "b"})
    assert (error.retryable, error.status, error.details) == (
        True,
        status,
        {"kind": "http_status", "body": "b"},
    )


@pytest.mark.parametrize("status", [402, 407, 412, 413, 415, 418, 423, 431, 499, 301, 304, 100])
def test_other_client_errors_and_unexpected_statuses_are_not_retried(status: int) -> None:
    assert is_retryable_status(status) is False


def _wrapped(outer: Exception, cause: BaseException) -> Exception:
    """``outer`` raised from ``cause``, as aiohttp raises its errors from the OS's."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except Exception as caught:
        return caught


KEY = ConnectionKey("api.example.test", 443, True, True, None, None, None)
REQUEST = aiohttp.RequestInfo(
    URL("https://api.example.test/x"),
    "GET",
    CIMultiDictProxy(CIMultiDict()),
    URL("https://api.example.test/x"),
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (aiohttp.ConnectionTimeoutError("connect timed out"), "timeout"),
        (aiohttp.SocketTimeoutError("read timed out"), "timeout"),
        (TimeoutError(), "timeout"),
        (
            _wrapped(
                aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
                ConnectionRefusedError(111, "refused"),
            ),
            "connection",
        ),
        (aiohttp.ClientOSError(104, "connection reset by peer"), "connection"),
        (aiohttp.ServerDisconnectedError(), "connection"),
        (aiohttp.ClientPayloadError("Response payload is not completed"), "connection"),
        (
            _wrapped(
                aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name or service not known")),
                socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            ),
            "dns",
        ),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "dns"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "connection"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "connection"),
        (RuntimeError("something nobody classified"), "unknown"),
        (KeyError("x"), "unknown"),
    ],
)
def test_transient_failures_are_retried(exc: Exception, kind: str) -> None:
    error = classify_exception(exc)
    assert error.retryable is True
    assert error.details["kind"] == kind
    assert error.details["exception"] == type(exc).__name__


def _jsonschema_error() -> jsonschema.ValidationError:
    try:
        jsonschema.validate(1, {"type": "string"})
    except jsonschema.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def _pydantic_error() -> pydantic.ValidationError:
    class Model(pydantic.BaseModel):
        value: int

    try:
        Model.model_validate({"value": "nope"})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def _json_error() -> json.JSONDecodeError:
    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_jsonschema_error(), "validation"),
        (_pydantic_error(), "validation"),
        (_json_error(), "validation"),
        (ValueError("bad input"), "validation"),
        (aiohttp.NonHttpUrlClientError("ftp://files.example.test/x"), "invalid_request"),
        (aiohttp.InvalidURL("bad"), "invalid_request"),
        (aiohttp.TooManyRedirects(REQUEST, (), status=302), "protocol"),
        (PermissionError(errno.EACCES, "Permission denied"), "configuration"),
        (FileNotFoundError(errno.ENOENT, "No such file"), "configuration"),
    ],
)
def test_permanent_failures_are_not_retried(exc: Exception, kind: str) -> None:
    error = classify_exception(exc)
    assert error.retryable is False
    assert error.details["kind"] == kind


def test_component_errors_keep_their_own_decision() -> None:
    error = ComponentError("mine", retryable=False, status=503)
    assert classify_exception(error) is error


def test_http_status_errors_are_classified_by_status() -> None:
    for status, retryable in ((404, False), (503, True), (429, True)):
        exc = aiohttp.ClientResponseError(REQUEST, (), status=status, message="failed")
        error = classify_exception(exc)
        assert (error.retryable, error.status) == (retryable, status)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 01 Jan 2025 12:01:30 GMT", now=now) == 90.0
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None
    assert retry_after_seconds(None) is None


# --- the retry policy ------------------------------------------------------------------------------


def test_the_default_policy_is_thirty_attempts_doubling_from_a_second_to_an_hour() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 30
    delays = [policy.delay_for(attempt) for attempt in range(1, 16)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600, 3600]


def test_delays_are_exponential_and_capped_for_any_settings() -> None:
    policy = RetryPolicy(base_delay_seconds=5, multiplier=3, max_delay_seconds=600)
    assert [policy.delay_for(n) for n in range(1, 7)] == [5, 15, 45, 135, 405, 600]
    assert policy.delay_for(1000) == 600  # no overflow far past the cap
    flat = RetryPolicy(base_delay_seconds=30, multiplier=1, max_delay_seconds=60)
    assert [flat.delay_for(n) for n in (1, 2, 50)] == [30, 30, 30]


@pytest.mark.parametrize("attempt", [0, -1, True, 1.5])
def test_attempts_count_from_one(attempt: Any) -> None:
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().delay_for(attempt)
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().should_retry(ComponentError("x", retryable=True), attempt)


def test_retryable_errors_are_retried_until_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)
    error = ComponentError("flaky", retryable=True, status=503)
    assert [policy.should_retry(error, n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert RetryPolicy(max_attempts=1).should_retry(error, 1) is False


def test_permanent_errors_are_never_retried() -> None:
    assert (
        RetryPolicy().should_retry(ComponentError("bad", retryable=False, status=404), 1) is False
    )


def test_status_overrides_win_over_the_classification() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({404}), no_retry_statuses=frozenset({503}))
    assert policy.should_retry(status_error(404, "eventually consistent"), 1) is True
    assert policy.should_retry(status_error(503, "do not insist"), 1) is False
    assert policy.should_retry(status_error(500, "untouched"), 1) is True
    assert policy.should_retry(status_error(400, "untouched"), 1) is False


def test_unknown_errors_can_be_kept_from_retrying() -> None:
    unknown = classify_exception(RuntimeError("?"))
    assert unknown.details["kind"] == KIND_UNKNOWN
    assert RetryPolicy().should_retry(unknown, 1) is True
    assert RetryPolicy(retry_unknown_errors=False).should_retry(unknown, 1) is False
    timeout = classify_exception(TimeoutError())
    assert RetryPolicy(retry_unknown_errors=False).should_retry(timeout, 1) is True


def test_next_delay_honours_retry_after_within_the_cap() -> None:
    policy = RetryPolicy(max_delay_seconds=600)
    asked = ComponentError(
        "slow down", retryable=True, status=429, details={"retry_after_seconds": 90}
    )
    assert policy.next_delay(asked, 1) == 90
    assert policy.next_delay(asked, 8) == 128  # the backoff is already longer
    greedy = ComponentError("x", retryable=True, details={"retry_after_seconds": 86400})
    assert policy.next_delay(greedy, 1) == 600
    assert policy.next_delay(ComponentError("x", retryable=True, details="text"), 2) == 2


def test_merge_overrides_the_given_settings_only() -> None:
    merged = RetryPolicy().merge(
        {"max_attempts": 5, "base_delay_seconds": 2, "retry_statuses": [404, 404]}
    )
    assert merged == RetryPolicy(
        max_attempts=5, base_delay_seconds=2.0, retry_statuses=frozenset({404})
    )
    assert merged.max_delay_seconds == 3600.0
    assert RetryPolicy().merge({}) == RetryPolicy()
    assert merged.merge({"retry_statuses": None}).retry_statuses is None


def test_a_policy_round_trips_through_json() -> None:
    policy = RetryPolicy(max_attempts=7, no_retry_statuses=frozenset({502, 500}))
    encoded = policy.to_json()
    assert encoded["no_retry_statuses"] == [500, 502]
    assert RetryPolicy().merge(json.loads(json.dumps(encoded))) == policy


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_attempt": 3}, "unknown retry settings \\['max_attempt'\\]"),
        ({"max_attempts": 0}, "max_attempts must be between 1"),
        ({"max_attempts": 100000}, "max_attempts must be between 1"),
        ({"max_attempts": "5"}, "max_attempts must be an integer"),
        ({"max_attempts": 2.0}, "max_attempts must be an integer"),
        ({"max_attempts": True}, "max_attempts must be an integer"),
        ({"base_delay_seconds": 0}, "base_delay_seconds must be above 0"),
        ({"base_delay_seconds": "1"}, "base_delay_seconds must be a finite number"),
        ({"base_delay_seconds": float("nan")}, "base_delay_seconds must be a finite number"),
        ({"max_delay_seconds": 0.5}, "max_delay_seconds must be between"),
        ({"max_delay_seconds": 7200}, "the largest delay tier"),
        ({"multiplier": 0.5}, "multiplier must be between 1 and 10"),
        ({"multiplier": False}, "multiplier must be a finite number"),
        ({"retry_statuses": [404, "500"]}, "retry_statuses must hold HTTP statuses"),
        ({"retry_statuses": [700]}, "retry_statuses must hold HTTP statuses"),
        ({"no_retry_statuses": "500"}, "no_retry_statuses must be a list"),
        ({"retry_statuses": [500], "no_retry_statuses": [500]}, "in both"),
        ({"retry_unknown_errors": "yes"}, "retry_unknown_errors must be true or false"),
    ],
)
def test_merge_refuses_bad_settings_with_their_name(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy().merge(overrides)


def test_merge_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        RetryPolicy().merge([("max_attempts", 3)])  # type: ignore[arg-type]


# --- delay tiers -----------------------------------------------------------------------------------


def test_delay_tiers_are_increasing_and_reach_the_default_cap() -> None:
    assert list(DELAY_TIERS) == sorted(set(DELAY_TIERS))
    assert DELAY_TIERS[0] == 1
    assert DELAY_TIERS[-1] == RetryPolicy().max_delay_seconds


@pytest.mark.parametrize(
    ("delay", "tier"),
    [
        (0, 1),
        (0.2, 1),
        (1, 1),
        (1.01, 2),
        (3, 5),
        (5, 5),
        (16, 30),
        (1024, 1800),
        (3600, 3600),
        (3601, 3600),
        (10**9, 3600),
    ],
)
def test_tier_for_is_the_smallest_tier_that_waits_long_enough(delay: float, tier: int) -> None:
    assert tier_for(delay) == tier


def test_every_default_retry_delay_lands_on_a_tier_at_least_as_long() -> None:
    policy = RetryPolicy()
    for attempt in range(1, policy.max_attempts):
        delay = policy.delay_for(attempt)
        assert tier_for(delay) >= delay
        assert tier_for(delay) in DELAY_TIERS


@pytest.mark.parametrize(
    ("seconds", "hops"),
    [
        (0.2, []),
        (1, [1]),
        (7, [5, 2]),
        (8, [5, 2, 1]),
        (90, [60, 30]),
        (7200, [3600, 3600]),
        (86400, [3600] * 24),
        (3661.6, [3600, 60, 2]),
    ],
)
def test_decompose_delay_waits_exactly_over_several_tiers(seconds: float, hops: list[int]) -> None:
    assert decompose_delay(seconds) == hops
    assert sum(hops) == round(seconds)
