"""What every use case shares: the refusal type, and saving through database blips."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    delay = 0.1
    call = database_sync_to_async(_closing_broken_connection(fn))
    while True:
        try:
            return await call(*args, **kwargs)
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
