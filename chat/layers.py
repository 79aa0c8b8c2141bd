"""Channel layers made to scale with the number of sockets: the single-process one,
and channels-redis's pub/sub layer with pipelined publishing, in-memory delivery to
the publishing process's own sockets, and no trip through Redis for a recoverable
message in a group no other process listens to."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer as ChannelsRedisPubSubChannelLayer
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts


def _copy(value: Any) -> Any:
    """What ``deepcopy`` gives for the JSON-like messages a layer carries, cheaply (no
    memo): each receiver gets containers of its own; strings and numbers are shared."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copy(item) for item in value)
    return value


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    """Channels' in-memory layer sweeps every channel and group for expired entries on
    every send and receive: quadratic in sockets, a fifth of a process relaying 100
    streams. Sweeping at most once a second changes nothing but when an expired
    message or membership is dropped (expiry is a minute, group expiry a day)."""

    sweep_interval = 1.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._last_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.sweep_interval:
            return
        self._last_sweep = now
        super()._clean_expired()

    # Per frame and socket: no task per channel and no deepcopy (a tenth of a process
    # relaying 150 streams went to those two).

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, _copy(message))

    def _put(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:  # noqa: SIM105 - per frame and socket: no context manager
                self._put(channel, _copy(message))
            except ChannelFull:
                pass  # as Channels does: a full channel misses group messages

    async def group_send_recoverable(self, group: str, message: dict[str, Any]) -> None:
        """See ``RedisPubSubChannelLayer``: one process, so the same as ``group_send``."""
        await self.group_send(group, message)


#: Publishes start with a mark and the publishing loop layer's id: a serialized message
#: (msgpack) never starts with a zero byte, so one from a process without the mark
#: still reads as it is.
_ORIGIN_MARK = b"\x00"
_ORIGIN_BYTES = 8
#: A loop layer that has just subscribed to a group's Redis channel says so on that
#: channel, with this mark and its id, and nothing else (see ``_PipelinedLoopLayer``).
_JOIN_MARK = b"\x01"


class _PipelinedShard(RedisSingleShardConnection):
    """One Redis server of the pub/sub layer, publishing through pipelines.

    channels-redis publishes each message in its own round trip, under a lock it shares
    with (un)subscribing: with 150 streams at twenty frames a second, every frame queued
    behind every other one, each waiting a turn of a busy event loop for its reply.
    Here publishes that arrive while a batch is on the wire go out together in the next
    pipeline, in the order they were made; each caller still learns whether its message
    was taken, as before.
    """

    def __init__(self, host: dict[str, Any], channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._outgoing: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, channel: str, message: bytes) -> int:
        """Publish; return how many subscriptions (processes) Redis delivered it to."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outgoing.append((channel, message, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_batches())
        return await done

    def subscribed(self, channel: str) -> bool:
        return channel in self._subscribed_to

    def _receive_message(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        data = message["data"]
        mark = data[:1]
        if mark == _ORIGIN_MARK:
            if data.startswith(self.channel_layer.origin):
                return  # published here, and already delivered here
            message = {**message, "data": data[len(self.channel_layer.origin) :]}
        elif mark == _JOIN_MARK:
            if data != self.channel_layer.join_notice:
                name = message["channel"]
                self.channel_layer.joined_elsewhere(
                    name.decode() if isinstance(name, bytes) else name
                )
            return
        super()._receive_message(message)

    async def _send_batches(self) -> None:
        while self._outgoing:
            batch, self._outgoing = self._outgoing, []
            try:
                async with self._lock:
                    self._ensure_redis()
                    pipeline = self._redis.pipeline(transaction=False)
                    for channel, message, _ in batch:
                        pipeline.publish(channel, message)
                    receivers = await pipeline.execute()
            except asyncio.CancelledError:
                for _, _, done in batch:
                    done.cancel()
                raise
            except Exception as error:  # noqa: BLE001 - each caller gets it
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for (_, _, done), count in zip(batch, receivers, strict=True):
                    if not done.done():
                        done.set_result(count)


class _PipelinedLoopLayer(RedisPubSubLoopLayer):
    """One event loop's side of the layer. Messages for its own channels are delivered
    in memory at once; Redis carries them only to other processes (and back to this
    one, where they are recognized by their origin and dropped unread).

    A reply's delta frames are most of what a process publishes, and most often to a
    conversation whose only tabs are on that process. Redis says how many subscriptions
    each PUBLISH reached: when that is only this process's own, the group is taken to be
    this process's alone for ``alone_recheck`` seconds, and recoverable messages
    (``group_send_recoverable``) skip Redis meanwhile. Every other message is published
    as before, and each publish checks again. A process that subscribes to a group's
    channel says so on that channel (a join notice), which ends the group's time alone
    at once: anything sent after the notice reaches it, and a tab that joins asks for a
    snapshot after its process has sent the notice. What slips through anyway (a
    subscription Redis had not applied yet) is a gap that the receiving socket heals
    by snapshot (``chat.delivery``) when the next published frame arrives.
    """

    #: Seconds a group whose last publish reached only this process is taken to be
    #: this process's alone.
    alone_recheck = 1.0

    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self._shards = [_PipelinedShard(host, self) for host in decode_hosts(hosts)]
        self.origin = _ORIGIN_MARK + os.urandom(_ORIGIN_BYTES)
        self.join_notice = _JOIN_MARK + self.origin[1:]
        #: Group channel -> loop time until which it is this process's alone.
        self._alone_until: dict[str, float] = {}
        #: Join notices seen from other processes: a publish's count of receivers is
        #: stale if one arrived while it was on the wire.
        self._joins_seen = 0

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if queue is not None:  # a specific channel lives in the process that made it
            queue.put_nowait(self.channel_layer.serialize(message))
            return
        await self._get_shard(channel).publish(
            channel, self.origin + self.channel_layer.serialize(message)
        )

    async def group_add(self, group: str, channel: str) -> None:
        group_channel = self._get_group_channel_name(group)
        shard = self._get_shard(group_channel)
        new = not shard.subscribed(group_channel)
        await super().group_add(group, channel)
        if new:
            await shard.publish(group_channel, self.join_notice)

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)
        group_channel = self._get_group_channel_name(group)
        if group_channel not in self.groups:
            self._alone_until.pop(group_channel, None)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._group_send(group, message, recoverable=False)

    async def group_send_recoverable(self, group: str, message: dict[str, Any]) -> None:
        await self._group_send(group, message, recoverable=True)

    async def _group_send(self, group: str, message: dict[str, Any], *, recoverable: bool) -> None:
        group_channel = self._get_group_channel_name(group)
        data = self.channel_layer.serialize(message)
        for name in self.groups.get(group_channel, ()):
            queue = self.channels.get(name)
            if queue is not None:
                queue.put_nowait(data)  # each receiver deserializes a copy of its own
        now = asyncio.get_running_loop().time()
        if recoverable and self._alone_until.get(group_channel, 0.0) > now:
            return
        shard = self._get_shard(group_channel)
        joins_seen = self._joins_seen
        receivers = await shard.publish(group_channel, self.origin + data)
        if (
            receivers == 1  # this process's own subscription, and no other
            and group_channel in self.groups
            and shard.subscribed(group_channel)
            and joins_seen == self._joins_seen
        ):
            self._alone_until[group_channel] = now + self.alone_recheck
        else:
            self._alone_until.pop(group_channel, None)

    def joined_elsewhere(self, group_channel: str) -> None:
        """Another process has subscribed to this group's channel."""
        self._joins_seen += 1
        self._alone_until.pop(group_channel, None)


class RedisPubSubChannelLayer(ChannelsRedisPubSubChannelLayer):
    """channels-redis's pub/sub layer (one subscription per process, fanned out locally)
    with pipelined publishing (``_PipelinedShard``), in-memory delivery to this
    process's channels, and recoverable messages kept off Redis while no other process
    listens (``_PipelinedLoopLayer``)."""

    async def group_send_recoverable(self, group: str, message: dict[str, Any]) -> None:
        """Send a message the group's members can do without: one whose loss a
        receiver notices and repairs (a reply's delta frame, after which a socket that
        sees a gap asks for a snapshot). It skips Redis while no other process has
        joined the group."""
        await self._get_layer().group_send_recoverable(group, message)

    def _get_layer(self) -> Any:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _PipelinedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)  # flushed (connections closed) with its loop
        return layer
