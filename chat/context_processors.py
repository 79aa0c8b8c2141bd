"""Template context every page gets."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext, gettext_noop


def js_strings(request: HttpRequest) -> dict[str, object]:
    """The sentences chat.js shows, in the page's language (read from a JSON block)."""
    return {
        "js_strings": {
            text: gettext(text)
            for text in (
                gettext_noop("Your message was not sent. Press Send to try again."),
                gettext_noop(
                    "Connection lost before your message was confirmed. It will be sent "
                    "again when Parley reconnects."
                ),
                gettext_noop("Your last message is still being saved. Send this one in a moment."),
                gettext_noop("Copied"),
            )
        }
    }
