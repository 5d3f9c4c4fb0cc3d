"""The console's pure parts: its credentials, its form guard, the drift chart's layout, ages as read, the
parked page's problems."""
from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from erp_sync.ingress import console_data
from erp_sync.ingress.console_auth import ConsoleCredentials
from erp_sync.ingress.console_chart import drift_chart
from erp_sync.ingress.console_data import age_text
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.settings import load_settings

CREDENTIALS = ConsoleCredentials(b"ops", b"console-password-1", b"console-token-of-length")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_console_is_off_until_a_credential_is_set():
    assert ConsoleCredentials.from_settings(load_settings()) is None
    assert ConsoleCredentials.from_settings(load_settings(console_token="console-token-of-length")) is not None


@pytest.mark.parametrize("header, admitted", [
    (basic("ops", "console-password-1"), True),
    ("Bearer console-token-of-length", True),
    (basic("ops", "console-password-2"), False),
    (basic("root", "console-password-1"), False),
    ("Bearer another-token-of-length", False),
    ("Basic not-base64!", False),
    (None, False),
])
def test_basic_credentials_or_the_token_admit(header, admitted):
    assert CREDENTIALS.admit(header) is admitted


@pytest.mark.parametrize("origin, token_ok, genuine", [
    (None, True, True), ("http://console.local:8001", True, True), ("https://evil.example", True, False),
    (None, False, False),
])
def test_a_form_is_genuine_with_the_token_and_no_foreign_origin(origin, token_ok, genuine):
    token = CREDENTIALS.form_token() if token_ok else "0" * 64

    assert CREDENTIALS.form_is_genuine(token, origin, "console.local:8001") is genuine


def test_the_form_token_is_the_same_in_every_process_and_differs_by_secret():
    other = ConsoleCredentials(b"ops", b"another-password", None)

    assert CREDENTIALS.form_token() == ConsoleCredentials(b"ops", b"console-password-1", None).form_token()
    assert CREDENTIALS.form_token() != other.form_token()


def test_the_drift_chart_draws_each_run_oldest_left_with_its_share():
    runs = [{"id": 3, "status": "held", "checked": 10, "mismatched": 5},
            {"id": 2, "status": "succeeded", "checked": 10, "mismatched": 1},
            {"id": 1, "status": "failed", "checked": 0, "mismatched": 0}]

    chart = drift_chart(runs, alert_share=0.05)

    assert [(bar.run_id, bar.share) for bar in chart.bars] == [(1, 0.0), (2, 0.1), (3, 0.5)]
    assert chart.bars[0].x < chart.bars[1].x < chart.bars[2].x
    assert chart.bars[2].height == pytest.approx(chart.bottom - 10)  # the highest share fills the plot
    assert chart.bars[1].height == pytest.approx(chart.bars[2].height / 5)
    assert chart.bars[0].height == 0
    assert chart.ticks[-1][1] == "50.0%"


@pytest.mark.parametrize("seconds, text", [(42, "42 s"), (17 * 60, "17 min"), (5.2 * 3600, "5.2 h"), (3.1 * 86400, "3.1 d")])
def test_ages_read_as_an_operator_reads_them(seconds, text):
    assert age_text(timedelta(seconds=seconds)) == text


class _RefusedReader:
    """A broker whose user may not declare the parked messages' reader queue."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url

    def counted(self, worker: str | None, limit: int) -> tuple[list[object], dict[str, int]]:
        raise ConfigurationError("AMQP_URL's user may not declare the queue erp-sync.dlq.reader (one reader of the "
                                 "parked messages at a time): grant it configure rights on that name")


def test_the_parked_page_says_which_right_the_broker_user_lacks(monkeypatch):
    monkeypatch.setattr(console_data, "DeadLetters", _RefusedReader)

    page = console_data.parked_page("amqp://guest:guest@127.0.0.1:5672/%2F")

    assert page.problem is not None and "grant it configure rights on that name" in page.problem
    assert (page.messages, page.parked_by_queue) == ([], {})


def test_a_queue_the_page_is_asked_for_that_does_not_exist_is_refused_before_the_broker():
    with pytest.raises(ConfigurationError, match="no queue 'nope'"):
        console_data.parked_page("amqp://guest:guest@127.0.0.1:9/%2F", "nope")
