"""Conversations in and out: Parley's own JSON (the whole tree, enough to continue it)
and Markdown (the current branch, for reading), and the exports of Open WebUI and
ChatGPT read into the same shape.

Reading checks everything before anything is stored, and every problem names where it
is ("Conversation 2, message 'a1b2': ..."). Nothing here touches the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chat.models import Conversation, Message
from chat.text import clean_text

FORMAT_CONVERSATION = "parley.conversation"
FORMAT_EXPORT = "parley.export"
VERSION = 1

MAX_CONVERSATIONS = 2_000
MAX_MESSAGES = 20_000
MAX_MESSAGE_CHARS = 1_000_000
_STATUSES = {status.value for status in Message.Status} - {Message.Status.STREAMING.value}


class ImportProblem(ValueError):
    """A file that cannot be imported; the message says what and where."""


# ---------------------------------------------------------------- export


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def conversation_document(conversation: Conversation, messages: Iterable[Message]) -> dict:  # type: ignore[type-arg]
    """The whole tree of one conversation, as Parley JSON's conversation object."""
    persona = conversation.persona
    return {
        "title": conversation.title,
        "model": conversation.model,
        "persona": {"name": persona.name} if persona else None,
        "temperature": conversation.temperature,
        "top_p": conversation.top_p,
        "max_output_tokens": conversation.max_output_tokens,
        "pinned": conversation.pinned,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "current_leaf": conversation.current_leaf_id,
        "messages": [
            {
                "id": message.pk,
                "parent": message.parent_id,
                "role": message.role,
                "content": message.content,
                "reasoning": message.reasoning,
                "status": message.status,
                "model": message.model,
                "finish_reason": message.finish_reason,
                "error": message.error,
                "notices": message.notices,
                "usage": {
                    "input_tokens": message.input_tokens,
                    "output_tokens": message.output_tokens,
                    "reasoning_tokens": message.reasoning_tokens,
                    "cached_tokens": message.cached_tokens,
                },
                "time_to_first_token_ms": message.time_to_first_token_ms,
                "duration_ms": message.duration_ms,
                # What the upstream asked to get back next turn (reasoning details,
                # thinking signatures): needed to continue the conversation faithfully.
                "provider_data": message.provider_data or {},
                "created_at": _iso(message.created_at),
            }
            for message in messages
        ],
    }


def envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": kind,
        "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        **body,
    }


