"""Posting ERP events to the ingress as the ERP would."""
from __future__ import annotations

from tests.support.factories import encode, signed_headers
from tests.support.settings import WEBHOOK_SECRET


def post(client, event: dict) -> None:
    """Post one event, signed, and insist it was accepted."""
    body = encode(event)
    answer = client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET))
    assert answer.status_code == 202, answer.get_json()
