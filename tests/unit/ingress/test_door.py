"""The door's native answers are the bytes and headers Flask's view gives for the same outcome."""
from __future__ import annotations

import pytest
from flask import Flask

from erp_sync.ingress import errors
from erp_sync.ingress.answers import answer
from erp_sync.ingress.errors import ApiError


@pytest.fixture
def flask_app():
    app = Flask("erp_sync.ingress")
    errors.init_app(app)

    @app.post("/accepted")
    def accepted():
        return {"status": "accepted", "event_id": "evt_ü\n1"}, 202

    @app.post("/refused")
    def refused():
        raise ApiError(503, "the event's queue is full; retry later", headers={"Retry-After": "30"},
                       details=[{"field": "data.sku", "message": "blank «SKU» </script>"}])

    return app


def test_an_accepted_webhook_is_answered_as_flask_answers_it(flask_app):
    flask_answer = flask_app.test_client().post("/accepted")

    headers, body = answer({"status": "accepted", "event_id": "evt_ü\n1"}, {})

    assert body == flask_answer.get_data()
    assert headers == list(flask_answer.headers.items())


def test_a_refused_webhook_is_answered_as_flask_answers_it(flask_app):
    flask_answer = flask_app.test_client().post("/refused")
    error = ApiError(503, "the event's queue is full; retry later", headers={"Retry-After": "30"},
                     details=[{"field": "data.sku", "message": "blank «SKU» </script>"}])

    headers, body = answer(error.to_dict(), error.headers)

    assert body == flask_answer.get_data()
    assert headers == list(flask_answer.headers.items())
