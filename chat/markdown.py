"""Safe markdown for replies: raw HTML is escaped and unsafe link schemes are refused."""

from __future__ import annotations

from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    # "html": False escapes any HTML a model writes; markdown-it's validateLink refuses
    # javascript:, vbscript:, file: and most data: URLs.
    return (
        MarkdownIt("commonmark", {"html": False, "breaks": True})
        .enable("table")
        .enable("strikethrough")
    )


def render_markdown(text: str) -> SafeString:
    return mark_safe(_renderer().render(text))  # noqa: S308 - escaped by the renderer
