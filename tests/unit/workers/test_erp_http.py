"""The ERP's HTTP edge as pure logic: statuses and transport failures to our errors, and what is retried."""
from __future__ import annotations

import inspect
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import urllib3

from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpSyncError, ErpUnavailable
from erp_sync.workers.erp_http import (
    TRANSPORT_ERRORS,
    check_answer,
    error_class,
    quick_retries,
    retry_after_s,
    shown,
    translated,
)

# The policy, as the README's table states it.
STATUSES = [
    (200, None), (201, None), (202, None), (204, None),
    (301, ErpMisconfigured), (302, ErpMisconfigured), (307, ErpMisconfigured), (308, ErpMisconfigured),
    (400, ErpRejected), (409, ErpRejected), (413, ErpRejected), (415, ErpRejected), (422, ErpRejected),
    (401, ErpMisconfigured), (403, ErpMisconfigured), (404, ErpMisconfigured), (405, ErpMisconfigured),
    (407, ErpMisconfigured), (410, ErpMisconfigured), (421, ErpMisconfigured),
    (408, ErpUnavailable), (425, ErpUnavailable), (429, ErpUnavailable),
    (500, ErpUnavailable), (501, ErpUnavailable), (502, ErpUnavailable), (503, ErpUnavailable),
    (504, ErpUnavailable), (599, ErpUnavailable),
]


@pytest.mark.parametrize(("status", "expected"), STATUSES, ids=[str(status) for status, _ in STATUSES])
def test_each_status_maps_to_one_error_class(status, expected):
    assert error_class(status) is expected


