"""Prometheus metrics of this process, served at ``/metrics``.

Every daphne process has its own: scrape each one on its own port (the systemd units in
``deploy/`` give each a port), not through the proxy, which denies ``/metrics``. The
path answers a request carrying ``Authorization: Bearer $METRICS_TOKEN`` when that is
set, and otherwise only a direct request from this machine (loopback, not forwarded).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from providers.clients.types import Usage

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_LONG = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)

REPLIES_RUNNING = Gauge("parley_replies_running", "Replies this process is writing now.")
REPLIES = Counter("parley_replies", "Replies ended, by API and final status.", ["api", "status"])
TIME_TO_FIRST_TOKEN = Histogram(
    "parley_time_to_first_token_seconds",
    "From sending the request upstream to its first token.",
    ["api"],
    buckets=_SECONDS,
)
REPLY_DURATION = Histogram(
    "parley_reply_duration_seconds", "A reply's whole life, by API.", ["api"], buckets=_LONG
)
TOKENS = Counter(
    "parley_tokens", "Tokens the upstreams reported (or Parley estimated).", ["api", "direction"]
)
UPSTREAM_ERRORS = Counter(
    "parley_upstream_errors", "Replies that ended on an upstream error, by kind.", ["api", "error"]
)
WEBSOCKETS = Gauge("parley_websocket_connections", "Chat sockets open in this process.")
EARLY_STARTS = Counter(
    "parley_early_starts",
    "Upstream requests started before their message was stored: adopted by the reply, "
    "or dropped (the conversation had changed, or the send was refused).",
    ["outcome"],
)


def _running() -> float:
    from chat.actions.replies import live_reply_ids

    return float(len(live_reply_ids()))


REPLIES_RUNNING.set_function(_running)


def reply_ended(
    *,
    api: str,
    status: str,
    time_to_first_token: float | None,
    duration: float,
    usage: Usage | None,
    error: BaseException | None,
) -> None:
    REPLIES.labels(api, status).inc()
    REPLY_DURATION.labels(api).observe(duration)
    if time_to_first_token is not None:
        TIME_TO_FIRST_TOKEN.labels(api).observe(time_to_first_token)
    if usage is not None:
        TOKENS.labels(api, "input").inc(usage.input_tokens)
        TOKENS.labels(api, "output").inc(usage.output_tokens)
    if error is not None:
        UPSTREAM_ERRORS.labels(api, type(error).__name__).inc()


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    if request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
        return False  # through a proxy: not this machine asking
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
@login_not_required
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
