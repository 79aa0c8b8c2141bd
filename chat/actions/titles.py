"""Titles: the first line of the first message at once, then, after the first reply, a
short title asked of the conversation's own model in the background.

The request never delays or changes the reply, and anything unusable (an error, a
timeout, an empty or rambling answer) keeps the first-line title. A title the user set
(Rename) is never replaced.
"""

from __future__ import annotations

import asyncio
import logging
import re

from channels.db import database_sync_to_async
from django.conf import settings

from chat import events
from chat.actions.usage import record_usage
from chat.models import Conversation
from chat.models import Usage as UsageRow
from chat.rendering import title_frames
from providers import registry
from providers.clients.budget import estimate_tokens
from providers.clients.types import (
    ChatClient,
    ChatMessage,
    ChatRequest,
    TextDelta,
    Usage,
    UsageReport,
)

logger = logging.getLogger("chat.actions")

#: The instruction, in English; the model is asked to answer in the user's language.
TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the "
    "message below. Use the language the message is written in. Reply with the title "
    "only, without quotes or a full stop.\n\nMessage: {message}\n\nFirst reply: {reply}"
)
TITLE_TIMEOUT = 30.0
TITLE_MAX_CHARS = 60
# Reasoning models think before they answer: leave room for it.
TITLE_OUTPUT_TOKENS = 512

_tasks: set[asyncio.Task[None]] = set()


def title_from(text: str) -> str:
    """The first-line title of a message, shown until (and unless) a better one comes."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_MAX_CHARS else line[: TITLE_MAX_CHARS - 1].rstrip() + "…"


def clean_title(answer: str) -> str:
    """The model's answer as a title, or "" when it is not one."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    title = re.sub(r"^(title|标题)\s*[:：]\s*", "", lines[0], flags=re.IGNORECASE)
    title = title.strip(" \t#*_`\"'“”‘’「」《》.。")
    title = " ".join(title.split())
    if not title or len(title) > TITLE_MAX_CHARS * 2:
        return ""
    return title_from(title)


def suggest_title(
    *,
    conversation_id: int,
    client: ChatClient,
    option: registry.ModelOption,
    model: str,
    message: str,
    reply: str,
) -> None:
    """Ask for a title in the background (from the event loop, after the first reply).
    Its tokens count as the conversation owner's usage."""
    if not settings.AUTO_TITLE:
        return
    task = asyncio.get_running_loop().create_task(
        _suggest(conversation_id, client, option, model, message[:1000], reply[:1000])
    )
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def wait_for_titles() -> None:
    """For tests: let background title requests finish."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


async def _suggest(
    conversation_id: int,
    client: ChatClient,
    option: registry.ModelOption,
    model: str,
    message: str,
    reply: str,
) -> None:
    request = ChatRequest(
        model=model,
        messages=(
            ChatMessage(role="user", content=TITLE_PROMPT.format(message=message, reply=reply)),
        ),
        max_output_tokens=TITLE_OUTPUT_TOKENS,
    )
    answer, reported = "", None
    try:
        async with asyncio.timeout(TITLE_TIMEOUT):
            stream = client.stream(request)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        answer += event.text
                    elif isinstance(event, UsageReport):
                        reported = event.usage
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001 - a title is never worth a failure
        logger.info("No title from the model for conversation %s: %s", conversation_id, error)
    await database_sync_to_async(_store)(
        conversation_id, clean_title(answer), option, reported, answer, request
    )


def _store(
    conversation_id: int,
    title: str,
    option: registry.ModelOption,
    reported: Usage | None,
    answer: str,
    request: ChatRequest,
) -> None:
    owner_id = Conversation.objects.filter(pk=conversation_id).values_list("owner_id", flat=True)
    if owner_id:
        record_usage(
            user_id=owner_id[0],
            option=option,
            reported=reported,
            kind=UsageRow.Kind.TITLE,
            text=answer,
            estimated_prompt_tokens=estimate_tokens(request.messages[0].content),
        )
    if title:
        _store_title(conversation_id, title)


def _store_title(conversation_id: int, title: str) -> None:
    conversation = (
        Conversation.objects.select_related("persona")
        .filter(pk=conversation_id, auto_title=True)
        .first()
    )
    if conversation is None or conversation.title == title:
        return  # deleted, or renamed by its owner meanwhile
    changed = Conversation.objects.filter(
        pk=conversation_id, auto_title=True, title=conversation.title
    ).update(title=title)
    if changed:
        conversation.title = title
        events.publish_on_commit(
            events.conversation_group(conversation_id),
            events.frame(title_frames(conversation), conversation_id=conversation_id),
        )
