"""Close open sockets when access ends: logging out, deactivation, un-approval. And
forget the cached "any quotas?" answer when a quota is saved or deleted."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from chat import events
from chat.actions.quotas import forget_quotas
from chat.models import Quota, User

post_save.connect(forget_quotas, sender=Quota, dispatch_uid="forget-quotas")
post_delete.connect(forget_quotas, sender=Quota, dispatch_uid="forget-quotas-deleted")


@receiver(user_logged_out)
def close_sockets_of_the_session(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        events.revoke(events.session_group(session_key))


@receiver(pre_save, sender=User)
def remember_access(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None:
        return
    if update_fields is not None and not {"is_active", "is_approved"} & set(update_fields):
        return  # e.g. last_login on every log-in: access cannot have changed
    before = User.objects.filter(pk=instance.pk).values("is_active", "is_approved").first()
    instance._had_access = bool(before and before["is_active"] and before["is_approved"])  # type: ignore[attr-defined]


@receiver(post_save, sender=User)
def close_sockets_when_access_ends(sender: Any, instance: User, **kwargs: Any) -> None:
    had_access = getattr(instance, "_had_access", False)
    if had_access and not (instance.is_active and instance.is_approved):
        events.revoke(events.user_group(instance.pk))
