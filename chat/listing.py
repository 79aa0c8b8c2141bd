"""The sidebar's conversation list: pinned first, then by last activity, grouped by
day, one page at a time (the next page loads when the list is scrolled to its end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_noop

from chat.models import Conversation, User

PAGE_SIZE = 50


@dataclass
class Group:
    label: str
    items: list[Conversation] = field(default_factory=list)
    #: The previous page ended in this group: no second heading.
    continued: bool = False


@dataclass
class Page:
    groups: list[Group]
    #: Where the next page starts, or "" at the end.
    cursor: str = ""
    #: The group the page ends in, so the next page does not repeat its heading.
    last_label: str = ""


def _label(day: date, today: date) -> str:
    if day == today:
        return gettext_noop("Today")
    if day == today - timedelta(days=1):
        return gettext_noop("Yesterday")
    if day > today - timedelta(days=7):
        return gettext_noop("Previous 7 days")
    return gettext_noop("Older")


def _parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    moment, _, pk = cursor.partition("|")
    parsed = parse_datetime(moment) if moment else None
    if parsed is None or not pk.isdigit():
        return None
    return parsed, int(pk)


def conversation_page(user: User, *, cursor: str = "", after_group: str = "") -> Page:
    """One page of ``user``'s conversations. The first page starts with every pinned
    one. ``after_group`` is the label the previous page ended in: not repeated."""
    base = (
        Conversation.objects.filter(owner=user)
        .select_related("persona")
        .only("id", "title", "updated_at", "pinned", "persona__name")
    )
    groups: list[Group] = []
    start = _parse_cursor(cursor) if cursor else None
    if not cursor:
        pinned = list(base.filter(pinned=True).order_by("-updated_at", "-id"))
        if pinned:
            groups.append(Group(gettext_noop("Pinned"), pinned))
    rest = base.filter(pinned=False).order_by("-updated_at", "-id")
    if start is not None:
        moment, pk = start
        rest = rest.filter(Q(updated_at__lt=moment) | Q(updated_at=moment, id__lt=pk))
    elif cursor:
        return Page(groups=[])  # a cursor we did not write: nothing more
    items = list(rest[: PAGE_SIZE + 1])
    more = len(items) > PAGE_SIZE
    items = items[:PAGE_SIZE]
    today = timezone.localdate()
    previous = after_group
    for item in items:
        label = _label(timezone.localtime(item.updated_at).date(), today)
        if groups and groups[-1].label == label:
            groups[-1].items.append(item)
        else:
            groups.append(Group(label, [item], continued=label == previous))
        previous = label
    next_cursor = ""
    if more:
        last = items[-1]
        next_cursor = f"{last.updated_at.isoformat()}|{last.pk}"
    return Page(groups=groups, cursor=next_cursor, last_label=previous)
