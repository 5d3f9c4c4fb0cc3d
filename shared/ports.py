"""Whether a server can listen on a port, asked before it starts.

granian listens with SO_REUSEPORT, so a second server started on a taken port by mistake would
share it silently and take a part of the requests (perhaps with another secret or broker). A
probe bound without SO_REUSEPORT is refused by a listener that has it: that is the question.
"""
from __future__ import annotations

import errno
import socket


def why_unusable(host: str, port: int) -> str | None:
    """"is taken", or why else the port cannot be listened on; None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        # As the servers themselves bind: a port left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return "is taken" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
    return None
