"""Turns configuration into the models people can pick and the clients that serve them.

Models come from enabled connections (the admin's, or ones the environment created)
crossed with the enabled catalog rows of their API, plus the offline demo when it is on.
A model's key is ``<connection>:<model>``: ``c12:MiniMax-M2.7`` or ``demo:MiniMax-M2.7``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

from providers import catalog
from providers.clients.cloudflare import CloudflareClient
from providers.clients.cloudsway import CloudswayClient
from providers.clients.dashscope import DashScopeClient
from providers.clients.h1 import H1Transport, asyncio_transport
from providers.clients.http import SharedPool, Timeouts, tls_context
from providers.clients.minimax_anthropic import MiniMaxAnthropicClient
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.clients.netguard import GuardedTransport, guarded_transport
from providers.clients.types import ChatClient, ModelSpec
from providers.crypto import UndecryptableSecret
from providers.models import CatalogModel, ProviderConnection

logger = logging.getLogger(__name__)

DEMO_LABEL = "Offline demo (simulated replies)"


@dataclass(frozen=True, slots=True)
class Connection:
    key: str
    kind: str
    label: str
    base_url: str
    api_key: str = field(repr=False)
    account_id: str = ""
    gateway_id: str = ""
    cloudflare_style: str = "run"
    workspace: str = ""
    endpoint_path: str = ""
    simulated: bool = False
    #: Entered in the admin: may only reach public addresses (env ones are the operator's).
    guarded: bool = False

    @property
    def api_label(self) -> str:
        return catalog.API_KINDS[self.kind].label


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens; ``None`` where the catalog does not know."""

    input: Decimal | None = None
    cached_input: Decimal | None = None
    output: Decimal | None = None

    @classmethod
    def of(cls, row: CatalogModel | None) -> Prices:
        if row is None:
            return cls()
        return cls(row.input_price, row.cached_input_price, row.output_price)

    def cost(
        self, *, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> Decimal | None:
        """What a request cost, or None when a price it needs is unknown. Cached input
        tokens are billed at the cached price where there is one."""
        if self.input is None or self.output is None:
            return None
        cached = min(cached_tokens, input_tokens) if self.cached_input is not None else 0
        total = (
            (input_tokens - cached) * self.input
            + cached * (self.cached_input or Decimal(0))
            + output_tokens * self.output
        )
        return total / Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelOption:
    key: str
    label: str
    upstream_model: str
    connection: Connection
    spec: ModelSpec
    prompt_token_ratio: float = 1.0
    prices: Prices = Prices()
    #: Groups whose members may use it, by its connection and by its catalog entry;
    #: empty: everyone. A user needs to pass both.
    connection_groups: frozenset[int] = frozenset()
    model_groups: frozenset[int] = frozenset()

    def allowed_for(self, group_ids: frozenset[int]) -> bool:
        return (not self.connection_groups or bool(self.connection_groups & group_ids)) and (
            not self.model_groups or bool(self.model_groups & group_ids)
        )

    @property
    def simulated(self) -> bool:
        return self.connection.simulated

    @property
    def group(self) -> str:
        return self.connection.label


# The demo: one simulated connection per API, each on its own prefix of the simulator.
_DEMO_CONNECTIONS = (
    ("demo", catalog.MINIMAX_OPENAI, "/minimax/v1", ("MiniMax-M2.7", "M2-her")),
    ("demo-anthropic", catalog.MINIMAX_ANTHROPIC, "/minimax/anthropic", ("MiniMax-M2.7",)),
    ("demo-cloudflare", catalog.CLOUDFLARE, "/cloudflare/client/v4", ("minimax/m2.7",)),
    ("demo-dashscope", catalog.DASHSCOPE, "/dashscope/api/v1", ("MiniMax-M2.5", "abab6.5s-chat")),
    ("demo-cloudsway", catalog.CLOUDSWAY, "/cloudsway/v1/ai", ("MiniMax-M2.7",)),
)


def _label(name: str, kind: str, spec: ModelSpec) -> str:
    """What a picker shows: the model, the API that serves it, its window, reasoning."""
    window = f"{spec.context_window // 1000:,}K context"
    reasons = ", reasons" if spec.reasoning else ""
    return f"{name} · {catalog.API_KINDS[kind].label} ({window}{reasons})"


def _demo_label(key: str, kind: str, model: str) -> str:
    if key == "demo" and model == "MiniMax-M2.7":
        return DEMO_LABEL
    return f"Offline demo: {model} via {catalog.API_KINDS[kind].label} (simulated)"


def _specs() -> dict[tuple[str, str], CatalogModel]:
    return {(row.kind, row.name): row for row in CatalogModel.objects.prefetch_related("groups")}


def _group_ids(row: Any) -> frozenset[int]:
    return frozenset(group.pk for group in row.groups.all()) if row is not None else frozenset()


# Listing models queries two tables and decrypts every key, and every message sent
# needs it twice: keep the list for a few seconds. Saving a connection or a catalog row
# (or a test changing settings) forgets it at once in this process; other processes
# see the change within MODEL_CACHE_SECONDS.
MODEL_CACHE_SECONDS = 5.0
_cached: tuple[float, list[ModelOption]] | None = None


def forget_models(**kwargs: object) -> None:
    global _cached
    _cached = None


def available_models() -> list[ModelOption]:
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < MODEL_CACHE_SECONDS:
        return list(_cached[1])
    options = _load_models()
    _cached = (now, options)
    return list(options)


def _load_models() -> list[ModelOption]:
    rows = _specs()
    options: list[ModelOption] = []
    for connection in ProviderConnection.objects.filter(enabled=True).prefetch_related("groups"):
        try:
            api_key = connection.api_key()
        except UndecryptableSecret:
            logger.error(
                "Connection %r is unavailable: its stored API key cannot be decrypted with "
                "ENCRYPTION_KEYS (or SECRET_KEY, if unset). Restore the old key in "
                "ENCRYPTION_KEYS, or enter the API key again in the admin.",
                connection.name,
            )
            continue
        live = Connection(
            key=f"c{connection.pk}",
            kind=connection.kind,
            label=connection.name,
            base_url=connection.base_url,
            api_key=api_key,
            account_id=connection.account_id,
            gateway_id=connection.gateway_id,
            cloudflare_style=connection.cloudflare_style,
            workspace=connection.workspace,
            endpoint_path=connection.endpoint_path,
            guarded=not connection.managed_by_env,
        )
        for (kind, name), row in rows.items():
            if kind == connection.kind and row.enabled:
                options.append(
                    ModelOption(
                        key=f"{live.key}:{name}",
                        label=_label(row.label or name, connection.kind, row.spec()),
                        upstream_model=name,
                        connection=live,
                        spec=row.spec(),
                        prompt_token_ratio=row.prompt_token_ratio,
                        prices=Prices.of(row),
                        connection_groups=_group_ids(connection),
                        model_groups=_group_ids(row),
                    )
                )
    if settings.PARLEY_DEMO:
        options += _demo_options(rows)
    return options


def _demo_options(rows: dict[tuple[str, str], CatalogModel]) -> list[ModelOption]:
    options = []
    for key, kind, prefix, models in _DEMO_CONNECTIONS:
        connection = Connection(
            key=key,
            kind=kind,
            label="Offline demo (simulated)",
            base_url=prefix,
            api_key="offline-demo",
            account_id="demo-account",
            endpoint_path="demo-endpoint",
            simulated=True,
        )
        for model in models:
            row = rows.get((kind, model))
            spec = row.spec() if row is not None else catalog.default_spec(kind, model)
            if spec is None:
                continue
            options.append(
                ModelOption(
                    key=f"{key}:{model}",
                    label=_demo_label(key, kind, model),
                    upstream_model=model,
                    connection=connection,
                    spec=spec,
                    prompt_token_ratio=row.prompt_token_ratio if row is not None else 1.0,
                    prices=Prices.of(row),
                    model_groups=_group_ids(row),
                )
            )
    return options


#: General chat models, newest first: the default for a new chat when neither the
#: persona nor DEFAULT_MODEL names one. M2-her (role-play, 2,048 tokens) never is.
GENERAL_MODELS = ("MiniMax-M2.7", "minimax/m2.7", "MiniMax-M2.5", "MiniMax-M2.1")


def default_option(options: list[ModelOption], preferred: str = "") -> ModelOption | None:
    """The model a new chat starts on: ``preferred`` (a model name or key, a persona's
    default), else DEFAULT_MODEL, else the newest general MiniMax model available."""
    for wanted in (preferred, settings.DEFAULT_MODEL, *GENERAL_MODELS):
        if not wanted:
            continue
        # A key ("c3:M2-her") names one connection; a name ("M2-her") any of them.
        name = wanted.split(":", 1)[-1]
        for option in options:
            if wanted == option.key:
                return option
        for option in options:
            if name == option.upstream_model:
                return option
    general = [option for option in options if option.upstream_model != "M2-her"]
    return (general or options or [None])[0]


def find(options: list[ModelOption], key: str) -> ModelOption | None:
    return next((option for option in options if option.key == key), None)


def get_model(key: str) -> ModelOption | None:
    return find(available_models(), key)


def peek_model(key: str) -> ModelOption | None:
    """The model as this process last loaded it, without loading anything (so safe on
    the event loop). None when it is gone, or when nothing is loaded: a saved
    connection or catalog row has just made this process forget the list."""
    cached = _cached
    return find(cached[1], key) if cached is not None else None


def _timeouts() -> Timeouts:
    return Timeouts(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        first_token=settings.UPSTREAM_FIRST_TOKEN_TIMEOUT,
        between_tokens=settings.UPSTREAM_IDLE_TIMEOUT,
        total=settings.UPSTREAM_TOTAL_TIMEOUT,
    )


def client_for(option: ModelOption) -> ChatClient:
    connection = option.connection
    headers: dict[str, str] = {}
    base_url = connection.base_url
    if connection.simulated:
        headers["x-simulator-pace"] = str(settings.DEMO_TOKENS_PER_SECOND)
        if settings.DEMO_REPLY_TOKENS:
            headers["x-simulator-length"] = str(settings.DEMO_REPLY_TOKENS)
        base_url = f"{demo_upstream_url()}{connection.base_url}"
    timeouts = _timeouts()
    transport: httpx.AsyncBaseTransport | None = None
    guarded = connection.guarded and not settings.UPSTREAM_ALLOW_PRIVATE
    if settings.UPSTREAM_KEEPALIVE_SECONDS > 0:
        transport = shared_pool(guarded=guarded)
    elif guarded:
        transport = GuardedTransport(verify=tls_context())
    kind = connection.kind
    if kind == catalog.MINIMAX_OPENAI:
        return MiniMaxOpenAIClient(
            base_url=base_url,
            api_key=connection.api_key,
            timeouts=timeouts,
            extra_headers=headers,
            transport=transport,
        )
    if kind == catalog.MINIMAX_ANTHROPIC:
        return MiniMaxAnthropicClient(
            base_url=base_url,
            api_key=connection.api_key,
            timeouts=timeouts,
            extra_headers=headers,
            transport=transport,
        )
    if kind == catalog.CLOUDFLARE:
        return CloudflareClient(
            api_token=connection.api_key,
            account_id=connection.account_id,
            base_url=base_url,
            gateway_id="" if connection.simulated else connection.gateway_id,
            style="openai" if connection.cloudflare_style == "openai" else "run",
            timeouts=timeouts,
            extra_headers=headers,
            transport=transport,
        )
    if kind == catalog.DASHSCOPE:
        return DashScopeClient(
            api_key=connection.api_key,
            base_url=base_url,
            workspace=connection.workspace,
            timeouts=timeouts,
            extra_headers=headers,
            transport=transport,
        )
    if kind == catalog.CLOUDSWAY:
        return CloudswayClient(
            api_key=connection.api_key,
            base_url=base_url,
            endpoint_path=connection.endpoint_path,
            timeouts=timeouts,
            extra_headers=headers,
            transport=transport,
        )
    raise ValueError(f"unknown API kind {kind!r}")


_shared_pools: dict[tuple[bool, float], SharedPool] = {}


def shared_pool(*, guarded: bool) -> SharedPool:
    """The process's upstream connections, kept between replies (public addresses
    only when ``guarded``)."""
    keepalive = settings.UPSTREAM_KEEPALIVE_SECONDS
    pool = _shared_pools.get((guarded, keepalive))
    if pool is not None:
        return pool  # every reply asks: the usual answer

    def build(keepalive: float) -> H1Transport:
        if guarded:
            return guarded_transport(verify=tls_context(), keepalive=keepalive)
        return asyncio_transport(verify=tls_context(), keepalive=keepalive)

    # Client construction may run on a database thread: setdefault keeps one per key.
    return _shared_pools.setdefault((guarded, keepalive), SharedPool(build, keepalive=keepalive))


async def close_upstream_connections() -> None:
    """Close the kept connections of the running loop (at shutdown)."""
    for pool in list(_shared_pools.values()):
        await pool.close()


def demo_upstream_url() -> str:
    if settings.DEMO_UPSTREAM_URL:
        return str(settings.DEMO_UPSTREAM_URL)
    from providers.simulator import background_simulator

    return background_simulator(tokens_per_second=settings.DEMO_TOKENS_PER_SECOND).base_url


def record_prompt_tokens(option: ModelOption, *, estimated: int, reported: int) -> None:
    """Calibrate the token estimate for this model with what the upstream counted."""
    from providers.clients.budget import calibrated_ratio

    ratio = calibrated_ratio(option.prompt_token_ratio, estimated=estimated, reported=reported)
    if ratio != option.prompt_token_ratio:
        CatalogModel.objects.filter(kind=option.connection.kind, name=option.upstream_model).update(
            prompt_token_ratio=ratio
        )
