import socket
import threading
import time

import requests

from erp_sync.workers.http_deadlines import Deadlines, WatchedAdapter, cut_at, unwatch, watch, watched


def test_an_action_runs_once_its_deadline_passes_and_a_cancelled_one_never():
    deadlines = Deadlines("test-deadlines")
    ran: list[str] = []
    done = threading.Event()
    cancel_late = deadlines.call_at(time.monotonic() + 0.05, lambda: ran.append("cancelled"))
    deadlines.call_at(time.monotonic() + 0.1, lambda: (ran.append("due"), done.set()))
    cancel_late()

    assert done.wait(5)
    assert ran == ["due"]


def test_an_earlier_deadline_added_later_is_not_held_behind_a_far_one():
    deadlines = Deadlines("test-deadlines")
    done = threading.Event()
    deadlines.call_at(time.monotonic() + 3600, lambda: None)
    deadlines.call_at(time.monotonic(), done.set)

    assert done.wait(5)


def test_an_action_that_fails_leaves_the_later_ones_watched():
    # given a deadline whose action fails (a socket the peer has reset), then another
    deadlines = Deadlines("test-deadlines")
    done = threading.Event()

    def fails() -> None:
        raise OSError(107, "Transport endpoint is not connected")

    deadlines.call_at(time.monotonic(), fails)
    deadlines.call_at(time.monotonic() + 0.05, done.set)

    # then the later one still runs: every later download keeps its total timeout
    assert done.wait(5)


def test_a_socket_back_in_the_pool_before_the_deadline_is_not_shut():
    # given a download reading from one connection, which goes back to the pool before its deadline
    reader, writer = socket.socketpair()
    with reader, writer, cut_at(time.monotonic() + 0.05, Deadlines("test-deadlines")) as cut:
        watch(reader)
        unwatch(reader)
        # when the deadline passes
        time.sleep(0.2)
        # then the pooled connection still works, and the download does not count as cut short
        writer.sendall(b"next answer")
        assert reader.recv(100) == b"next answer"
        assert not cut.happened.is_set()


def test_a_socket_handed_over_after_the_deadline_is_shut_at_once():
    # given a download whose deadline passed while it connected
    reader, writer = socket.socketpair()
    with reader, writer, cut_at(time.monotonic(), Deadlines("test-deadlines")) as cut:
        time.sleep(0.1)
        # when its connection starts reading the answer
        watch(reader)
        # then that read ends at once, and the download counts as cut short
        assert reader.recv(100) == b"" and cut.happened.is_set()


def test_a_socket_handed_over_twice_and_taken_back_once_is_not_shut():
    # given a connection that hands its socket over at a proxy's tunnel, and again as its answer comes
    reader, writer = socket.socketpair()
    with reader, writer, cut_at(time.monotonic() + 0.5, Deadlines("test-deadlines")) as cut:
        watch(reader)
        watch(reader)
        # when it goes back to the pool before the deadline
        unwatch(reader)
        time.sleep(0.7)
        # then the next call that takes it can use it
        writer.sendall(b"next answer")
        assert reader.recv(100) == b"next answer" and not cut.happened.is_set()


class TlsWithinTls:
    """What urllib3 hands over for TLS within TLS (its SSLTransport): no `shutdown`, the socket beneath."""

    def __init__(self, beneath: socket.socket) -> None:
        self.socket = beneath


def test_the_socket_beneath_tls_within_tls_is_shut_at_the_deadline():
    reader, writer = socket.socketpair()
    with reader, writer, cut_at(time.monotonic() + 0.05, Deadlines("test-deadlines")) as cut:
        watch(TlsWithinTls(reader))  # type: ignore[arg-type]
        assert cut.happened.wait(5)
        assert reader.recv(100) == b""


def test_a_session_watched_twice_keeps_its_adapters_and_their_pools():
    session = watched(requests.Session())
    adapters = dict(session.adapters)

    assert watched(session).adapters == adapters
    assert all(isinstance(adapter, WatchedAdapter) for adapter in adapters.values())
