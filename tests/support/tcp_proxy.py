"""A TCP proxy the tests can cut and restore, to take a real service away and bring it back.

`python -m tests.support.tcp_proxy LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT` runs one in a
process of its own (inside a network namespace: tests/support/partition.py).
"""
from __future__ import annotations

import argparse
import select
import socket
import threading


class TcpProxy:
    """Forwards <listen_host>:<port> to a target; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", listen_port: int = 0) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server((listen_host, listen_port))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self.refused = 0  # connections closed at once while cut
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        pair = {client: upstream, upstream: client}
        try:
            while self._up.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            # `cut()` closed the sockets under this thread: select() then sees a descriptor of -1.
            return
        finally:
            with self._lock:
                for sock in (client, upstream):
                    self._sockets.discard(sock)
                    sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Forward a TCP port until killed.")
    parser.add_argument("listen_host")
    parser.add_argument("listen_port", type=int)
    parser.add_argument("target_host")
    parser.add_argument("target_port", type=int)
    args = parser.parse_args()
    TcpProxy(args.target_host, args.target_port, args.listen_host, args.listen_port)
    threading.Event().wait()


if __name__ == "__main__":
    main()
