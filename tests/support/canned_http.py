"""An HTTP server on loopback answering every request with one canned answer: an ERP or a host that misbehaves."""
from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal


@contextmanager
def answering(status: int, body: bytes, headers: dict[str, str] | None = None, extra_length: int = 0,
              repeat: int = 1, written: list[int] | None = None, trickle_s: float = 0.0,
              trickle_from: Literal["status", "body"] = "status", trickle_lines: bool = False,
              tls: ssl.SSLContext | None = None, first: bytes = b"") -> Iterator[str]:
    """Answer every GET and POST with `status`, `headers` and `body` (`repeat` times over), declaring
    `extra_length` bytes more than it sends (unless `headers` declare a Content-Length of their own);
    yields the base URL (https with `tls`). `written` gets the bytes of body each answer got out
    before the client left. With `trickle_s`, the answer goes out a byte every `trickle_s` from its
    status line on, or from its body on (the status line and headers at once); with `trickle_lines`,
    a line of its body at a time. `headers={"Content-Length": ""}` sends none: the body ends with
    the connection. `first` goes out once, before the body and its repeats (a JSON array's `[`)."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fields = dict(headers or {})  # no Date of its own: a test's `headers` may give one
            fields.setdefault("Content-Length", str(len(first) + len(body) * repeat + extra_length))
            if not fields["Content-Length"]:
                del fields["Content-Length"]
            fields["Connection"] = "close"
            sent = 0
            try:
                if trickle_s:
                    head = f"HTTP/1.1 {status} Canned\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
                    head_bytes = head.encode("latin-1") + b"\r\n"
                    if trickle_from == "body":
                        self.wfile.write(head_bytes)
                        head_bytes = b""
                    sent = self._trickle(head_bytes, first + body * repeat)
                else:
                    self.send_response_only(status)
                    for name, value in fields.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(first)
                    sent += len(first)
                    for _ in range(repeat):
                        self.wfile.write(body)
                        sent += len(body)
            except OSError:
                pass  # the client has gone
            if written is not None:
                written.append(sent)
            self.close_connection = True

        def _trickle(self, head: bytes, content: bytes) -> int:
            """Send `head`, then `content`, a byte (or a line) every `trickle_s`; the bytes of `content` that went out."""
            for byte in head:
                self.wfile.write(bytes([byte]))
                time.sleep(trickle_s)
            pieces = content.splitlines(keepends=True) if trickle_lines else [bytes([byte]) for byte in content]
            sent = 0
            for piece in pieces:
                try:
                    self.wfile.write(piece)
                except OSError:
                    return sent
                sent += len(piece)
                time.sleep(trickle_s)
            return sent

        do_GET = do_POST = answer  # noqa: N815 (http.server's names)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        # The handshake in each answer's thread, not in accept(): a client that never makes it
        # would hold up the server, and its shutdown.
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
