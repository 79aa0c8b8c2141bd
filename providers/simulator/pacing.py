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
    """Yield items at the requested pace, applying ``break-after``, ``silence-after`` and
    ``malformed-after``. A break ends the iteration with ``exchange.broken`` set."""
    directives = exchange.directives
    break_after = directives.fault_int("break-after")
    silence_after = directives.fault_int("silence-after")
    malformed_after = directives.fault_int("malformed-after")
    for count, item in enumerate(items):
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
