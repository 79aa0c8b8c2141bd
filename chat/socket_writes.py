"""Daphne's sockets send what they are given at once, when nothing is waiting before it.

Twisted buffers every write and sends it on the reactor's next turn: it asks the
event loop to watch the socket for writability (an ``epoll_ctl``), the loop calls back
(through Twisted's logging and context wrappers), the data is sent, and the watch is
dropped again (another ``epoll_ctl``). A websocket frame is one write, so every frame
of every reply paid for that round: with 150 replies streaming in a process, about a
tenth of its event loop on top of the send itself, and the loop runs late past the
knee (issue 8; measured in docs/benchmarks.md).

``install_eager_writes`` makes a plain TCP connection with nothing buffered try the
send right away, as asyncio's own transports do. Whatever the kernel does not take
(a slow reader, a full buffer), and every write while anything is still buffered, goes
through Twisted's buffer as before, so the order of bytes never changes; so do writes
over TLS and on a connection that is closing. A send that fails leaves the data to
Twisted too, whose next attempt reports the lost connection the usual way.

The wrapper relies on attributes of Twisted's ``FileDescriptor`` that are not public
(``dataBuffer``, ``offset``, ``_tempDataLen``); pyproject bounds Twisted's version,
and ``tests/test_socket_writes.py`` fails if they change shape.
"""

from __future__ import annotations

import logging
from typing import Any

from chat.lifecycle import reactor_loaded

logger = logging.getLogger(__name__)

_installed = False


def install_eager_writes() -> bool:
    """Under daphne (Twisted's reactor is loaded), send idle connections' writes at once.
    True once installed; False elsewhere, or if Twisted is not shaped as expected."""
    global _installed
    if _installed:
        return True
    if not reactor_loaded():
        return False
    from twisted.internet import _newtls, abstract, tcp

    buffered_write = tcp.Connection.write
    descriptor = abstract.FileDescriptor
    expected = (
        buffered_write is _newtls.ConnectionMixin.write
        and hasattr(descriptor, "dataBuffer")
        and hasattr(descriptor, "offset")
        and hasattr(tcp.Connection, "writeSomeData")
        and "_tempDataLen" in descriptor.__init__.__code__.co_names
    )
    if not expected:
        logger.warning("Twisted's TCP writes are not shaped as expected; left buffered")
        return False
    tcp.Connection.write = eager_write(buffered_write)  # type: ignore[method-assign]
    _installed = True
    return True


def eager_write(buffered_write: Any) -> Any:
    """``tcp.Connection.write``, sending at once when nothing is buffered before it."""

    def write(self: Any, data: bytes) -> None:
        if (
            type(data) is bytes
            and data
            and not self.TLS
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnecting
            and not self._writeDisconnected
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
        ):
            sent = self.writeSomeData(data)
            if type(sent) is int:  # otherwise a ConnectionLost: Twisted's next try reports it
                if sent == len(data):
                    return
                data = data[sent:]
        buffered_write(self, data)

    write.__doc__ = buffered_write.__doc__
    return write
