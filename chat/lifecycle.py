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


def reactor_loaded() -> bool:
    """Whether Twisted's reactor is loaded, as daphne loads it before the application.
    So does every process with daphne among its installed apps (tests, management
    commands) without ever running it: what must happen only while serving waits for
    the reactor to run."""
    return "twisted.internet.reactor" in sys.modules


def install_shutdown_hook() -> bool:
    """Register the drain with the running Twisted reactor, if this is daphne."""
    global _installed
    if _installed or not reactor_loaded():
        return False
    from twisted.internet import defer, reactor

    def before_shutdown() -> defer.Deferred[None]:
        watch_shutdown(after=settings.REPLY_SHUTDOWN_GRACE + STUCK_REPORT_AFTER)
        return defer.Deferred.fromFuture(asyncio.ensure_future(drain()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[attr-defined]
    _installed = True
    return True


#: Past the grace, how long a shutdown may take before the log says what it waits for.
STUCK_REPORT_AFTER = 10.0


def watch_shutdown(*, after: float) -> None:
    """Log, every ``after`` seconds until the process exits, the tasks a shutdown is
    still waiting for: what an operator (or a test) needs when SIGTERM seems ignored."""
    loop = asyncio.get_running_loop()

    def report() -> None:
        waiting = [task for task in asyncio.all_tasks(loop) if not task.done()]
        logger.warning(
            "Shutdown still waiting after %.0f s for %d tasks:\n%s",
            loop.time() - began,
            len(waiting),
            "\n".join(describe_task(task) for task in waiting),
        )
        loop.call_later(after, report)

    began = loop.time()
    loop.call_later(after, report)


def describe_task(task: asyncio.Task[Any]) -> str:
    """One task and the chain of awaits it is suspended in, outermost first."""
    where = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        frame = frame or getattr(awaited, "ag_frame", None)
        if frame is None:
            where.append(type(awaited).__qualname__)  # a future, a Deferred, ...
            break
        where.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        awaited = (
            getattr(awaited, "cr_await", None)
            or getattr(awaited, "gi_yieldfrom", None)
            or getattr(awaited, "ag_await", None)
        )
    return f"  {task.get_name()}: " + " -> ".join(where)


async def drain() -> None:
    from chat import actions
    from providers import registry

    try:
        await actions.shut_down(grace=settings.REPLY_SHUTDOWN_GRACE)
    except Exception:
        logger.exception("Draining replies at shutdown failed")
    finally:
        await actions.supervisor.stop()
        await registry.close_upstream_connections()


def with_supervisor(app: Any) -> Any:
    """Wrap the ASGI app so the orphan check starts with the process's first request
    (ASGI gives no earlier moment with a running loop under daphne)."""
    from chat import actions

    async def application(scope: Any, receive: Any, send: Any) -> Any:
        actions.supervisor.ensure_running()
        return await app(scope, receive, send)

    return application
