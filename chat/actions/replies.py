"""The life of one reply, from the upstream's first byte to its final row.

A reply runs as a task of the process that stored it: the socket that asked may come
and go. Whatever happens (the upstream fails, a database or Redis blip, Stop, a
shutdown) the row ends in a final status with every character that arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from chat import events, metrics
from chat.actions.common import DB_ERRORS, ProcessLoop, retry_db, retry_db_in_turn
from chat.actions.conversations import (
    TurnBase,
    prepare_request,
    remember_next_turn,
    speaker_for,
)
from chat.actions.titles import suggest_title, wait_for_titles
from chat.actions.usage import record_usage
from chat.models import Message
from chat.rendering import MessageView, delta_parts, message_frames, settle_part
from chat.streaming import Doorbell, ReplyBuffer, Segment, loop_pace, settle_budget
from chat.tree import path_to, versions_of
from providers import registry
from providers.clients.errors import LimitExceededError, ProviderError
from providers.clients.types import (
    ChatClient,
    ChatMessage,
    ChatRequest,
    Finish,
    Notice,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UsageReport,
)

if TYPE_CHECKING:
    from chat.actions.early import EarlyStart

logger = logging.getLogger("chat.actions")

MAX_RETRIES = 2
MAX_RETRY_AFTER = 20.0
# Stored in English; pages translate it when they show it.
SHUTDOWN_ERROR = gettext_noop(
    "The server restarted while this reply was being written. Send again to continue."
)


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
    #: What the request was built from (message stored with it): with the reply, what
    #: the conversation's next request is built from.
    base: TurnBase | None = None


@dataclass(eq=False)
class LiveReply:
    """A reply this process is writing: what Stop, snapshots and shutdown reach."""

    reply_id: int
    task: asyncio.Task[str] | None = None
    upstream: asyncio.Task[None] | None = None
    buffer: ReplyBuffer | None = None
    context: ReplyContext | None = None
    stop_requested: bool = False

    def stop(self) -> None:
        self.stop_requested = True
        if self.upstream is not None:
            self.upstream.cancel()


# This process's running replies, by id.
_live: dict[int, LiveReply] = {}
_draining = False


def live_reply(reply_id: int) -> LiveReply | None:
    return _live.get(reply_id)


def live_reply_ids() -> set[int]:
    return set(_live)


def accepting_replies() -> bool:
    """False once this process is shutting down: new work goes to another one."""
    return not _draining


def start_reply(
    *, reply_id: int, context: ReplyContext | None = None, early: EarlyStart | None = None
) -> asyncio.Task[str]:
    """Run the reply as a task of this process; it outlives the socket that asked.

    ``context`` is what ``send_message`` built for it; without it, it is loaded.
    ``early`` is the request started before the message was stored
    (``chat.actions.early``), used if it is the one the context asks for.
    """
    if early is not None and (context is None or not early.adopt(context)):
        if context is None:
            early.drop()
        early = None
    live = LiveReply(reply_id)
    _live[reply_id] = live
    task = asyncio.get_running_loop().create_task(
        stream_reply(reply_id=reply_id, live=live, context=context, early=early)
    )
    live.task = task
    task.add_done_callback(lambda _: _live.pop(reply_id, None))
    return task


async def wait_for_running_replies() -> None:
    """For tests: let every reply of this process finish (and the titles they asked)."""
    while _live:
        tasks = [live.task for live in list(_live.values()) if live.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
    await wait_for_titles()
    await events.outbox_flushed()


async def shut_down(*, grace: float) -> None:
    """Stop taking replies; give running ones ``grace`` seconds to finish, then save each
    with all its text as interrupted and publish its final frame."""
    global _draining
    _draining = True
    running = [live for live in list(_live.values()) if live.task is not None]
    if not running:
        await events.outbox_flushed()
        return
    logger.info("Shutting down: waiting up to %g s for %d replies", grace, len(running))
    _, pending = await asyncio.wait([live.task for live in running], timeout=grace)  # type: ignore[misc]
    for live in running:
        if live.task in pending:
            live.task.cancel()  # type: ignore[union-attr]
    if pending:
        logger.info("Saving %d unfinished replies as interrupted", len(pending))
        await asyncio.gather(*pending, return_exceptions=True)
    await events.outbox_flushed()  # their final frames


async def stream_reply(
    *,
    reply_id: int,
    live: LiveReply | None = None,
    context: ReplyContext | None = None,
    early: EarlyStart | None = None,
) -> str:
    """Stream the upstream answer into the reply; return its final status."""
    if live is None:  # called directly (tests, benchmarks): register like start_reply
        live = _live.setdefault(reply_id, LiveReply(reply_id))
        live.task = asyncio.current_task()  # type: ignore[assignment]
        try:
            return await stream_reply(reply_id=reply_id, live=live, context=context)
        finally:
            _live.pop(reply_id, None)
    retry_for = settings.REPLY_SAVE_RETRY_FOR
    if context is None:
        try:
            context = await retry_db(_load_reply_context, retry_for, reply_id)
        except DB_ERRORS:
            logger.exception("Could not start reply %s; it will be taken over as stale", reply_id)
            return ""
        if context is None:
            return ""
    loop = asyncio.get_running_loop()
    started = loop.time()
    buffer = ReplyBuffer(notices=list(context.notices))
    live.buffer, live.context = buffer, context
    partial_writer.ensure_running()
    error: BaseException | None = None
    stopped = False
    try:
        stopped = await _run_reply(context, buffer, live, early)
    except asyncio.CancelledError:
        # Only shutdown cancels a reply task (Stop cancels the upstream): save and end.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        error = ProviderError(SHUTDOWN_ERROR)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a status below
        error = exc
    buffer.close()
    status = _final_status(buffer, error, stopped=stopped)
    first = buffer.first_token_at
    metrics.reply_ended(
        api=context.model.connection.kind,
        status=status,
        time_to_first_token=first - started if first is not None else None,
        duration=loop.time() - started,
        usage=buffer.usage,
        error=error,
    )
    stored = False
    try:
        stored = await retry_db_in_turn(
            finish_reply,
            retry_for,
            reply_id=reply_id,
            status=status,
            buffer=buffer,
            error=_error_text(error),
            time_to_first_token_ms=int((first - started) * 1000) if first is not None else None,
            duration_ms=int((loop.time() - started) * 1000),
            calibrate=(context.model, context.estimated_prompt_tokens),
        )
    except Exception:
        # Not even the end could be stored as it is (bad data, a long outage). Keep the
        # text, and never leave the row streaming: that would block the conversation.
        logger.exception("Could not store the end of reply %s", reply_id)
        try:
            await retry_db(_end_reply_plainly, retry_for, reply_id, buffer, status)
        except Exception:
            logger.exception("Reply %s stays streaming until it is taken over", reply_id)
    if stored and status == Message.Status.COMPLETE:
        _title_after_first_reply(context, buffer)
    if stored and context.base is not None:
        remember_next_turn(context.conversation_id, _next_base(context.base, buffer, status))
    return status


def _next_base(base: TurnBase, buffer: ReplyBuffer, status: str) -> TurnBase:
    """What the conversation's next request is built from, once this reply is stored:
    the reply as ``as_chat_message`` reads it back from its row."""
    if not buffer.content or status == Message.Status.FAILED:
        return base
    stored = json.loads(json.dumps(buffer.provider_data or {}))  # as the JSON column gives it
    return base.followed_by(
        ChatMessage(
            role="assistant",
            content=buffer.content,
            reasoning=buffer.reasoning,
            provider_data=stored,
        )
    )


def _title_after_first_reply(context: ReplyContext, buffer: ReplyBuffer) -> None:
    users = [m for m in context.request.messages if m.role == Message.Role.USER]
    if len(users) == 1 and buffer.content:
        suggest_title(
            conversation_id=context.conversation_id,
            client=context.client,
            option=context.model,
            model=context.request.model,
            message=users[0].content,
            reply=buffer.content,
        )


async def _run_reply(
    context: ReplyContext, buffer: ReplyBuffer, live: LiveReply, early: EarlyStart | None = None
) -> bool:
    """Pull, publish and listen for control messages until the upstream is done.

    Returns whether the reply was stopped; raises what the upstream raised.
    """
    layer = get_channel_layer()
    control = await layer.new_channel()
    group = events.reply_group(context.reply_id)

    async def join() -> None:
        await layer.group_add(group, control)

    joined = await _try_layer(join)
    upstream = asyncio.create_task(_pull_upstream(context, buffer, early))
    live.upstream = upstream
    if live.stop_requested:
        upstream.cancel()
    listener = asyncio.create_task(
        _listen_for_control(control, context, buffer, live, join, joined=joined)
    )
    try:
        await _publish_until_done(context, buffer, upstream)
    finally:
        if not upstream.done():
            upstream.cancel()  # we are being cancelled: close the upstream connection
            await asyncio.gather(upstream, return_exceptions=True)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await _try_layer(lambda: layer.group_discard(group, control))
    if upstream.cancelled():
        return True
    upstream.result()
    return False


async def _try_layer(operation) -> bool:  # type: ignore[no-untyped-def]
    try:
        await operation()
    except events.LAYER_ERRORS as error:
        logger.warning("Channel layer unavailable: %s: %s", type(error).__name__, error)
        return False
    return True


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


async def _pull_upstream(
    context: ReplyContext, buffer: ReplyBuffer, early: EarlyStart | None = None
) -> None:
    """Read events into the buffer, retrying only while nothing has reached the user.
    The first attempt is the early request, if there is one."""
    client = context.client
    loop = asyncio.get_running_loop()

    def take(event: StreamEvent) -> None:
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

    attempt = 0
    while True:
        try:
            if early is not None:
                adopted, early = early, None
                await adopted.feed(take)
                return
            stream = client.stream(context.request)
            try:
                async for event in stream:
                    take(event)
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
    """Coalesce tokens into frames until the upstream is done. Saving the text so far
    is the process's ``partial_writer``'s job.

    Frames go at most every REPLY_FRAME_INTERVAL, or less often while this process's
    loop runs late (``loop_pace``): past the knee, frames get bigger, not later.
    A failed publish does not stop the reply: tabs catch up by snapshot.
    """
    loop = asyncio.get_running_loop()
    finished = Doorbell()

    def upstream_done(_: asyncio.Task[None]) -> None:
        buffer.changed.ring()
        finished.ring()

    upstream.add_done_callback(upstream_done)
    while not upstream.done():
        await buffer.changed.wait()  # text, or the upstream's end
        if buffer.unpublished:
            await _publish_deltas(context, buffer)
        interval = loop_pace.interval(settings.REPLY_FRAME_INTERVAL)
        if not upstream.done() and interval:
            began = loop.time()
            if not await finished.wait(interval):
                loop_pace.observe(interval, loop.time() - began)
    if buffer.unpublished:
        await _publish_deltas(context, buffer)  # the tail, before the final frame


#: Small parts share a frame; a part near this size goes alone.
BATCH_CHARS = 64 * 1024


async def _publish_deltas(context: ReplyContext, buffer: ReplyBuffer) -> None:
    """The new text as delta frames. Each frame says where its text starts and ends in
    (reasoning, text) and when it was published, so a socket can tell that it fell
    behind or missed one (``chat.delivery``)."""
    (reasoning_offset, reasoning), (content_offset, content) = buffer.take_deltas()
    reply_id = context.reply_id
    parts = [
        (region, start, end, html)
        for region, (name, offset, text) in enumerate(
            (("reasoning", reasoning_offset, reasoning), ("text", content_offset, content))
        )
        for start, end, html in delta_parts(f"m-{reply_id}-{name}", offset=offset, text=text)
    ]
    buffer.settled.interval = loop_pace.interval(settings.REPLY_SETTLE_INTERVAL)
    buffer.settled.budget = settle_budget
    now = time.monotonic()
    if content and (segment := buffer.settled.advance(buffer.content, now)) is not None:
        # Finished blocks ride with the text that finished them, after it.
        region, start, end, html = parts[-1]
        parts[-1] = (region, start, end, html + settle_part(reply_id, segment))
    group = events.conversation_group(context.conversation_id)
    position = [reasoning_offset, content_offset]
    batches: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    for region, _start, end, html in parts:
        if batches and len(batches[-1][0]) + len(html) < BATCH_CHARS:
            text, starts, _ = batches[-1]
            position[region] = end
            batches[-1] = (text + html, starts, (position[0], position[1]))
        else:
            starts = (position[0], position[1])
            position[region] = end
            batches.append((html, starts, (position[0], position[1])))
    published_at = time.time()
    for html, starts, ends in batches:
        await events.publish(
            group,
            events.frame(
                html,
                conversation_id=context.conversation_id,
                message_id=reply_id,
                starts=starts,
                ends=ends,
                published_at=published_at,
            ),
            recoverable=True,
        )


async def _listen_for_control(
    control: str,
    context: ReplyContext,
    buffer: ReplyBuffer,
    live: LiveReply,
    join,  # type: ignore[no-untyped-def]
    *,
    joined: bool,
) -> None:
    """Stop and snapshot requests from any process. Survives a layer outage: it
    re-joins the reply's group once the layer answers again."""
    if not joined:
        await events.retry_layer(join)
    while True:
        message = await events.receive_with_retry(control, on_recover=join)
        kind = message.get("type")
        if kind == "reply.stop":
            live.stop()
            if message.get("ack_to"):
                await events.send_to(message["ack_to"], {"type": "reply.stopping"})
        elif kind == "reply.sync" and message.get("reply_to"):
            await send_snapshot(live, message["reply_to"])


