"""Safe markdown for replies: raw HTML is escaped and unsafe link schemes are refused."""

from __future__ import annotations

from functools import lru_cache

from django.utils.html import format_html, strip_tags
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    # "html": False escapes any HTML a model writes; markdown-it's validateLink refuses
    # javascript:, vbscript:, file: and most data: URLs.
    md = (
        MarkdownIt("commonmark", {"html": False, "breaks": True})
        .enable("table")
        .enable("strikethrough")
    )
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("link_open", _link_open)
    return md


def _same_site(url: str) -> bool:
    return (url.startswith("/") and not url.startswith("//")) or url.startswith("data:image/")


def _image_as_link(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    """An image from another host becomes a link to it: the browser fetches nothing
    (a model, or a prompt injection, could smuggle conversation text out in its URL)."""
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInline(token.children or [], options, env) or src
    if _same_site(src):
        return str(format_html('<img src="{}" alt="{}">', src, strip_tags(alt)))
    return str(
        format_html(
            '<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{} (image)</a>',
            src,
            mark_safe(alt),  # noqa: S308 - rendered inline markdown, already escaped
        )
    )


def _link_open(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    token = tokens[idx]
    token.attrSet("rel", "noopener noreferrer nofollow")
    token.attrSet("target", "_blank")
    return str(self.renderToken(tokens, idx, options, env))


def render_markdown(text: str) -> SafeString:
    return mark_safe(_renderer().render(text))  # noqa: S308 - escaped by the renderer
