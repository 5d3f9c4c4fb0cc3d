"""`sandbox-erp --tls` as a process: HTTPS trusted through the CA it writes."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests

from tests.support.sandbox import TOKEN, bearer


def test_tls_serves_https_trusted_through_the_written_ca(tmp_path):
    # given `sandbox-erp --tls` writing its CA to a file
    ca = tmp_path / "ca.pem"
    env = {**os.environ, "SANDBOX_ERP_API_TOKEN": TOKEN, "SANDBOX_ERP_WEBHOOK_URL": ""}
    process = subprocess.Popen([sys.executable, "-m", "erp_sync.sandbox_erp", "--port", "0", "--tls", "--ca-file", str(ca)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"listening on (\S+)", process.stdout.readline()).group(1)
        assert str(ca) in process.stdout.readline()

        # then a client trusting that CA gets the snapshot over HTTPS, and one that does not is refused
        assert url.startswith("https://")
        response = requests.get(f"{url}/api/v1/inventory/snapshot", headers=bearer(), verify=str(ca))
        assert response.status_code == 200 and len(response.json()) == 60
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/api/v1/inventory/snapshot", headers=bearer())
    finally:
        process.terminate()
        process.wait(10)
