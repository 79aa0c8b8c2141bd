"""Quotas: tokens per day and per month, replies at once, messages per minute.

Limits come from the user's own quota, field by field, else from their groups' quotas
(the most generous group that sets a field). Empty means no limit, so a team that sets
none sees no change.

The check runs inside the transaction that stores a message, after locking the user's
row (PostgreSQL; SQLite's write transaction is already exclusive), so two processes
cannot both let through the message that crosses a limit. Tokens count what the
upstream reported, or Parley's estimate where it did not (``chat.models.Usage``), for
stopped and failed replies too. Days and months begin at midnight in the user's own
time zone.
"""

from __future__ import annotations

import time
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.db import connection
from django.db.models import Q, Sum
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.actions.common import ActionError
from chat.models import Message, Quota, Usage, User

FIELDS = ("tokens_per_day", "tokens_per_month", "replies_at_once", "messages_per_minute")


class QuotaExceeded(ActionError):
    """A limit stops this message; the sentence names it and when it resets."""


@dataclass(frozen=True, slots=True)
class Limits:
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    replies_at_once: int | None = None
    messages_per_minute: int | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in FIELDS)


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a user stands: limits, what is used, and when the periods begin again."""

    limits: Limits
    tokens_today: int
    tokens_this_month: int
    cost_this_month: float | None
    day_resets_at: datetime
    month_resets_at: datetime

    @property
    def tokens_left_today(self) -> int | None:
        limit = self.limits.tokens_per_day
        return None if limit is None else max(0, limit - self.tokens_today)

    @property
    def tokens_left_this_month(self) -> int | None:
        limit = self.limits.tokens_per_month
        return None if limit is None else max(0, limit - self.tokens_this_month)


#: Whether any quota exists, kept for a few seconds: most sites set none, and then a
#: send costs no quota query at all. Saving or deleting a quota forgets it in this
#: process at once; other processes see it within QUOTA_CACHE_SECONDS.
QUOTA_CACHE_SECONDS = 5.0
_any_quota: tuple[float, bool] | None = None


def forget_quotas(**kwargs: object) -> None:
    global _any_quota
    _any_quota = None


def quotas_exist() -> bool:
    """Whether any quota exists (cached for QUOTA_CACHE_SECONDS)."""
    global _any_quota
    now = time.monotonic()
    if _any_quota is None or now - _any_quota[0] > QUOTA_CACHE_SECONDS:
        _any_quota = (now, Quota.objects.exists())
    return _any_quota[1]


def known_without_quotas() -> bool:
    """Whether this process last found no quota at all, without asking the database
    (for starting a reply early: a quota created since is still checked when the
    message is stored)."""
    return _any_quota is not None and not _any_quota[1]


def limits_for(user_id: int) -> Limits:
    if not quotas_exist():
        return Limits()
    rows = list(Quota.objects.filter(Q(user_id=user_id) | Q(group__user__id=user_id)))
    own = next((row for row in rows if row.user_id == user_id), None)
    groups = [row for row in rows if row.group_id is not None]
    values = {}
    for name in FIELDS:
        mine = getattr(own, name) if own is not None else None
        if mine is not None:
            values[name] = mine
            continue
        offered = [getattr(row, name) for row in groups if getattr(row, name) is not None]
        values[name] = max(offered) if offered else None
    return Limits(**values)


def _zone(user: User) -> tzinfo:
    if user.time_zone:
        try:
            return zoneinfo.ZoneInfo(user.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return timezone.get_default_timezone()


def _periods(user: User, now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """(day start, next day start, month start, next month start) in the user's zone."""
    local = now.astimezone(_zone(user))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    next_day = day + timedelta(days=1)  # wall-clock arithmetic: midnight, DST or not
    return day, next_day, month, next_month


