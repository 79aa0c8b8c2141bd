"""Character cards (SillyTavern's "Tavern cards", V1 to V3) read into persona fields.

A card is JSON, or a PNG image carrying the JSON base64-encoded in a text chunk: ``ccv3``
for V3, ``chara`` for V2 and V1 (a V3 card usually carries both; V3 wins). The card's
fields map onto a persona and onto M2-her's role-play roles:

- ``name`` (and V3's ``nickname``) → the persona's name and the character's speaker name;
- ``system_prompt``, ``description``, ``personality`` and ``post_history_instructions``
  → the system prompt (M2-her's ``system`` role);
- ``scenario`` → the scene (M2-her's ``group`` role), or the system prompt if too long;
- ``first_mes`` → the greeting;
- ``mes_example`` (``<START>`` blocks of ``{{user}}:`` / ``{{char}}:`` lines) → example
  turns (``sample_message_user`` / ``sample_message_ai``);
- ``creator_notes`` → the description shown in the persona picker.

``{{char}}`` and ``{{user}}`` (and the older ``<BOT>`` / ``<USER>``) are replaced by the
speaker names. What Parley has no place for (lorebooks, alternate greetings) is named in
the result's notes, never dropped silently. Every refusal says what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

#: Cards are images: a few MiB is common, more is not a card.
CARD_MAX_BYTES = 16 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: How the user is called in a card's text once imported.
USER_NAME = "User"
_NAME_MAX, _DESCRIPTION_MAX, _SCENE_MAX = 80, 300, 300


class CardError(ValueError):
    """A card that cannot be read; the message says why, for the person importing it."""


@dataclass
class CardPersona:
    """What a card becomes: persona fields, example turns, and notes on what was left out."""

    name: str
    character_name: str
    description: str
    system_prompt: str
    scene: str
    greeting: str
    user_name: str = USER_NAME
    examples: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_card(data: bytes) -> CardPersona:
    """Parse a card file (PNG or JSON) into persona fields, or raise :class:`CardError`."""
    if len(data) > CARD_MAX_BYTES:
        raise CardError(
            _("The card is larger than %(size)d MiB.") % {"size": CARD_MAX_BYTES // 2**20}
        )
    raw = _json_from_png(data) if data.startswith(_PNG_SIGNATURE) else data
    try:
        card = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CardError(
            _("This is neither a PNG character card nor card JSON (the JSON does not parse).")
        ) from None
    return _persona(card)


def _json_from_png(data: bytes) -> bytes:
    """The card JSON from a PNG's ``ccv3`` or ``chara`` text chunk."""
    texts: dict[str, bytes] = {}
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if len(body) != length:
            raise CardError(_("The PNG is cut short: a chunk runs past the end of the file."))
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            keyword, _separator, rest = body.partition(b"\0")
            if keyword in (b"chara", b"ccv3"):
                texts[keyword.decode()] = _chunk_text(kind, rest)
        if kind == b"IEND":
            break
        position += 12 + length
    text = texts.get("ccv3") or texts.get("chara")
    if text is None:
        raise CardError(_("This PNG carries no character card (no “chara” or “ccv3” text chunk)."))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CardError(_("The card's text chunk is not valid base64.")) from None


def _chunk_text(kind: bytes, rest: bytes) -> bytes:
    try:
        if kind == b"zTXt":
            return zlib.decompress(rest[1:], bufsize=CARD_MAX_BYTES)
        if kind == b"iTXt":
            compressed, _method, rest = rest[0], rest[1], rest[2:]
            _language, _sep, rest = rest.partition(b"\0")
            _translated, _sep, text = rest.partition(b"\0")
            return zlib.decompress(text) if compressed else text
    except zlib.error:
        raise CardError(_("The card's text chunk is compressed and does not inflate.")) from None
    return rest


