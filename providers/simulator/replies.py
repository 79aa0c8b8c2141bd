"""Deterministic, plausible replies for the simulator: no model, no randomness."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\s*\S+|\s+")

_OPENERS = (
    "Happy to help with that.",
    "Good question, let me walk through it.",
    "Here is a short answer, then an example.",
)
_NOTES = (
    "Streaming replies arrive in frames of about fifty milliseconds, so the page stays smooth.",
    "Stopping a reply keeps every word that had already arrived.",
    "Closing the tab does not stop the reply; it is waiting when you come back.",
    "A second tab on the same conversation follows the same stream live.",
    "Reasoning is kept apart from the answer and shown in a collapsible block.",
    "The partial reply is saved about once a second, never once per token.",
)


#: How Parley's title requests begin (chat.actions.titles.TITLE_PROMPT).
TITLE_REQUEST = "Write a title of at most six words"


@dataclass(frozen=True, slots=True)
class Reply:
    reasoning: str
    answer: str
    #: Cut at the request's output-token limit: the API says "length" (or "max_tokens").
    truncated: bool = False


def max_output_tokens(body: dict[str, Any]) -> int | None:
    """The output limit a request asked for, whatever its API calls it."""
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    for value in (
        body.get("max_completion_tokens"),
        body.get("max_tokens"),
        parameters.get("max_tokens"),
        (body.get("input") or {}).get("max_tokens")
        if isinstance(body.get("input"), dict)
        else None,
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def limited(reply: Reply, limit: int | None) -> Reply:
    """``reply`` cut to ``limit`` tokens, reasoning first, as a model stops mid-answer."""
    if limit is None:
        return reply
    reasoning, answer = tokens(reply.reasoning), tokens(reply.answer)
    if len(reasoning) + len(answer) <= limit:
        return reply
    kept_reasoning = reasoning[:limit]
    kept_answer = answer[: max(0, limit - len(kept_reasoning))]
    return Reply("".join(kept_reasoning), "".join(kept_answer), truncated=True)


def tokens(text: str) -> list[str]:
    """Split into word-sized pieces (leading whitespace attached), roughly one per token."""
    return _TOKEN.findall(text)


def _flatten(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def compose(
    messages: list[dict[str, Any]], *, system: str = "", length: int = 0, note: str = ""
) -> Reply:
    """Build the reply to ``messages``: reasoning, markdown, a code block, and a line
    saying what was received. ``length`` pads the answer to about that many tokens."""
    last_user = ""
    persona = system
    roles: list[str] = []
    for message in messages:
        role = message.get("role", "")
        roles.append(role)
        text = _flatten(message.get("content"))
        if role == "user":
            last_user = text
        elif role == "system" and not persona:
            persona = message.get("name") or text
    if last_user.startswith(TITLE_REQUEST):
        # Parley asking for a conversation title: answer like a model would, briefly.
        message = last_user.split("Message: ", 1)[-1].split("\n\nFirst reply:", 1)[0]
        return Reply(
            reasoning="A short title in the message's language.",
            answer=" ".join(message.split()[:6]).rstrip(".?!,;:") or "Conversation",
        )
    seed = zlib.crc32(last_user.encode())
    opener = _OPENERS[seed % len(_OPENERS)]
    persona_line = _clip(persona, 60) if persona else "none"
    extra_roles = sorted({r for r in roles if r not in ("system", "user", "assistant", "tool")})
    reasoning = (
        f"The user wrote “{_clip(last_user, 80)}”. "
        "I should answer briefly, stay in character, and show what the page can render: "
        "a list, emphasis and a code block."
    )
    answer = (
        f"{opener} *(Offline demo: this reply is simulated, no model was called.)*\n\n"
        f"You said: “{_clip(last_user, 120)}”\n\n"
        "What this reply shows off:\n\n"
        "- **Markdown** with *emphasis* and `inline code`\n"
        "- a fenced code block:\n\n"
        "```python\n"
        "def greet(name: str) -> str:\n"
        '    return f"Hello, {name}!"\n'
        "```\n\n"
    )
    if length:
        notes: list[str] = []
        index = seed
        count = len(tokens(answer))
        while count < length - 20:
            note_line = f"{len(notes) + 1}. {_NOTES[index % len(_NOTES)]}"
            notes.append(note_line)
            count += len(tokens(note_line)) + 1
            index += 1
        answer += "Some notes about Parley:\n\n" + "\n".join(notes) + "\n\n"
    answer += (
        f"Received: persona “{persona_line}”, {len(messages)} messages"
        + (f" (extra roles: {', '.join(extra_roles)})" if extra_roles else "")
        + f", last message “{_clip(last_user, 60)}”"
        + (f"; {note}" if note else "")
        + "."
    )
    return Reply(reasoning=reasoning, answer=answer)
