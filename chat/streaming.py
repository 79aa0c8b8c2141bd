"""Bookkeeping for one live reply: what arrived, what was published, what was saved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chat.markdown import open_block_start, render_markdown
from chat.text import StreamCleaner
from providers.clients.types import Usage


@dataclass(frozen=True, slots=True)
class Segment:
    """Finished blocks of a streaming reply: ``content[start:end]``, rendered."""

    start: int
    end: int
    html: str


class WorkBudget:
    """The share of one core that optional work (rendering markdown while replies
    stream) may take in this process, per window of time. Past it the work waits for
    the next window: text keeps its pace and formatting arrives a little later.
    ``scale`` (from 0 to 1), asked at each window, shrinks the share while the process
    is busy."""

    def __init__(
        self, share: float, *, window: float = 1.0, scale: Callable[[], float] | None = None
    ) -> None:
        self.share = share
        self.window = window
        self.scale = scale
        self.spent = 0.0
        self.since = time.monotonic()
        self.limit = share * window

    def allows(self) -> bool:
        now = time.monotonic()
        if now - self.since >= self.window:
            self.spent, self.since = 0.0, now
            self.limit = self.share * self.window * (self.scale() if self.scale else 1.0)
        return self.spent < self.limit

    def charge(self, seconds: float) -> None:
        self.spent += seconds


@dataclass
class SettledMarkdown:
    """The finished blocks of a streaming reply, each rendered once.

    While a reply streams, the blocks it has finished show rendered and only the block
    being written shows as plain text. After each frame's new text the open part (from
    the last settled block on) is parsed again to find where its last block begins;
    whatever lies before that is rendered and never touched again. The work per frame is
    the open block's parse plus the new blocks' render, not the whole reply's, and only
    when a line has ended since the last parse (a block can only finish at a line break).

    A long open block (a list that goes on and on) is parsed again only each time it has
    grown by a quarter, so its cost per character stays constant; the blocks after it
    settle a little later. An open block longer than ``scan_limit``, or blocks whose HTML
    would crowd a socket frame, end settling for this reply: the rest stays plain until
    the final render.
    """

    scan_limit: int = 32 * 1024
    rescan_every: int = 512
    #: Parse at most this often (seconds); the publisher stretches it when the event loop
    #: falls behind, so settling never competes with delivering text.
    interval: float = 0.0
    #: The process's budget for this work, shared by every reply (none: unlimited).
    budget: WorkBudget | None = None
    html_limit: int = 192 * 1024
    end: int = 0
    segments: list[Segment] = field(default_factory=list)
    enabled: bool = True
    #: How much text the last parse saw, and when.
    scanned: int = 0
    scanned_at: float = float("-inf")

    def advance(self, content: str, now: float = 0.0) -> Segment | None:
        """Settle what ``content`` (the text published so far) has finished, if anything."""
        if not self.enabled or len(content) <= self.end:
            return None
        if now - self.scanned_at < self.interval:
            return None
        if len(content) - self.end > self.scan_limit:
            self.enabled = False
            return None
        since = max(self.end, self.scanned - 1)
        if "\n" not in content[since:] and "\r" not in content[since:]:
            return None
        open_length = len(content) - self.end
        if open_length > self.rescan_every and len(content) - self.scanned < open_length // 4:
            return None  # a long open block: parse again once it has grown by a quarter
        if self.budget is not None and not self.budget.allows():
            return None  # the process is busy: a later frame settles it
        began = time.perf_counter()
        try:
            return self._settle(content, now)
        finally:
            if self.budget is not None:
                self.budget.charge(time.perf_counter() - began)

    def _settle(self, content: str, now: float) -> Segment | None:
        self.scanned, self.scanned_at = len(content), now
        start = open_block_start(content[self.end :])
        if not start:
            return None
        html = str(render_markdown(content[self.end : self.end + start]))
        if len(html) > self.html_limit:
            self.enabled = False
            return None
        segment = Segment(self.end, self.end + start, html)
        self.segments.append(segment)
        self.end = segment.end
        return segment


class Doorbell:
    """Wakes the one task waiting on it, or tells it at once that it rang meanwhile.

    A reply's publisher waits for new text (or the upstream's end) before every frame,
    and for the frame interval after it. ``asyncio.Event`` with ``asyncio.wait`` costs a
    task and a handful of futures per wait; at 150 streams and 20 frames a second that
    was an eighth of the event loop. This costs one future and, with a timeout, one
    timer.
    """

    __slots__ = ("rung", "_waiter")

    def __init__(self) -> None:
        self.rung = False
        self._waiter: asyncio.Future[None] | None = None

    def ring(self) -> None:
        self.rung = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self.rung = False

    async def wait(self, within: float | None = None) -> bool:
        """Until the bell rings (True), or ``within`` seconds pass (False). Either way
        the bell is clear afterwards."""
        if not self.rung:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if within is None else loop.call_later(within, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        rung, self.rung = self.rung, False
        return rung


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class ReplyBuffer:
    """Text arrives per token; frames and flushes read it in batches.

    ``published_*`` are the lengths already sent to sockets: a snapshot shows exactly
    that much, so deltas that follow it start where it ends.
    """

    content: str = ""
    reasoning: str = ""
    published_content: int = 0
    published_reasoning: int = 0
    saved_content: int = 0
    saved_reasoning: int = 0
    usage: Usage | None = None
    finish_reason: str = ""
    provider_data: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    settled: SettledMarkdown = field(default_factory=SettledMarkdown)
    #: Rings when text arrives, and when the upstream is done.
    changed: Doorbell = field(default_factory=Doorbell)
    _text_cleaner: StreamCleaner = field(default_factory=StreamCleaner, repr=False)
    _reasoning_cleaner: StreamCleaner = field(default_factory=StreamCleaner, repr=False)

    def add_text(self, text: str, now: float) -> None:
        self._mark_first(now)
        self.content += self._text_cleaner.feed(text)
        self.changed.ring()

    def add_reasoning(self, text: str, now: float) -> None:
        self._mark_first(now)
        self.reasoning += self._reasoning_cleaner.feed(text)
        self.changed.ring()

    def close(self) -> None:
        """The upstream is done: a surrogate still waiting for its pair never gets one."""
        self.content += self._text_cleaner.flush()
        self.reasoning += self._reasoning_cleaner.flush()

    def _mark_first(self, now: float) -> None:
        if self.first_token_at is None:
            self.first_token_at = now

    @property
    def received_anything(self) -> bool:
        return self.first_token_at is not None

    @property
    def unpublished(self) -> bool:
        return (
            len(self.content) > self.published_content
            or len(self.reasoning) > self.published_reasoning
        )

    @property
    def unsaved(self) -> bool:
        return len(self.content) > self.saved_content or len(self.reasoning) > self.saved_reasoning

    def take_deltas(self) -> tuple[tuple[int, str], tuple[int, str]]:
        """``((offset, reasoning), (offset, text))`` not yet published, marked published."""
        reasoning = (self.published_reasoning, self.reasoning[self.published_reasoning :])
        content = (self.published_content, self.content[self.published_content :])
        self.published_reasoning = len(self.reasoning)
        self.published_content = len(self.content)
        self.changed.clear()
        return reasoning, content

    def mark_saved(self, content_length: int, reasoning_length: int) -> None:
        """The first ``content_length`` / ``reasoning_length`` code points are stored."""
        self.saved_content = max(self.saved_content, content_length)
        self.saved_reasoning = max(self.saved_reasoning, reasoning_length)


class LoopPace:
    """How late this process's event loop wakes its sleepers, and the frame interval
    that follows from it.

    Past the knee the loop falls behind: every frame costs each socket a send, so
    sending as often as when idle only makes every frame later. Frames get bigger
    instead: the interval grows with the measured lateness (an exponentially weighted
    mean), up to ``ceiling``, and shrinks back as the loop recovers.
    """

    def __init__(self, *, smoothing: float = 0.2, ceiling: float = 1.0) -> None:
        self.smoothing = smoothing
        self.ceiling = ceiling
        self.lateness = 0.0

    def observe(self, intended: float, actual: float) -> None:
        """A sleep of ``intended`` seconds took ``actual``."""
        late = max(0.0, actual - intended)
        self.lateness += self.smoothing * (late - self.lateness)

    def interval(self, base: float) -> float:
        if self.lateness < 0.002:
            return base
        return min(max(base, self.ceiling), base + 2 * self.lateness)

    def relief(self, *, from_late: float = 0.005, to_late: float = 0.05) -> float:
        """How much of its optional work the process should still do: all of it while
        the loop is on time (late by under ``from_late``), down to a quarter at
        ``to_late`` and beyond."""
        if self.lateness <= from_late:
            return 1.0
        behind = min(1.0, (self.lateness - from_late) / (to_late - from_late))
        return 1.0 - 0.75 * behind


#: One per process: every reply's publisher and the partial writer feed it.
loop_pace = LoopPace()

#: Settling markdown in every streaming reply of this process together takes at most a
#: tenth of a core, and less while the loop runs late: at a hundred streams and more it
#: would otherwise make text late. Formatting then comes in later frames (and whole in
#: the final one); the text keeps its pace.
settle_budget = WorkBudget(0.1, scale=loop_pace.relief)
