"""The only way to fetch a user's objects: what exists but is not yours is "not found"."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.http import Http404
from django.utils.crypto import constant_time_compare

from chat.models import Conversation, User


def may_access(user: User) -> None:
    """Raise 404 unless the user may have conversations at all (signed in, approved)."""
    if not user.is_authenticated or not user.is_approved:
        raise Http404("No such conversation")


def access_conversation(user: User, conversation_id: int) -> Conversation:
    may_access(user)
    try:
        return Conversation.objects.select_related("persona").get(pk=conversation_id, owner=user)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation") from None


def conversations_for(user: User):  # type: ignore[no-untyped-def]
    return Conversation.objects.filter(owner=user).order_by("-updated_at", "-id")


def socket_user(
    *, user_id: int, session_key: str | None, conversation_id: int, check_conversation: bool = True
) -> User | None:
    """What a socket re-checks before every action, and the user it acts as: their
    session still exists and still signs in this user (logging out deletes it; a
    password change rotates its hash), the user is active and approved, and the
    conversation is theirs (unless the action checks that itself:
    ``check_conversation=False``). None if any of that no longer holds.

    The user is read afresh: the socket's own copy is as old as the socket, and what a
    user may use (groups, superuser) can change while it is open.
    """
    if not session_key:
        return None
    engine = import_module(settings.SESSION_ENGINE)
    data = engine.SessionStore(session_key).load()
    if str(data.get(SESSION_KEY)) != str(user_id):
        return None
    user = User.objects.filter(pk=user_id, is_active=True, is_approved=True).first()
    if user is None:
        return None
    if not constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return None
    if check_conversation and not (
        Conversation.objects.filter(pk=conversation_id, owner=user).exists()
    ):
        return None
    return user
