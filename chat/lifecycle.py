"""Process lifecycle under daphne: drain replies on SIGTERM.

Daphne runs on Twisted's asyncio reactor and cancels only the application instances
(sockets) at shutdown; reply tasks are ours. A "before shutdown" trigger that returns a
Deferred makes the reactor wait for it, so SIGTERM lets running replies finish (up to
REPLY_SHUTDOWN_GRACE), then saves the rest as interrupted with all their text.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_installed = False


def install_shutdown_hook() -> bool:
    """Register the drain with the running Twisted reactor, if this is daphne."""
    global _installed
    if _installed or "twisted.internet.reactor" not in sys.modules:
        return False
    from twisted.internet import defer, reactor

    def before_shutdown() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(drain()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[attr-defined]
    _installed = True
    return True


async def drain() -> None:
    from chat import actions

    try:
        await actions.shut_down(grace=settings.REPLY_SHUTDOWN_GRACE)
    except Exception:
        logger.exception("Draining replies at shutdown failed")
    finally:
        await actions.supervisor.stop()


def with_supervisor(app: Any) -> Any:
    """Wrap the ASGI app so the orphan check starts with the process's first request
    (ASGI gives no earlier moment with a running loop under daphne)."""
    from chat import actions

    async def application(scope: Any, receive: Any, send: Any) -> Any:
        actions.supervisor.ensure_running()
        return await app(scope, receive, send)

    return application
