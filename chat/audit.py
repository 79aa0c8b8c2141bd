"""The audit log: sign-ins (and failures), sign-ups, sign-outs, approvals, and every
change made through the admin, each with who, what, when and from which address.

The admin's own ``LogEntry`` rows are mirrored here as they are written, so admin
changes need no code of their own; what the admin does without a ``LogEntry`` (the
"Approve" action) and what happens outside it are recorded where they happen. Entries
name the fields that changed, never their values, so a key typed into a connection
never reaches the log. ``manage.py prune_audit_log`` deletes entries older than
``AUDIT_RETENTION_DAYS``.

Behind a proxy, run daphne with ``--proxy-headers`` so the address is the client's.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry, LogEntryManager
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from chat.models import AuditEvent, User

logger = logging.getLogger(__name__)

_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None
)


class AuditRequestMiddleware:
    """Lets audit entries made anywhere in a request know its address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def _address(request: HttpRequest | None) -> str | None:
    request = request or _request.get()
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    *,
    actor: Any = None,
    actor_name: str = "",
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    detail: str = "",
    request: HttpRequest | None = None,
) -> AuditEvent:
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)
    return AuditEvent.objects.create(
        created_at=timezone.now(),
        actor=actor,
        actor_name=(actor_name or (actor.get_username() if actor is not None else ""))[:150],
        action=action,
        target_type=str(target_type)[:100],
        target_id=str(target_id)[:64],
        target=str(target_repr)[:200],
        detail=detail,
        ip=_address(request),
    )


@receiver(user_logged_in)
def _signed_in(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record(AuditEvent.Action.SIGN_IN, actor=user, target=user, request=request)


@receiver(user_logged_out)
def _signed_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        record(AuditEvent.Action.SIGN_OUT, actor=user, target=user, request=request)


@receiver(user_login_failed)
def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django already replaces the password with stars; only the name is kept.
    name = str(credentials.get("username", ""))[:150]
    record(AuditEvent.Action.SIGN_IN_FAILED, actor_name=name, request=request)


@receiver(pre_save, sender=User)
def _remember_approval(
    sender: Any, instance: User, update_fields: Any = None, **kwargs: Any
) -> None:
    if update_fields is not None and "is_approved" not in update_fields:
        return  # e.g. last_login on every sign-in
    if instance.pk is not None and instance.is_approved:
        before = User.objects.filter(pk=instance.pk).values_list("is_approved", flat=True).first()
        instance._approved_now = before is False  # type: ignore[attr-defined]


@receiver(post_save, sender=User)
def _approved(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    if not created and getattr(instance, "_approved_now", False):
        instance._approved_now = False  # type: ignore[attr-defined]
        request = _request.get()
        record(AuditEvent.Action.APPROVE, actor=getattr(request, "user", None), target=instance)


_ADMIN_ACTIONS = {
    ADDITION: AuditEvent.Action.ADD,
    CHANGE: AuditEvent.Action.CHANGE,
    DELETION: AuditEvent.Action.DELETE,
}


@receiver(post_save, sender=LogEntry)
def _admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if created:
        _mirror(instance)


class _MirroringLogEntryManager(LogEntryManager):
    """The admin logs several objects at once (deleting a selection) with bulk_create,
    which sends no post_save: mirror those entries here."""

    def log_actions(self, *args: Any, **kwargs: Any) -> Any:
        result = super().log_actions(*args, **kwargs)
        entries = result if isinstance(result, list) else [result]
        if len(entries) > 1:
            for entry in entries:
                _mirror(entry)
        return result


LogEntry.objects.__class__ = _MirroringLogEntryManager


def _mirror(instance: LogEntry) -> None:
    record(
        _ADMIN_ACTIONS.get(instance.action_flag, AuditEvent.Action.CHANGE),
        actor=instance.user,
        target_type=instance.content_type.model_class()._meta.label_lower
        if instance.content_type and instance.content_type.model_class()
        else "",
        target_id=str(instance.object_id or ""),
        target_repr=instance.object_repr,
        detail=_fields_changed(instance.change_message),
    )


def _fields_changed(change_message: str) -> str:
    """The admin's change message as a sentence of field names (it holds no values)."""
    try:
        changes = json.loads(change_message or "[]")
    except json.JSONDecodeError:
        return change_message[:500]
    if not isinstance(changes, list):
        return ""
    parts = []
    for change in changes:
        if not isinstance(change, dict):
            continue
        for kind, body in change.items():
            fields = body.get("fields") if isinstance(body, dict) else None
            name = body.get("name", "") if isinstance(body, dict) else ""
            text = kind + (f" {name}" if name else "")
            if fields:
                text += ": " + ", ".join(str(field) for field in fields)
            parts.append(text)
    return "; ".join(parts)[:500]


def prune(now: Any = None) -> int:
    """Delete entries older than AUDIT_RETENTION_DAYS; return how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    deleted, _ = AuditEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
