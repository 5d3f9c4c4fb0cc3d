"""The storefront places an order: the README's walkthrough runs this file, and shows it."""
import os, sys
from decimal import Decimal
from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
ORDER_ID = sys.argv[1] if len(sys.argv) > 1 else "ORD-WEB-1001"  # another id, another order
publisher = ConfirmingPublisher(AMQP_URL)  # one per process
publish_order(publisher, {"order_id": ORDER_ID, "order_date": "2026-12-04T10:15:00Z",
    "customer_ref": "CUST-555", "line_items": [{"sku": "SKU-0000001-01", "quantity": 1,
    "unit_price": Decimal("899.00")}]})  # returns once RabbitMQ confirmed it
publisher.close()
