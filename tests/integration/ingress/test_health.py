from __future__ import annotations


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
