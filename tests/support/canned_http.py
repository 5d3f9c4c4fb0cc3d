"""An HTTP server on loopback answering every request with one canned answer: an ERP or a host that misbehaves."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def answering(status: int, body: bytes, headers: dict[str, str] | None = None, extra_length: int = 0,
              repeat: int = 1, written: list[int] | None = None) -> Iterator[str]:
    """Answer every GET and POST with `status`, `headers` and `body` (`repeat` times over), declaring
    `extra_length` bytes more than it sends (unless `headers` declare a Content-Length of their own);
    yields the base URL. `written` gets the bytes of body each answer got out before the client left."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response_only(status)  # no Date of its own: a test's `headers` may give one
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body) * repeat + extra_length))
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                for _ in range(repeat):
                    self.wfile.write(body)
                    sent += len(body)
            except OSError:
                pass  # the client has gone
            if written is not None:
                written.append(sent)
            self.close_connection = True

        do_GET = do_POST = answer  # noqa: N815 (http.server's names)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
