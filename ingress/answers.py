"""Answers given outside Flask (on the event loop), byte for byte as Flask and the app's after_request give them."""
from __future__ import annotations

import json
from typing import Any

# What the app's after_request adds to every answer (ingress/errors.py).
NOSNIFF = ("X-Content-Type-Options", "nosniff")


def answer(body: dict[str, Any], headers: dict[str, str]) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and bytes as Flask's `jsonify` and the app's after_request give them for `body`."""
    # Flask's default JSON provider outside debug mode: sorted keys, compact, ASCII, a final newline.
    payload = (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()
    return [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *headers.items(),
            NOSNIFF], payload
