"""Charts drawn on the server as SVG: no chart JavaScript, readable without any."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from chat.actions.usage import Totals

WIDTH, HEIGHT, LEFT, RIGHT, BOTTOM, TOP = 720, 220, 60, 64, 24, 14


def daily_usage_svg(days: list[tuple[date, Totals]]) -> SafeString:
    """Tokens per day as bars (left scale) and cost per day as a line (right scale)."""
    if not days:
        return SafeString("")
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP
    most_tokens = max(day.tokens for _, day in days) or 1
    most_cost = max((day.cost or Decimal(0) for _, day in days), default=Decimal(0))
    step = plot_width / len(days)
    width = max(1.0, step * 0.7)
    base = TOP + plot_height
    bars, points, labels = [], [], []
    every = max(1, len(days) // 10)
    for index, (when, totals) in enumerate(days):
        x = LEFT + index * step + (step - width) / 2
        height = plot_height * totals.tokens / most_tokens
        cost = f"${totals.cost:.4f}" if totals.cost is not None else "—"
        bars.append(
            {
                "x": f"{x:.1f}",
                "y": f"{base - height:.1f}",
                "width": f"{width:.1f}",
                "height": f"{height:.1f}",
                "tip": _("%(day)s: %(tokens)s tokens, cost %(cost)s")
                % {"day": when.isoformat(), "tokens": f"{totals.tokens:,}", "cost": cost},
            }
        )
        if most_cost:
            y = base - plot_height * float((totals.cost or Decimal(0)) / most_cost)
            points.append(f"{x + width / 2:.1f},{y:.1f}")
        if index % every == 0:
            labels.append({"x": f"{x + width / 2:.1f}", "text": when.strftime("%m-%d")})
    context = {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "base": base,
        "top": TOP,
        "label_y": HEIGHT - 6,
        "most_tokens": f"{most_tokens:,}",
        "most_cost": f"${most_cost:.4f}" if most_cost else "",
        "bars": bars,
        "points": " ".join(points) if len(points) > 1 else "",
        "labels": labels,
    }
    return mark_safe(render_to_string("chat/_usage_chart.svg", context))  # noqa: S308
