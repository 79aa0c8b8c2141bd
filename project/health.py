"""Liveness and readiness for load balancers and orchestrators.

``/healthz`` answers as long as the process serves requests: it touches nothing else,
so a database outage does not get healthy processes restarted. ``/readyz`` says whether
this process can do its work: the database answers, every migration is applied, and the
channel layer carries a message there and back. It answers 503 naming what failed, by
kind only (never a URL or a credential).
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_not_required
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

#: How long the channel layer may take to carry one message back to us.
LAYER_TIMEOUT = 2.0


@never_cache
@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _migrations() -> str:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise _NotReady(f"{len(pending)} migrations not applied")
    return "ok"


class _NotReady(Exception):
    pass


async def _channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise _NotReady("no channel layer configured")
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), LAYER_TIMEOUT)
    if message.get("type") != "readyz.ping":
        raise _NotReady("the channel layer returned another message")
    return "ok"


async def _check(name: str, check) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    try:
        return name, await check()
    except _NotReady as reason:
        return name, f"failing: {reason}"
    except TimeoutError:
        return name, "failing: no answer in time"
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        logger.warning("Readiness check %s failed: %s", name, type(error).__name__)
        return name, f"failing: {type(error).__name__}"


@never_cache
@login_not_required
async def readyz(request: HttpRequest) -> JsonResponse:
    results = dict(
        await asyncio.gather(
            _check("database", sync_to_async(_database, thread_sensitive=True)),
            _check("migrations", sync_to_async(_migrations, thread_sensitive=True)),
            _check("channel_layer", _channel_layer),
        )
    )
    failing = sorted(name for name, state in results.items() if state != "ok")
    body = {"status": "failing" if failing else "ok", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
