"""Export and import: one conversation or all of a user's, as files."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.text import slugify
from django.utils.translation import gettext as _

from chat import portability
from chat.access import access_conversation
from chat.actions.common import ActionError
from chat.actions.conversations import speaker_for
from chat.models import Conversation, Message, PersonaPreset, User
from chat.permissions import models_for, personas_for
from chat.tree import current_path
from providers import registry


@dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    content_type: str
    body: str


def export_conversation(*, user: User, conversation_id: int, fmt: str) -> ExportFile:
    """``md``: the current branch to read; ``json``: the whole tree, to import again."""
    conversation = access_conversation(user, conversation_id)
    name = slugify(conversation.display_title)[:60] or f"conversation-{conversation.pk}"
    if fmt == "md":
        path = current_path(conversation)
        text = portability.markdown(conversation, path, speaker=speaker_for(conversation))
        return ExportFile(f"{name}.md", "text/markdown; charset=utf-8", text)
    if fmt == "json":
        document = portability.envelope(
            portability.FORMAT_CONVERSATION,
            {
                "conversation": portability.conversation_document(
                    conversation, conversation.messages.order_by("pk")
                )
            },
        )
        return ExportFile(f"{name}.json", "application/json", json.dumps(document, indent=1))
    raise ActionError(_("Export as md or json."))


def export_all(*, user: User) -> ExportFile:
    conversations = Conversation.objects.filter(owner=user).select_related("persona").order_by("pk")
    messages: dict[int, list[Message]] = {}
    for message in Message.objects.filter(conversation__owner=user).order_by("pk").iterator():
        messages.setdefault(message.conversation_id, []).append(message)
    document = portability.envelope(
        portability.FORMAT_EXPORT,
        {
            "conversations": [
                portability.conversation_document(c, messages.get(c.pk, [])) for c in conversations
            ]
        },
    )
    return ExportFile(f"parley-{user.username}.json", "application/json", json.dumps(document))


def import_conversations(*, user: User, raw: bytes) -> list[Conversation]:
    """New conversations owned by ``user``, continued with a model available here.
    The whole file is checked first and stored in one transaction: all or nothing."""
    limit = settings.IMPORT_MAX_BYTES
    if len(raw) > limit:
        raise ActionError(
            _("The file is larger than {size} MiB.").format(size=limit // (1024 * 1024))
        )
    try:
        parsed = portability.parse(raw)
    except portability.ImportProblem as problem:
        raise ActionError(str(problem)) from None
    options = models_for(user)
    if not options:
        raise ActionError(
            _("No models are configured, so imported conversations could not continue.")
        )
    # By name; the user's own persona wins over a shared one of the same name.
    shared_first = personas_for(user).order_by(F("owner_id").asc(nulls_first=True))
    personas = {persona.name: persona for persona in shared_first}
    created = []
    with transaction.atomic():
        for item in parsed:
            created.append(_store(user, item, options, personas))
    return created


def _store(
    user: User,
    item: portability.ImportedConversation,
    options: list[registry.ModelOption],
    personas: dict[str, PersonaPreset],
) -> Conversation:
    option = registry.find(options, item.model) if item.model else None
    conversation = Conversation.objects.create(
        owner=user,
        title=item.title or f"Imported from {item.source}",
        persona=personas.get(item.persona_name),
        model=(option or options[0]).key,
        # Parameters only where the model they were chosen for is the one kept.
        temperature=item.temperature if option else None,
        top_p=item.top_p if option else None,
        max_output_tokens=item.max_output_tokens if option else None,
        pinned=item.pinned,
    )
    ids: dict[str, int] = {}
    last = None
    for imported in portability.ordered_for_insert(item):
        usage = imported.usage
        message = Message.objects.create(
            conversation=conversation,
            parent_id=ids[imported.parent_key] if imported.parent_key is not None else None,
            role=imported.role,
            content=imported.content,
            reasoning=imported.reasoning,
            status=imported.status,
            model=imported.model,
            finish_reason=imported.finish_reason,
            error=imported.error,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            reasoning_tokens=usage.get("reasoning_tokens"),
            provider_data=imported.provider_data,
        )
        ids[imported.key] = message.pk
        last = message.pk
    leaf = ids.get(item.current_key) if item.current_key is not None else None
    conversation.current_leaf_id = leaf or last
    conversation.save(update_fields=["current_leaf"])
    return conversation
