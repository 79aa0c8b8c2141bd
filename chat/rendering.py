"""HTML for the page and for socket frames. Frames are htmx out-of-band swaps.

Every streaming text region carries ``data-end``: the length (in code points) of the
text it shows. Delta frames say where they start and end, so the browser can drop a
duplicate and ask for a snapshot when it sees a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString

from chat.markdown import render_markdown
from chat.models import Conversation, Message


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

    @classmethod
    def from_message(cls, message: Message, *, speaker: str = "") -> MessageView:
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
        )

    @property
    def dom_id(self) -> str:
        return f"m-{self.id}"

    @property
    def is_streaming(self) -> bool:
        return self.status == Message.Status.STREAMING

    @property
    def content_html(self) -> SafeString:
        return render_markdown(self.content)

    @property
    def content_end(self) -> int:
        return len(self.content)

    @property
    def reasoning_end(self) -> int:
        return len(self.reasoning)


def render_message(view: MessageView) -> str:
    return render_to_string("chat/_message.html", {"message": view})


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
    return [
        delta_frame(target_id, offset=offset + start, text=text[start : start + FRAME_TEXT_CHARS])
        for start in range(0, len(text), FRAME_TEXT_CHARS)
    ]


def message_frames(view: MessageView) -> list[str]:
    """The whole message as frames that each fit the limit, to apply in order.

    A streaming message goes as its shell with the first part of its text, then
    contiguous deltas. A finished message too big to send whole goes as a placeholder
    that loads its body over HTTP.
    """
    if view.is_streaming:
        head = replace(
            view,
            content=view.content[:FRAME_TEXT_CHARS],
            reasoning=view.reasoning[:FRAME_TEXT_CHARS],
        )
        frames = [render_message(head)]
        frames += delta_frames(
            f"{view.dom_id}-reasoning",
            offset=len(head.reasoning),
            text=view.reasoning[len(head.reasoning) :],
        )
        frames += delta_frames(
            f"{view.dom_id}-text", offset=len(head.content), text=view.content[len(head.content) :]
        )
        return frames
    size = len(view.content) + len(view.reasoning)
    if size <= FRAME_TEXT_CHARS or view.conversation_id is None:
        return [render_message(view)]
    # Rendered HTML is never much smaller than its text: skip rendering what cannot fit.
    html = render_message(view) if size <= FRAME_HTML_BYTES else ""
    if html and len(html.encode()) <= FRAME_HTML_BYTES:
        return [html]
    url = reverse("message", args=[view.conversation_id, view.id])
    return [render_message(replace(view, content="", reasoning="", load_url=url))]


def delta_frame(target_id: str, *, offset: int, text: str) -> str:
    return str(
        format_html(
            '<div hx-swap-oob="beforeend:#{}" data-offset="{}" data-end="{}">{}</div>',
            target_id,
            offset,
            offset + len(text),
            text,
        )
    )


def title_frames(conversation: Conversation) -> str:
    """The new title, in the page header and in the sidebar link."""
    context = {"conversation": conversation, "item": conversation, "oob": True}
    return render_to_string("chat/_title.html", context) + render_to_string(
        "chat/_conversation_link.html", {**context, "active_id": conversation.pk}
    )


def composer_error_frame(message: str, *, client_id: str = "") -> str:
    """A refusal: the browser keeps the text in the composer and shows why."""
    refused = format_html(' data-refused="{}"', client_id) if client_id else ""
    return (
        '<div id="composer-error" class="composer-error" role="alert" '
        f'hx-swap-oob="true"{refused}>{escape(message)}</div>'
    )


def composer_ok_frame(*, client_id: str = "", message_id: int | None = None) -> str:
    """The message was stored: the browser clears the composer for ``client_id``."""
    ack = ""
    if client_id:
        ack = format_html(' data-ack="{}" data-message-id="{}"', client_id, message_id or "")
    return (
        f'<div id="composer-error" class="composer-error" role="alert" hx-swap-oob="true"{ack}>'
        "</div>"
    )
