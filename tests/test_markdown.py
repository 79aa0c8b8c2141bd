"""Replies render as safe markdown: code highlighted on the server, with copy buttons."""

from __future__ import annotations

from pathlib import Path

from chat.highlight_css import stylesheet
from chat.markdown import render_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_code_is_highlighted_on_the_server_and_escaped():
    html = render_markdown("```python\nprint('<script>')\n```")
    assert '<code class="language-python">' in html
    assert '<span class="hl-nb">print</span>' in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert 'aria-label="Copy"' in html


def test_an_unknown_language_or_a_hostile_info_string_is_shown_plain():
    html = render_markdown('```"><img src=x onerror=alert(1)>\n<b>bold</b>\n```')
    assert "<img" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'class="hl-' not in html


def test_tables_and_quotes_render():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted")
    assert "<table>" in html and "<td>1</td>" in html and "<blockquote>" in html


def test_the_committed_highlight_stylesheet_is_current():
    committed = (ROOT / "static" / "chat" / "highlight.css").read_text()
    assert committed == stylesheet(), (
        "run: python -m chat.highlight_css > static/chat/highlight.css"
    )
