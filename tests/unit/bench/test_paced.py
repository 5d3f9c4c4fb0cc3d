"""The benchmark's open-loop generator against a local HTTP server: every scheduled request answered and counted."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadgen import Post
from bench.paced import open_loop

POSTS = [Post("/webhooks/erp", b'{"n": %d}' % n, {"Content-Type": "application/json"}) for n in range(3)]


class Accepting(BaseHTTPRequestHandler):
    """202 to every POST, keeping the connection alive, or closing it as gunicorn's sync workers do."""

    protocol_version = "HTTP/1.1"
    close_each = False
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        payload = b'{"status":"accepted"}\n'
        self.send_response(202)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["keep-alive", "connection-close"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, list[bytes]]]:
    handler = type("Handler", (Accepting,), {"close_each": request.param, "bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], handler.bodies
    httpd.shutdown()
    httpd.server_close()


def test_every_scheduled_post_is_sent_answered_and_timed(server):
    port, bodies = server

    # when 60 posts are offered at 200 a second over 4 connections
    result = open_loop("127.0.0.1", port, POSTS, rate=200, duration_s=0.3, connections=4)

    # then each went out once, in turn, and each answer is counted with its latency and its send lag
    assert result.statuses == {202: 60} and result.errors == 0
    assert sorted(bodies) == sorted(post.body for post in POSTS * 20)
    assert len(result.latencies_s) == len(result.send_lags_s) == 60
    assert all(latency > 0 for latency in result.latencies_s)
    assert result.cpu_s > 0


def test_a_server_that_refuses_connections_counts_as_errors_not_answers():
    # given a port nothing listens on
    with ThreadingHTTPServer(("127.0.0.1", 0), Accepting) as closed:
        port = closed.server_address[1]

    # when posts are offered there
    result = open_loop("127.0.0.1", port, POSTS, rate=2000, duration_s=0.1, connections=2)

    # then every one is an error and none an answer
    assert result.errors == 200 and not result.statuses
