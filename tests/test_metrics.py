"""Prometheus metrics: replies, time to first token, durations, tokens, upstream errors
and sockets; served to this machine or to the bearer of METRICS_TOKEN only."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.streams import is_final, receive_until

pytestmark = [pytest.mark.integration]

REPLY = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(body: str, name: str, **labels: str) -> float:
    return _samples(body).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db(transaction=True)
async def test_a_reply_and_a_socket_show_in_the_metrics(connect, owner, conversation, fast_frames):
    from asgiref.sync import sync_to_async

    get = sync_to_async(lambda: Client(REMOTE_ADDR="127.0.0.1").get("/metrics"))
    before = (await get()).content.decode()
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "Count me"}))
    streaming = await receive_until(socket, lambda f: REPLY.search(f) is not None)
    await receive_until(socket, is_final(int(REPLY.search(streaming)[1])), within=20)
    during = (await get()).content.decode()
    assert _value(during, "parley_websocket_connections") >= 1
    api = "minimax_openai"
    replies = _value(during, "parley_replies_total", api=api, status="complete")
    assert replies == _value(before, "parley_replies_total", api=api, status="complete") + 1
    assert _value(during, "parley_time_to_first_token_seconds_count", api=api) >= 1
    assert _value(during, "parley_reply_duration_seconds_count", api=api) >= 1
    assert _value(during, "parley_tokens_total", api=api, direction="output") > _value(
        before, "parley_tokens_total", api=api, direction="output"
    )
    await socket.disconnect()
    after = (await get()).content.decode()
    assert (
        _value(after, "parley_websocket_connections")
        == _value(during, "parley_websocket_connections") - 1
    )


def test_an_upstream_error_is_counted_by_kind():
    from chat import metrics
    from providers.clients.errors import RateLimitedError

    metrics.reply_ended(
        api="dashscope",
        status="failed",
        time_to_first_token=None,
        duration=0.2,
        usage=None,
        error=RateLimitedError(),
    )
    body = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert (
        _value(body, "parley_upstream_errors_total", api="dashscope", error="RateLimitedError") >= 1
    )


def test_only_this_machine_or_the_token_bearer_may_read_them(settings):
    assert Client().get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 403
    forwarded = Client().get(
        "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5"
    )
    assert forwarded.status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="::1").status_code == 200
    settings.METRICS_TOKEN = "scrape-me-0123456789"
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    ok = Client().get(
        "/metrics", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789"
    )
    assert ok.status_code == 200 and b"parley_replies_running" in ok.content
