"""Turns configuration into the models people can pick and the clients that serve them."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from providers.clients.http import Timeouts
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.clients.types import ChatClient

DEMO_LABEL = "Offline demo (simulated replies)"

MINIMAX_OPENAI_MODELS = (
    "MiniMax-M2.7",
    "MiniMax-M2.7-highspeed",
    "MiniMax-M2.5",
    "MiniMax-M2.5-highspeed",
    "MiniMax-M2.1",
    "M2-her",
)


@dataclass(frozen=True, slots=True)
class ModelOption:
    key: str
    label: str
    upstream_model: str
    simulated: bool = False


def available_models() -> list[ModelOption]:
    options: list[ModelOption] = []
    if settings.MINIMAX_API_KEY:
        options += [
            ModelOption(key=f"minimax:{name}", label=f"{name} (MiniMax)", upstream_model=name)
            for name in MINIMAX_OPENAI_MODELS
        ]
    if settings.PARLEY_DEMO:
        options.append(
            ModelOption(
                key="demo:MiniMax-M2.7",
                label=DEMO_LABEL,
                upstream_model="MiniMax-M2.7",
                simulated=True,
            )
        )
    return options


def get_model(key: str) -> ModelOption | None:
    return next((option for option in available_models() if option.key == key), None)


def default_model_key() -> str:
    options = available_models()
    return options[0].key if options else ""


def client_for(option: ModelOption) -> ChatClient:
    if option.simulated:
        return MiniMaxOpenAIClient(
            base_url=f"{demo_upstream_url()}/v1",
            api_key="offline-demo",
            extra_headers={"x-simulator-pace": str(settings.DEMO_TOKENS_PER_SECOND)},
            timeouts=Timeouts(connect=5, first_token=30, between_tokens=30, total=600),
        )
    return MiniMaxOpenAIClient(
        base_url=f"{settings.MINIMAX_BASE_URL}/v1", api_key=settings.MINIMAX_API_KEY
    )


def demo_upstream_url() -> str:
    if settings.DEMO_UPSTREAM_URL:
        return str(settings.DEMO_UPSTREAM_URL)
    from providers.simulator import background_simulator

    return background_simulator(tokens_per_second=settings.DEMO_TOKENS_PER_SECOND).base_url
