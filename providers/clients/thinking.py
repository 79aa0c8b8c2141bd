"""Reasoning helpers shared by the OpenAI-shaped clients."""

from __future__ import annotations

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


class ThinkTagSplitter:
    """Split ``<think>…</think>`` reasoning out of streamed content.

    Tags may be split across deltas (``…</thi`` + ``nk>``), so a suffix that could be
    the start of a tag is held back until the next delta decides it. The newlines that
    pad the tags are not part of the reasoning or the answer, so whitespace at the edges
    of a think block (and right after it) is dropped, even across deltas.
    """

    def __init__(self) -> None:
        self._in_think = False
        self._pending = ""
        self._reasoning_started = False
        self._held_space = ""
        self._after_think = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        """Return ``(kind, text)`` pieces, kind being ``"reasoning"`` or ``"text"``."""
        buffer = self._pending + text
        self._pending = ""
        pieces: list[tuple[str, str]] = []
        while buffer:
            tag = CLOSE_TAG if self._in_think else OPEN_TAG
            position = buffer.find(tag)
            if position >= 0:
                self._emit(buffer[:position], pieces)
                buffer = buffer[position + len(tag) :]
                self._switch()
                continue
            keep = _partial_tag_suffix(buffer, tag)
            if keep:
                self._pending = buffer[-keep:]
                buffer = buffer[:-keep]
            self._emit(buffer, pieces)
            break
        return pieces

    def flush(self) -> list[tuple[str, str]]:
        """End of stream: a held-back fragment was not a tag after all."""
        pieces: list[tuple[str, str]] = []
        text, self._pending = self._pending, ""
        self._emit(text, pieces)
        return pieces

    def _switch(self) -> None:
        if self._in_think:
            self._held_space = ""  # whitespace before </think> pads the tag
            self._after_think = True
        else:
            self._reasoning_started = False
        self._in_think = not self._in_think

    def _emit(self, text: str, pieces: list[tuple[str, str]]) -> None:
        if not text:
            return
        if self._in_think:
            if not self._reasoning_started:
                text = text.lstrip()
                if not text:
                    return
                self._reasoning_started = True
            text = self._held_space + text
            stripped = text.rstrip()
            self._held_space = text[len(stripped) :]
            if stripped:
                pieces.append(("reasoning", stripped))
            return
        if self._after_think:
            text = text.lstrip()
            if not text:
                return
            self._after_think = False
        pieces.append(("text", text))


def _partial_tag_suffix(text: str, tag: str) -> int:
    """How many of ``text``'s last characters may be the start of ``tag`` (the longest).

    Runs for every chunk: only the places where the tag's first character occurs in the
    last ``len(tag) - 1`` characters are tried, usually none."""
    if len(tag) < 2:
        return 0
    tail = text[-(len(tag) - 1) :]
    start = tail.find(tag[0])
    while start != -1:
        if tag.startswith(tail[start:]):
            return len(tail) - start
        start = tail.find(tag[0], start + 1)
    return 0


class SnapshotOrDelta:
    """Turn text that arrives either as increments or as cumulative snapshots into deltas.

    Some MiniMax deployments stream ``reasoning_details[].text`` incrementally, others
    send everything so far each time: a chunk that starts with all text received so far
    is a snapshot, and only its tail is new.
    """

    def __init__(self) -> None:
        self.text = ""

    def feed(self, chunk: str) -> str:
        if not chunk:
            return ""
        delta = chunk[len(self.text) :] if self.text and chunk.startswith(self.text) else chunk
        self.text += delta
        return delta
