"""Typed upstream errors. Each client maps its API's statuses and bodies to these once."""

from __future__ import annotations

import logging
from collections.abc import Iterable

logger = logging.getLogger("providers")


class ProviderError(Exception):
    """Base class. ``str(error)`` is safe to show a user and to log: no secrets."""

    default_message = "The model provider returned an error."
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


class AuthenticationError(ProviderError):
    default_message = "The provider rejected the API key. An admin needs to check it."


class InsufficientQuotaError(ProviderError):
    default_message = "The provider account is out of balance or quota."


class RateLimitedError(ProviderError):
    default_message = "The provider is rate limiting requests. Try again shortly."
    retryable = True


class ContentFilteredError(ProviderError):
    default_message = "The provider's content filter blocked this request or its answer."


class InvalidRequestError(ProviderError):
    default_message = "The provider refused the request as invalid."


class LimitExceededError(InvalidRequestError):
    """A documented parameter limit, caught before anything was sent."""


class ModelNotFoundError(ProviderError):
    default_message = "The provider does not know this model."


class OverloadedError(ProviderError):
    default_message = "The provider is overloaded or unavailable right now."
    retryable = True


class UpstreamTimeoutError(ProviderError):
    default_message = "The provider took too long to answer."
    retryable = True


class UpstreamConnectionError(ProviderError):
    default_message = "Could not reach the provider."
    retryable = True


class ProtocolError(ProviderError):
    default_message = "The provider sent a response Parley could not understand."


def skipped_malformed_chunk(api: str) -> None:
    """A chunk that does not parse is skipped (the stream carries on); say so, not what."""
    logger.warning("Skipped a malformed stream chunk from %s", api)


def ended_early(*, produced: bool) -> ProviderError:
    """A stream that closed before its finish: cut mid-reply, or empty altogether."""
    if produced:
        return UpstreamConnectionError("The provider's stream ended before the reply finished.")
    return ProtocolError("The provider's stream ended without a reply.")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove every secret (and its Bearer form) from text that may reach a user or a log."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
