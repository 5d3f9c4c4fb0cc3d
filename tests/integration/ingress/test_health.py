from __future__ import annotations

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from erp_sync.ingress import openapi


def test_healthz_answers_while_the_process_is_up(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_checks_broker_and_database(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"broker": "ok", "database": "ok"}}


def test_readyz_says_the_database_is_down_but_not_where_it_lives(settings_factory, broker):
    from erp_sync.ingress import create_app

    app = create_app(settings_factory(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere"))
    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["broker"] == "ok"
    assert checks["database"] == "unavailable"
    assert "127.0.0.1" not in response.get_data(as_text=True) and "nowhere" not in response.get_data(as_text=True)
    app.extensions["erp_sync.publisher"].close()


def test_metrics_include_the_sweeps_read_from_the_database(client):
    text = client.get("/metrics").get_data(as_text=True)

    assert "erp_sync_reconcile_metrics_up 1.0" in text
    assert "erp_sync_webhooks_accepted_total" in text


def test_metrics_name_their_format_once(client):
    # "charset=utf-8; charset=utf-8": a parameter twice, which Go's mime.ParseMediaType (Prometheus's) refuses
    assert client.get("/metrics").headers["Content-Type"] == CONTENT_TYPE_LATEST


def test_metrics_with_the_database_down_are_200_with_its_figures_marked_down(settings_factory, broker):
    # as the published document says: the process's own metrics still matter when the database is away
    from erp_sync.ingress import create_app

    app = create_app(settings_factory(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere"))
    response = app.test_client().get("/metrics")
    app.extensions["erp_sync.publisher"].close()

    assert response.status_code == 200
    assert "erp_sync_reconcile_metrics_up 0.0" in response.get_data(as_text=True)
    assert "503" not in openapi.ingress_document()["paths"]["/metrics"]["get"]["responses"]


def test_readyz_needs_checks_only_the_named_dependency(settings_factory, broker):
    # given a process whose database is down, and one whose broker is down
    from erp_sync.ingress import create_app

    database_down = create_app(settings_factory(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere"))
    broker_down = create_app(settings_factory(amqp_url="amqp://guest:guest@127.0.0.1:9/%2F"))

    # then the door's probe (the broker) stays ready without the database, the reads' (the database)
    # without the broker, and each still fails on its own dependency
    assert _ready(database_down, "broker") == (200, {"status": "ready", "checks": {"broker": "ok"}})
    assert _ready(broker_down, "database") == (200, {"status": "ready", "checks": {"database": "ok"}})
    assert _ready(database_down, "database") == (503, {"status": "unavailable", "checks": {"database": "unavailable"}})
    assert _ready(broker_down, "broker,database")[0] == 503
    # and a parameter given twice names both, as a comma-separated one does (the second was ignored)
    assert _ready(database_down, ["broker", "database"]) == (
        503, {"status": "unavailable", "checks": {"broker": "ok", "database": "unavailable"}})
    for app in (database_down, broker_down):
        app.extensions["erp_sync.publisher"].close()


@pytest.mark.parametrize("needs", ["", "cache", "broker,cache", "Broker", ["broker", "cache"], ["broker", ""]])
def test_readyz_needs_naming_something_else_is_a_400_naming_the_parameter(client, needs):
    response = client.get("/readyz", query_string={"needs": needs})

    assert response.status_code == 400
    assert response.get_json()["details"][0]["field"] == "needs"


def _ready(app, needs):
    response = app.test_client().get("/readyz", query_string={"needs": needs})
    return response.status_code, response.get_json()
