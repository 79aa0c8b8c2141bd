"""Search over the titles and message text of one user's conversations.

On PostgreSQL it is full-text search (``django.contrib.postgres``: a web-search style
query, ranked) plus a plain substring match, which is what
finds words in scripts without spaces (Chinese). Elsewhere it is the substring match
alone. Snippets are escaped first and only then marked, so message text can never
become markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from chat.models import Conversation, Message, User

MAX_RESULTS = 50
SNIPPET_CHARS = 180
# Control characters cannot occur in stored text (chat.text cleans it): safe markers.
_START, _STOP = "\x02", "\x03"


@dataclass(frozen=True, slots=True)
class Hit:
    conversation: Conversation
    message: Message | None
    snippet: SafeString


def search(user: User, query: str) -> list[Hit]:
    query = " ".join(query.split())[:200]
    if not query:
        return []
    conversations = Conversation.objects.filter(owner=user)
    titles = list(
        conversations.filter(title__icontains=query)
        .select_related("persona")
        .order_by("-updated_at")[:MAX_RESULTS]
    )
    hits = [Hit(c, None, _marked(c.display_title, query)) for c in titles]
    messages = Message.objects.filter(conversation__owner=user).select_related(
        "conversation__persona"
    )
    if connection.vendor == "postgresql":
        hits += _full_text(messages, query)
    else:
        found = messages.filter(content__icontains=query).order_by("-id")[:MAX_RESULTS]
        hits += [Hit(m.conversation, m, _marked(m.content, query)) for m in found]
    return hits[:MAX_RESULTS]


def _full_text(messages, query: str) -> list[Hit]:  # type: ignore[no-untyped-def]
    """Ranked full-text matches, then plain substring matches (words in scripts
    without spaces). Snippets come from the text itself, not ``ts_headline``, which
    drops anything that looks like an HTML tag."""
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    search_query = SearchQuery(query, config="simple", search_type="websearch")
    found = (
        messages.annotate(rank=SearchRank(SearchVector("content", config="simple"), search_query))
        .filter(Q(rank__gt=0) | Q(content__icontains=query))
        .order_by("-rank", "-id")[:MAX_RESULTS]
    )
    return [Hit(m.conversation, m, _marked(m.content, query)) for m in found]


def _marked(text: str, query: str) -> SafeString:
    """A snippet of ``text`` around the first match of ``query``, with matches marked."""
    terms = [query, *query.split()]
    pattern = re.compile("|".join(re.escape(term) for term in terms if term), re.IGNORECASE)
    match = pattern.search(text)
    start = max(0, (match.start() if match else 0) - SNIPPET_CHARS // 3)
    piece = text[start : start + SNIPPET_CHARS]
    prefix = "…" if start else ""
    suffix = "…" if start + SNIPPET_CHARS < len(text) else ""
    # Mark the raw text with control characters, escape it, then turn them into tags.
    marked = pattern.sub(lambda found: f"{_START}{found.group(0)}{_STOP}", piece)
    html = str(escape(marked)).replace(_START, "<mark>").replace(_STOP, "</mark>")
    return mark_safe(prefix + html + suffix)  # noqa: S308 - escaped before marking
