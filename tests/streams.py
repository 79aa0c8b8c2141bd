"""Helpers to read socket frames the way the browser's chat.js does."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass, field

DELTA = re.compile(
    r'<div hx-swap-oob="beforeend:#(?P<target>[\w-]+)" data-offset="(?P<offset>\d+)" '
    r'data-end="(?P<end>\d+)">(?P<text>.*?)</div>',
    re.S,
)
STREAMING_BODY = re.compile(
    r'<div id="(?P<target>m-\d+-(?:text|reasoning))" class="[^"]*" '
    r'data-end="(?P<end>\d+)">(?P<text>.*?)</div>',
    re.S,
)

#: Settled-blocks parts: rendered HTML for text the deltas already carried.
SETTLE = re.compile(
    r'<div hx-swap-oob="beforeend:#(?P<target>m-\d+)-done" data-settle-from="(?P<start>\d+)" '
    r'data-settle-to="(?P<end>\d+)">',
)
SETTLED_BODY = re.compile(
    r'<div id="(?P<target>m-\d+)-done" class="settled" data-settled="(?P<end>\d+)">'
    r'(?P<html>.*?)</div><div id="m-\d+-text"',
    re.S,
)
_TAG = re.compile(r"<[^>]*>")


def region_text(markup: str) -> str:
    """The raw text a streaming region holds (its settled part sits in a hidden span)."""
    return html.unescape(_TAG.sub("", markup))


@dataclass
class Transcript:
    """Applies frames like the client: snapshots reset a region, deltas must be contiguous."""

    regions: dict[str, str] = field(default_factory=dict)
    frames: list[str] = field(default_factory=list)
    #: Deltas dropped because they did not continue the text shown (a snapshot follows).
    gaps: int = 0
    #: Every text a region showed, in order, to check what a person would have seen.
    shown: dict[str, list[str]] = field(default_factory=dict)
    #: Per message ("m-7"), the rendered blocks settled so far and where they end.
    settled: dict[str, tuple[int, str]] = field(default_factory=dict)

    def apply(self, frame: str) -> None:
        self.frames.append(frame)
        for match in STREAMING_BODY.finditer(frame):
            self._show(match["target"], region_text(match["text"]))
        for match in SETTLED_BODY.finditer(frame):
            self.settled[match["target"]] = (int(match["end"]), match["html"])
        for match in DELTA.finditer(frame):
            have = self.regions.get(match["target"], "")
            offset, end = int(match["offset"]), int(match["end"])
            if end <= len(have):
                continue
            if offset and match["target"].startswith("p-") and match["target"] not in self.regions:
                # A provisional reply (chat.provisional) goes on after the send's
                # acknowledgement: a transcript begun there follows only stored replies.
                continue
            if offset != len(have):
                self.gaps += 1
                continue
            self._show(match["target"], have + html.unescape(match["text"]))
        # A settle part is the last part of its frame.
        for match in SETTLE.finditer(frame):
            end, rendered = self.settled.get(match["target"], (0, ""))
            if int(match["start"]) != end:
                self.gaps += 1
                continue
            part = frame[match.end() :].removesuffix("</div>")
            self.settled[match["target"]] = (int(match["end"]), rendered + part)

    def _show(self, target: str, text: str) -> None:
        self.regions[target] = text
        self.shown.setdefault(target, []).append(text)

    def text(self, message_id: int, kind: str = "text") -> str:
        return self.regions.get(f"m-{message_id}-{kind}", "")

    def rendered(self, message_id: int) -> tuple[int, str]:
        """How much of a streaming reply's text showed rendered, and its HTML."""
        return self.settled.get(f"m-{message_id}", (0, ""))


async def receive_until(
    communicator, predicate, transcript: Transcript | None = None, within=10.0
) -> str:
    """Read frames until one satisfies ``predicate``; return that frame."""
    async with asyncio.timeout(within):
        while True:
            frame = await communicator.receive_from(timeout=within)
            if transcript is not None:
                transcript.apply(frame)
            if predicate(frame):
                return frame


def is_final(message_id: int):
    def check(frame: str) -> bool:
        return f'id="m-{message_id}"' in frame and 'data-status="streaming"' not in frame

    return check


def has_delta(frame: str) -> bool:
    return DELTA.search(frame) is not None
