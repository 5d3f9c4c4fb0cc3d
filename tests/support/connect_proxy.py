"""A forward proxy on loopback that tunnels CONNECT, over TLS if asked, its own answer trickled if asked."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\nVia: 1.1 canned-proxy\r\n\r\n"


@contextmanager
def connect_proxy(tls: ssl.SSLContext | None = None, trickle_s: float = 0.0,
                  answered: list[int] | None = None) -> Iterator[str]:
    """Tunnel each CONNECT to the loopback port it names; yields the proxy's URL (https with `tls`).
    With `trickle_s`, its answer to CONNECT (ESTABLISHED) goes out a byte every `trickle_s`, and
    `answered` gets the bytes of it that went out before the client left."""
    listener = socket.create_server(("127.0.0.1", 0))

    def tunnel(client: socket.socket) -> None:
        with suppress(OSError), client, (tls.wrap_socket(client, server_side=True) if tls else client) as conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            _, port = request.split()[1].decode().rsplit(":", 1)
            with socket.create_connection(("127.0.0.1", int(port))) as upstream:
                if trickle_s:
                    sent = _trickle(conn, trickle_s)
                    if answered is not None:
                        answered.append(sent)
                    if sent < len(ESTABLISHED):
                        return
                else:
                    conn.sendall(ESTABLISHED)
                threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
                _pipe(conn, upstream)

    def accept() -> None:
        with suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=tunnel, args=(client,), daemon=True).start()

    accepting = threading.Thread(target=accept, daemon=True)
    accepting.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # close() alone leaves accept() waiting
        listener.close()
        accepting.join(timeout=5)


def _trickle(conn: socket.socket, trickle_s: float) -> int:
    for sent, byte in enumerate(ESTABLISHED):
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return sent
        time.sleep(trickle_s)
    return len(ESTABLISHED)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    for sock in (source, sink):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
