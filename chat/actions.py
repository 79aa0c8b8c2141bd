"""Use cases. The consumer, views, management commands and tests all call these.

Sync functions run one change atomically and publish the events that follow from it
on commit. The async reply functions own a reply from start to finish: the socket that
asked for it may come and go.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import events
from chat.access import access_conversation
from chat.models import Conversation, Message, PersonaPreset, User
from chat.rendering import (
    MessageView,
    append_messages_frame,
    delta_frame,
    replace_message_frame,
    title_frames,
)
from chat.streaming import ReplyBuffer
from providers import registry
from providers.clients.budget import fit_to_window
from providers.clients.errors import LimitExceededError, ProviderError
from providers.clients.limits import check_limits
from providers.clients.types import (
    ChatClient,
    ChatMessage,
    ChatRequest,
    ExampleTurn,
    Finish,
    Notice,
    Persona,
    ReasoningDelta,
    TextDelta,
    UsageReport,
)

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 32_000
MAX_RETRIES = 2
MAX_RETRY_AFTER = 20.0


class ActionError(Exception):
    """A refusal worth showing the user as it is."""


@dataclass(frozen=True, slots=True)
class SentMessage:
    conversation_id: int
    user_message_id: int
    reply_id: int


@dataclass(frozen=True, slots=True)
class ReplyContext:
    reply_id: int
    conversation_id: int
    model: registry.ModelOption
    client: ChatClient
    request: ChatRequest
    speaker: str
    estimated_prompt_tokens: int = 0
    notices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    request: ChatRequest
    estimated_prompt_tokens: int
    notices: tuple[str, ...]


def prepare_request(
    conversation: Conversation, option: registry.ModelOption, history: list[Message]
) -> PreparedRequest:
    """The request a conversation sends next: checked against the model's documented
    limits and trimmed to its context window. Raises LimitExceededError."""
    spec = option.spec
    request = ChatRequest(
        model=option.upstream_model,
        messages=tuple(
            ChatMessage(
                role=message.role,  # type: ignore[arg-type]
                content=message.content,
                reasoning=message.reasoning,
                provider_data=message.provider_data or {},
            )
            for message in history
            if message.content and message.status != Message.Status.FAILED
        ),
        persona=_persona_for(conversation.persona),
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        # Always explicit: some APIs' own defaults (DashScope: 256) cut answers short.
        max_output_tokens=conversation.max_output_tokens or spec.default_output_tokens,
    )
    check_limits(request, spec, api=option.connection.api_label)
    budgeted = fit_to_window(request, spec, ratio=option.prompt_token_ratio)
    notices = ()
    if budgeted.dropped:
        notices = (
            f"{budgeted.dropped} older message{'s' if budgeted.dropped != 1 else ''} "
            f"left out to fit {spec.name}'s {spec.context_window:,}-token context window.",
        )
    return PreparedRequest(budgeted.request, budgeted.estimated_prompt_tokens, notices)


# --- conversations ------------------------------------------------------------


def create_conversation(*, user: User, persona_id: int | None, model_key: str) -> Conversation:
    option = registry.get_model(model_key)
    if option is None:
        raise ActionError("Pick a model from the list.")
    persona = None
    if persona_id is not None:
        persona = PersonaPreset.objects.prefetch_related("examples").filter(pk=persona_id).first()
        if persona is None:
            raise ActionError("That persona no longer exists.")
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user,
            persona=persona,
            model=option.key,
            temperature=persona.temperature if persona else None,
            top_p=persona.top_p if persona else None,
            max_output_tokens=persona.max_output_tokens if persona else None,
        )
        if persona and persona.greeting:
            Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=persona.greeting,
                status=Message.Status.COMPLETE,
                model=option.key,
            )
    return conversation


def update_conversation_settings(
    *,
    user: User,
    conversation_id: int,
    model_key: str,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
) -> Conversation:
    """Change a conversation's model and parameters (already checked against its limits)."""
    conversation = access_conversation(user, conversation_id)
    if registry.get_model(model_key) is None:
        raise ActionError("Pick a model from the list.")
    conversation.model = model_key
    conversation.temperature = temperature
    conversation.top_p = top_p
    conversation.max_output_tokens = max_output_tokens
    conversation.save(
        update_fields=["model", "temperature", "top_p", "max_output_tokens", "updated_at"]
    )
    return conversation


# --- sending ------------------------------------------------------------------


