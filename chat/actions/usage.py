"""Usage and cost: one row per upstream request, and the reports built from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat.models import Message, Usage
from providers import registry
from providers.clients.budget import estimate_tokens
from providers.clients.types import Usage as ReportedUsage


def record_usage(
    *,
    user_id: int,
    option: registry.ModelOption,
    reported: ReportedUsage | None,
    kind: str = Usage.Kind.REPLY,
    message: Message | None = None,
    text: str = "",
    reasoning: str = "",
    estimated_prompt_tokens: int = 0,
) -> Usage:
    """Store what a request used: the upstream's counts, or an estimate from the text
    when it reported none (a stopped or broken stream), flagged as such. A request that
    produced nothing and reported nothing counts no input: nothing was billed."""
    if reported is not None:
        counts = {
            "input_tokens": reported.input_tokens,
            "output_tokens": reported.output_tokens,
            "reasoning_tokens": reported.reasoning_tokens,
            "cached_tokens": reported.cached_tokens,
        }
        estimated = False
    else:
        produced = estimate_tokens(text) + estimate_tokens(reasoning)
        counts = {
            "input_tokens": estimated_prompt_tokens if produced else 0,
            "output_tokens": produced,
            "reasoning_tokens": estimate_tokens(reasoning),
            "cached_tokens": 0,
        }
        estimated = True
    cost = option.prices.cost(
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        cached_tokens=counts["cached_tokens"],
    )
    return Usage.objects.create(
        user_id=user_id,
        message=message,
        kind=kind,
        connection=option.connection.label,
        api=option.connection.kind,
        model=option.upstream_model,
        estimated=estimated,
        cost=cost,
        simulated=option.simulated,
        created_at=timezone.now(),
        **counts,
    )


@dataclass(frozen=True, slots=True)
class Totals:
    label: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: Decimal | None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    end: date  # inclusive
    total: Totals
    by_user: list[Totals]
    by_group: list[Totals]
    by_model: list[Totals]
    by_connection: list[Totals]
    by_day: list[tuple[date, Totals]]


_SUMS = {
    "requests": Count("id"),
    "input_tokens_sum": Sum("input_tokens"),
    "output_tokens_sum": Sum("output_tokens"),
    "cost_sum": Sum("cost"),
}


def _totals(label: str, row: dict[str, Any]) -> Totals:
    return Totals(
        label=label,
        requests=row["requests"] or 0,
        input_tokens=row["input_tokens_sum"] or 0,
        output_tokens=row["output_tokens_sum"] or 0,
        cost=row["cost_sum"],
    )


def period_usage(start: date, end: date, zone: tzinfo) -> QuerySet[Usage]:
    """Usage from the start of ``start`` to the end of ``end``, days in ``zone``."""
    begin = datetime.combine(start, time.min, tzinfo=zone)
    finish = datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone)
    return Usage.objects.filter(created_at__gte=begin, created_at__lt=finish)


def usage_report(start: date, end: date, zone: tzinfo) -> Report:
    """Totals over a period by user, group, model and connection, and per day."""
    rows = period_usage(start, end, zone)
    total = _totals("", rows.aggregate(**_SUMS))

    def grouped(*fields: str, label: Any) -> list[Totals]:
        found = rows.values(*fields).annotate(**_SUMS).order_by("-output_tokens_sum")
        return sorted(
            (_totals(label(row), row) for row in found), key=lambda t: (-t.tokens, t.label)
        )

    days = {
        row["day"]: _totals(str(row["day"]), row)
        for row in rows.annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(**_SUMS)
    }
    every_day = []
    day = start
    while day <= end:
        every_day.append((day, days.get(day, Totals(str(day), 0, 0, 0, None))))
        day += timedelta(days=1)
    return Report(
        start=start,
        end=end,
        total=total,
        by_user=grouped("user__username", label=lambda row: row["user__username"]),
        by_group=grouped("user__groups__name", label=lambda row: row["user__groups__name"] or "—"),
        by_model=grouped("model", "api", label=lambda row: f"{row['model']} ({row['api']})"),
        by_connection=grouped("connection", label=lambda row: row["connection"]),
        by_day=every_day,
    )
