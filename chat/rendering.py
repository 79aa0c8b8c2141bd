"""HTML for the page and for socket frames. Frames are htmx out-of-band swaps.

Every streaming text region carries ``data-end``: the length (in code points) of the
text it shows. Delta frames say where they start and end, so the browser can drop a
duplicate and ask for a snapshot when it sees a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.template.loader import render_to_string
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


def composer_error_frame(message: str) -> str:
    return (
        '<div id="composer-error" class="composer-error" role="alert" '
        f'hx-swap-oob="true" data-restore="1">{escape(message)}</div>'
    )


def composer_ok_frame() -> str:
    return '<div id="composer-error" class="composer-error" role="alert" hx-swap-oob="true"></div>'