def send_message(*, user: User, conversation_id: int, text: str) -> SentMessage:
    """Store the user's message and an empty streaming reply, atomically."""
    text = text.strip()
    if not text:
        raise ActionError("Type a message first.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ActionError(f"Messages are limited to {MAX_MESSAGE_CHARS:,} characters.")
    conversation = access_conversation(user, conversation_id)
    option = registry.get_model(conversation.model)
    if option is None:
        raise ActionError("This conversation's model is no longer available. Pick another one.")
    reap_stale_replies(conversation_id=conversation.pk)
    history = [*conversation.messages.all(), Message(role=Message.Role.USER, content=text)]
    try:
        prepare_request(conversation, option, history)
    except LimitExceededError as error:
        raise ActionError(str(error)) from None
    with transaction.atomic():
        # Lock the conversation so two tabs cannot start two replies at once.
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.messages.filter(status=Message.Status.STREAMING).exists():
            raise ActionError("A reply is still being written. Wait for it or press Stop.")
        user_message = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, content=text
        )
        reply = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=conversation.model,
        )
        titled = not conversation.title
        if titled:
            conversation.title = _title_from(text)
        conversation.save(update_fields=["title", "updated_at"])
        speaker = speaker_for(conversation)
        html = append_messages_frame(
            [
                MessageView.from_message(user_message),
                MessageView.from_message(reply, speaker=speaker),
            ]
        )
        if titled:
            html += title_frames(conversation)
        events.publish_on_commit(
            events.conversation_group(conversation.pk),
            events.frame(html, conversation_id=conversation.pk, message_id=reply.pk),
        )
    return SentMessage(conversation.pk, user_message.pk, reply.pk)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:59].rstrip() + "…"


def speaker_for(conversation: Conversation) -> str:
    persona = conversation.persona
    if persona is None:
        return "Assistant"
    return persona.character_name or persona.name


# --- running a reply ----------------------------------------------------------

_running: set[asyncio.Task[str]] = set()