async def send_snapshot(live: LiveReply, channel: str) -> None:
    """The reply as published so far, in frames that fit the socket."""
    buffer, context = live.buffer, live.context
    if buffer is None or context is None:
        return
    view = MessageView(
        id=context.reply_id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        content=buffer.content[: buffer.published_content],
        reasoning=buffer.reasoning[: buffer.published_reasoning],
        settled=tuple(buffer.settled.segments),
        speaker=context.speaker,
        conversation_id=context.conversation_id,
    )
    ends = (len(view.reasoning), len(view.content))
    for html in message_frames(view):
        await events.send_to(
            channel, events.frame(html, message_id=context.reply_id, snapshot=True, ends=ends)
        )


class PartialWriter(ProcessLoop):
    """Saves the text so far of every reply this process writes, in one UPDATE per
    REPLY_FLUSH_INTERVAL, and touches all their rows every REPLY_HEARTBEAT_INTERVAL so
    no other process takes them over. A failed save is tried again at the next tick;
    the final save of each reply has its own retries.

    It stops by itself when the process has no replies, and starts with the next.
    """

    name = "parley-partial-writer"

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_touch = loop.time()
        while _live:
            began = loop.time()
            await asyncio.sleep(settings.REPLY_FLUSH_INTERVAL)
            now = loop.time()
            loop_pace.observe(settings.REPLY_FLUSH_INTERVAL, now - began)
            touch = now - last_touch >= settings.REPLY_HEARTBEAT_INTERVAL
            snapshot = {
                reply_id: (live.buffer, live.buffer.content, live.buffer.reasoning)
                for reply_id, live in list(_live.items())
                if live.buffer is not None and live.buffer.unsaved
            }
            ids = list(_live) if touch else list(snapshot)
            if not ids:
                continue
            texts = {
                reply_id: (content, reasoning)
                for reply_id, (_, content, reasoning) in snapshot.items()
            }
            try:
                await retry_db(_store_partials, 0, ids, texts)
            except DB_ERRORS as error:
                logger.warning("Could not save %d replies yet (%s); will retry", len(ids), error)
                continue
            except Exception:
                # Never let the writer die: every reply of the process depends on it.
                logger.exception("Saving partial replies failed; will retry")
                continue
            for buffer, content, reasoning in snapshot.values():
                buffer.mark_saved(len(content), len(reasoning))
            if touch:
                last_touch = now


