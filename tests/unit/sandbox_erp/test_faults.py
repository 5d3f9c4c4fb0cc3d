"""The sandbox's fault switch through its admin API, on a test client."""
from __future__ import annotations

import pytest

from tests.support.sandbox import ADMIN_TOKEN, bearer


def test_fault_state_is_readable_and_validated(client):
    headers = bearer(ADMIN_TOKEN)
    assert client.get("/admin/faults", headers=headers).get_json()["mode"] == "none"
    assert client.put("/admin/faults", json={"mode": "broken"}, headers=headers).status_code == 400
    assert client.put("/admin/faults", json={"mode": "5xx", "status": 404}, headers=headers).status_code == 400
    assert client.put("/admin/faults", json={"mode": "5xx", "status": 430}, headers=headers).status_code == 400
    assert client.put("/admin/faults", json={"mode": "5xx", "retry_after_s": -1}, headers=headers).status_code == 400
    assert client.put("/admin/faults", json={"mode": "down"}, headers=bearer()).status_code == 401


@pytest.mark.parametrize("path", ["/admin/orders", "/admin/deliveries", "/admin/alerts", "/admin/faults"])
def test_admin_api_needs_the_admin_token(client, path):
    assert client.get(path, headers=bearer("wrong")).status_code == 401
    assert client.get(path, headers=bearer(ADMIN_TOKEN)).status_code == 200