def start_reply(*, reply_id: int) -> asyncio.Task[str]:
    """Run the reply as a task of this process; it outlives the socket that asked."""
    task = asyncio.get_running_loop().create_task(stream_reply(reply_id=reply_id))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def wait_for_running_replies() -> None:
    """For tests and shutdown: let every reply of this process finish."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)


async def stream_reply(*, reply_id: int) -> str:
    """Stream the upstream answer into the reply; return its final status.

    Whatever happens in here, the reply row ends in a final status: a reply stuck in
    ``streaming`` would block the conversation.
    """
    context = await _load_reply_context(reply_id)
    if context is None:
        return ""
    loop = asyncio.get_running_loop()
    started = loop.time()
    buffer = ReplyBuffer(notices=list(context.notices))
    error: BaseException | None = None
    stopped = False
    try:
        stopped = await _run_reply(context, buffer)
    except asyncio.CancelledError:
        error = ProviderError("The server stopped while this reply was being written.")
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a status below
        error = exc
    status = _final_status(buffer, error, stopped=stopped)
    first = buffer.first_token_at
    try:
        await database_sync_to_async(finish_reply)(
            reply_id=reply_id,
            status=status,
            buffer=buffer,
            error=_error_text(error),
            time_to_first_token_ms=int((first - started) * 1000) if first is not None else None,
            duration_ms=int((loop.time() - started) * 1000),
            calibrate=(context.model, context.estimated_prompt_tokens),
        )
    except Exception:
        # Never leave the row streaming: that would block the conversation.
        logger.exception("Could not store the end of reply %s", reply_id)
        await _end_reply_plainly(reply_id, buffer, status)
    return status


async def _run_reply(context: ReplyContext, buffer: ReplyBuffer) -> bool:
    """Pull, publish and listen for control messages until the upstream is done.

    Returns whether the reply was stopped; raises what the upstream raised.
    """
    layer = get_channel_layer()
    control = await layer.new_channel()
    group = events.reply_group(context.reply_id)
    await layer.group_add(group, control)
    upstream = asyncio.create_task(_pull_upstream(context, buffer))
    listener = asyncio.create_task(_listen_for_control(control, context, buffer, upstream))
    try:
        await _publish_until_done(context, buffer, upstream)
    finally:
        if not upstream.done():
            upstream.cancel()  # we are being cancelled: close the upstream connection
            await asyncio.gather(upstream, return_exceptions=True)
        listener.cancel()
        await layer.group_discard(group, control)
    if upstream.cancelled():
        return True
    upstream.result()
    return False


def _final_status(buffer: ReplyBuffer, error: BaseException | None, *, stopped: bool) -> str:
    if stopped:
        return Message.Status.STOPPED
    if error is None:
        return Message.Status.COMPLETE
    return Message.Status.INTERRUPTED if buffer.received_anything else Message.Status.FAILED


def _error_text(error: BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, ProviderError):
        return str(error)
    logger.error("Reply failed unexpectedly", exc_info=error)
    return "Something went wrong while writing this reply."


async def _pull_upstream(context: ReplyContext, buffer: ReplyBuffer) -> None:
    """Read events into the buffer, retrying only while nothing has reached the user."""
    client = context.client
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        try:
            stream = client.stream(context.request)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        buffer.add_text(event.text, loop.time())
                    elif isinstance(event, ReasoningDelta):
                        buffer.add_reasoning(event.text, loop.time())
                    elif isinstance(event, UsageReport):
                        buffer.usage = event.usage
                    elif isinstance(event, Notice):
                        buffer.notices.append(event.text)
                    elif isinstance(event, Finish):
                        buffer.finish_reason = event.raw_reason or event.reason
                        buffer.provider_data = dict(event.provider_data)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            return
        except ProviderError as error:
            if not error.retryable or buffer.received_anything or attempt >= MAX_RETRIES:
                raise
            attempt += 1
            await asyncio.sleep(_retry_delay(error, attempt))


def _retry_delay(error: ProviderError, attempt: int) -> float:
    if error.retry_after is not None:
        return min(error.retry_after, MAX_RETRY_AFTER)
    return min(MAX_RETRY_AFTER, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)


async def _publish_until_done(
    context: ReplyContext, buffer: ReplyBuffer, upstream: asyncio.Task[None]
) -> None:
    """Coalesce tokens into frames at most every REPLY_FRAME_INTERVAL; flush to the
    database at most every REPLY_FLUSH_INTERVAL (and as a heartbeat when quiet)."""
    loop = asyncio.get_running_loop()
    frame_interval = settings.REPLY_FRAME_INTERVAL
    flush_interval = settings.REPLY_FLUSH_INTERVAL
    heartbeat = min(20.0, settings.REPLY_STALE_AFTER / 3)
    last_flush = loop.time()
    while not upstream.done():
        changed = asyncio.ensure_future(buffer.changed.wait())
        await asyncio.wait({upstream, changed}, timeout=heartbeat, return_when="FIRST_COMPLETED")
        changed.cancel()
        if buffer.unpublished:
            await _publish_deltas(context, buffer)
        now = loop.time()
        if (buffer.unsaved and now - last_flush >= flush_interval) or now - last_flush >= heartbeat:
            await _save_partial(context.reply_id, buffer.content, buffer.reasoning)
            buffer.mark_saved()
            last_flush = now
        if not upstream.done() and frame_interval:
            await asyncio.wait({upstream}, timeout=frame_interval)


async def _publish_deltas(context: ReplyContext, buffer: ReplyBuffer) -> None:
    (reasoning_offset, reasoning), (content_offset, content) = buffer.take_deltas()
    parts = []
    if reasoning:
        parts.append(
            delta_frame(f"m-{context.reply_id}-reasoning", offset=reasoning_offset, text=reasoning)
        )
    if content:
        parts.append(delta_frame(f"m-{context.reply_id}-text", offset=content_offset, text=content))
    if parts:
        await events.publish(
            events.conversation_group(context.conversation_id),
            events.frame(
                "".join(parts), conversation_id=context.conversation_id, message_id=context.reply_id
            ),
        )


async def _listen_for_control(
    control: str, context: ReplyContext, buffer: ReplyBuffer, upstream: asyncio.Task[None]
) -> None:
    layer = get_channel_layer()
    while True:
        message = await layer.receive(control)
        kind = message.get("type")
        if kind == "reply.stop":
            upstream.cancel()
        elif kind == "reply.sync" and message.get("reply_to"):
            view = MessageView(
                id=context.reply_id,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                content=buffer.content[: buffer.published_content],
                reasoning=buffer.reasoning[: buffer.published_reasoning],
                speaker=context.speaker,
            )
            await events.send_to(
                message["reply_to"],
                events.frame(replace_message_frame(view), message_id=context.reply_id),
            )


@database_sync_to_async
def _end_reply_plainly(reply_id: int, buffer: ReplyBuffer, status: str) -> None:
    Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        content=buffer.content,
        reasoning=buffer.reasoning,
        status=status if status != Message.Status.COMPLETE else Message.Status.INTERRUPTED,
        error="The reply could not be saved completely.",
        updated_at=timezone.now(),
    )


@database_sync_to_async
def _save_partial(reply_id: int, content: str, reasoning: str) -> None:
    Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        content=content, reasoning=reasoning, updated_at=timezone.now()
    )


@database_sync_to_async
def _load_reply_context(reply_id: int) -> ReplyContext | None:
    reply = (
        Message.objects.select_related("conversation__persona")
        .filter(pk=reply_id, status=Message.Status.STREAMING)
        .first()
    )
    if reply is None:
        return None
    conversation = reply.conversation
    option = registry.get_model(conversation.model)
    problem = "This conversation's model is no longer available." if option is None else ""
    prepared = None
    if option is not None:
        history = list(conversation.messages.filter(pk__lt=reply_id))
        try:
            prepared = prepare_request(conversation, option, history)
        except LimitExceededError as error:
            problem = str(error)
    if option is None or prepared is None:
        finish_reply(
            reply_id=reply_id, status=Message.Status.FAILED, buffer=ReplyBuffer(), error=problem
        )
        return None
    return ReplyContext(
        reply_id=reply_id,
        conversation_id=conversation.pk,
        model=option,
        # Built here, in a worker thread: the first demo client starts the simulator.
        client=registry.client_for(option),
        request=prepared.request,
        speaker=speaker_for(conversation),
        estimated_prompt_tokens=prepared.estimated_prompt_tokens,
        notices=prepared.notices,
    )


def _persona_for(preset: PersonaPreset | None) -> Persona:
    if preset is None:
        return Persona()
    return Persona(
        system_prompt=preset.system_prompt,
        character_name=preset.character_name,
        user_persona=preset.user_persona,
        user_name=preset.user_name,
        scene=preset.scene,
        examples=tuple(
            ExampleTurn(user=example.user_text, assistant=example.assistant_text)
            for example in preset.examples.all()
        ),
    )


def finish_reply(
    *,
    reply_id: int,
    status: str,
    buffer: ReplyBuffer,
    error: str = "",
    time_to_first_token_ms: int | None = None,
    duration_ms: int | None = None,
    calibrate: tuple[registry.ModelOption, int] | None = None,
) -> str:
    """Store the final reply, render it once and publish it. Returns the HTML."""
    with transaction.atomic():
        reply = (
            Message.objects.select_for_update(of=("self",))
            .select_related("conversation__persona")
            .filter(pk=reply_id)
            .first()
        )
        if reply is None:
            return ""
        if reply.status != Message.Status.STREAMING:
            return ""  # already finished (e.g. reaped as stale)
        usage = buffer.usage
        reply.content = buffer.content
        reply.reasoning = buffer.reasoning
        reply.status = status
        reply.finish_reason = buffer.finish_reason
        reply.error = error
        reply.provider_data = buffer.provider_data
        reply.notices = "\n".join(buffer.notices)
        reply.time_to_first_token_ms = time_to_first_token_ms
        reply.duration_ms = duration_ms
        if usage is not None:
            reply.input_tokens = usage.input_tokens
            reply.output_tokens = usage.output_tokens
            reply.reasoning_tokens = usage.reasoning_tokens
            reply.cached_tokens = usage.cached_tokens
        reply.save()
        html = _publish_replacement(reply)
        if calibrate is not None and usage is not None and usage.input_tokens:
            option, estimated = calibrate
            registry.record_prompt_tokens(option, estimated=estimated, reported=usage.input_tokens)
    return html


def _publish_replacement(reply: Message) -> str:
    conversation = reply.conversation
    html = replace_message_frame(MessageView.from_message(reply, speaker=speaker_for(conversation)))
    events.publish_on_commit(
        events.conversation_group(conversation.pk),
        events.frame(html, conversation_id=conversation.pk, message_id=reply.pk),
    )
    return html


# --- stopping, snapshots and recovery -----------------------------------------


async def stop_reply(*, conversation_id: int) -> bool:
    """Ask the running reply of a conversation to stop, wherever its process is.

    The caller has already checked access to the conversation.
    """
    reply_id = await _streaming_reply_id(conversation_id)
    if reply_id is None:
        return False
    await events.publish(events.reply_group(reply_id), {"type": "reply.stop"})
    return True


async def request_snapshot(*, conversation_id: int, reply_to: str) -> None:
    """Send ``reply_to`` the live reply as it stands, or its final form if it ended."""
    reply_id = await _streaming_reply_id(conversation_id)
    if reply_id is not None:
        await events.publish(
            events.reply_group(reply_id), {"type": "reply.sync", "reply_to": reply_to}
        )


@database_sync_to_async
def _streaming_reply_id(conversation_id: int) -> int | None:
    return (
        Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
        .values_list("pk", flat=True)
        .first()
    )


def latest_reply_html(*, conversation_id: int) -> str:
    """The last assistant message rendered as it stands, for a socket that reconnects."""
    reply = (
        Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
        .select_related("conversation__persona")
        .order_by("-pk")
        .first()
    )
    if reply is None:
        return ""
    return replace_message_frame(
        MessageView.from_message(reply, speaker=speaker_for(reply.conversation))
    )


def reap_stale_replies(*, conversation_id: int | None = None) -> int:
    """Mark replies whose process vanished (no flush for a while) as interrupted."""
    cutoff = timezone.now() - timedelta(seconds=settings.REPLY_STALE_AFTER)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    return stale.update(
        status=Message.Status.INTERRUPTED,
        error="The server restarted while this reply was being written.",
        updated_at=timezone.now(),
    )
