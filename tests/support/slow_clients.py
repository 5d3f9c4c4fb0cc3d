"""Slow clients (slowloris): connections that send a request a byte at a time and never finish it."""
from __future__ import annotations

import selectors
import socket
import threading
import time

# Headers never ended; or headers ended, announcing a body that never comes in full.
SLOW_HEADERS = b"POST /webhooks/erp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "
SLOW_BODY = (b"POST /webhooks/erp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"X-ERP-Signature: 00\r\nContent-Length: 100000\r\n\r\n{")


class SlowClients:
    """`count` connections to `port`, each sent `opening` and then one more byte every `interval_s`."""

    def __init__(self, port: int, count: int, opening: bytes, interval_s: float = 1.0) -> None:
        self.opened_at = time.monotonic()
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(opening)
            sock.setblocking(False)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(self._interval_s):
            for sock in self.sockets:
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # closed by the server: what the test waits for

    def still_open(self) -> int:
        """How many the server has neither answered nor closed yet."""
        return sum(1 for sock in self.sockets if _pending(sock))

    def wait_until_closed(self, deadline_s: float) -> list[float]:
        """Seconds from opening until the server closed each connection, for those closed before `deadline_s`."""
        selector = selectors.DefaultSelector()
        for sock in self.sockets:
            selector.register(sock, selectors.EVENT_READ)
        closed: list[float] = []
        while selector.get_map() and (left := self.opened_at + deadline_s - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if not _drain(sock):
                    selector.unregister(sock)
                    closed.append(time.monotonic() - self.opened_at)
        selector.close()
        return closed

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def _pending(sock: socket.socket) -> bool:
    """Open, and nothing received: the server is still waiting for the rest of the request."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


def _drain(sock: socket.socket) -> bool:
    """Read what the server sent (an error answer, perhaps); False once it has closed the connection."""
    try:
        return sock.recv(65536) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
