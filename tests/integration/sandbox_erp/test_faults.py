from __future__ import annotations

import time

import pytest
import requests

from tests.support.sandbox import ADMIN_TOKEN, bearer

ORDER = {"order_id": "ORD-F-1", "line_items": [{"sku": "IPH15-128-BLK", "quantity": 1}]}


def set_faults(base, **state):
    response = requests.put(f"{base}/admin/faults", json=state, headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200, response.text
    return response.json()


def stock(base):
    return requests.get(f"{base}/admin/stock/IPH15-128-BLK", headers=bearer(ADMIN_TOKEN)).json()["qty"]


def test_down_drops_the_connection_without_an_answer(live):
    set_faults(live, mode="down")

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer())
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{live}/api/v1/inventory/snapshot", headers=bearer())

    # the admin API stays up, so the fault can be switched off again
    assert stock(live) == 50
    set_faults(live, mode="none")
    assert requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer()).status_code == 201


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_mode_answers_the_chosen_status_and_deducts_nothing(live, status):
    set_faults(live, mode="5xx", status=status)

    response = requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer())

    assert response.status_code == status
    assert stock(live) == 50


def test_5xx_mode_plays_a_rate_limited_erp_asking_to_wait(live):
    set_faults(live, mode="5xx", status=429, retry_after_s=2)

    response = requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer())

    assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
    assert "Retry-After" not in requests.get(f"{live}/admin/faults", headers=bearer(ADMIN_TOKEN)).headers
    assert stock(live) == 50


def test_slow_mode_delays_the_answer(live):
    set_faults(live, mode="slow", delay_ms=300)

    started = time.monotonic()
    response = requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer())

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        requests.post(f"{live}/api/v1/orders/import", json={**ORDER, "order_id": "ORD-F-2"}, headers=bearer(),
                      timeout=0.1)


def test_slow_for_chosen_skus_holds_up_only_their_orders_until_switched(live):
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.waiting import wait_for

    # given an ERP whose imports of orders naming IPH15-128-BLK hang for a minute
    set_faults(live, mode="slow", delay_ms=60_000, slow_skus=["IPH15-128-BLK"])
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(requests.post, f"{live}/api/v1/orders/import", json=ORDER, headers=bearer(), timeout=30)
        wait_for(lambda: requests.get(f"{live}/admin/faults", headers=bearer(ADMIN_TOKEN)).json()["held"] == 1)

        # when another order, naming another SKU, comes meanwhile
        other = requests.post(f"{live}/api/v1/orders/import", headers=bearer(), timeout=30,
                              json={"order_id": "ORD-F-2", "line_items": [{"sku": "IPH15-128-BLU", "quantity": 1}]})

        # then it is taken while the first still hangs, not yet taken
        assert other.status_code == 201 and not hanging.done()
        orders = requests.get(f"{live}/admin/orders", headers=bearer(ADMIN_TOKEN)).json()
        assert [o["order_id"] for o in orders] == ["ORD-F-2"]

        # and switching the fault lets the hanging one go: taken once
        set_faults(live, mode="none")
        assert hanging.result(timeout=10).status_code == 201
    orders = requests.get(f"{live}/admin/orders", headers=bearer(ADMIN_TOKEN)).json()
    assert sorted(o["order_id"] for o in orders) == ["ORD-F-1", "ORD-F-2"]
    assert requests.get(f"{live}/admin/faults", headers=bearer(ADMIN_TOKEN)).json()["held"] == 0


def test_chosen_skus_are_rejected_with_400(live):
    set_faults(live, reject_skus=["IPH15-128-BLK"])

    rejected = requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer())
    other = requests.post(f"{live}/api/v1/inventory/adjust", headers=bearer(),
                          json={"reference_id": "R-1", "adjustments": [{"sku": "IPH15-128-BLU", "quantity_change": -1}]})

    assert rejected.status_code == 400
    assert rejected.json() == {"error": "sku rejected by the ERP", "details": [{"sku": "IPH15-128-BLK"}]}
    assert other.status_code == 201
    assert stock(live) == 50


def test_media_urls_serve_png_pictures(live):
    response = requests.get(f"{live}/media/SKU-0000001-01.png")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_lost_mode_takes_the_order_but_the_answer_never_arrives(live):
    set_faults(live, mode="lost")

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer())

    # the ERP has the order: the stock is taken, and sending it again meets a 409
    assert stock(live) == 49
    set_faults(live, mode="none")
    assert requests.post(f"{live}/api/v1/orders/import", json=ORDER, headers=bearer()).status_code == 409
