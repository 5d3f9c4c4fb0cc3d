from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import ijson
import pytest
import requests

from tests.sandbox_erp.conftest import ADMIN_TOKEN, TOKEN, bearer

EXPECTED = {"IPH15-128-BLK": 50, "IPH15-128-BLU": 42}


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), bearer(ADMIN_TOKEN)])
def test_snapshot_refuses_a_missing_or_wrong_token(client, headers):
    assert client.get("/api/v1/inventory/snapshot", headers=headers).status_code == 401


def test_snapshot_as_json_array(live):
    response = requests.get(f"{live}/api/v1/inventory/snapshot?format=json", headers=bearer(), stream=True)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    items = list(ijson.items(response.raw, "item"))
    assert {item["sku"]: item["qty"] for item in items} == EXPECTED
    assert all(set(item) == {"sku", "qty"} for item in items)


def test_snapshot_as_csv(client):
    response = client.get("/api/v1/inventory/snapshot?format=csv", headers=bearer())

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {row["sku"]: int(row["qty"]) for row in rows} == EXPECTED
    assert list(rows[0]) == ["sku", "qty"]


def test_snapshot_as_url_of_a_csv_file(live):
    response = requests.get(f"{live}/api/v1/inventory/snapshot", params={"format": "url"}, headers=bearer())

    assert response.status_code == 200
    url = response.json()["url"]
    assert url.startswith(live)
    # the file URL is signed, so a plain download with no token works, as from a CDN
    download = requests.get(url)
    assert download.status_code == 200
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {row["sku"]: int(row["qty"]) for row in rows} == EXPECTED
    assert requests.get(url.replace("signature=", "signature=0")).status_code == 403
    assert requests.get(url.split("?")[0]).status_code == 403


@pytest.mark.parametrize("form", ["json", "csv", "url"])
def test_configured_default_form_is_used_without_a_query_parameter(make_app, form):
    client = make_app(snapshot_format=form).test_client()

    response = client.get("/api/v1/inventory/snapshot", headers=bearer())

    expected = {"json": "application/json", "csv": "text/csv", "url": "application/json"}[form]
    assert response.mimetype == expected
    if form == "url":
        assert "url" in response.get_json()


def test_unknown_format_answers_400(client):
    response = client.get("/api/v1/inventory/snapshot?format=xml", headers=bearer())

    assert response.status_code == 400
    assert "format" in response.get_json()["error"]


def test_snapshot_reflects_deductions(client):
    client.post("/api/v1/orders/import", headers=bearer(),
                json={"order_id": "O-1", "line_items": [{"sku": "IPH15-128-BLK", "quantity": 5}]})

    items = json.loads(client.get("/api/v1/inventory/snapshot", headers=bearer()).get_data())

    assert {item["sku"]: item["qty"] for item in items}["IPH15-128-BLK"] == 45


def test_generated_catalog_is_chunked_across_many_rows(make_app):
    client = make_app(catalog_file=None, generate_groups=300, variants_per_group=4, snapshot_chunk_rows=7).test_client()

    items = json.loads(client.get("/api/v1/inventory/snapshot", headers=bearer()).get_data())

    skus = [item["sku"] for item in items]
    assert len(skus) == 1200 == len(set(skus))
    assert skus == sorted(skus)


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