partial_writer = PartialWriter()


#: Replies per statement: at five bound values each, well within SQLite's 32,766 and
#: PostgreSQL's 65,535.
PARTIALS_PER_STATEMENT = 1000


def _store_partials(ids: list[int], texts: dict[int, tuple[str, str]]) -> None:
    """One statement (per thousand replies): new text for the replies in ``texts``, a
    heartbeat for all of ``ids``. A reply that has ended meanwhile is left alone.

    Written as SQL: the ORM's ``Case(When(...))`` took 30 ms of CPU to build at 150
    replies, every second, on the thread every socket's database work shares.
    """
    for start in range(0, len(ids), PARTIALS_PER_STATEMENT):
        batch = ids[start : start + PARTIALS_PER_STATEMENT]
        _update_partials(batch, {pk: texts[pk] for pk in batch if pk in texts})


def _update_partials(ids: list[int], texts: dict[int, tuple[str, str]]) -> None:
    quote = connection.ops.quote_name
    table, pk = quote(Message._meta.db_table), quote("id")
    assignments = [f"{quote('updated_at')} = %s"]
    params: list[object] = [connection.ops.adapt_datetimefield_value(timezone.now())]
    for position, column in enumerate(("content", "reasoning")):
        if texts:
            whens = " ".join(["WHEN %s THEN %s"] * len(texts))
            assignments.append(f"{quote(column)} = CASE {pk} {whens} ELSE {quote(column)} END")
            for reply_id, text in texts.items():
                params += [reply_id, text[position]]
    placeholders = ", ".join(["%s"] * len(ids))
    params += [*ids, Message.Status.STREAMING]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 - names quoted, values bound
            f"WHERE {pk} IN ({placeholders}) AND {quote('status')} = %s",
            params,
        )


