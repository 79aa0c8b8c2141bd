"""Channel layers made to scale with the number of sockets: the single-process one,
and channels-redis's pub/sub layer with pipelined publishing and in-memory delivery to
the publishing process's own sockets."""

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


#: Publishes start with a mark and the publishing loop layer's id: a serialized message
#: (msgpack) never starts with a zero byte, so one from a process without the mark
#: still reads as it is.
_ORIGIN_MARK = b"\x00"
_ORIGIN_BYTES = 8


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
        self._outgoing: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, channel: str, message: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        self._outgoing.append((channel, message, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_batches())
        await done

    def _receive_message(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        data = message["data"]
        if data[:1] == _ORIGIN_MARK:
            if data.startswith(self.channel_layer.origin):
                return  # published here, and already delivered here
            message = {**message, "data": data[len(self.channel_layer.origin) :]}
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
                    await pipeline.execute()
            except asyncio.CancelledError:
                for _, _, done in batch:
                    done.cancel()
                raise
            except Exception as error:  # noqa: BLE001 - each caller gets it
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)


class _PipelinedLoopLayer(RedisPubSubLoopLayer):
    """One event loop's side of the layer. Messages for its own channels are delivered
    in memory at once; Redis carries them only to other processes (and back to this
    one, where they are recognized by their origin and dropped unread)."""

    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self._shards = [_PipelinedShard(host, self) for host in decode_hosts(hosts)]
        self.origin = _ORIGIN_MARK + os.urandom(_ORIGIN_BYTES)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if queue is not None:  # a specific channel lives in the process that made it
            queue.put_nowait(self.channel_layer.serialize(message))
            return
        await self._get_shard(channel).publish(
            channel, self.origin + self.channel_layer.serialize(message)
        )

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        group_channel = self._get_group_channel_name(group)
        data = self.channel_layer.serialize(message)
        for name in self.groups.get(group_channel, ()):
            queue = self.channels.get(name)
            if queue is not None:
                queue.put_nowait(data)  # each receiver deserializes a copy of its own
        await self._get_shard(group_channel).publish(group_channel, self.origin + data)


class RedisPubSubChannelLayer(ChannelsRedisPubSubChannelLayer):
    """channels-redis's pub/sub layer (one subscription per process, fanned out locally)
    with pipelined publishing (``_PipelinedShard``) and in-memory delivery to this
    process's channels (``_PipelinedLoopLayer``)."""

    def _get_layer(self) -> Any:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = _PipelinedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)  # flushed (connections closed) with its loop
        return layer
