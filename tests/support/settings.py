"""The webhook secrets, storefront API tokens and retry delays the test settings use."""
from __future__ import annotations

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
OLD_WEBHOOK_SECRET = "old-webhook-secret-9876543210"
TEST_RETRY_DELAYS_MS = (200, 400)
API_TOKEN = "test-storefront-token-0123456789"
OLD_API_TOKEN = "old-storefront-token-9876543210"
