"""A PostgreSQL front on loopback that, as PgBouncer or a narrow pg_hba.conf does, serves some databases only."""
from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

# The first word of a request to encrypt the connection (SSL, GSS): answered "N", then the startup follows.
ENCRYPTION_REQUESTS = {80877103, 80877104}


@contextmanager
def postgres_front(server_url: str, refused: frozenset[str] = frozenset({"postgres"})) -> Iterator[str]:
    """`server_url` through a front refusing connections to the `refused` databases with PgBouncer's FATAL."""
    parts = urlsplit(server_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(client: socket.socket) -> None:
        with suppress(OSError), client:
            startup = _startup_packet(client)
            database = _database_named(startup)
            if database in refused:
                client.sendall(_fatal(f"no such database: {database}"))
                return
            with socket.create_connection(upstream, timeout=5) as server:
                server.sendall(startup)
                _pipe(client, server)

    def accept() -> None:
        with suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{listener.getsockname()[1]}" if userinfo else f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    finally:
        listener.close()


def _startup_packet(client: socket.socket) -> bytes:
    while True:
        length = struct.unpack("!I", _read(client, 4))[0]
        packet = struct.pack("!I", length) + _read(client, length - 4)
        if struct.unpack("!I", packet[4:8])[0] not in ENCRYPTION_REQUESTS:
            return packet
        client.sendall(b"N")


def _database_named(startup: bytes) -> str:
    fields = startup[8:].split(b"\0")
    options = dict(zip(fields[0::2], fields[1::2], strict=False))
    return (options.get(b"database") or options.get(b"user") or b"").decode()


def _fatal(message: str) -> bytes:
    fields = b"".join(code + value.encode() + b"\0" for code, value in
                      ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", "08P01"), (b"M", message))) + b"\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("closed before the startup packet")
        data += chunk
    return data


def _pipe(client: socket.socket, server: socket.socket) -> None:
    pair = {client: server, server: client}
    while True:
        readable, _, _ = select.select(list(pair), [], [])
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            pair[sock].sendall(data)