def markdown(conversation: Conversation, path: list[Message], *, speaker: str) -> str:
    """The current branch for reading: reasoning folded into collapsible sections."""
    lines = [f"# {conversation.display_title}", ""]
    persona = conversation.persona
    lines.append(f"- Model: `{conversation.model}`")
    if persona:
        lines.append(f"- Persona: {persona.name}")
    lines.append(f"- Exported: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    lines.append("")
    for message in path:
        who = "You" if message.role == Message.Role.USER else speaker
        status = "" if message.status == Message.Status.COMPLETE else f" ({message.status})"
        lines += [f"## {who}{status}", ""]
        if message.reasoning:
            lines += [
                "<details>",
                "<summary>Thinking</summary>",
                "",
                message.reasoning,
                "",
                "</details>",
                "",
            ]
        lines += [message.content or "*(no text)*", ""]
        if message.error:
            lines += [f"> {message.error}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- import


@dataclass
class ImportedMessage:
    key: str
    parent_key: str | None
    role: str
    content: str
    reasoning: str = ""
    status: str = Message.Status.COMPLETE
    model: str = ""
    finish_reason: str = ""
    error: str = ""
    usage: dict[str, int | None] = field(default_factory=dict)
    provider_data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportedConversation:
    title: str
    source: str
    messages: list[ImportedMessage]
    current_key: str | None = None
    model: str = ""
    persona_name: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    pinned: bool = False


def parse(raw: bytes) -> list[ImportedConversation]:
    """Whatever the file is (Parley, Open WebUI or ChatGPT JSON), its conversations."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportProblem("The file is not UTF-8 text.") from None
    except ValueError as error:
        raise ImportProblem(f"The file is not valid JSON ({error}).") from None
    if isinstance(data, dict) and data.get("format") in (FORMAT_CONVERSATION, FORMAT_EXPORT):
        if data.get("version") != VERSION:
            raise ImportProblem(
                f"This Parley file is version {data.get('version')!r}; "
                f"this Parley reads version {VERSION}."
            )
        if data["format"] == FORMAT_CONVERSATION:
            items = [data.get("conversation")]
        else:
            items = data.get("conversations")
            if not isinstance(items, list):
                raise ImportProblem("The Parley export has no list of conversations.")
        reader = _parley
    else:
        items = data if isinstance(data, list) else [data]
        first = items[0] if items else None
        if isinstance(first, dict) and "mapping" in first:
            reader = _chatgpt
        elif isinstance(first, dict) and ("chat" in first or "history" in first):
            reader = _open_webui
        else:
            raise ImportProblem(
                "The file is not a conversation export Parley knows (Parley JSON, "
                "Open WebUI's chat export or ChatGPT's conversations.json)."
            )
    if not items:
        raise ImportProblem("The file holds no conversations.")
    if len(items) > MAX_CONVERSATIONS:
        raise ImportProblem(f"At most {MAX_CONVERSATIONS:,} conversations can be imported at once.")
    conversations = []
    for number, item in enumerate(items, start=1):
        where = f"Conversation {number}"
        if not isinstance(item, dict):
            raise ImportProblem(f"{where} is not an object.")
        conversation = reader(item, where)
        _check_tree(conversation, where)
        conversations.append(conversation)
    return conversations


def _text(value: Any, where: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImportProblem(f"{where}: {what} must be text.")
    if len(value) > MAX_MESSAGE_CHARS:
        raise ImportProblem(f"{where}: {what} is longer than {MAX_MESSAGE_CHARS:,} characters.")
    return clean_text(value)


def _number(value: Any, where: str, what: str, *, kind: type = float) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImportProblem(f"{where}: {what} must be a number.")
    return kind(value)


def _key(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ImportProblem(f"{where}: a message id is missing or not text.")
    return str(value)


def _parley(item: dict[str, Any], where: str) -> ImportedConversation:
    raw_messages = item.get("messages")
    if not isinstance(raw_messages, list):
        raise ImportProblem(f"{where} has no list of messages.")
    messages = []
    for index, raw in enumerate(raw_messages, start=1):
        here = f"{where}, message {index}"
        if not isinstance(raw, dict):
            raise ImportProblem(f"{here} is not an object.")
        role = raw.get("role")
        if role not in (Message.Role.USER, Message.Role.ASSISTANT):
            raise ImportProblem(f"{here}: role must be user or assistant, not {role!r}.")
        status = raw.get("status") or Message.Status.COMPLETE
        if status == Message.Status.STREAMING:
            status = Message.Status.INTERRUPTED  # it was being written when exported
        if status not in _STATUSES:
            raise ImportProblem(f"{here}: unknown status {status!r}.")
        usage = raw.get("usage") or {}
        provider_data = raw.get("provider_data") or {}
        if not isinstance(usage, dict) or not isinstance(provider_data, dict):
            raise ImportProblem(f"{here}: usage and provider_data must be objects.")
        parent = raw.get("parent")
        messages.append(
            ImportedMessage(
                key=_key(raw.get("id"), here),
                parent_key=None if parent is None else _key(parent, here),
                role=role,
                content=_text(raw.get("content"), here, "content"),
                reasoning=_text(raw.get("reasoning"), here, "reasoning"),
                status=status,
                model=_text(raw.get("model"), here, "model")[:120],
                finish_reason=_text(raw.get("finish_reason"), here, "finish_reason")[:32],
                error=_text(raw.get("error"), here, "error"),
                usage={
                    name: _number(usage.get(name), here, name, kind=int)
                    for name in ("input_tokens", "output_tokens", "reasoning_tokens")
                },
                provider_data=provider_data,
            )
        )
    persona = item.get("persona")
    leaf = item.get("current_leaf")
    return ImportedConversation(
        title=_text(item.get("title"), where, "title")[:120],
        source="Parley",
        messages=messages,
        current_key=None if leaf is None else _key(leaf, where),
        model=_text(item.get("model"), where, "model"),
        persona_name=_text(persona.get("name"), where, "persona")
        if isinstance(persona, dict)
        else "",
        temperature=_number(item.get("temperature"), where, "temperature"),
        top_p=_number(item.get("top_p"), where, "top_p"),
        max_output_tokens=_number(
            item.get("max_output_tokens"), where, "max_output_tokens", kind=int
        ),
        pinned=bool(item.get("pinned")),
    )


def _open_webui(item: dict[str, Any], where: str) -> ImportedConversation:
    """Open WebUI's export: ``[{"title", "chat": {"history": {"messages": {id: {"id",
    "parentId", "childrenIds", "role", "content", "model"}}, "currentId"}}}]``."""
    chat = item.get("chat") if isinstance(item.get("chat"), dict) else item
    history = chat.get("history")
    if not isinstance(history, dict) or not isinstance(history.get("messages"), dict):
        raise ImportProblem(f"{where} has no chat history (chat.history.messages).")
    messages = []
    for key, raw in history["messages"].items():
        here = f"{where}, message {key!r}"
        if not isinstance(raw, dict):
            raise ImportProblem(f"{here} is not an object.")
        role = raw.get("role")
        if role == "system":
            continue
        if role not in ("user", "assistant"):
            raise ImportProblem(f"{here}: role must be user or assistant, not {role!r}.")
        parent = raw.get("parentId")
        messages.append(
            ImportedMessage(
                key=_key(raw.get("id", key), here),
                parent_key=None if parent is None else _key(parent, here),
                role=role,
                content=_text(raw.get("content"), here, "content"),
                model=_text(raw.get("model") or "", here, "model")[:120],
            )
        )
    current = history.get("currentId")
    return ImportedConversation(
        title=_text(item.get("title") or chat.get("title"), where, "title")[:120],
        source="Open WebUI",
        messages=messages,
        current_key=None if current is None else _key(current, where),
        pinned=bool(item.get("pinned")),
    )


def _chatgpt(item: dict[str, Any], where: str) -> ImportedConversation:
    """ChatGPT's ``conversations.json``: ``[{"title", "mapping": {id: {"id", "message":
    {"author": {"role"}, "content": {"content_type", "parts"}}, "parent", "children"}},
    "current_node"}]``. System and tool nodes are skipped; their children attach to the
    nearest message kept above them."""
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise ImportProblem(f"{where} has no message mapping.")
    parents: dict[str, str | None] = {}
    kept: dict[str, ImportedMessage] = {}
    for key, node in mapping.items():
        here = f"{where}, node {key!r}"
        if not isinstance(node, dict):
            raise ImportProblem(f"{here} is not an object.")
        parent = node.get("parent")
        parents[str(key)] = None if parent is None else _key(parent, here)
        message = node.get("message")
        if not isinstance(message, dict):
            continue
        author = message.get("author") if isinstance(message.get("author"), dict) else {}
        role = author.get("role")
        content = message.get("content") if isinstance(message.get("content"), dict) else {}
        if role not in ("user", "assistant") or content.get("content_type") not in (
            "text",
            "multimodal_text",
            None,
        ):
            continue  # system prompts, tools, code runs, thoughts: not chat messages
        parts = content.get("parts") or []
        if not isinstance(parts, list):
            raise ImportProblem(f"{here}: content.parts must be a list.")
        text = "\n\n".join(part for part in parts if isinstance(part, str))
        if not text.strip() and (message.get("metadata") or {}).get(
            "is_visually_hidden_from_conversation"
        ):
            continue
        kept[str(key)] = ImportedMessage(
            key=str(key),
            parent_key=None,
            role=role,
            content=_text(text, here, "content"),
            model=_text((message.get("metadata") or {}).get("model_slug") or "", here, "model")[
                :120
            ],
        )
    for key, message in kept.items():
        parent, seen = parents.get(key), 0
        while parent is not None and parent not in kept and seen <= len(parents):
            parent, seen = parents.get(parent), seen + 1
        message.parent_key = parent
    current = item.get("current_node")
    while current is not None and str(current) not in kept and str(current) in parents:
        current = parents[str(current)]
    return ImportedConversation(
        title=_text(item.get("title"), where, "title")[:120],
        source="ChatGPT",
        messages=list(kept.values()),
        current_key=None if current is None else str(current),
    )


def _check_tree(conversation: ImportedConversation, where: str) -> None:
    """Ids unique, parents present, no cycles, not too big, a leaf that exists."""
    if len(conversation.messages) > MAX_MESSAGES:
        raise ImportProblem(f"{where} has more than {MAX_MESSAGES:,} messages.")
    keys = [message.key for message in conversation.messages]
    if len(set(keys)) != len(keys):
        raise ImportProblem(f"{where}: two messages share an id.")
    by_key = {message.key: message for message in conversation.messages}
    for message in conversation.messages:
        if message.parent_key is not None and message.parent_key not in by_key:
            raise ImportProblem(
                f"{where}, message {message.key!r}: its parent {message.parent_key!r} is missing."
            )
    ordered = ordered_for_insert(conversation)
    if len(ordered) != len(conversation.messages):
        raise ImportProblem(f"{where}: its messages' parents form a loop.")
    if conversation.current_key is not None and conversation.current_key not in by_key:
        conversation.current_key = None  # the newest leaf is shown instead


def ordered_for_insert(conversation: ImportedConversation) -> list[ImportedMessage]:
    """Parents before children (messages in a loop are left out)."""
    children: dict[str | None, list[ImportedMessage]] = {}
    for message in conversation.messages:
        children.setdefault(message.parent_key, []).append(message)
    ordered: list[ImportedMessage] = []
    frontier = list(children.get(None, []))
    while frontier:
        message = frontier.pop(0)
        ordered.append(message)
        frontier.extend(children.get(message.key, []))
    return ordered
