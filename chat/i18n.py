"""The language of a websocket (the one its page was rendered in), and error sentences
stored in English shown in the reader's language."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation.trans_real import parse_accept_lang_header

from providers.clients.http import TIMEOUT_SENTENCES


def language_of(scope: dict[str, Any]) -> str:
    """The language cookie (set by the "Language" switch), else Accept-Language, else
    the default, like LocaleMiddleware decides for pages."""
    chosen = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME, "")
    candidates = [chosen] if chosen else []
    headers = dict(scope.get("headers") or [])
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [code for code, _ in parse_accept_lang_header(accept) if code != "*"]
    for code in candidates:
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


@lru_cache(maxsize=1)
def _numbered_sentences() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for sentence in TIMEOUT_SENTENCES:
        before, _, after = sentence.partition("{seconds}")
        pattern = re.compile(rf"{re.escape(before)}(?P<seconds>[\d.]+){re.escape(after)}")
        patterns.append((pattern, sentence))
    return patterns


def translated_error(text: str) -> str:
    """A reply's stored error (English, as the provider layer wrote it) in the active
    language: whole sentences from the catalogue, and sentences that carry a number
    through their template. An upstream's own words stay as they were said."""
    translated = gettext(text)
    if translated != text:
        return translated
    for pattern, sentence in _numbered_sentences():
        if match := pattern.fullmatch(text):
            return gettext(sentence).format(seconds=match["seconds"])
    return text
