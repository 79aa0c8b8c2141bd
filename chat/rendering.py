"""HTML for the page and for socket frames. Frames are htmx out-of-band swaps.

Every streaming text region carries ``data-end``: the length (in code points) of the
text it holds. Delta frames say where they start and end, so the browser can drop a
duplicate and ask for a snapshot when it sees a gap.

A streaming reply's finished markdown blocks show rendered (``chat.streaming.
SettledMarkdown``): settle parts append them to ``#m-N-done`` and say which stretch of
the raw text they cover (``data-settle-from``/``-to``), which the browser then hides.
The raw text stays whole in ``#m-N-text``, so offsets never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from html import escape as html_escape

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from chat.i18n import translated_error
from chat.markdown import render_markdown, render_markdown_after
from chat.models import Conversation, Message
from chat.streaming import Segment
from chat.tree import BranchPage, Shape, Versions, branch_page
from providers.clients.budget import estimate_tokens


@dataclass(frozen=True, slots=True)
class MessageView:
    """What a message template needs; built from a row or from a live reply."""

    id: int
    role: str
    status: str
    content: str
    reasoning: str = ""
    error: str = ""
    speaker: str = ""
    finish_reason: str = ""
    usage: dict[str, int | None] = field(default_factory=dict)
    time_to_first_token_ms: int | None = None
    duration_ms: int | None = None
    notices: tuple[str, ...] = ()
    conversation_id: int | None = None
    #: Set when the body is too big for one socket frame: the page fetches it instead.
    load_url: str = ""
    #: Its place among its siblings (other versions), for the ‹ 2 / 3 › control.
    versions: Versions = Versions()
    #: Whether it answers a message (a persona's greeting does not: nothing to redo).
    has_parent: bool = True
    created_at: datetime | None = None
    #: A streaming reply's finished blocks, rendered, in order from the start (also
    #: when it has just finished: its final render reuses them).
    settled: tuple[Segment, ...] = ()

    @classmethod
    def from_message(
        cls, message: Message, *, speaker: str = "", versions: Versions | None = None
    ) -> MessageView:
        return cls(
            id=message.pk,
            role=message.role,
            status=message.status,
            content=message.content,
            reasoning=message.reasoning,
            error=message.error,
            speaker=speaker,
            finish_reason=message.finish_reason,
            usage={
                "input": message.input_tokens,
                "output": message.output_tokens,
                "reasoning": message.reasoning_tokens,
            },
            time_to_first_token_ms=message.time_to_first_token_ms,
            duration_ms=message.duration_ms,
            notices=tuple(message.notices.splitlines()),
            conversation_id=message.conversation_id,
            versions=versions or Versions(),
            has_parent=message.parent_id is not None,
            created_at=message.created_at,
        )

    @property
    def dom_id(self) -> str:
        return f"m-{self.id}"

    @property
    def is_streaming(self) -> bool:
        return self.status == Message.Status.STREAMING

    @property
    def usage_line(self) -> str:
        """Tokens and speed, for a finished reply: what the upstream reported, or an
        estimate from the text, flagged as such (stopped replies included)."""
        if self.role != Message.Role.ASSISTANT or self.is_streaming or not self.has_parent:
            return ""
        output = self.usage.get("output")
        reasoning = self.usage.get("reasoning")
        estimated = output is None
        if estimated:
            if not (self.content or self.reasoning):
                return ""
            output = estimate_tokens(self.content) + estimate_tokens(self.reasoning)
        parts = []
        if self.usage.get("input") is not None:
            parts.append(_("{count:,} in").format(count=self.usage["input"]))
        if estimated:
            parts.append(_("{count:,} out (estimated)").format(count=output))
        else:
            parts.append(_("{count:,} out").format(count=output))
        if reasoning:
            parts.append(_("{count:,} reasoning").format(count=reasoning))
        if self.time_to_first_token_ms is not None:
            seconds = self.time_to_first_token_ms / 1000
            parts.append(_("first token {seconds:.1f} s").format(seconds=seconds))
        if self.duration_ms and self.time_to_first_token_ms is not None and output:
            writing = (self.duration_ms - self.time_to_first_token_ms) / 1000
            if writing > 0:
                parts.append(_("{rate:.0f} tokens/s").format(rate=output / writing))
        return " · ".join(parts)

    @property
    def cut_short(self) -> bool:
        """The model stopped at the output-token limit (each API's own word for it)."""
        return self.finish_reason in ("length", "max_tokens")

    @property
    def error_text(self) -> str:
        return translated_error(self.error)

    @property
    def retryable(self) -> bool:
        """A reply that did not finish: its redo is called Retry."""
        return self.status in (Message.Status.FAILED, Message.Status.INTERRUPTED)

    @property
    def content_html(self) -> SafeString:
        if self.settled:  # a reply that just finished streaming: only its end is new
            return render_markdown_after(
                self.content, settled_html=self.settled_html, settled_end=self.settled_end
            )
        return render_markdown(self.content)

    @property
    def content_end(self) -> int:
        return len(self.content)

    @property
    def settled_end(self) -> int:
        return self.settled[-1].end if self.settled else 0

    @property
    def settled_html(self) -> SafeString:
        return mark_safe("".join(segment.html for segment in self.settled))  # noqa: S308

    @property
    def settled_text(self) -> str:
        return self.content[: self.settled_end]

    @property
    def open_text(self) -> str:
        return self.content[self.settled_end :]

    @property
    def reasoning_end(self) -> int:
        return len(self.reasoning)


def render_message(view: MessageView) -> str:
    return render_to_string("chat/_message.html", {"message": view})


def branch_views(
    conversation: Conversation, messages: list[Message], *, speaker: str, shape: Shape | None = None
) -> list[MessageView]:
    """The messages of a branch as the page shows them, with their versions."""
    shape = shape or Shape.of(conversation)
    return [
        MessageView.from_message(
            message,
            speaker=speaker if message.role == Message.Role.ASSISTANT else "",
            versions=shape.versions(message.pk) if message.pk in shape else None,
        )
        for message in messages
    ]


def older_messages_html(
    conversation: Conversation, page: BranchPage, *, speaker: str, shape: Shape | None = None
) -> SafeString:
    """A page of a branch, with the control that loads the page before it on top."""
    views = branch_views(conversation, page.messages, speaker=speaker, shape=shape)
    html = "".join(render_message(view) for view in views)
    if page.has_older and page.messages:
        url = reverse("older_messages", args=[conversation.pk])
        html = (
            render_to_string(
                "chat/_older_messages.html", {"url": url, "before": page.messages[0].pk}
            )
            + html
        )
    return mark_safe(html)  # noqa: S308 - rendered templates only


def branch_frame(conversation: Conversation, *, speaker: str) -> str:
    """Every tab shows the current branch instead of the one it showed: its newest
    messages, or when those are too big for a frame, reloaded over HTTP."""
    shape = Shape.of(conversation)
    page = branch_page(conversation, shape)
    inner = older_messages_html(conversation, page, speaker=speaker, shape=shape)
    if len(inner.encode()) > FRAME_HTML_BYTES:
        url = reverse("conversation", args=[conversation.pk])
        inner = format_html(
            '<p class="muted" hx-get="{}" hx-trigger="load" hx-target="#messages" '
            'hx-select="#messages" hx-swap="outerHTML">Loading this branch…</p>',
            url,
        )
    return f'<div id="messages" hx-swap-oob="innerHTML">{inner}</div>'


def append_messages_frame(views: list[MessageView]) -> str:
    inner = "".join(render_message(view) for view in views)
    return f'<div hx-swap-oob="beforeend:#messages">{inner}</div>'


def replace_message_frame(view: MessageView) -> str:
    """The whole message, swapped in place (hx-swap-oob defaults to outerHTML by id)."""
    return render_message(view)


# Browsers take any size, but daphne's peers and proxies commonly stop at 1 MiB a
# message. Text is cut to this many code points a frame; escaped HTML is at most 6
# bytes a code point ("&quot;"), so a frame stays under 1 MiB with room for its markup.
FRAME_TEXT_CHARS = 128 * 1024
#: Rendered HTML larger than this is not sent whole over the socket.
FRAME_HTML_BYTES = 768 * 1024


def delta_frames(target_id: str, *, offset: int, text: str) -> list[str]:
    """``text`` appended at ``offset``, cut into frames that each fit the limit."""
    return [html for _, _, html in delta_parts(target_id, offset=offset, text=text)]


def delta_parts(target_id: str, *, offset: int, text: str) -> list[tuple[int, int, str]]:
    """Like ``delta_frames``, as ``(start, end, html)``."""
    parts = []
    for start in range(0, len(text), FRAME_TEXT_CHARS):
        chunk = text[start : start + FRAME_TEXT_CHARS]
        begin = offset + start
        parts.append((begin, begin + len(chunk), delta_frame(target_id, offset=begin, text=chunk)))
    return parts


def message_frames(view: MessageView) -> list[str]:
    """The whole message as frames that each fit the limit, to apply in order.

    A streaming message goes as its shell with the first part of its text, then
    contiguous deltas. A finished message too big to send whole goes as a placeholder
    that loads its body over HTTP.
    """
    if view.is_streaming:
        return _streaming_frames(view)
    size = len(view.content) + len(view.reasoning)
    if size <= FRAME_TEXT_CHARS or view.conversation_id is None:
        return [render_message(view)]
    # Rendered HTML is never much smaller than its text: skip rendering what cannot fit.
    html = render_message(view) if size <= FRAME_HTML_BYTES else ""
    if html and len(html.encode()) <= FRAME_HTML_BYTES:
        return [html]
    url = reverse("message", args=[view.conversation_id, view.id])
    return [render_message(replace(view, content="", reasoning="", load_url=url))]


def _streaming_frames(view: MessageView) -> list[str]:
    """A streaming message as its shell with as much as fits, then the rest of its text
    as deltas, each settled segment following the text it covers."""
    head_text = view.content[:FRAME_TEXT_CHARS]
    fitting, size = 0, 0
    for segment in view.settled:
        size += len(segment.html)
        if segment.end > len(head_text) or size > FRAME_HTML_BYTES - 6 * len(head_text):
            break
        fitting += 1
    head = replace(
        view,
        content=head_text,
        reasoning=view.reasoning[:FRAME_TEXT_CHARS],
        settled=view.settled[:fitting],
    )
    frames = [render_message(head)]
    frames += delta_frames(
        f"{view.dom_id}-reasoning",
        offset=len(head.reasoning),
        text=view.reasoning[len(head.reasoning) :],
    )
    position = len(head_text)
    for segment in view.settled[fitting:]:
        if segment.end > position:
            frames += delta_frames(
                f"{view.dom_id}-text", offset=position, text=view.content[position : segment.end]
            )
            position = segment.end
        frames.append(settle_part(view.id, segment))
    frames += delta_frames(f"{view.dom_id}-text", offset=position, text=view.content[position:])
    return frames


def settle_part(message_id: int, segment: Segment) -> str:
    """Rendered blocks appended to a streaming reply; the browser then hides the raw
    text they cover (``content[start:end]``)."""
    return str(
        format_html(
            '<div hx-swap-oob="beforeend:#m-{}-done" data-settle-from="{}" data-settle-to="{}">'
            "{}</div>",
            message_id,
            segment.start,
            segment.end,
            mark_safe(segment.html),  # noqa: S308 - rendered by chat.markdown, escaped
        )
    )


def delta_frame(target_id: str, *, offset: int, text: str) -> str:
    # Every frame of every stream: plain escaping (what format_html does, without its
    # lazy-string checks on each argument). The offsets are integers.
    return (
        f'<div hx-swap-oob="beforeend:#{html_escape(target_id)}" data-offset="{offset:d}" '
        f'data-end="{offset + len(text):d}">{html_escape(text)}</div>'
    )


def title_frames(conversation: Conversation) -> str:
    """The new title, in the page header and in the sidebar link."""
    context = {"conversation": conversation, "item": conversation, "oob": True}
    return render_to_string("chat/_title.html", context) + render_to_string(
        "chat/_conversation_link.html", {**context, "active_id": conversation.pk}
    )


def deleted_frame() -> str:
    """For tabs still showing a conversation that was just deleted."""
    return str(
        format_html(
            '<div id="messages" hx-swap-oob="innerHTML"><p class="muted" role="status">'
            '{} <a href="/">{}</a></p></div>',
            _("This conversation was deleted."),
            _("Start another."),
        )
    )


def composer_error_frame(message: str, *, client_id: str = "") -> str:
    """A refusal: the browser keeps the text in the composer and shows why."""
    refused = format_html(' data-refused="{}"', client_id) if client_id else ""
    return (
        '<div id="composer-error" class="composer-error" role="alert" '
        f'hx-swap-oob="true"{refused}>{escape(message)}</div>'
    )


def composer_ok_frame(
    *, client_id: str = "", message_id: int | None = None, reply_id: int | None = None
) -> str:
    """The message was stored: the browser clears the composer for ``client_id``, and
    puts the stored message and reply in place of its provisional ones."""
    ack = ""
    if client_id:
        ack = format_html(
            ' data-ack="{}" data-message-id="{}" data-reply-id="{}"',
            client_id,
            message_id or "",
            reply_id or "",
        )
    return (
        f'<div id="composer-error" class="composer-error" role="alert" hx-swap-oob="true"{ack}>'
        "</div>"
    )
