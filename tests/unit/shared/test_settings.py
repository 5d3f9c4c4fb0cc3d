from __future__ import annotations

import pytest

from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.settings import load_settings

GOOD_SECRET = "a-real-secret-of-some-length"


def test_defaults_match_the_contract(monkeypatch):
    for name in ("DATABASE_URL", "AMQP_URL", "ERP_WEBHOOK_SECRET", "ERP_ORDER_MODE"):
        monkeypatch.delenv(name, raising=False)

    settings = load_settings()

    assert settings.amqp_url == "amqp://guest:guest@localhost:5672/%2F"
    assert settings.database_url.endswith("/erp_sync")
    assert settings.erp_order_mode == "orders"
    assert (settings.order_retry_interval_s, settings.order_retry_window_s) == (900, 7200)
    assert settings.media_allow_private_networks is False
    assert settings.webhook_max_age_s == 48 * 3600
    assert settings.webhook_max_body_bytes == 5 * 1024 * 1024


def test_secrets_are_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("ERP_WEBHOOK_SECRET", f"{GOOD_SECRET}, second-secret-of-length")

    assert load_settings().webhook_secrets() == (GOOD_SECRET.encode(), b"second-secret-of-length")


def test_environment_names_are_read(monkeypatch):
    monkeypatch.setenv("ERP_ORDER_MODE", "adjust")
    monkeypatch.setenv("RETRY_DELAYS_MS", "100,200,300")
    monkeypatch.setenv("MEDIA_ALLOW_PRIVATE_NETWORKS", "true")

    settings = load_settings()

    assert settings.erp_order_mode == "adjust"
    assert settings.retry_delays_ms == (100, 200, 300)
    assert settings.media_allow_private_networks is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ERP_WEBHOOK_SECRET", "changeme"),
        ("ERP_WEBHOOK_SECRET", "short"),
        ("ERP_API_TOKEN", "<token>"),
        ("ERP_BASE_URL", "erp.example.test"),
        ("ERP_ORDER_MODE", "both"),
        ("ORDER_RETRY_INTERVAL_S", "soon"),
        ("ORDER_RETRY_WINDOW_S", "0"),
        ("DATABASE_URL", "mysql://root@localhost/shop"),
        ("DATABASE_URL", "postgresql+psycopg://app:pa/ss@db.example:5432/erp_sync"),
        ("DATABASE_URL", "postgresqlfoo://x"),
        ("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:notaport/erp_sync"),
        ("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:65536/erp_sync"),
        ("AMQP_URL", "http://localhost:5672"),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:notaport/x"),
        ("AMQP_URL", "amqps://guest:guest@[::1/x"),
        ("ERP_BASE_URL", "http://[::1"),
        ("ERP_BASE_URL", "http://erp.example:notaport"),
        ("ERP_BASE_URL", "https://"),
        ("QUEUE_MAX_LENGTH", "99999999999999999999"),
        ("QUEUE_MAX_BYTES", str(2**63)),
        ("INGRESS_PORT", "70000"),
        ("RETRY_DELAYS_MS", "5000,1000"),
        ("RETRY_DELAYS_MS", "1000,99999999999999999999"),
        ("RETRY_DELAYS_MS", "1000,soon"),
        ("MEDIA_ALLOW_PRIVATE_NETWORKS", "perhaps"),
        ("CATALOG_BATCH_CONCURRENCY", "0"),
        ("CATALOG_BATCH_CONCURRENCY", "3"),
        ("DATABASE_LOCK_TIMEOUT_MS", "99999999999"),
        ("DATABASE_LOCK_TIMEOUT_MS", str(2**31)),
        ("WORKER_PREFETCH", "65536"),
        ("WORKER_BATCH_SIZE", "20000"),
        ("WORKER_BATCH_SIZE", "16384"),
        ("WORKER_STOP_TIMEOUT_S", "inf"),
        ("WORKER_STOP_TIMEOUT_S", "nan"),
        ("WORKER_STOP_TIMEOUT_S", "1e10"),
        ("ERP_READ_TIMEOUT_S", "infinity"),
        ("ERP_QUICK_RETRY_BASE_S", "nan"),
        ("RECONCILE_MAX_CHANGED_SHARE", "nan"),
        ("HOLD_GRACE_PERIOD_S", "99999999999"),
        ("WORKER_BATCH_WINDOW_MS", "99999999999999"),
        ("ORDER_RETRY_INTERVAL_S", "604801"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/x"),
        ("WEBHOOK_MAX_BODY_BYTES", str(16 * 1024 * 1024 + 1)),
        ("IDEMPOTENCY_WINDOW_S", "0"),
        ("IDEMPOTENCY_WINDOW_S", "99999999999999"),
        # accepted, then never matched: a server reads header values as Latin-1
        ("STOREFRONT_API_TOKEN", "storefront-token-AAAAAAAA,tökenäöü-1234567890"),
        ("CONSOLE_TOKEN", "console token 1234"),
        ("ERP_API_TOKEN", "erp-tökén-1234567890"),
    ],
)
def test_bad_setting_stops_with_one_line_naming_it(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    message = str(caught.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://postgres@127.0.0.1:5432/erp_sync",
    "postgresql://app:pa%2Fss@[::1]:5433/erp_sync",
    "postgresql+psycopg://app@db.example/erp_sync?sslmode=require",
    "postgresql+psycopg:///erp_sync",
])
def test_a_database_url_the_settings_accept_sqlalchemy_and_libpq_read_alike(monkeypatch, url):
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import make_url

    from erp_sync.shared.pg import conninfo

    monkeypatch.setenv("DATABASE_URL", url)
    accepted = load_settings().database_url

    parsed = make_url(accepted)
    assert parsed.drivername == "postgresql+psycopg"
    assert str(parsed.port or "") == conninfo_to_dict(conninfo(accepted)).get("port", "")


