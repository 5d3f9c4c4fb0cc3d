"""deploy/healthcheck.py, the image's HEALTHCHECK: which /healthz it asks, read from the container's command."""
from __future__ import annotations

import pytest

from tests.support.deploy_files import load_script

healthcheck = load_script("healthcheck.py")


@pytest.mark.parametrize(("command", "environ", "url"), [
    (["ingress"], {}, "http://127.0.0.1:8000/healthz"),
    (["ingress"], {"INGRESS_PORT": "9000"}, "http://127.0.0.1:9000/healthz"),
    (["ingress", "--port", "9100"], {"INGRESS_PORT": "9000"}, "http://127.0.0.1:9100/healthz"),
    (["ingress"], {"INGRESS_TLS_CERTFILE": "/tls/cert.pem"}, "https://127.0.0.1:8000/healthz"),
    (["api"], {"INGRESS_TLS_CERTFILE": "/tls/cert.pem"}, "http://127.0.0.1:8001/healthz"),
    (["api"], {}, "http://127.0.0.1:8001/healthz"),
    (["api"], {"API_PORT": "9001"}, "http://127.0.0.1:9001/healthz"),
    (["sandbox-erp", "--host", "0.0.0.0"], {}, "http://127.0.0.1:8900/healthz"),
    (["worker", "orders"], {}, None),
    (["worker", "orders"], {"METRICS_PORT": "0"}, None),
    (["worker", "orders"], {"METRICS_PORT": "9100"}, "http://127.0.0.1:9100/healthz"),
    (["migrate"], {}, None),
])
def test_the_check_asks_the_port_the_process_serves_on(command, environ, url):
    assert healthcheck.health_url(command, environ) == url


def test_the_command_is_read_after_the_erp_sync_script(tmp_path):
    # PID 1 as Docker starts an exec-form ENTRYPOINT of a script: the interpreter, the script, its arguments
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/opt/erp-sync/bin/python\0/opt/erp-sync/bin/erp-sync\0worker\0orders\0")

    assert healthcheck.main_command(cmdline) == ["worker", "orders"]
