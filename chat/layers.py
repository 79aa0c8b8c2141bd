"""The single-process channel layer, made to scale with the number of sockets."""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


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
