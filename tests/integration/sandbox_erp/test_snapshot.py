"""The sandbox's inventory snapshot streamed over real HTTP, and its signed file URL."""
from __future__ import annotations

import csv
import io

import ijson
import requests

from tests.support.sandbox import bearer

EXPECTED = {"IPH15-128-BLK": 50, "IPH15-128-BLU": 42}


def test_snapshot_as_json_array(live):
    response = requests.get(f"{live}/api/v1/inventory/snapshot?format=json", headers=bearer(), stream=True)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    items = list(ijson.items(response.raw, "item"))
    assert {item["sku"]: item["qty"] for item in items} == EXPECTED
    assert all(set(item) == {"sku", "qty"} for item in items)


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
