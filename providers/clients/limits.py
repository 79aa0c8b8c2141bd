"""Refuse a request that breaks a documented limit before it is sent. Never clamp."""

from __future__ import annotations

from providers.clients.errors import LimitExceededError, gettext_noop
from providers.clients.types import ChatRequest, ModelSpec

TEMPERATURE = gettext_noop("Temperature must be {range} for {model} on {api} (got {value}).")
TOP_P = gettext_noop("Top-p must be {range} for {model} on {api} (got {value}).")
OUTPUT_AT_LEAST_ONE = gettext_noop("Max output tokens must be at least 1.")
OUTPUT_AT_MOST = gettext_noop(
    "Max output tokens is at most {limit} for {model} on {api} (got {value})."
)
NO_STOP = gettext_noop("{model} on {api} does not support stop sequences.")
STOP_AT_MOST = gettext_noop(
    "At most {limit} stop sequences are allowed for {model} on {api} (got {value})."
)
ONE_ANSWER = gettext_noop("{model} on {api} generates one answer per request (n = 1 only).")
NO_TOOLS = gettext_noop("{model} on {api} does not support tools.")
TOOL_CHOICE = gettext_noop("tool_choice must be one of {allowed} for {model} on {api}.")


def check_limits(request: ChatRequest, spec: ModelSpec, *, api: str) -> None:
    """Raise :class:`LimitExceededError` naming the first limit ``request`` breaks."""
    where = {"model": spec.name, "api": api}
    if request.temperature is not None and request.temperature not in spec.temperature:
        raise LimitExceededError.sentence(
            TEMPERATURE,
            range=spec.temperature.describe(),
            value=f"{request.temperature:g}",
            **where,
        )
    if request.top_p is not None and request.top_p not in spec.top_p:
        raise LimitExceededError.sentence(
            TOP_P, range=spec.top_p.describe(), value=f"{request.top_p:g}", **where
        )
    if request.max_output_tokens is not None:
        if request.max_output_tokens < 1:
            raise LimitExceededError(OUTPUT_AT_LEAST_ONE)
        if request.max_output_tokens > spec.max_output_tokens:
            raise LimitExceededError.sentence(
                OUTPUT_AT_MOST,
                limit=f"{spec.max_output_tokens:,}",
                value=f"{request.max_output_tokens:,}",
                **where,
            )
    if request.stop:
        if spec.max_stop == 0:
            raise LimitExceededError.sentence(NO_STOP, **where)
        if len(request.stop) > spec.max_stop:
            raise LimitExceededError.sentence(
                STOP_AT_MOST, limit=str(spec.max_stop), value=str(len(request.stop)), **where
            )
    if request.n != 1:
        raise LimitExceededError.sentence(ONE_ANSWER, **where)
    if request.tools and not spec.tools:
        raise LimitExceededError.sentence(NO_TOOLS, **where)
    if request.tool_choice is not None and request.tool_choice not in spec.tool_choices:
        allowed = ", ".join(f'"{choice}"' for choice in spec.tool_choices)
        raise LimitExceededError.sentence(TOOL_CHOICE, allowed=allowed, **where)
