"""Starting a reply's upstream request before its message is stored.

Storing a message is a trip to the database thread, which every socket of the process
shares: when many people send at once, the last waits for all the others. The upstream
request does not have to wait with it. When this process knows what the conversation's
next request is built from (``conversations.next_turn``: left by its last reply, or by a
socket opening on it), a send starts the request at once from that and the new text,
while the message is stored. The stored send then builds the request as always, and
the early one is adopted only if it is exactly that request to exactly that connection;
otherwise (another tab changed the conversation, an admin changed the persona or the
key) it is dropped and the reply starts as it always did. Events that arrive before the
reply is stored wait in memory, and nothing is shown before the message is stored.

A send refused when it is stored (access, a quota, a reply already running) drops its
early request. To keep such waste rare, nothing starts early for a user who may have a
quota to check, for a conversation this process knows nothing about, to a connection
that changed since this process last loaded the model list, or after a send in the
conversation was refused for its model or persona (the refusal forgets the next turn).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings

from chat import metrics
from chat.actions.common import ActionError
from chat.actions.conversations import next_turn
from chat.actions.quotas import known_without_quotas
from chat.actions.sending import checked_text
from providers import registry
from providers.clients.errors import LimitExceededError
from providers.clients.types import ChatClient, ChatMessage, ChatRequest, StreamEvent

if TYPE_CHECKING:
    from chat.actions.replies import ReplyContext

logger = logging.getLogger("chat.actions")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class EarlyStart:
    """An upstream request already under way, its events kept until a reply adopts it."""

    def __init__(
        self,
        option: registry.ModelOption,
        request: ChatRequest,
        *,
        text: str = "",
        speaker: str = "",
    ) -> None:
        self.option = option
        self.request = request
        #: The message as it will be stored, and who answers it: for showing them early.
        self.text = text
        self.speaker = speaker
        self.client: ChatClient = registry.client_for(option)
        #: What arrived before a reply adopted the request, then how it ended.
        self._kept: list[Any] = []
        self._sink: Callable[[StreamEvent], None] | None = None
        #: Shown each event until it stops watching (``chat.provisional``).
        self.watcher: Callable[[StreamEvent], None] | None = None
        self._ended: asyncio.Future[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._pull())
        self.settled = False
        #: A reply took this request over (``adopt``).
        self.adopted = False

    async def _pull(self) -> None:
        stream = self.client.stream(self.request)
        try:
            async for event in stream:
                if self._sink is not None:
                    self._sink(event)
                else:
                    self._kept.append(event)
                if self.watcher is not None:
                    self.watcher(event)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - handed to the reply that adopts it
            self._end(_Failed(error))
        else:
            self._end(_DONE)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _end(self, outcome: Any) -> None:
        if self._ended is None:
            self._kept.append(outcome)
        elif self._ended.done():
            pass  # the reply stopped waiting (cancelled): nobody to tell
        elif isinstance(outcome, _Failed):
            self._ended.set_exception(outcome.error)
        else:
            self._ended.set_result(None)

    def adopt(self, context: ReplyContext) -> bool:
        """Whether the stored send built exactly this request for this connection; if
        not, the early request is dropped."""
        self.settled = True
        option = context.model
        same = (
            option.key == self.option.key
            and option.connection == self.option.connection
            and context.request == self.request
        )
        self.adopted = same
        metrics.EARLY_STARTS.labels(outcome="adopted" if same else "dropped").inc()
        if not same:
            logger.info("Dropped an early request for reply %s: it changed", context.reply_id)
            self._task.cancel()
        return same

    def drop(self) -> None:
        """The send was refused, or was a resend: nothing adopts this request."""
        self.watcher = None
        if not self.settled:
            self.settled = True
            metrics.EARLY_STARTS.labels(outcome="dropped").inc()
            self._task.cancel()

    async def feed(self, sink: Callable[[StreamEvent], None]) -> None:
        """Hand ``sink`` what the request brought so far, then the rest as it comes;
        return when the request ends, raise what it raised.

        The request's own task calls ``sink`` for each event from then on: handing
        every token from that task to the reply's through a queue cost a task switch
        per token.
        """
        try:
            for item in self._kept:
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                sink(item)
            self._kept.clear()
            self._ended = asyncio.get_running_loop().create_future()
            self._sink = sink
            await self._ended
        finally:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def start_early(*, conversation_id: int, text: str) -> EarlyStart | None:
    """Start the request a send of ``text`` will make, if this process can tell what it
    is without the database; None otherwise (the reply then starts once stored)."""
    if not settings.REPLY_EARLY_START:
        return None
    base = next_turn(conversation_id)
    if base is None or not known_without_quotas():
        return None
    # Only to a connection as this process last loaded it: one an admin has disabled,
    # re-keyed or restricted since is not called early (the stored send decides).
    current = registry.peek_model(base.option.key)
    if current is None or current.connection != base.option.connection:
        return None
    try:
        text = checked_text(text)
        prepared = base.request(ChatMessage(role="user", content=text))
    except (ActionError, LimitExceededError):
        return None  # refused when stored, with the reason
    return EarlyStart(base.option, prepared.request, text=text, speaker=base.speaker)
