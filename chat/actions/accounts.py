"""Accounts: the first one runs the place; the rest follow SIGNUP_MODE."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils.translation import gettext as _

from chat import audit
from chat.actions.common import ActionError
from chat.models import AuditEvent, User

# Any fixed number: the advisory lock PostgreSQL holds while deciding "first account".
_ACCOUNTS_LOCK = 0x7061726C  # "parl"


def sign_up(*, user: User) -> User:
    """Store a new account from a validated form's unsaved ``user``.

    Whether it is the first account (admin) and whether sign-ups are open is decided
    under a lock inside the transaction, so simultaneous sign-ups cannot both be first.
    """
    try:
        with transaction.atomic():
            _lock_accounts()
            first = not User.objects.exists()
            if not first and settings.SIGNUP_MODE == "closed":
                raise ActionError(_("Sign-ups are closed. Ask an admin for an account."))
            if first:
                user.is_superuser = user.is_staff = user.is_approved = True
            else:
                user.is_approved = settings.SIGNUP_MODE == "open"
            user.save()
            audit.record(AuditEvent.Action.SIGN_UP, actor=user, target=user)
    except IntegrityError:
        raise ActionError(_("That username cannot be used. Pick another one.")) from None
    return user


def _lock_accounts() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ACCOUNTS_LOCK])
    # SQLite: the transaction began IMMEDIATE (see project/env.py) and holds the
    # database's write lock already.


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def set_time_zone(*, user: User, name: str) -> None:
    """Keep the browser's time zone (an IANA name) so pages show the user's local dates."""
    name = name.strip()
    if name not in _zones():
        raise ActionError(_("Unknown time zone: %(name)s.") % {"name": name[:64]})
    if user.time_zone != name:
        user.time_zone = name
        user.save(update_fields=["time_zone"])