@pytest.mark.parametrize("url", [
    "amqp://guest:guest@localhost:5672/%2F",
    "amqps://user:pw@[::1]:5671/vhost?heartbeat=30&connection_attempts=3",
    "amqp://rabbit.example",
])
def test_an_amqp_url_the_settings_accept_pika_reads_as_given(monkeypatch, url):
    from erp_sync.shared.amqp_url import amqp_parameters

    monkeypatch.setenv("AMQP_URL", url)

    parameters = amqp_parameters(load_settings().amqp_url)

    assert parameters.port in (5671, 5672)


def test_database_url_with_an_encoded_password_is_read_alike_by_sqlalchemy_and_libpq(monkeypatch):
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import make_url

    from erp_sync.shared.pg import conninfo

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:pa%2Fss%40x@db.example:5433/erp_sync")
    url = load_settings().database_url

    libpq = conninfo_to_dict(conninfo(url))
    parsed = make_url(url)
    assert (libpq["host"], libpq["port"], libpq["user"], libpq["password"], libpq["dbname"]) == (
        parsed.host, str(parsed.port), parsed.username, parsed.password, parsed.database)
    assert parsed.password == "pa/ss@x"


def test_certificate_without_key_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("INGRESS_TLS_CERTFILE", str(tmp_path / "cert.pem"))
    monkeypatch.delenv("INGRESS_TLS_KEYFILE", raising=False)

    with pytest.raises(ConfigurationError, match="INGRESS_TLS_KEYFILE"):
        load_settings()


def test_missing_secret_is_named_when_the_ingress_asks_for_it(monkeypatch):
    monkeypatch.delenv("ERP_WEBHOOK_SECRET", raising=False)

    with pytest.raises(ConfigurationError, match="^ERP_WEBHOOK_SECRET is not set"):
        load_settings().webhook_secrets()


def test_alert_mail_needs_recipients():
    with pytest.raises(ConfigurationError, match="ALERT_EMAIL_TO"):
        load_settings(alert_smtp_host="smtp.example.com")


def test_alert_recipients_are_a_comma_separated_list_of_addresses():
    settings = load_settings(alert_smtp_host="smtp.example.com", alert_email_to="ops@example.com, a@example.com")

    assert settings.alert_email_to == ("ops@example.com", "a@example.com")
    with pytest.raises(ConfigurationError, match="ALERT_EMAIL_TO"):
        load_settings(alert_email_to="not-an-address")


@pytest.mark.parametrize("overrides", [{"console_user": "ops"}, {"alert_smtp_user": "ops"},
                                       {"console_token": "short"}, {"console_user": "ops", "console_password": "changeme"}])
def test_console_and_smtp_credentials_are_complete_and_real(overrides):
    with pytest.raises(ConfigurationError):
        load_settings(**overrides)


def test_empty_alert_and_console_settings_leave_both_off():
    settings = load_settings(alert_smtp_host="", alert_email_to="", console_user=" ", console_password="",
                             console_token="")

    assert (settings.alert_smtp_host, settings.alert_email_to, settings.console_user, settings.console_token) == (
        None, (), None, None)


def test_the_largest_bounds_are_accepted():
    settings = load_settings(database_lock_timeout_ms=2**31 - 1, worker_prefetch=65535, worker_batch_size=16383,
                             worker_stop_timeout_s=9e9, order_retry_interval_s=604800,
                             webhook_max_body_bytes=16 * 1024 * 1024, ingress_workers=64, api_threads=256,
                             media_concurrency=64)

    assert (settings.database_lock_timeout_ms, settings.worker_prefetch, settings.worker_batch_size,
            settings.webhook_max_body_bytes) == (2**31 - 1, 65535, 16383, 16 * 1024 * 1024)
    assert (settings.ingress_workers, settings.api_threads, settings.media_concurrency) == (64, 256, 64)


@pytest.mark.parametrize(("environment", "message"), [
    ({"ERP_BASE_URL": "ftp://erp.example"}, "ERP_BASE_URL: must begin with http:// or https://"),
    ({"INGRESS_TLS_CERTFILE": "/etc/erp-sync/cert.pem"}, "INGRESS_TLS_CERTFILE and INGRESS_TLS_KEYFILE go together"),
    ({"CONSOLE_USER": "ops"}, "CONSOLE_USER and CONSOLE_PASSWORD go together"),
    ({"WEBHOOK_MAX_BODY_BYTES": "20000000"}, "WEBHOOK_MAX_BODY_BYTES: Input should be less than or equal to 16777216"),
    ({"INGRESS_WORKERS": "200"}, "INGRESS_WORKERS: Input should be less than or equal to 64"),
    ({"API_THREADS": "3200"}, "API_THREADS: Input should be less than or equal to 256"),
    ({"MEDIA_CONCURRENCY": "800"}, "MEDIA_CONCURRENCY: Input should be less than or equal to 64"),
])
def test_a_bad_setting_is_told_in_our_words_alone(monkeypatch, environment, message):
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as caught:
        load_settings()

    # not "SETTINGS: Value error, ..." (pydantic's words around ours)
    assert str(caught.value) == message


def test_metrics_directory_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("")

    assert load_settings(prometheus_multiproc_dir=str(tmp_path)).prometheus_multiproc_dir == tmp_path
    assert load_settings(prometheus_multiproc_dir="").prometheus_multiproc_dir is None
    with pytest.raises(ConfigurationError, match=f"^PROMETHEUS_MULTIPROC_DIR: .*no directory at {tmp_path / 'file'}$"):
        load_settings(prometheus_multiproc_dir=str(tmp_path / "file"))
