"""A malformed setting stops each command at start with one line naming it, exit 2, whatever command reads it."""
from __future__ import annotations

import pytest

from tests.support import cli

NOWHERE = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/erp_sync", "AMQP_URL": "amqp://guest:guest@127.0.0.1:9/%2F",
           "ERP_BASE_URL": "http://127.0.0.1:9", "ERP_API_TOKEN": "a-token-of-this-test"}


@pytest.mark.parametrize(("args", "variable", "value"), [
    (("dlq", "list"), "AMQP_URL", "amqp://guest:guest@127.0.0.1:notaport/x"),
    (("worker", "inventory"), "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=abc"),
    (("migrate",), "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=abc"),
    (("orders", "retry", "--all"), "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=abc"),
    (("migrate",), "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:notaport/x"),
    (("orders", "list"), "DATABASE_URL", "postgresqlfoo://x"),
    (("worker", "orders"), "ERP_BASE_URL", "http://[::1"),
    (("reconcile", "--dry-run"), "ERP_BASE_URL", "http://[::1"),
    (("migrate",), "QUEUE_MAX_LENGTH", "99999999999999999999"),
    (("worker", "inventory"), "DATABASE_LOCK_TIMEOUT_MS", "99999999999"),
    (("worker", "catalog"), "WORKER_BATCH_SIZE", "20000"),
    (("worker", "inventory"), "WORKER_PREFETCH", "65536"),
    (("worker", "inventory"), "WORKER_STOP_TIMEOUT_S", "inf"),
    (("ingress",), "PROMETHEUS_MULTIPROC_DIR", "/nonexistent/x"),
])
def test_a_malformed_setting_stops_the_command_with_one_line_naming_it(args, variable, value):
    # given every other setting pointing where nothing listens: had the command gone on, it would fail otherwise
    result = cli.run(*args, **{**NOWHERE, variable: value})

    # then it stopped at start with one line naming the variable, no traceback
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"erp-sync: configuration error: {variable}: ")


def test_tls_files_the_ingress_cannot_load_stop_it_with_one_line_and_other_processes_not_at_all(tmp_path):
    # given a certificate and a key named in the environment every process shares, not there
    tls = {"INGRESS_TLS_CERTFILE": str(tmp_path / "cert.pem"), "INGRESS_TLS_KEYFILE": str(tmp_path / "key.pem")}

    # when the ingress starts, and a one-shot command runs
    ingress = cli.run("ingress", **NOWHERE, **tls, ERP_WEBHOOK_SECRET="a-webhook-secret-of-the-tests-0123456789")
    other = cli.run("orders", "list", **NOWHERE, **tls)

    # then the ingress stopped with one line naming the certificate, no traceback
    assert ingress.returncode == 2, ingress.stderr
    assert ingress.stderr.strip() == (f"erp-sync: configuration error: INGRESS_TLS_CERTFILE: cannot read "
                                      f"{tmp_path / 'cert.pem'}: No such file or directory")
    # and the other command went on to the database (where nothing listens) without reading them
    assert other.returncode == 1 and "database unavailable" in other.stderr, other.stderr


@pytest.mark.parametrize("args", [("orders", "list"), ("send-webhook", "event.json")])
def test_an_env_file_that_is_not_utf8_stops_the_command_with_one_line_naming_it(tmp_path, args):
    # given the file of `erp-sync dev` with a byte no UTF-8 text has
    env_file = tmp_path / "dev.env"
    env_file.write_bytes(b"export ERP_BASE_URL=http://erp\xff\n")

    result = cli.run(*args, **NOWHERE, ERP_SYNC_ENV_FILE=str(env_file))

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"erp-sync: configuration error: ERP_SYNC_ENV_FILE: cannot read {env_file}: ")


def test_an_env_file_named_but_not_there_stops_the_command_with_one_line_naming_it(tmp_path):
    # given a typo in the file's name: the command would otherwise run on the default database and broker
    result = cli.run("orders", "list", **NOWHERE, ERP_SYNC_ENV_FILE=str(tmp_path / "dev.evn"))

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"erp-sync: configuration error: ERP_SYNC_ENV_FILE: no file at "
                                     f"{tmp_path / 'dev.evn'} (set it empty to read no file)")


@pytest.mark.parametrize("command", ["ingress", "api"])
def test_an_amqp_url_pika_cannot_read_stops_a_server_before_it_forks(command):
    # given a server's every setting right but the broker's options
    result = cli.run(command, "--port", str(cli.free_port()), timeout=30,
                     **{**NOWHERE, "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=abc"},
                     ERP_WEBHOOK_SECRET="a-secret-of-this-test-run", STOREFRONT_API_TOKEN="a-token-of-this-test-run")

    # then it stops before granian forks its workers (each would print a traceback): one line, exit 2

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "erp-sync: configuration error: AMQP_URL: Invalid heartbeat value 'abc': "
        "ValueError(\"invalid literal for int() with base 10: 'abc'\")"]
