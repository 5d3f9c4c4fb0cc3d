"""Identifiers in API paths (SKUs, order ids): what storage could hold, or no such resource.

A NUL byte or an id longer than any column would otherwise reach PostgreSQL, which refuses it
with an error that reads like an outage (503). Such a path names nothing: 404.
"""
from __future__ import annotations

from werkzeug.routing import PathConverter, ValidationError

from erp_sync.shared.fields import is_storable_identifier


class IdentifierConverter(PathConverter):
    """`<identifier:sku>`: like `<path:...>` (SKUs may hold slashes), but only storable ids match."""

    def to_python(self, value: str) -> str:
        if not is_storable_identifier(value):
            raise ValidationError()
        return value
