"""`erp-sync dev --story` reports one line a step and ends at the first failed one, naming it."""
from __future__ import annotations

import io

from erp_sync.cli import story
from erp_sync.cli.dev_env import Ports
from erp_sync.cli.dev_processes import Output

ENV = {"STOREFRONT_API_TOKEN": "api-token-0123456789", "ERP_API_TOKEN": "erp-token-0123456789",
       "SANDBOX_ERP_URL": "http://127.0.0.1:8900"}


def played(monkeypatch, steps):
    monkeypatch.setattr(story, "STEPS", steps)
    stream = io.StringIO()
    code = story.play(ENV, Ports(ingress=8000, api=8001), Output(stream), should_stop=lambda: False)
    return code, stream.getvalue().splitlines()


def failing(_story):
    raise story.StepFailed("the ERP's figure 48 did not arrive")


def test_every_step_passed_exits_0_with_a_line_each(monkeypatch):
    code, lines = played(monkeypatch, [("first", lambda _: "checked one"), ("second", lambda _: "checked two")])

    assert code == 0
    assert lines[0].startswith("story    | ok   1. first: checked one (")
    assert lines[1].startswith("story    | ok   2. second: checked two (")
    assert lines[2] == "story    | all 2 steps passed"


def test_a_failed_step_ends_the_story_with_its_name_and_a_non_zero_code(monkeypatch):
    ran = []
    code, lines = played(monkeypatch, [("first", lambda _: "fine"), ("an online order", failing),
                                       ("never", lambda _: ran.append("never") or "")])

    assert code == 1 and ran == []
    assert lines[1].startswith("story    | FAIL 2. an online order: the ERP's figure 48 did not arrive (")
    assert lines[-1] == "story    | the story failed at step 2: an online order"


def test_waiting_gives_up_with_what_was_expected():
    waiting = story.Story(ENV, Ports(ingress=8000, api=8001), should_stop=lambda: False)

    try:
        waiting.wait("the catalog", lambda: None, timeout=0.3)
    except story.StepFailed as exc:
        assert str(exc) == "the catalog did not happen within 0 s (last: nothing yet)"
    else:
        raise AssertionError("wait returned without its outcome")


def test_a_service_error_in_a_step_is_a_failed_step_not_a_crash(monkeypatch):
    from erp_sync.shared.errors import BrokerUnavailable

    def broker_away(_story):
        raise BrokerUnavailable("connecting to RabbitMQ timed out")

    code, lines = played(monkeypatch, [("an online order", broker_away)])

    assert code == 1
    assert lines[-1] == "story    | the story failed at step 1: an online order"