def answer(status: int, body: bytes = b"", url: str = "https://erp.example/api/v1/orders/import",
           headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content, response.url = status, body, url
    response._content_consumed = True  # as after a call made without stream=True
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(("status", "expected"), STATUSES, ids=[str(status) for status, _ in STATUSES])
def test_check_answer_raises_exactly_the_mapped_class(status, expected):
    if expected is None:
        check_answer("order X", answer(status))
        return
    with pytest.raises(ErpSyncError) as caught:
        check_answer("order X", answer(status, b'{"error": "no"}'))
    assert type(caught.value) is expected
    assert (caught.value.status, caught.value.body) == (status, '{"error": "no"}')


def test_an_answers_excerpt_leaves_out_the_line_ends_around_it():
    with pytest.raises(ErpRejected) as caught:
        check_answer("order X", answer(422, b'{"error": "unknown sku"}\n'))

    assert caught.value.body == '{"error": "unknown sku"}'


def test_an_error_keeps_the_url_without_its_query_and_an_excerpt_of_the_body():
    response = answer(503, b"x" * 5000, url="https://user:pw@erp.example/files/s.csv?signature=secret")

    with pytest.raises(ErpUnavailable) as caught:
        check_answer("snapshot", response)

    assert caught.value.url == "https://erp.example/files/s.csv"
    assert caught.value.body == "x" * 2000
    assert "secret" not in str(caught.value) and "pw" not in str(caught.value)


@pytest.mark.parametrize(("status", "setting"), [(401, "ERP_API_TOKEN"), (403, "ERP_API_TOKEN"),
                                                 (404, "ERP_BASE_URL"), (407, "HTTPS_PROXY")])
def test_a_misconfiguration_names_the_setting_to_check(status, setting):
    with pytest.raises(ErpMisconfigured, match=setting):
        check_answer("order X", answer(status))


def test_a_redirect_names_where_it_points():
    with pytest.raises(ErpMisconfigured, match="https://erp.example/new"):
        check_answer("order X", answer(301, headers={"Location": "https://erp.example/new"}))


def requests_exceptions() -> list[type[requests.RequestException]]:
    return sorted((cls for _, cls in inspect.getmembers(requests.exceptions, inspect.isclass)
                   if issubclass(cls, requests.RequestException)), key=lambda cls: cls.__name__)


def instance_of(cls: type[BaseException]) -> BaseException:
    return cls("boom", "{", 0) if issubclass(cls, requests.JSONDecodeError) else cls("boom")


# What a streamed body can raise while it is read: urllib3's own errors and the socket's.
STREAM_ERRORS = [urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead,
                 urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.DecodeError, ConnectionResetError,
                 TimeoutError, OSError]


@pytest.mark.parametrize("exception", requests_exceptions() + STREAM_ERRORS, ids=lambda cls: cls.__name__)
def test_every_transport_exception_we_can_meet_maps_to_one_of_ours(exception):
    # given any exception requests (or the stream under it) raises
    error = (exception(None, "url", "boom") if exception is urllib3.exceptions.ReadTimeoutError
             else exception(0, 1) if exception is urllib3.exceptions.IncompleteRead else instance_of(exception))

    # when it is raised inside the edge's one translation point
    with pytest.raises(ErpSyncError) as caught, translated("order X", "https://erp.example/api"):
        raise error

    # then it is ours, with the URL, and the cause kept
    assert isinstance(caught.value, ErpUnavailable | ErpRejected)
    assert caught.value.url == "https://erp.example/api"
    assert caught.value.__cause__ is error


def test_the_map_covers_every_requests_exception_by_itself_or_a_base():
    assert all(any(issubclass(cls, mapped) for mapped in TRANSPORT_ERRORS) for cls in requests_exceptions())


@pytest.mark.parametrize(("exception", "expected"), [
    (requests.exceptions.InvalidURL, ErpMisconfigured),
    (requests.exceptions.MissingSchema, ErpMisconfigured),
    (requests.exceptions.InvalidSchema, ErpMisconfigured),
    (requests.exceptions.InvalidHeader, ErpMisconfigured),
    (requests.exceptions.TooManyRedirects, ErpMisconfigured),
    (requests.ConnectionError, ErpUnavailable),
    (requests.exceptions.ConnectTimeout, ErpUnavailable),
    (requests.exceptions.ReadTimeout, ErpUnavailable),
    (requests.exceptions.ProxyError, ErpUnavailable),
    (requests.exceptions.ChunkedEncodingError, ErpUnavailable),
    (requests.exceptions.SSLError, ErpUnavailable),
])
def test_transport_failures_split_between_outage_and_configuration(exception, expected):
    with pytest.raises(ErpUnavailable) as caught, translated("snapshot", "https://erp.example/api"):
        raise instance_of(exception)

    assert type(caught.value) is expected


# What urllib3 raises as it is, with retries=False, to the orders client.
URLLIB3_ERRORS = [
    (urllib3.exceptions.NewConnectionError(None, "refused"), ErpUnavailable, "cannot reach the ERP at"),
    (urllib3.exceptions.NameResolutionError("erp.invalid", None, OSError("no such host")), ErpUnavailable,
     "cannot reach the ERP at"),
    (urllib3.exceptions.ConnectTimeoutError("slow"), ErpUnavailable, "cannot reach the ERP in time"),
    (urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out"), ErpUnavailable, "did not answer in time"),
    (urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()), ErpUnavailable, "broke off"),
    (urllib3.exceptions.ProxyError("no proxy", OSError()), ErpUnavailable, "through the proxy"),
    (urllib3.exceptions.SSLError(ssl.SSLError("handshake")), ErpUnavailable, "no TLS link"),
    (urllib3.exceptions.LocationParseError("http://[::1"), ErpMisconfigured, "ERP_BASE_URL"),
    (urllib3.exceptions.URLSchemeUnknown("ftp"), ErpMisconfigured, "ERP_BASE_URL"),
    (ValueError("Invalid header value b'Bearer x\\ny'"), ErpMisconfigured, "ERP_API_TOKEN"),
]


@pytest.mark.parametrize(("error", "expected", "says"), URLLIB3_ERRORS, ids=lambda value: type(value).__name__)
def test_urllib3s_own_failures_split_between_outage_and_configuration(error, expected, says):
    with pytest.raises(ErpUnavailable, match=says) as caught, translated("order X", "https://erp.example/api"):
        raise error

    assert type(caught.value) is expected and caught.value.__cause__ is error


def test_a_certificate_urllib3_refused_is_configuration():
    refused = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")

    with pytest.raises(ErpMisconfigured, match="ERP_CA_BUNDLE"), translated("order X", "https://erp.example/api"):
        raise urllib3.exceptions.SSLError(refused)


def test_a_certificate_we_do_not_trust_is_configuration():
    # given the TLS failure requests raises for an unverified certificate, wrapped as urllib3 wraps it
    refused = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    wrapped = urllib3.exceptions.MaxRetryError(None, "/api", reason=urllib3.exceptions.SSLError(refused))

    with pytest.raises(ErpMisconfigured, match="ERP_CA_BUNDLE"), translated("snapshot", "https://erp.example/api"):
        raise requests.exceptions.SSLError(wrapped)


def flaky(error: ErpSyncError):
    calls = []

    def call() -> str:
        calls.append(1)
        raise error

    return call, calls


@pytest.mark.parametrize(("error", "tries"), [
    (ErpUnavailable("503", status=503), 3),
    (ErpMisconfigured("401", status=401), 1),
    (ErpRejected("400", status=400, body=""), 1),
])
def test_only_an_outage_is_retried_quickly(error, tries):
    call, calls = flaky(error)

    with pytest.raises(type(error)):
        quick_retries(3, 0.0)(call)()

    assert len(calls) == tries


def test_shown_drops_credentials_query_and_fragment():
    assert shown("https://u:p@erp.example:8443/a/b?x=1#f") == "https://erp.example:8443/a/b"


class _BrokenStream:
    def read(self, _size: int) -> bytes:
        raise urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError())


