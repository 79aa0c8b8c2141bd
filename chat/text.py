"""Text as PostgreSQL and UTF-8 accept it.

Upstreams and browsers can hand us code points no database stores: NUL (PostgreSQL
refuses it in text) and lone UTF-16 surrogates, which JSON allows as ``"\\ud83d"`` and
which a model may split across two chunks of one emoji.
"""

from __future__ import annotations

import re

_NUL = "\x00"
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _is_high_surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udbff"


def clean_text(text: str) -> str:
    """Join surrogate pairs into the characters they encode, replace lone surrogates
    with U+FFFD and drop NUL bytes."""
    if _NUL in text:
        text = text.replace(_NUL, "")
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class StreamCleaner:
    """``clean_text`` for text arriving in pieces: a high surrogate at the end of one
    piece waits for the low surrogate that may start the next."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        piece = self._held + piece
        self._held = ""
        if piece and _is_high_surrogate(piece[-1]):
            piece, self._held = piece[:-1], piece[-1]
        return clean_text(piece)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return REPLACEMENT if held else ""