def _end_reply_plainly(reply_id: int, buffer: ReplyBuffer, status: str) -> None:
    Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(
        content=buffer.content,
        reasoning=buffer.reasoning,
        status=status if status != Message.Status.COMPLETE else Message.Status.INTERRUPTED,
        error="The reply could not be saved completely.",
        updated_at=timezone.now(),
    )


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
        history = path_to(conversation, reply.parent_id)
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


def finish_reply(
    *,
    reply_id: int,
    status: str,
    buffer: ReplyBuffer,
    error: str = "",
    time_to_first_token_ms: int | None = None,
    duration_ms: int | None = None,
    calibrate: tuple[registry.ModelOption, int] | None = None,
) -> bool:
    """Store the final reply and publish it; False if it had already ended.

    A reply another process took over (it thought this one dead) is still ours to
    finish: our text is the whole of it.
    """
    with transaction.atomic():
        reply = (
            Message.objects.select_for_update(of=("self",))
            .select_related("conversation__persona")
            .filter(pk=reply_id)
            .first()
        )
        if reply is None:
            return False
        if reply.status != Message.Status.STREAMING and not reply.taken_over:
            return False
        usage = buffer.usage
        reply.content = buffer.content
        reply.reasoning = buffer.reasoning
        reply.status = status
        reply.taken_over = False
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
        publish_final(reply, settled=tuple(buffer.settled.segments))
        if calibrate is not None:
            option, estimated = calibrate
            record_usage(
                user_id=reply.conversation.owner_id,
                option=option,
                reported=usage,
                message=reply,
                text=reply.content,
                reasoning=reply.reasoning,
                estimated_prompt_tokens=estimated,
            )
            if usage is not None and usage.input_tokens:
                registry.record_prompt_tokens(
                    option, estimated=estimated, reported=usage.input_tokens
                )
    return True


def publish_final(reply: Message, *, settled: tuple[Segment, ...] = ()) -> None:
    """On commit, every tab gets the reply as stored, in frames that fit the socket.
    ``settled``: the blocks of its text rendered while it streamed, not rendered again."""
    conversation = reply.conversation
    view = replace(
        MessageView.from_message(
            reply, speaker=speaker_for(conversation), versions=versions_of(reply)
        ),
        settled=settled,
    )
    group = events.conversation_group(conversation.pk)
    for html in message_frames(view):
        events.publish_on_commit(
            group,
            events.frame(html, conversation_id=conversation.pk, message_id=reply.pk, final=True),
        )