def test_an_error_answers_excerpt_is_empty_when_its_stream_breaks():
    from erp_sync.workers.erp_http import stream_excerpt

    assert stream_excerpt(_BrokenStream()) == ""


@pytest.mark.parametrize("retry_after", [120.0, 5.5])
def test_an_erp_asking_to_wait_over_five_seconds_gets_no_quick_tries(retry_after):
    # given an ERP answering 429 (or 503) with a Retry-After longer than a quick try may wait
    call, calls = flaky(ErpUnavailable("429", status=429, retry_after_s=retry_after))

    # when the call is made with three quick tries
    with pytest.raises(ErpUnavailable):
        quick_retries(3, 0.0)(call)()

    # then it is left to the caller's retry (an order's next interval, the sweep's next slot)
    assert len(calls) == 1


@pytest.mark.parametrize(("retry_after", "pauses"), [(0.05, [0.05, 0.05]), (None, [0.0, 0.0])])
def test_a_quick_try_waits_at_least_what_the_erp_asked_for(retry_after, pauses):
    # given an ERP answering 429 with a short Retry-After (a rate limit), or 503 without one
    call, calls = flaky(ErpUnavailable("429", status=429, retry_after_s=retry_after))
    waits: list[float] = []

    # when the call is made with three quick tries whose own pauses are 0
    with pytest.raises(ErpUnavailable):
        quick_retries(3, 0.0, on_retry=lambda details: waits.append(details["wait"]))(call)()

    # then each try came after the wait asked for, never sooner: it was not a full retry interval away
    assert len(calls) == 3
    assert waits == pauses


@pytest.mark.parametrize("retry_after", [0.01, None])
def test_callers_refused_together_do_not_try_again_in_step(retry_after):
    # given pushes refused at once by one rate limit (429, Retry-After), or by a 503 without one
    firsts: list[float] = []
    for _ in range(12):
        call, _ = flaky(ErpUnavailable("429", status=429, retry_after_s=retry_after))
        waits: list[float] = []

        # when each is made with three quick tries
        with pytest.raises(ErpUnavailable):
            quick_retries(3, 0.002, on_retry=lambda details, waits=waits: waits.append(details["wait"]))(call)()

        # then each pause is the wait asked for and a random part below its growing ceiling
        asked = retry_after or 0.0
        assert all(asked <= wait <= asked + 0.002 * 2 ** n for n, wait in enumerate(waits)), waits
        firsts.append(waits[0])

    # and the callers' first pauses differ: they do not all come back at the same instant
    assert len(set(firsts)) > 1


def test_retry_after_is_read_in_seconds_or_as_an_http_date():
    in_two_minutes = format_datetime(datetime.now(UTC) + timedelta(minutes=2), usegmt=True)
    assert retry_after_s("120") == 120.0 and retry_after_s(" 0 ") == 0.0
    assert 110 < (retry_after_s(in_two_minutes) or 0) <= 120
    assert retry_after_s(format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None and retry_after_s("-5") is None
    assert retry_after_s("\u00b2") is None  # a digit to str.isdigit, none to float()
