"""The only way to fetch a user's objects: what exists but is not yours is "not found"."""

from __future__ import annotations

from django.http import Http404

from chat.models import Conversation, User


def access_conversation(user: User, conversation_id: int) -> Conversation:
    if not user.is_authenticated or not user.is_approved:
        raise Http404("No such conversation")
    try:
        return Conversation.objects.select_related("persona").get(pk=conversation_id, owner=user)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation") from None


def conversations_for(user: User):  # type: ignore[no-untyped-def]
    return Conversation.objects.filter(owner=user).order_by("-updated_at", "-id")
