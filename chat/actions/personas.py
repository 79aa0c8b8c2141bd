"""Personas from character cards."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from chat.actions.common import ActionError
from chat.cards import CardError, read_card
from chat.models import PersonaExample, PersonaPreset


@dataclass(frozen=True, slots=True)
class ImportedPersona:
    persona: PersonaPreset
    #: What the card had that Parley could not keep, in sentences.
    notes: tuple[str, ...]


def import_character_card(*, data: bytes) -> ImportedPersona:
    """A new persona, with its example turns, from a Tavern card (PNG or JSON), stored
    whole or not at all. A name already taken gets a number: "Mara (2)"."""
    try:
        card = read_card(data)
    except CardError as problem:
        raise ActionError(str(problem)) from None
    with transaction.atomic():
        name = _free_name(card.name)
        persona = PersonaPreset.objects.create(
            name=name,
            description=card.description,
            system_prompt=card.system_prompt,
            character_name=card.character_name,
            user_name=card.user_name,
            scene=card.scene,
            greeting=card.greeting,
        )
        PersonaExample.objects.bulk_create(
            PersonaExample(persona=persona, position=index, user_text=user, assistant_text=reply)
            for index, (user, reply) in enumerate(card.examples)
        )
    notes = list(card.notes)
    if name != card.name:
        notes.append(_("A persona named “%(name)s” exists already.") % {"name": card.name})
    return ImportedPersona(persona, tuple(notes))


def _free_name(name: str) -> str:
    taken = set(
        PersonaPreset.objects.select_for_update()
        .filter(name__startswith=name[:70])
        .values_list("name", flat=True)
    )
    if name not in taken:
        return name
    for number in range(2, 1000):
        suffix = f" ({number})"
        candidate = name[: 80 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise ActionError(_("Too many personas are named “%(name)s”.") % {"name": name})
