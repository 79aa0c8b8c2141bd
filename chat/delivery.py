"""What one socket forwards of a reply's frames, so that a socket that falls behind
catches up by snapshot and never loses text silently.

Delta frames carry where their text starts and ends and when they were published. A
socket skips deltas that reach it more than ``SOCKET_LAG_LIMIT`` after they were
published (the process is overloaded, or the socket is slow), and deltas that do not
continue what it last forwarded (the layer dropped some, as channels-redis does past a
channel's capacity). In both cases it asks the reply for one snapshot, the reply as
published so far in a few frames, and forwards deltas again from there. Skipping costs
nothing, so a socket that is behind drains its backlog quickly instead of growing it.

A client that stops reading (a frozen tab, a phone on a dead network) is the other way
to fall behind, and one the server cannot see: daphne buffers whatever a socket is sent,
without limit and without telling the application. So the page acknowledges what it has
received (``{"action": "ack", "received": <characters>}`` every few kilobytes), and a
socket holds back deltas while more than ``SOCKET_SEND_WINDOW`` characters it sent are
unacknowledged. Once the client has taken half of that, each reply held back is caught
up by one snapshot. What a stalled client costs the server is bounded by the window,
plus one snapshot or final frame per reply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.Enum):
    FORWARD = "forward"
    SKIP = "skip"
    #: Skip, and ask the reply for a snapshot.
    RESYNC = "resync"


@dataclass
class _ReplyState:
    #: (reasoning end, text end) forwarded so far; None until the first frame.
    ends: tuple[int, int] | None = None
    #: When a snapshot was asked for and has not arrived yet.
    resync_asked_at: float | None = None


@dataclass
class SocketDelivery:
    """Per socket. ``now`` and ``published_at`` are wall-clock seconds.

    A constant clock offset between the publishing and the forwarding process (other
    hosts) is cancelled out: lag is measured against the smallest delay seen so far.
    """

    lag_limit: float = 1.0
    #: A snapshot that has not arrived after this long is asked for again.
    resync_timeout: float = 2.0
    #: Characters sent and not yet acknowledged past which deltas are held back; 0 for
    #: no limit.
    window: int = 0
    #: Characters sent on this socket, and acknowledged by the client.
    sent: int = 0
    acknowledged: int = 0
    _floor: float | None = None
    _replies: dict[int, _ReplyState] = field(default_factory=dict)
    #: Replies whose deltas were held back by the window.
    _held: set[int] = field(default_factory=set)

    @property
    def unacknowledged(self) -> int:
        return max(0, self.sent - self.acknowledged)

    def count_sent(self, characters: int) -> None:
        self.sent += characters

    def acknowledge(self, received: int, now: float) -> list[int]:
        """The client has received ``received`` characters in all. Returns the replies
        to catch up by snapshot, once the client has drained half the window."""
        self.acknowledged = max(self.acknowledged, min(received, self.sent))
        if not self._held or self.unacknowledged > self.window // 2:
            return []
        held, self._held = sorted(self._held), set()
        for reply_id in held:
            self._replies.setdefault(reply_id, _ReplyState()).resync_asked_at = now
        return held

    def delta(self, event: dict[str, Any], now: float) -> Verdict:
        reply_id = event.get("message_id")
        starts, ends = event.get("starts"), event.get("ends")
        if not isinstance(reply_id, int) or not starts or not ends:
            return Verdict.FORWARD
        state = self._replies.setdefault(reply_id, _ReplyState())
        if state.resync_asked_at is not None:
            if now - state.resync_asked_at < self.resync_timeout:
                return Verdict.SKIP  # the snapshot is on its way, behind these
            state.resync_asked_at = None
        behind = self._lag(event.get("published_at"), now) > self.lag_limit
        known = state.ends
        starts_t, ends_t = (int(starts[0]), int(starts[1])), (int(ends[0]), int(ends[1]))
        if known is not None and ends_t[0] <= known[0] and ends_t[1] <= known[1]:
            return Verdict.SKIP  # already forwarded (a snapshot covered it)
        if reply_id in self._held or (self.window and self.unacknowledged > self.window):
            # The client is not reading: hold back, catch up when it acknowledges.
            self._held.add(reply_id)
            return Verdict.SKIP
        if behind or (known is not None and starts_t != known):
            state.resync_asked_at = now
            return Verdict.RESYNC
        state.ends = ends_t
        return Verdict.FORWARD

    def snapshot(self, event: dict[str, Any]) -> None:
        """A snapshot of a reply is being forwarded: deltas continue from its ends."""
        reply_id, ends = event.get("message_id"), event.get("ends")
        if not isinstance(reply_id, int) or not ends:
            return
        self._replies[reply_id] = _ReplyState(ends=(int(ends[0]), int(ends[1])))

    def finished(self, event: dict[str, Any]) -> None:
        self._replies.pop(event.get("message_id"), None)  # type: ignore[arg-type]
        self._held.discard(event.get("message_id"))  # type: ignore[arg-type]

    def _lag(self, published_at: Any, now: float) -> float:
        if not isinstance(published_at, (int, float)):
            return 0.0
        delay = now - published_at
        if self._floor is None or delay < self._floor:
            self._floor = delay
        return delay - self._floor
