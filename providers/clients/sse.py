"""A pure server-sent events decoder: bytes or lines in, events out.

Follows the WHATWG rules every upstream here relies on: ``event:``, ``data:``, ``id:``
fields, ``:`` comment lines, a blank line ends an event, the space after the colon is
optional (DashScope sends none) and several ``data:`` lines join with ``\\n``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerSentEvent:
    data: str = ""
    event: str = ""
    id: str = ""
    comments: list[str] = field(default_factory=list)


class SSEDecoder:
    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id = ""
        self._comments: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line ending); return an event when one is complete."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self._comments.append(line[1:].lstrip(" "))
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        # "retry" and unknown fields are ignored, as the spec says.
        return None

    def flush(self) -> ServerSentEvent | None:
        """End of stream: an event not followed by a blank line still counts."""
        return self._dispatch()

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data and not self._event and not self._comments:
            return None
        event = ServerSentEvent(
            data="\n".join(self._data), event=self._event, id=self._id, comments=self._comments
        )
        self._data, self._event, self._comments = [], "", []
        return event


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event
    tail = decoder.flush()
    if tail is not None:
        yield tail


class LineSplitter:
    """Bytes in, lines out: SSE lines end in CRLF, LF or CR, and a chunk may end between
    the CR and the LF of one line ending. Lines are split on bytes and decoded as UTF-8
    one by one (no byte of a multi-byte character is a CR or an LF), so a character
    split across chunks arrives whole."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._pending + chunk if self._pending else chunk
        if data.endswith(b"\r"):
            # It may be the first half of a CRLF: wait for the next byte.
            self._pending, data = b"\r", data[:-1]
        else:
            self._pending = b""
        lines = data.split(b"\n")
        # The last piece has no line ending yet (empty when the chunk ended with one).
        rest = lines.pop()
        if b"\r" in data:
            lines = [piece for line in lines for piece in _split_cr(line)]
            *done, rest = _split_cr(rest)
            lines.extend(done)
        if rest:
            self._pending = rest + self._pending
        return [line.decode("utf-8", "replace") for line in lines]

    def flush(self) -> list[str]:
        rest, self._pending = self._pending, b""
        if rest.endswith(b"\r"):
            return [line.decode("utf-8", "replace") for line in rest[:-1].split(b"\r")]
        return [rest.decode("utf-8", "replace")] if rest else []


def _split_cr(line: bytes) -> list[bytes]:
    """A piece between LFs: CR ends lines inside it, and a CR right before the LF is
    just the first half of a CRLF."""
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.split(b"\r")


async def aiter_sse(chunks: AsyncIterator[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    """Events from a byte stream, in one generator: the cost per upstream chunk matters
    (one chunk per token) and every layer of async iteration adds to it."""
    decoder, splitter = SSEDecoder(), LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            event = decoder.feed(line)
            if event is not None:
                yield event
    for line in splitter.flush():
        event = decoder.feed(line)
        if event is not None:
            yield event
    tail = decoder.flush()
    if tail is not None:
        yield tail
