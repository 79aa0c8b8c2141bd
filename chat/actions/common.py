"""What every use case shares: the refusal type, saving through database blips, and
taking turns on the database thread."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger("chat.actions")

#: What a database outage looks like from Django: the server restarting, a dropped
#: connection, SQLite's "database is locked". Constraint violations are not in here.
DB_ERRORS = (OperationalError, InterfaceError)

P = ParamSpec("P")
T = TypeVar("T")


class ProcessLoop:
    """One background task per process (and per event loop: tests get a new loop
    each), started on demand by ``ensure_running``."""

    name = "parley-loop"

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    def enabled(self) -> bool:
        return True

    def ensure_running(self) -> None:
        if not self.enabled():
            return
        loop = asyncio.get_running_loop()
        if self.task is not None and not self.task.done() and self.task.get_loop() is loop:
            return
        self.task = loop.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def database_turn() -> asyncio.Lock:
    """Held while a send is stored or a reply's end is saved: one at a time.

    Every socket of a process shares one database thread, and that thread shares the
    interpreter lock with the event loop. When 150 sends, or 150 replies' ends, were
    all queued on it at once, it ran them back to back and held the lock for most of a
    second or two, and the loop, which relays every other reply's text, got a fraction
    of it: per-token lag p99 150-630 ms at those moments against 30-100 ms in between.
    Taking turns, the thread idles while the loop starts the next one, so the loop gets
    a turn between each. The stores and ends of a burst finish later (a 150-send burst
    was stored about 2 s later; each sender's tab shows its reply provisionally
    meanwhile, ``chat.provisional``), and the text being relayed is on time.
    """
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Lock()
    return turn


class ActionError(Exception):
    """A refusal worth showing the user as it is."""


def _closing_broken_connection(fn: Callable[P, T]) -> Callable[P, T]:
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except DB_ERRORS:
            # The next try must not reuse a connection the server already dropped.
            connection.close()
            raise

    return call


async def retry_db(fn: Callable[P, T], retry_for: float, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in the database thread, retrying with backoff through an outage of up
    to ``retry_for`` seconds; then the last error is raised."""
    call = database_sync_to_async(_closing_broken_connection(fn))
    return await _retrying(lambda: call(*args, **kwargs), retry_for, fn)


async def retry_db_in_turn(
    fn: Callable[P, T], retry_for: float, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``retry_db``, each attempt holding ``database_turn`` (an outage does not hold up
    every send while it waits to retry)."""
    call = database_sync_to_async(_closing_broken_connection(fn))

    async def attempt() -> T:
        async with database_turn():
            return await call(*args, **kwargs)

    return await _retrying(attempt, retry_for, fn)


async def _retrying(
    attempt: Callable[[], Awaitable[T]], retry_for: float, fn: Callable[..., object]
) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    delay = 0.1
    while True:
        try:
            return await attempt()
        except DB_ERRORS as error:
            if loop.time() + delay > deadline:
                raise
            logger.warning(
                "Database unavailable (%s); retrying %s in %.1f s",
                type(error).__name__,
                getattr(fn, "__name__", "a save"),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
