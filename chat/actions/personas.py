"""Personas: users' private ones (when the site allows), and personas from character
cards, shared (the admin) or private."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from chat.actions.common import ActionError
from chat.cards import CARD_MAX_BYTES, CardError, read_card
from chat.models import PersonaExample, PersonaPreset, SiteSettings, User


@dataclass(frozen=True, slots=True)
class ImportedPersona:
    persona: PersonaPreset
    #: What the card had that Parley could not keep, in sentences.
    notes: tuple[str, ...]


def import_character_card(*, data: bytes, owner: User | None = None) -> ImportedPersona:
    """A new persona, with its example turns, from a Tavern card (PNG or JSON), stored
    whole or not at all: shared, or ``owner``'s private one. A name already taken gets
    a number: "Mara (2)"."""
    if owner is not None:
        _check_private_allowed()
    try:
        card = read_card(data)
    except CardError as problem:
        raise ActionError(str(problem)) from None
    with transaction.atomic():
        name = _free_name(card.name, owner)
        persona = PersonaPreset.objects.create(
            owner=owner,
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


def import_card_file(*, upload: UploadedFile, owner: User | None = None) -> ImportedPersona:
    """:func:`import_character_card` from an uploaded file, refused unread if too big."""
    if upload.size is not None and upload.size > CARD_MAX_BYTES:
        raise ActionError(
            _("The card is larger than %(size)d MiB.") % {"size": CARD_MAX_BYTES // 2**20}
        )
    return import_character_card(data=upload.read(), owner=owner)


def _free_name(name: str, owner: User | None) -> str:
    taken = set(
        PersonaPreset.objects.select_for_update()
        .filter(owner=owner, name__startswith=name[:70])
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


def _check_private_allowed() -> None:
    if not SiteSettings.current().users_create_personas:
        raise ActionError(_("Private personas are not enabled here. Ask an admin."))


def private_persona(user: User, persona_id: int) -> PersonaPreset:
    """One of ``user``'s own personas; anyone else's is as good as missing."""
    persona = PersonaPreset.objects.filter(pk=persona_id, owner=user).first()
    if persona is None:
        raise ActionError(_("That persona could not be found."))
    return persona


def save_private_persona(*, user: User, persona: PersonaPreset) -> PersonaPreset:
    """Store a validated private persona (new or changed) as ``user``'s."""
    _check_private_allowed()
    if persona.pk is not None and persona.owner_id != user.pk:
        raise ActionError(_("That persona could not be found."))
    persona.owner = user
    try:
        with transaction.atomic():
            persona.save()
    except IntegrityError:
        raise ActionError(
            _("You have a persona named “%(name)s” already.") % {"name": persona.name}
        ) from None
    return persona


def delete_private_persona(*, user: User, persona_id: int) -> None:
    """Conversations with it keep their messages and go on without a persona."""
    private_persona(user, persona_id).delete()
