"""Create or update provider connections from environment variables (config as code)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from providers import catalog
from providers.crypto import UndecryptableSecret
from providers.models import ProviderConnection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvConnection:
    marker: str
    name: str
    kind: str
    base_url: str
    api_key: str
    extra: dict[str, str] = field(default_factory=dict)


def env_connections() -> list[EnvConnection]:
    s = settings
    found: list[EnvConnection] = []
    if s.MINIMAX_API_KEY:
        found.append(
            EnvConnection(
                "MINIMAX_OPENAI",
                "MiniMax (env)",
                catalog.MINIMAX_OPENAI,
                f"{s.MINIMAX_BASE_URL}/v1",
                s.MINIMAX_API_KEY,
            )
        )
        found.append(
            EnvConnection(
                "MINIMAX_ANTHROPIC",
                "MiniMax Anthropic API (env)",
                catalog.MINIMAX_ANTHROPIC,
                f"{s.MINIMAX_BASE_URL}/anthropic",
                s.MINIMAX_API_KEY,
            )
        )
    if s.CLOUDFLARE_API_TOKEN:
        found.append(
            EnvConnection(
                "CLOUDFLARE",
                "Cloudflare Workers AI (env)",
                catalog.CLOUDFLARE,
                s.CLOUDFLARE_BASE_URL,
                s.CLOUDFLARE_API_TOKEN,
                {"account_id": s.CLOUDFLARE_ACCOUNT_ID, "gateway_id": s.CLOUDFLARE_AI_GATEWAY},
            )
        )
    if s.DASHSCOPE_API_KEY:
        found.append(
            EnvConnection(
                "DASHSCOPE",
                "DashScope (env)",
                catalog.DASHSCOPE,
                s.DASHSCOPE_BASE_URL,
                s.DASHSCOPE_API_KEY,
                {"workspace": s.DASHSCOPE_WORKSPACE},
            )
        )
    if s.CLOUDSWAY_API_KEY:
        found.append(
            EnvConnection(
                "CLOUDSWAY",
                "Cloudsway (env)",
                catalog.CLOUDSWAY,
                s.CLOUDSWAY_BASE_URL,
                s.CLOUDSWAY_API_KEY,
                {"endpoint_path": s.CLOUDSWAY_ENDPOINT_PATH},
            )
        )
    return found


@transaction.atomic
def _stored_key(connection: ProviderConnection) -> str | None:
    try:
        return connection.api_key()
    except UndecryptableSecret:
        # SECRET_KEY or ENCRYPTION_KEYS changed. The environment holds this key, so it
        # is simply stored again under the current keys.
        logger.warning(
            "Connection %r: the stored API key could not be decrypted with ENCRYPTION_KEYS "
            "(or SECRET_KEY); storing the key from the environment again.",
            connection.name,
        )
        return None


def sync_env_connections() -> list[str]:
    """Make env-managed connections match the environment; return what changed."""
    changes: list[str] = []
    wanted = {item.marker: item for item in env_connections()}
    for item in wanted.values():
        connection = ProviderConnection.objects.filter(managed_by_env=item.marker).first()
        created = connection is None
        if connection is None:
            connection = ProviderConnection(managed_by_env=item.marker)
        connection.name = item.name
        connection.kind = item.kind
        connection.base_url = item.base_url
        connection.enabled = True
        for attribute, value in item.extra.items():
            setattr(connection, attribute, value)
        if created or _stored_key(connection) != item.api_key:
            connection.set_api_key(item.api_key)
        connection.save()
        changes.append(f"{'created' if created else 'updated'} {item.name}")
    stale = (
        ProviderConnection.objects.exclude(managed_by_env="")
        .exclude(managed_by_env__in=list(wanted))
        .filter(enabled=True)
    )
    for connection in stale:
        connection.enabled = False
        connection.save(update_fields=["enabled", "updated_at"])
        changes.append(f"disabled {connection.name} (its variables are gone)")
    return changes
