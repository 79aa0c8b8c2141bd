"""Who may use which personas and models. The pickers, every view and the socket ask
here, so they all apply the same rule.

A persona, a connection or a catalog model with no groups is for everyone; with groups,
only for their members. A model needs both its connection and its catalog entry to
allow the user. A private persona is its owner's alone. Superusers may use everything
(they can change the rules anyway).
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from chat.models import PersonaPreset, User
from providers import registry


def _group_ids(user: User) -> frozenset[int]:
    cached = getattr(user, "_parley_group_ids", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("pk", flat=True))
        user._parley_group_ids = cached  # type: ignore[attr-defined]
    return cached


def _restricted(option: registry.ModelOption) -> bool:
    return bool(option.connection_groups or option.model_groups)


def models_for(user: User) -> list[registry.ModelOption]:
    options = registry.available_models()
    if user.is_superuser or not any(_restricted(option) for option in options):
        return options  # the common case, and no query for the user's groups
    groups = _group_ids(user)
    return [option for option in options if option.allowed_for(groups)]


def model_for(user: User, key: str) -> registry.ModelOption | None:
    option = registry.get_model(key)
    if option is None or not _restricted(option) or user.is_superuser:
        return option
    return option if option.allowed_for(_group_ids(user)) else None


def personas_for(user: User) -> QuerySet[PersonaPreset]:
    shared = Q(owner=None)
    if not user.is_superuser:
        # The user's groups as a subquery: one query for the whole question.
        shared &= Q(groups=None) | Q(groups__in=Group.objects.filter(user=user).values("pk"))
    allowed = PersonaPreset.objects.filter(shared | Q(owner=user)).values("pk")
    return PersonaPreset.objects.filter(pk__in=allowed)


def may_use_persona(user: User, persona: PersonaPreset | None) -> bool:
    """Whether ``personas_for(user)`` holds this persona, for one already loaded (a
    send's conversation brings its own): in at most two small queries (its groups, the
    user's) instead of building ``personas_for``'s, a fifth of what a send cost."""
    if persona is None:
        return True
    if persona.owner_id is not None:
        return persona.owner_id == user.pk
    if user.is_superuser:
        return True
    groups = frozenset(persona.groups.values_list("pk", flat=True))
    return not groups or bool(groups & _group_ids(user))
