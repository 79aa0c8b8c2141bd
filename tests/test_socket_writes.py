"""Daphne's connections send a write at once when nothing is buffered before it
(chat.socket_writes), and leave everything else to Twisted's buffer, in order.

The connections here are Twisted's own ``tcp.Connection`` over a real loopback socket,
with the eager write bound on a subclass and a reactor that only records what it was
asked to watch. The process-wide install is checked in subprocesses: under Twisted's
asyncio reactor, through daphne's own command line loading ``project.asgi``, and
outside daphne.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from twisted.internet import protocol, tcp
from twisted.internet.error import ConnectionLost

from chat.socket_writes import eager_write
from tests.live import run_python, server_env, under_daphne_command_line


class WatchingReactor:
    """What a reactor is asked: which descriptors to watch for reading and writing."""

    def __init__(self) -> None:
        self.readers: set[object] = set()
        self.writers: set[object] = set()
        self.writer_requests = 0

    def addReader(self, descriptor: object) -> None:  # noqa: N802 - Twisted's interface
        self.readers.add(descriptor)

    def removeReader(self, descriptor: object) -> None:  # noqa: N802
        self.readers.discard(descriptor)

    def addWriter(self, descriptor: object) -> None:  # noqa: N802
        self.writers.add(descriptor)
        self.writer_requests += 1

    def removeWriter(self, descriptor: object) -> None:  # noqa: N802
        self.writers.discard(descriptor)


class EagerConnection(tcp.Connection):
    write = eager_write(tcp.Connection.write)


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (ours, the peer's)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    try:
        yield ours, peer
    finally:
        ours.close()
        peer.close()


def connection(ours: socket.socket) -> tuple[EagerConnection, WatchingReactor]:
    reactor = WatchingReactor()
    conn = EagerConnection(ours, protocol.Protocol(), reactor=reactor)  # type: ignore[arg-type]
    conn.connected = 1
    return conn, reactor


def receive(peer: socket.socket, size: int) -> bytes:
    peer.settimeout(5)
    received = b""
    while len(received) < size:
        chunk = peer.recv(size - len(received))
        if not chunk:
            break
        received += chunk
    return received


def test_a_write_on_an_idle_connection_is_sent_at_once(sockets) -> None:
    ours, peer = sockets
    conn, reactor = connection(ours)

    conn.write(b"first frame")
    conn.write(b"second frame")

    assert receive(peer, 23) == b"first framesecond frame"
    assert reactor.writer_requests == 0
    assert conn.dataBuffer == b"" and not conn._tempDataLen


def test_what_the_kernel_does_not_take_waits_in_twisteds_buffer_and_keeps_its_order(
    sockets,
) -> None:
    ours, peer = sockets
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    conn, reactor = connection(ours)
    ours.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    big = bytes(range(256)) * 512  # 128 KiB: more than both kernel buffers hold

    conn.write(big)
    assert reactor.writers == {conn}  # the rest is Twisted's to send
    conn.write(b"after")  # something is buffered: this one must wait its turn
    assert conn._tempDataBuffer[-1] == b"after"

    received = b""
    peer.settimeout(5)
    while len(received) < len(big) + 5:
        received += peer.recv(65536)
        if conn in reactor.writers:
            assert conn.doWrite() is None
    assert received == big + b"after"
    assert reactor.writers == set()

    conn.write(b"idle again")  # the buffer drained: straight out once more
    assert receive(peer, 10) == b"idle again"
    assert reactor.writers == set()


def test_a_closing_connection_writes_through_twisted(sockets) -> None:
    ours, peer = sockets
    conn, reactor = connection(ours)
    conn.loseConnection()  # Twisted flushes, then closes, on its next turn
    assert reactor.writers == {conn}

    conn.write(b"last words")

    assert conn._tempDataBuffer == [b"last words"]
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing went out ahead of Twisted's turn


def test_a_lost_connection_is_left_for_twisted_to_report(sockets) -> None:
    ours, peer = sockets
    conn, reactor = connection(ours)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()  # a reset: the next sends fail
    for _ in range(50):
        conn.write(b"x" * 1024)  # no exception on the writer's path
        if conn in reactor.writers:
            break
    assert conn in reactor.writers
    assert isinstance(conn.doWrite(), ConnectionLost)


def test_it_installs_over_twisteds_asyncio_reactor_once() -> None:
    printed = run_python(
        """
        from twisted.internet import asyncioreactor
        asyncioreactor.install()
        from twisted.internet import _newtls, tcp
        from chat.socket_writes import install_eager_writes
        assert install_eager_writes() is True
        assert install_eager_writes() is True  # once
        assert tcp.Connection.write is not _newtls.ConnectionMixin.write
        print("installed")
        """
    )
    assert printed == "installed"


def test_daphnes_command_line_loads_parley_with_it_installed(tmp_path) -> None:
    printed = under_daphne_command_line(
        """
        from twisted.internet import _newtls, tcp
        assert tcp.Connection.write is not _newtls.ConnectionMixin.write, "not installed"
        print("installed under daphne")
        """,
        server_env(f"sqlite:///{tmp_path / 'db.sqlite3'}"),
    )
    assert printed.splitlines()[-1] == "installed under daphne"


def test_nothing_is_installed_outside_daphne() -> None:
    printed = run_python(
        """
        import sys
        from twisted.internet import _newtls, tcp
        from chat.socket_writes import install_eager_writes
        assert install_eager_writes() is False
        assert tcp.Connection.write is _newtls.ConnectionMixin.write
        assert "twisted.internet.reactor" not in sys.modules
        print("left alone")
        """
    )
    assert printed == "left alone"
