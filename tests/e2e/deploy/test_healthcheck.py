"""deploy/healthcheck.py against a live `erp-sync api`, read from the process's own command line as in a container."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import cli
from tests.support.deploy_files import load_script
from tests.support.settings import API_TOKEN

healthcheck = load_script("healthcheck.py")


@pytest.fixture
def api_process(migrated_database_url, amqp_url):
    port = cli.free_port()
    process = cli.start("api", "--port", str(port), DATABASE_URL=migrated_database_url, AMQP_URL=amqp_url,
                        STOREFRONT_API_TOKEN=API_TOKEN)
    cli.wait_for_port(port, process)
    yield process
    cli.stop(process)


def test_a_serving_api_is_healthy(api_process):
    # its /proc cmdline is what PID 1's is in the image: the interpreter, the erp-sync script, its arguments
    assert healthcheck.main(Path(f"/proc/{api_process.pid}/cmdline")) == 0


def test_an_api_that_does_not_answer_is_unhealthy(tmp_path, capsys):
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(f"/opt/erp-sync/bin/python\0/opt/erp-sync/bin/erp-sync\0api\0--port\0{cli.free_port()}\0".encode())

    assert healthcheck.main(cmdline) == 1
    assert "unhealthy: http://127.0.0.1:" in capsys.readouterr().err
