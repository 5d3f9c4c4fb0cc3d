"""The webhook secrets and retry delays the test settings use."""
from __future__ import annotations

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
OLD_WEBHOOK_SECRET = "old-webhook-secret-9876543210"
TEST_RETRY_DELAYS_MS = (200, 400)
