"""The language of a websocket (the one its page was rendered in), and error sentences
stored in English shown in the reader's language."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation.trans_real import parse_accept_lang_header

from providers.clients import budget, http, limits  # noqa: F401 - register their sentences
from providers.clients.errors import SENTENCE_TEMPLATES


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


def _patterns() -> list[tuple[re.Pattern[str], str]]:
    """Each registered sentence template as a pattern with a group per value."""
    if len(_compiled) != len(SENTENCE_TEMPLATES):
        _compiled[:] = [(_pattern(template), template) for template in SENTENCE_TEMPLATES]
    return _compiled


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex, re.S)


_compiled: list[tuple[re.Pattern[str], str]] = []


def translated_error(text: str) -> str:
    """An error sentence stored in English, as the provider layer wrote it, in the
    active language: whole sentences from the catalogue, and sentences that carry values
    through their template. An upstream's own words stay as they were said."""
    translated = gettext(text)
    if translated != text:
        return translated
    for pattern, template in _patterns():
        if match := pattern.fullmatch(text):
            return gettext(template).format(**match.groupdict())
    return text
