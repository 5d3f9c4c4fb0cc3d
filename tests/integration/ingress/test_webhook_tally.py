"""The door's tally for the console: webhooks accepted by event type and rejected by reason, per minute, in PostgreSQL."""
from __future__ import annotations

from sqlalchemy import delete

from erp_sync.ingress.webhook_tally import last_hour
from erp_sync.shared.models import WebhookTally
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.settings import WEBHOOK_SECRET


def test_the_last_hour_counts_what_the_door_answered(app, client, db_engine):
    # given an empty tally
    with db_engine.begin() as connection:
        connection.execute(delete(WebhookTally))
    body = encode(inventory_event())

    # when the door accepts one event twice and refuses a bad signature and a non-JSON type
    for _ in range(2):
        assert client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET)).status_code == 202
    assert client.post("/webhooks/erp", data=body, headers={"X-ERP-Signature": "0" * 64,
                                                            "Content-Type": "application/json"}).status_code == 401
    assert client.post("/webhooks/erp", data=body,
                       headers=signed_headers(body, WEBHOOK_SECRET, "text/plain")).status_code == 415
    app.extensions["erp_sync.webhook_tallies"].flush()

    # then the last hour shows them by event type and by reason
    assert last_hour(db_engine) == {"accepted": {"inventory.change": 2},
                                    "rejected": {"content_type": 1, "signature": 1}}
