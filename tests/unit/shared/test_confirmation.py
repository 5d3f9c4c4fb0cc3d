"""The per-message confirmation handle the publisher's callers wait on (pure logic, no broker)."""
from __future__ import annotations

import threading

import pytest

from erp_sync.shared.errors import PublishRejected
from erp_sync.shared.publisher import _Confirmation


def test_wait_returns_false_when_nothing_arrives_in_time():
    assert _Confirmation().wait(0.01) is False


def test_wait_returns_true_once_confirmed_from_another_thread_and_again_after():
    confirmation = _Confirmation()
    threading.Timer(0.02, confirmation.confirm).start()

    assert confirmation.wait(2) is True
    assert confirmation.wait(0) is True


def test_wait_raises_the_failure_it_was_given():
    confirmation = _Confirmation()
    confirmation.fail(PublishRejected("broker refused message evt_1"))

    with pytest.raises(PublishRejected, match="evt_1"):
        confirmation.wait(1)


def test_the_first_outcome_counts_and_a_second_is_ignored():
    confirmation = _Confirmation()
    confirmation.fail(PublishRejected("broker refused message evt_1"))
    confirmation.confirm()

    with pytest.raises(PublishRejected):
        confirmation.wait(1)
