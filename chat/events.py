"""Channel-layer group names and event publishing.

Events are plain dicts that carry rendered HTML and ids, never model instances. In
DEBUG they round-trip through JSON here, so a payload that could not cross Redis fails
at the call site rather than in production.

Sync code (a send on the database thread, a view) publishes once its transaction
commits, through the event loop's outbox: the thread hands the frame over and goes on
to its next job instead of waiting for a busy loop, and the outbox publishes in the
order frames were handed over. A socket awaits ``outbox_flushed`` before it starts a
reply, so a reply's first delta never overtakes the articles it goes into.

Publishing is best effort by design: a frame that cannot be delivered (Redis down, a
full channel) is logged and dropped, never raised into the reply that produced it. The
browser notices the gap in offsets and asks for a snapshot once the layer is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import weakref
from collections import deque
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis comes with channels-redis

    class RedisError(Exception):  # type: ignore[no-redef]
        pass


#: What a channel layer raises when its backend is unreachable or overloaded.
LAYER_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, ChannelFull)


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def reply_group(message_id: int) -> str:
    """Where a running reply listens for stop and snapshot requests."""
    return f"reply.{message_id}"


def user_group(user_id: int) -> str:
    """Every socket of one user, to close them all at once."""
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    """Every socket opened with one login session (a group name may not hold the key)."""
    return f"session.{hashlib.sha256(session_key.encode()).hexdigest()[:32]}"


def revoke(group: str) -> None:
    """From sync code: close every socket in ``group`` once the transaction commits."""
    publish_on_commit(group, {"type": "access.revoked"})


def frame(html: str, **fields: Any) -> dict[str, Any]:
    """HTML for the sockets of a conversation, with what they need to route it: ids, and
    for a reply's frames ``chat.delivery``'s positions (JSON-safe values only)."""
    return {"type": "chat.frame", "html": html, **fields}


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    if settings.DEBUG:
        event = json.loads(json.dumps(event))
    return event


class _Throttled:
    """Log a failing layer once per interval, not once per frame."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.last = 0.0
        self.suppressed = 0

    def warn(self, what: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        extra = f" ({self.suppressed} more since the last warning)" if self.suppressed else ""
        logger.warning("Could not %s: %s: %s%s", what, type(error).__name__, error, extra)
        self.last = now
        self.suppressed = 0


_layer_warnings = _Throttled()


async def publish(group: str, event: dict[str, Any], *, recoverable: bool = False) -> bool:
    """Send to a group; return whether the layer took it. A ``recoverable`` event is one
    whose loss its receivers notice and repair (a reply's delta frame): the layer may
    keep it off Redis while no other process is in the group."""
    layer = get_channel_layer()
    if layer is None:
        return False
    send = layer.group_send
    if recoverable:
        send = getattr(layer, "group_send_recoverable", send)
    try:
        await send(group, _checked(event))
    except LAYER_ERRORS as error:
        _layer_warnings.warn(f"publish to {group}", error)
        return False
    return True


async def send_to(channel: str, event: dict[str, Any]) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        await layer.send(channel, _checked(event))
    except LAYER_ERRORS as error:
        _layer_warnings.warn(f"send to {channel}", error)
        return False
    return True


def publish_on_commit(group: str, event: dict[str, Any]) -> None:
    """From sync code: publish once the surrounding transaction commits."""
    event = _checked(event)
    transaction.on_commit(lambda: _hand_over(group, event))


class _Outbox:
    """One event loop's frames from sync code, published in order by one task."""

    def __init__(self) -> None:
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()
        self.task: asyncio.Task[None] | None = None
        self.handed = 0
        self.published = 0
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []

    def put(self, group: str, event: dict[str, Any]) -> None:
        self.pending.append((group, event))
        self.handed += 1
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            group, event = self.pending.popleft()
            try:
                await publish(group, event)
            finally:
                self.published += 1
                self._wake()

    def _wake(self) -> None:
        still = []
        for target, waiter in self.waiters:
            if self.published >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self.waiters = still

    async def flushed(self) -> None:
        if self.published >= self.handed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append((self.handed, waiter))
        await waiter


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = (
    weakref.WeakKeyDictionary()
)


def _outbox() -> _Outbox:
    loop = asyncio.get_running_loop()
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes[loop] = _Outbox()
    return outbox


def _hand_over(group: str, event: dict[str, Any]) -> None:
    # The loop this thread works for, as async_to_sync finds it: set by sync_to_async
    # (database_sync_to_async, Django's sync views) in the thread it runs.
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        async_to_sync(publish)(group, event)  # no loop to hand over to (a command, a test)
        return
    loop.call_soon_threadsafe(lambda: _outbox().put(group, event))


async def outbox_flushed() -> None:
    """Wait until every frame sync code handed this loop so far has been published."""
    await _outbox().flushed()


async def retry_layer(operation: Any, *, max_delay: float = 5.0) -> None:
    """Run ``operation`` (an async callable) until the layer takes it, with backoff."""
    delay = 0.1
    while True:
        try:
            await operation()
            return
        except LAYER_ERRORS as error:
            _layer_warnings.warn("reach the channel layer", error)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)


async def receive_with_retry(
    channel: str, *, on_recover: Any = None, max_delay: float = 5.0
) -> dict[str, Any]:
    """``layer.receive(channel)``, riding out a layer outage with backoff.

    ``on_recover`` (an async callable) runs once the layer answers again, before
    receiving resumes: Redis may have lost group memberships, so callers re-join there.
    """
    layer = get_channel_layer()
    delay = 0.1
    failing = False
    while True:
        try:
            if failing and on_recover is not None:
                await on_recover()
            message: dict[str, Any] = await layer.receive(channel)
            return message
        except LAYER_ERRORS as error:
            failing = True
            _layer_warnings.warn(f"receive on {channel}", error)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
