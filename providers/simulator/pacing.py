"""Token pacing and mid-stream faults, shared by every wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from providers.simulator.replies import Reply, tokens

if TYPE_CHECKING:
    from providers.simulator.server import Exchange

MALFORMED = 'data: {"id": "broken", "choices": [{"delta": {"content": \n\n'


def pieces(reply: Reply) -> list[tuple[str, str]]:
    return [("reasoning", t) for t in tokens(reply.reasoning)] + [
        ("text", t) for t in tokens(reply.answer)
    ]


async def paced(
    exchange: Exchange, items: list[tuple[str, str]], *, malformed: str = MALFORMED
) -> AsyncIterator[tuple[str, str]]:
    """Yield items at the requested pace, applying ``break-after``, ``silence-after``,
    ``malformed-after``, ``pause-after`` (with ``pause-seconds``: a stall mid-reply that
    then goes on) and ``chunk-chars`` (merge pieces into chunks of about that size, for
    very long replies). A break ends the iteration with ``exchange.broken`` set."""
    directives = exchange.directives
    break_after = directives.fault_int("break-after")
    silence_after = directives.fault_int("silence-after")
    malformed_after = directives.fault_int("malformed-after")
    pause_after = directives.fault_int("pause-after")
    chunk_chars = directives.fault_int("chunk-chars")
    if chunk_chars:
        items = _merged(items, chunk_chars)
    for count, item in enumerate(items):
        if count == pause_after:
            await exchange.pause_for(float(directives.faults.get("pause-seconds") or 10))
        if count == break_after:
            exchange.broken = True
            return
        if count == silence_after:
            await exchange.disconnected.wait()
            exchange.broken = True
            return
        if count == malformed_after:
            await exchange.send(malformed)
        await exchange.pause()
        yield item


def _merged(items: list[tuple[str, str]], size: int) -> list[tuple[str, str]]:
    merged: list[tuple[str, str]] = []
    for kind, text in items:
        if merged and merged[-1][0] == kind and len(merged[-1][1]) < size:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged
