"""A pure server-sent events decoder: lines in, events out.

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


async def aiter_sse(lines: AsyncIterator[str]) -> AsyncGenerator[ServerSentEvent, None]:
    decoder = SSEDecoder()
    async for line in lines:
        event = decoder.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event
    tail = decoder.flush()
    if tail is not None:
        yield tail