def _tokens(user_id: int, day: datetime, month: datetime) -> tuple[int, int, float | None]:
    totals = Usage.objects.filter(user_id=user_id, created_at__gte=min(day, month)).aggregate(
        day_in=Sum("input_tokens", filter=Q(created_at__gte=day)),
        day_out=Sum("output_tokens", filter=Q(created_at__gte=day)),
        month_in=Sum("input_tokens", filter=Q(created_at__gte=month)),
        month_out=Sum("output_tokens", filter=Q(created_at__gte=month)),
        month_cost=Sum("cost", filter=Q(created_at__gte=month)),
    )
    today = (totals["day_in"] or 0) + (totals["day_out"] or 0)
    month_total = (totals["month_in"] or 0) + (totals["month_out"] or 0)
    cost = totals["month_cost"]
    return today, month_total, float(cost) if cost is not None else None


def standing(user: User, now: datetime | None = None) -> Standing:
    now = now or timezone.now()
    day, next_day, month, next_month = _periods(user, now)
    today, this_month, cost = _tokens(user.pk, day, month)
    return Standing(limits_for(user.pk), today, this_month, cost, next_day, next_month)


def _when(moment: datetime, user: User, now: datetime) -> str:
    local = moment.astimezone(_zone(user))
    wait = moment - now
    hours, minutes = divmod(max(1, int(wait.total_seconds() // 60)), 60)
    if local.date() == now.astimezone(_zone(user)).date() + timedelta(days=1) and hours < 24:
        return _("at %(time)s (in %(hours)d h %(minutes)d min)") % {
            "time": formats.time_format(local, "H:i"),
            "hours": hours,
            "minutes": minutes,
        }
    return _("on %(date)s") % {"date": formats.date_format(local, "DATE_FORMAT")}


def check_send(user_id: int, now: datetime | None = None) -> None:
    """Refuse a new message that a limit forbids; call inside the storing transaction."""
    limits = limits_for(user_id)
    if not limits.any:
        return
    now = now or timezone.now()
    lock = User.objects.filter(pk=user_id)
    if connection.vendor == "postgresql":
        lock = lock.select_for_update()
    user = lock.get()
    if limits.replies_at_once is not None:
        running = Message.objects.filter(
            conversation__owner_id=user_id, status=Message.Status.STREAMING
        ).count()
        if running >= limits.replies_at_once:
            raise QuotaExceeded(
                ngettext(
                    "You already have %(count)d reply being written, your limit. "
                    "Wait for it to finish, or stop it.",
                    "You already have %(count)d replies being written, your limit. "
                    "Wait for one to finish, or stop one.",
                    running,
                )
                % {"count": running}
            )
    if limits.messages_per_minute is not None:
        window = now - timedelta(minutes=1)
        recent = list(
            Message.objects.filter(
                conversation__owner_id=user_id, role=Message.Role.USER, created_at__gt=window
            )
            .order_by("created_at")
            .values_list("created_at", flat=True)[: limits.messages_per_minute]
        )
        if len(recent) >= limits.messages_per_minute:
            seconds = max(1, int((recent[0] + timedelta(minutes=1) - now).total_seconds()) + 1)
            raise QuotaExceeded(
                ngettext(
                    "You can send %(limit)d message a minute. Try again in %(seconds)d s.",
                    "You can send %(limit)d messages a minute. Try again in %(seconds)d s.",
                    limits.messages_per_minute,
                )
                % {"limit": limits.messages_per_minute, "seconds": seconds}
            )
    if limits.tokens_per_day is None and limits.tokens_per_month is None:
        return
    day, next_day, month, next_month = _periods(user, now)
    today, this_month, _cost = _tokens(user_id, day, month)
    if limits.tokens_per_day is not None and today >= limits.tokens_per_day:
        raise QuotaExceeded(
            _("You have used your %(limit)s tokens for today. The limit resets %(when)s.")
            % {"limit": f"{limits.tokens_per_day:,}", "when": _when(next_day, user, now)}
        )
    if limits.tokens_per_month is not None and this_month >= limits.tokens_per_month:
        raise QuotaExceeded(
            _("You have used your %(limit)s tokens for this month. The limit resets %(when)s.")
            % {"limit": f"{limits.tokens_per_month:,}", "when": _when(next_month, user, now)}
        )
