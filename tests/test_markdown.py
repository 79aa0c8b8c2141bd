"""Replies render as safe markdown: code highlighted on the server, with copy buttons,
and finished blocks render while the reply is still streaming."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat.highlight_css import stylesheet
from chat.markdown import open_block_start, render_markdown, render_markdown_after
from chat.streaming import SettledMarkdown, WorkBudget

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


DOCUMENT = """# Plan

First a paragraph with *emphasis* and `code`,
running over two lines.

1. one
2. two

   still two

3. three

| a | b |
|---|---|
| 1 | 2 |

> a quote
that continues lazily

```python
def f(x):
    return x * 2
```

Setext title
------------

Last words."""


def _settle_in_frames(text: str, size: int) -> SettledMarkdown:
    settled = SettledMarkdown()
    for end in range(size, len(text) + size, size):
        settled.advance(text[:end])
    return settled


@pytest.mark.parametrize("size", [1, 7, 40, 1000])
def test_settled_blocks_and_the_open_block_render_exactly_as_the_whole_reply(size):
    settled = _settle_in_frames(DOCUMENT, size)
    assert settled.enabled and len(settled.segments) >= (4 if size < 100 else 1)
    assert [s.start for s in settled.segments] == [0] + [s.end for s in settled.segments[:-1]]
    joined = "".join(s.html for s in settled.segments)
    assert joined + render_markdown(DOCUMENT[settled.end :]) == render_markdown(DOCUMENT)


def test_a_simulated_reply_settles_the_same_way():
    from providers.simulator.replies import compose

    reply = compose([{"role": "user", "content": "Show me"}], length=400).answer
    settled = _settle_in_frames(reply, 12)
    joined = "".join(s.html for s in settled.segments)
    assert settled.segments and joined + render_markdown(reply[settled.end :]) == render_markdown(
        reply
    )


@pytest.mark.parametrize("size", [1, 7, 40, 1000])
def test_a_finished_reply_renders_from_its_settled_blocks_exactly_as_whole(size):
    settled = _settle_in_frames(DOCUMENT, size)
    html = "".join(s.html for s in settled.segments)
    final = render_markdown_after(DOCUMENT, settled_html=html, settled_end=settled.end)
    assert final == render_markdown(DOCUMENT)


def test_a_reply_with_a_link_reference_definition_is_rendered_whole():
    text = "See [the docs][d].\n\nMore text.\n\n[d]: https://example.com/docs\n"
    settled = _settle_in_frames(text, 5)
    html = "".join(s.html for s in settled.segments)
    assert settled.end and "[the docs][d]" in html  # while streaming: not a link yet
    final = render_markdown_after(text, settled_html=html, settled_end=settled.end)
    assert final == render_markdown(text)
    assert 'href="https://example.com/docs"' in final


@pytest.mark.parametrize(
    ("text", "open_part"),
    [
        ("one paragraph", "one paragraph"),
        ("para\n\nnext\n", "next\n"),
        ("```py\nx = 1\n\nstill code\n", "```py\nx = 1\n\nstill code\n"),
        ("1. a\n2. b\n\n3. c", "1. a\n2. b\n\n3. c"),
        ("> q\nlazy", "> q\nlazy"),
        ("a\r\n\r\nb\r\n", "b\r\n"),
        ("para\n\n3", "para\n\n3"),  # "3" or "3. a list item": wait for the line to end
        ("para\n\n3\n", "3\n"),
    ],
)
def test_only_finished_blocks_are_settled(text, open_part):
    assert text[open_block_start(text) :] == open_part


def test_an_open_block_too_long_to_rescan_ends_settling_for_that_reply():
    settled = SettledMarkdown(scan_limit=200)
    text = "Intro.\n\n" + "".join(f"{n}. item\n" for n in range(1, 80))
    for end in range(10, len(text) + 10, 10):
        settled.advance(text[:end])
    assert not settled.enabled and settled.end == len("Intro.\n\n")


def test_a_spent_budget_defers_settling_to_a_later_frame_without_changing_the_result():
    budget = WorkBudget(0.1, window=3600)
    budget.charge(360)  # this window's share is spent
    settled = SettledMarkdown(budget=budget)
    half = len(DOCUMENT) // 2
    for end in range(7, half, 7):
        settled.advance(DOCUMENT[:end])
    assert settled.segments == []  # nothing parsed: text goes on, formatting waits
    budget.since -= 3600  # the next window
    for end in range(half, len(DOCUMENT) + 7, 7):
        settled.advance(DOCUMENT[:end])
    joined = "".join(s.html for s in settled.segments)
    assert settled.segments and joined + render_markdown(DOCUMENT[settled.end :]) == (
        render_markdown(DOCUMENT)
    )
    assert budget.spent > 0  # the work done is charged
