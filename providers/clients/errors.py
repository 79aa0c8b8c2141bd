"""Typed upstream errors. Each client maps its API's statuses and bodies to these once."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

logger = logging.getLogger("providers")


#: Sentences with values in them ("{seconds}"): pages translate a stored sentence by
#: matching it against these (``chat.i18n.translated_error``).
SENTENCE_TEMPLATES: list[str] = []


def gettext_noop(message: str) -> str:
    """Marks a sentence for Parley's translation catalogue (``makemessages`` finds calls
    by this name); pages translate it when they show it. No Django here, by design."""
    if "{" in message and message not in SENTENCE_TEMPLATES:
        SENTENCE_TEMPLATES.append(message)
    return message


class ProviderError(Exception):
    """Base class. ``str(error)`` is safe to show a user and to log: no secrets."""

    default_message = gettext_noop("The model provider returned an error.")
    #: Worth retrying before any token reached the user.
    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def sentence(cls, template: str, **values: str) -> ProviderError:
        """An error whose message is ``template`` filled in (translatable as a whole)."""
        return cls(template.format(**values))


class AuthenticationError(ProviderError):
    default_message = gettext_noop("The provider rejected the API key. An admin needs to check it.")


class InsufficientQuotaError(ProviderError):
    default_message = gettext_noop("The provider account is out of balance or quota.")


class RateLimitedError(ProviderError):
    default_message = gettext_noop("The provider is rate limiting requests. Try again shortly.")
    retryable = True


class ContentFilteredError(ProviderError):
    default_message = gettext_noop(
        "The provider's content filter blocked this request or its answer."
    )


class InvalidRequestError(ProviderError):
    default_message = gettext_noop("The provider refused the request as invalid.")


class LimitExceededError(InvalidRequestError):
    """A documented parameter limit, caught before anything was sent."""


class ModelNotFoundError(ProviderError):
    default_message = gettext_noop("The provider does not know this model.")


class OverloadedError(ProviderError):
    default_message = gettext_noop("The provider is overloaded or unavailable right now.")
    retryable = True


class UpstreamTimeoutError(ProviderError):
    default_message = gettext_noop("The provider took too long to answer.")
    retryable = True


class UpstreamConnectionError(ProviderError):
    default_message = gettext_noop("Could not reach the provider.")
    retryable = True


class ProtocolError(ProviderError):
    default_message = gettext_noop("The provider sent a response Parley could not understand.")


def skipped_malformed_chunk(api: str) -> None:
    """A chunk that does not parse is skipped (the stream carries on); say so, not what."""
    logger.warning("Skipped a malformed stream chunk from %s", api)


def ended_early(*, produced: bool) -> ProviderError:
    """A stream that closed before its finish: cut mid-reply, or empty altogether."""
    if produced:
        return UpstreamConnectionError(
            gettext_noop("The provider's stream ended before the reply finished.")
        )
    return ProtocolError(gettext_noop("The provider's stream ended without a reply."))


# Credentials an upstream may echo back in an error, whoever's they are: a Bearer
# token, an "sk-" style key, a JWT, or a key named as such.
_CREDENTIALS = re.compile(
    r"(?i)(?:\bbearer\s+|\b(?:api[_ -]?key|token|secret|authorization)\s*[:=]\s*)"
    r"[^\s\"',;)]{3,}[^\s\"',;).]"
    r"|\b(?:sk|pk|ak|key|tok)-[A-Za-z0-9_\-]{8,}"
    r"|\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-.]{10,}"
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
MAX_UPSTREAM_TEXT = 240


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove every secret, and anything shaped like a credential, from text that may
    reach a user, a log or the database."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _CREDENTIALS.sub(_redacted_credential, text)


def _redacted_credential(match: re.Match[str]) -> str:
    found = match.group(0)
    prefix = re.match(r"(?i)(bearer\s+|[a-z _-]*\s*[:=]\s*)", found)
    if prefix and not found.lower().startswith(("sk-", "pk-", "ak-", "key-", "tok-", "eyj")):
        return prefix.group(0) + "[redacted]"
    return "[redacted]"


def upstream_said(text: str) -> str:
    """An upstream's own error text as users see it: credentials removed, at most two
    sentences and MAX_UPSTREAM_TEXT characters."""
    text = redact(" ".join(text.split()))
    sentences = _SENTENCE_END.split(text)
    text = " ".join(sentences[:2])
    if len(text) > MAX_UPSTREAM_TEXT:
        text = text[: MAX_UPSTREAM_TEXT - 1].rstrip() + "…"
    return text
