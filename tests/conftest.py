"""Shared fixtures: owner / teammate / outsider, sockets, and service checks.

The integration tests run twice: on SQLite with the in-memory layer, then (make
test-integration) on PostgreSQL and Redis. Where a service or Chromium is missing they
skip and say why; under CI=true a missing service fails the run instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import translation

from chat import actions
from chat.models import Conversation, PersonaPreset, User

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = "/usr/bin/chromium"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _missing_services() -> list[str]:
    missing = []
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith("postgres") and not _reachable(database_url, 5432):
        missing.append(f"PostgreSQL is not reachable at {urlsplit(database_url).netloc}")
    redis_url = os.environ.get("REDIS_URL", "")
    if redis_url and not _reachable(redis_url, 6379):
        missing.append(f"Redis is not reachable at {urlsplit(redis_url).netloc}")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing_services()
    if missing:
        if CI:
            raise pytest.UsageError("CI=true but " + "; ".join(missing))
        skip = pytest.mark.skip(reason="; ".join(missing))
        for item in items:
            item.add_marker(skip)
        return
    if not os.path.exists(CHROMIUM):
        if CI:
            raise pytest.UsageError(f"CI=true but Chromium is missing at {CHROMIUM}")
        skip = pytest.mark.skip(reason=f"Chromium is not installed at {CHROMIUM}")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Throttling counters, the models and quotas a process keeps for a few seconds, and
    the conversations' next turns must not carry over from one test to the next (a
    flush sends no signals, and ids come back)."""
    from django.core.cache import cache

    from chat.actions.conversations import forget_next_turns
    from chat.actions.quotas import forget_quotas
    from providers.registry import forget_models

    cache.clear()
    forget_models()
    forget_quotas()
    forget_next_turns()
    yield
    forget_models()
    forget_quotas()
    forget_next_turns()
    # Django's LocaleMiddleware activates a page's language in the thread that served
    # it, which is the test's own for the test client: a Chinese page must not leave
    # the next test rendering in Chinese.
    translation.deactivate()


def _make_user(username: str, *, approved: bool = True) -> User:
    return User.objects.create_user(
        username=username, password="s3cret-pass-word", is_approved=approved
    )


@pytest.fixture
def owner(db: None) -> User:
    return _make_user("owner")


@pytest.fixture
def teammate(db: None) -> User:
    return _make_user("teammate")


@pytest.fixture
def outsider(db: None) -> User:
    """Signed up, but not approved: may not see anything."""
    return _make_user("outsider", approved=False)


@pytest.fixture
def persona(db: None) -> PersonaPreset:
    """A role-play persona using every field (transactional tests flush shipped data)."""
    preset = PersonaPreset.objects.create(
        name="Test captain",
        system_prompt="You are Captain Mara Voss of the Kestrel.",
        character_name="Mara",
        user_persona="A new navigator",
        user_name="Navigator",
        scene="The Kestrel's bridge",
        greeting="You're the new navigator? Good.",
        temperature=0.9,
        top_p=0.95,
        max_output_tokens=1024,
    )
    preset.examples.create(position=0, user_text="A beacon!", assistant_text="Bait, probably.")
    return preset


@pytest.fixture
def conversation(owner: User, persona: PersonaPreset) -> Conversation:
    return actions.create_conversation(
        user=owner, persona_id=persona.pk, model_key="demo:MiniMax-M2.7"
    )


@pytest.fixture
def client_for() -> Iterator[object]:
    def make(user: User | None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    yield make


@pytest.fixture
def simulator():  # type: ignore[no-untyped-def]
    from providers.registry import demo_upstream_url
    from providers.simulator import background_simulator

    demo_upstream_url()
    sim = background_simulator()
    yield sim
    sim.clear_faults()


def _session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@pytest.fixture
async def connect() -> AsyncIterator[object]:
    """Open sockets through the real ASGI stack (origin check, session auth, routing)."""
    from project.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        user: User | None, conversation_id: int, *, origin: str = "http://127.0.0.1"
    ) -> tuple[WebsocketCommunicator, bool]:
        headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
        if user is not None:
            cookie = await database_sync_to_async(_session_cookie)(user)
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(
            application, f"/ws/c/{conversation_id}/", headers=headers
        )
        connected, _ = await communicator.connect(timeout=5)
        opened.append(communicator)
        return communicator, connected

    yield open_socket
    await actions.wait_for_running_replies()
    for communicator in opened:
        await communicator.disconnect()
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        await layer.flush()


@pytest.fixture
def fast_frames(settings):  # type: ignore[no-untyped-def]
    settings.REPLY_FRAME_INTERVAL = 0.02
    return settings


@pytest.fixture
async def sim():  # type: ignore[no-untyped-def]
    """A fresh simulator on this test's event loop."""
    from providers.simulator import Simulator

    simulator = Simulator(tokens_per_second=3000)
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
def make_next_turn_stale():  # type: ignore[no-untyped-def]
    """Another process changed a conversation behind this one's back: what this process
    remembers about its next turn (``chat.actions.early``) no longer matches it."""
    from chat.actions import conversations

    async def stale(conversation: Conversation) -> None:
        remembered = conversations.next_turn(conversation.pk)
        assert remembered is not None
        conversations.remember_next_turn(conversation.pk, remembered.followed_by())
        await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(
            temperature=0.2
        )

    return stale