def _persona(card: Any) -> CardPersona:
    if not isinstance(card, dict):
        raise CardError(_("The card JSON is not an object."))
    spec = card.get("spec")
    if spec in ("chara_card_v2", "chara_card_v3"):
        data = card.get("data")
        if not isinstance(data, dict):
            raise CardError(
                _("The card says it is %(spec)s but has no “data” object.") % {"spec": spec}
            )
    elif spec is None:
        data = card  # V1: the fields at the top level
    else:
        raise CardError(_("Unknown card format “%(spec)s”.") % {"spec": str(spec)[:40]})

    def text(key: str) -> str:
        value = data.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise CardError(_("The card's “%(field)s” is not text.") % {"field": key})
        return value.replace("\r\n", "\n").strip()

    name = text("name")
    if not name:
        raise CardError(_("The card has no name."))
    character = (text("nickname") or name)[:_NAME_MAX]
    notes: list[str] = []

    def fill(value: str) -> str:
        value = re.sub(r"\{\{char\}\}|<BOT>", character, value, flags=re.I)
        return re.sub(r"\{\{user\}\}|<USER>", USER_NAME, value, flags=re.I)

    system_parts = [fill(text("system_prompt").replace("{{original}}", "").strip())]
    if description := text("description"):
        system_parts.append(fill(description))
    if personality := text("personality"):
        system_parts.append(
            # Prompt text, in the card's language (English, as cards are): not translated.
            f"{character}'s personality: {fill(personality)}"
        )
    scenario = fill(text("scenario"))
    scene = scenario
    if len(scenario) > _SCENE_MAX:
        system_parts.append(f"Scenario: {scenario}")
        scene = ""
    if instructions := text("post_history_instructions"):
        system_parts.append(fill(instructions))

    notes_text = text("creator_notes")
    blurb = " ".join(notes_text.split()) or " ".join(description.split())
    if len(blurb) > _DESCRIPTION_MAX:
        blurb = blurb[: _DESCRIPTION_MAX - 1].rstrip() + "…"

    greetings = data.get("alternate_greetings")
    if isinstance(greetings, list) and greetings:
        notes.append(
            _("%(count)d alternate greetings were not imported: a persona has one.")
            % {"count": len(greetings)}
        )
    if data.get("character_book"):
        notes.append(_("The card's lorebook was not imported: Parley has no lorebooks."))
    if len(name) > _NAME_MAX:
        notes.append(_("The name was shortened to %(count)d characters.") % {"count": _NAME_MAX})

    return CardPersona(
        name=name[:_NAME_MAX],
        character_name=character,
        description=fill(blurb),
        system_prompt="\n\n".join(part for part in system_parts if part),
        scene=scene,
        greeting=fill(text("first_mes")),
        examples=_examples(text("mes_example"), fill),
        notes=notes,
    )


_SPEAKER = re.compile(r"^\s*(\{\{user\}\}|<USER>|\{\{char\}\}|<BOT>)\s*:\s?", re.I)


def _examples(text: str, fill: Any) -> list[tuple[str, str]]:
    """``<START>`` blocks of ``{{user}}: …`` / ``{{char}}: …`` lines as (user, reply) pairs.
    Lines without a speaker continue the line before; a reply with no question before
    it, or a question with no reply, is dropped."""
    pairs: list[tuple[str, str]] = []
    for block in re.split(r"<START>", text, flags=re.I):
        turns: list[list[str]] = []  # [speaker, text]
        for line in block.splitlines():
            match = _SPEAKER.match(line)
            if match:
                speaker = "user" if match[1].lower() in ("{{user}}", "<user>") else "char"
                turns.append([speaker, line[match.end() :]])
            elif turns:
                turns[-1][1] += "\n" + line
        pending = ""
        for speaker, said in turns:
            said = fill(said.strip())
            if speaker == "user":
                pending = f"{pending}\n{said}".strip() if pending else said
            elif pending and said:
                pairs.append((pending, said))
                pending = ""
    return pairs
