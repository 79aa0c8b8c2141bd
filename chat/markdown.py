"""Safe markdown for replies: raw HTML is escaped and unsafe link schemes are refused.

Code blocks are highlighted on the server with Pygments (CSS classes only, themed for
light and dark in chat.css) and carry a "Copy" button.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.utils.html import escape, format_html, strip_tags
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

#: Longer code blocks are shown plain: highlighting is linear, but not free.
HIGHLIGHT_MAX_CHARS = 100_000
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


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
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _fence)
    return md


def highlighted(code: str, language: str) -> str:
    """``code`` as HTML: highlighted when the language is known, escaped otherwise.
    Pygments escapes everything it emits."""
    if language and len(code) <= HIGHLIGHT_MAX_CHARS:
        try:
            lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
        except ClassNotFound:
            pass
        else:
            return highlight(code, lexer, _FORMATTER)
    return str(escape(code))


def _fence(self, tokens, idx, options, env) -> str:  # type: ignore[no-untyped-def]
    token = tokens[idx]
    info = (token.info or "").strip().split(maxsplit=1)
    language = info[0] if info else ""
    label = language or "code"
    css = format_html(' class="language-{}"', language) if language else ""
    return str(
        format_html(
            '<div class="code-block"><div class="code-head"><span>{}</span>'
            '<button type="button" class="copy" data-copy="code" aria-label="{}">{}</button>'
            "</div><pre><code{}>{}</code></pre></div>\n",
            label,
            _("Copy"),
            _("Copy"),
            css,
            mark_safe(highlighted(token.content, language)),  # noqa: S308 - escaped
        )
    )


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


def render_markdown_after(text: str, *, settled_html: str, settled_end: int) -> SafeString:
    """``text`` rendered, reusing ``settled_html``: its first ``settled_end`` code points,
    rendered while it streamed (finished blocks, see ``open_block_start``). The result
    is ``render_markdown(text)``, for a fraction of the work.

    A link reference definition ("[label]: url") can change any block, earlier ones
    included: a text that may hold one ("]:" anywhere) is rendered whole.
    """
    if not settled_end or "]:" in text:
        return render_markdown(text)
    # Escaped by the renderer, both parts.
    return mark_safe(settled_html + _renderer().render(text[settled_end:]))  # noqa: S308


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def open_block_start(text: str) -> int:
    """Where the last top-level block of ``text`` begins, in code points; 0 when there is
    only one. Every block before it is finished: whatever text follows cannot change how
    it renders (a list or a quote still being written is the last block, whole). Link
    reference definitions are the exception: a reply using them renders them at the end."""
    # Only whole lines count: the line a block begins on decides what block it is ("3"
    # may be a paragraph or, once ". three" follows, a list item continuing the list).
    complete = max(text.rfind("\n"), text.rfind("\r")) + 1
    if not complete:
        return 0
    text = text[:complete]
    # The block rules alone (no inline parsing): only where blocks begin matters here.
    # markdown-it's normalize step, which the block parser expects done: same line count.
    source = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    tokens: list[Token] = []
    renderer = _renderer()
    renderer.block.parse(source, renderer, {}, tokens)
    lines = [
        token.map[0]
        for token in tokens
        if token.level == 0 and token.nesting >= 0 and token.map is not None
    ]
    if len(lines) < 2 or lines[-1] == 0:
        return 0
    # markdown-it counts lines after normalising "\r\n" and "\r" to "\n".
    for number, match in enumerate(_LINE_BREAK.finditer(text), start=1):
        if number == lines[-1]:
            return match.end()
    return 0
