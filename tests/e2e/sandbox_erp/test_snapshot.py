"""A sandbox process holding a million SKUs streams its snapshot within 100 MB."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import ijson
import pytest
import requests

from tests.support.sandbox import TOKEN, bearer


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


@pytest.fixture(scope="module")
def million_sku_sandbox(tmp_path_factory):
    """A sandbox process holding a million generated SKUs in a SQLite file: (base URL, pid)."""
    database = tmp_path_factory.mktemp("million") / "erp.db"
    env = {**os.environ, "SANDBOX_ERP_API_TOKEN": TOKEN, "SANDBOX_ERP_DATABASE": str(database),
           "SANDBOX_ERP_GROUPS": "250000", "SANDBOX_ERP_VARIANTS": "4", "SANDBOX_ERP_WEBHOOK_URL": ""}
    process = subprocess.Popen([sys.executable, "-m", "erp_sync.sandbox_erp", "--port", "0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        yield re.search(r"listening on (\S+)", line).group(1), process.pid
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["json", "csv"])
def test_a_million_skus_stream_with_the_sandbox_under_100_mb(million_sku_sandbox, form):
    # given a sandbox process holding a million SKUs
    url, pid = million_sku_sandbox

    # when the whole snapshot is streamed over HTTP
    started = time.monotonic()
    with requests.get(f"{url}/api/v1/inventory/snapshot?format={form}", headers=bearer(), stream=True) as response:
        assert response.status_code == 200
        if form == "json":
            count = sum(1 for _ in ijson.items(response.raw, "item"))
        else:
            count = sum(1 for _ in csv.DictReader(raw.decode() for raw in response.iter_lines()))
    elapsed = time.monotonic() - started

    # then every SKU arrived and the sandbox (seeding included) never grew past 100 MB
    assert count == 1_000_000
    peak = _peak_rss_mb(pid)
    print(f"{form}: streamed {count} SKUs in {elapsed:.1f}s, sandbox peak RSS {peak:.1f} MB")
    assert peak < 100
