"""Product pictures the sandbox serves itself, so media downloads work with no outside network."""
from __future__ import annotations

import hashlib
import struct
import zlib

from flask import Blueprint, Response

bp = Blueprint("sandbox_media", __name__)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(name: str, size: int = 32) -> bytes:
    """A small PNG of one colour drawn from the name, so each SKU's picture differs."""
    red, green, blue = hashlib.sha256(name.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(row * size)) + _chunk(b"IEND", b""))


@bp.get("/media/<name>.png")
def picture(name: str) -> Response:
    """A product picture (no token: spec 3.1 wants media URLs public)."""
    return Response(png(name), mimetype="image/png", headers={"Cache-Control": "public, max-age=86400"})
