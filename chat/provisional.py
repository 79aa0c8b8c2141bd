"""The sender's tab sees its message and the reply's first words before the send is
stored.

A send is stored on the process's one database thread, where simultaneous sends wait
for each other; an early request (``chat.actions.early``) is already bringing the reply
meanwhile. So the socket that sent shows, at once, a *provisional* exchange: the
message as typed and a streaming reply that takes the early request's text as it
arrives. It lives in ``#p-<client id>`` (``display: contents``), only in that tab.

Once the send is stored, every tab of the conversation gets the stored articles and
the reply's own frames, which start from the first character. The provisional reply
goes on taking text until the stored reply's first frame reaches this socket, so the
text does not pause while the stored reply gets going. The page hides the stored pair
and keeps the provisional one until the stored reply has at least as much text, then
swaps them in one step (``static/chat/chat.js``): the text never goes blank or
jumps back.

The send is stored once those first words are on their way, or after
``HEAD_START`` at most (and then in its turn, ``chat.actions.common.database_turn``).
Storing is Python on the database thread, and it shares the
process's one interpreter lock with the event loop: when fifty people send at once,
storing first took half the loop's time just when it had fifty requests to start and
fifty first words to show (216 ms added to the first words at 50 sends, 66 ms with the
stores after them). Nobody waits on the store meanwhile: this tab shows the exchange,
and the page keeps the text (to send again, or to put back in the composer if refused)
until the store is acknowledged.

When the send is refused, is a resend of a stored message, or the stored
send built a different request than the early one, the provisional exchange is removed
(an out-of-band delete) and the stored state is what the tab shows. Nothing is stored
from here, and nothing here is shown to any other tab.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from html import escape as html_escape

from django.conf import settings
from django.utils import translation

from chat.actions.early import EarlyStart
from chat.rendering import MessageView, delta_frame, render_message
from chat.streaming import Doorbell, loop_pace
from chat.text import StreamCleaner
from providers.clients.types import ReasoningDelta, StreamEvent, TextDelta

# Placeholders for the rendered shells. Neither can occur in a client id (letters,
# digits, - and _), and the text goes in last, so nothing it contains is replaced.
_ID = "PARLEY.ID"
_TEXT = "PARLEY.TEXT"
_shells: dict[tuple[str | None, str], str] = {}
_SHELLS_KEPT = 256
#: How long a send's store waits for its provisional reply's first words (seconds).
HEAD_START = 0.1


def _shell(speaker: str) -> str:
    """The provisional exchange's HTML with placeholders, rendered from the message
    template once per language and speaker (a render per send would cost the event
    loop a fraction of a millisecond each, in the burst this is for)."""
    key = (translation.get_language(), speaker)
    shell = _shells.get(key)
    if shell is None:
        user = MessageView(id=0, role="user", status="complete", content=_TEXT)
        reply = MessageView(id=0, role="assistant", status="streaming", content="", speaker=speaker)
        shell = (
            f'<div hx-swap-oob="beforeend:#messages"><div id="{_ID}" class="provisional" '
            f'data-client-id="{_ID}">'
            + render_message(user).replace('id="m-0', f'id="{_ID}-q')
            + render_message(reply).replace('id="m-0', f'id="{_ID}-r')
            + "</div></div>"
        )
        if len(_shells) >= _SHELLS_KEPT:
            _shells.clear()
        _shells[key] = shell
    return shell


def provisional_frame(*, client_id: str, text: str, speaker: str) -> str:
    box = f"p-{client_id}"
    return _shell(speaker).replace(_ID, box).replace(_TEXT, html_escape(text))


def discard_frame(client_id: str) -> str:
    return f'<div id="p-{client_id}" hx-swap-oob="delete"></div>'


class ProvisionalReply:
    """Shows one send's provisional exchange on its socket, and the early request's
    text in it, in frames paced as a reply's are, until ``halt`` or ``take_back``."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        client_id: str,
        early: EarlyStart,
    ) -> None:
        self.client_id = client_id
        self._send = send
        self._early = early
        self._target = f"p-{client_id}-r"
        self._cleaners = (StreamCleaner(), StreamCleaner())
        #: (reasoning, text): what was shown, and what is waiting for the next frame.
        self._ends = [0, 0]
        self._waiting = ["", ""]
        self._arrived = Doorbell()
        self._closing = Doorbell()
        self._closed = False
        self._first_words: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        shell = provisional_frame(client_id=client_id, text=early.text, speaker=early.speaker)
        self._task = asyncio.get_running_loop().create_task(self._show(shell))
        early.watcher = self._take

    def _take(self, event: StreamEvent) -> None:
        if isinstance(event, ReasoningDelta):
            region = 0
        elif isinstance(event, TextDelta):
            region = 1
        else:
            return
        self._waiting[region] += self._cleaners[region].feed(event.text)
        self._arrived.ring()

    def _frame(self) -> str:
        parts = []
        for region, name in enumerate(("reasoning", "text")):
            text, self._waiting[region] = self._waiting[region], ""
            if text:
                offset = self._ends[region]
                parts.append(delta_frame(f"{self._target}-{name}", offset=offset, text=text))
                self._ends[region] = offset + len(text)
        return "".join(parts)

    async def _show(self, shell: str) -> None:
        await self._send(shell)
        while not self._closed:
            await self._arrived.wait()
            if self._closed:
                return
            frame = self._frame()
            if frame:
                await self._send(frame)
                if not self._first_words.done():
                    self._first_words.set_result(None)
            interval = loop_pace.interval(settings.REPLY_FRAME_INTERVAL)
            if interval:
                await self._closing.wait(interval)

    async def first_words(self, *, within: float) -> None:
        """Until the reply's first words are on their way to the page, at most ``within``
        seconds."""
        if not self._first_words.done():
            await asyncio.wait((self._first_words,), timeout=within)

    def halt(self) -> None:
        """Show no more text: the stored reply's own frames have reached this socket
        (or the socket is going away)."""
        if self._early.watcher == self._take:
            self._early.watcher = None
        self._closed = True
        self._arrived.ring()
        self._closing.ring()
        if not self._first_words.done():
            self._first_words.cancel()

    async def take_back(self) -> None:
        """Remove it from the page, once what is being sent has gone: the send was
        refused or resent, or its reply asked again."""
        self.halt()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._send(discard_frame(self.client_id))
