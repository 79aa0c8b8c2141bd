"""Provider connections, the catalog and the registry, as admins and deployments use them."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from providers import catalog, registry
from providers.bootstrap import sync_env_connections
from providers.clients.cloudflare import CloudflareClient
from providers.clients.dashscope import DashScopeClient
from providers.models import CatalogModel, ProviderConnection

pytestmark = pytest.mark.django_db

SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz123456"


@pytest.fixture
def admin_client(client, owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client.force_login(owner)
    return client


def test_the_catalog_is_seeded_from_the_seed_documents():
    her = CatalogModel.objects.get(kind=catalog.MINIMAX_OPENAI, name="M2-her")
    assert (her.context_window, her.max_output_tokens, her.extra_roles) == (2048, 2048, True)
    abab = CatalogModel.objects.get(kind=catalog.DASHSCOPE, name="abab6.5s-chat")
    assert abab.temperature_default == 0.1 and abab.default_output_tokens > 256
    assert CatalogModel.objects.filter(kind=catalog.CLOUDSWAY).count() == 4


def test_api_keys_are_encrypted_at_rest():
    connection = ProviderConnection(
        name="Team", kind=catalog.MINIMAX_OPENAI, base_url="https://api.minimax.io/v1"
    )
    connection.set_api_key(SECRET)
    connection.save()
    stored = ProviderConnection.objects.values_list("api_key_encrypted", flat=True).get()
    assert SECRET not in stored
    assert ProviderConnection.objects.get().api_key() == SECRET


def test_keys_survive_rotation(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    connection = ProviderConnection(
        name="Team", kind=catalog.DASHSCOPE, base_url="https://x.example"
    )
    connection.set_api_key(SECRET)
    connection.save()
    settings.ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 1 API key(s)." in out.getvalue()
    settings.ENCRYPTION_KEYS = [new]
    assert ProviderConnection.objects.get().api_key() == SECRET


def test_an_admin_adds_a_connection_and_the_key_is_never_shown_again(admin_client):
    response = admin_client.post(
        "/admin/providers/providerconnection/add/",
        {
            "name": "Alibaba",
            "kind": catalog.DASHSCOPE,
            "region": "https://dashscope-intl.aliyuncs.com/api/v1",
            "base_url": "",
            "api_key": SECRET,
            "workspace": "ws_9",
            "cloudflare_style": "run",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = ProviderConnection.objects.get()
    assert connection.base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    page = admin_client.get(f"/admin/providers/providerconnection/{connection.pk}/change/")
    assert page.status_code == 200 and SECRET not in page.content.decode()
    listing = admin_client.get("/admin/providers/providerconnection/")
    assert SECRET not in listing.content.decode()


def test_saving_without_a_key_keeps_the_stored_one(admin_client):
    connection = ProviderConnection(
        name="Team", kind=catalog.MINIMAX_OPENAI, base_url="https://api.minimax.io/v1"
    )
    connection.set_api_key(SECRET)
    connection.save()
    response = admin_client.post(
        f"/admin/providers/providerconnection/{connection.pk}/change/",
        {
            "name": "Team renamed",
            "kind": catalog.MINIMAX_OPENAI,
            "base_url": "https://api.minimaxi.com/v1",
            "api_key": "",
            "cloudflare_style": "run",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.name == "Team renamed" and connection.api_key() == SECRET


def test_cloudflare_connections_need_an_account_id(admin_client):
    response = admin_client.post(
        "/admin/providers/providerconnection/add/",
        {
            "name": "CF",
            "kind": catalog.CLOUDFLARE,
            "base_url": "https://api.cloudflare.com/client/v4",
            "api_key": SECRET,
            "cloudflare_style": "run",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "Cloudflare needs the account id" in response.content.decode()
    assert not ProviderConnection.objects.exists()


def test_env_variables_create_update_and_disable_connections(settings):
    settings.MINIMAX_API_KEY = SECRET
    settings.DASHSCOPE_API_KEY = "ds-key-1234"
    settings.DASHSCOPE_WORKSPACE = "ws_1"
    sync_env_connections()
    kinds = set(ProviderConnection.objects.values_list("kind", flat=True))
    assert kinds == {catalog.MINIMAX_OPENAI, catalog.MINIMAX_ANTHROPIC, catalog.DASHSCOPE}
    anthropic = ProviderConnection.objects.get(kind=catalog.MINIMAX_ANTHROPIC)
    assert anthropic.base_url == "https://api.minimax.io/anthropic"
    settings.DASHSCOPE_API_KEY = "ds-key-5678"
    sync_env_connections()
    dashscope = ProviderConnection.objects.get(kind=catalog.DASHSCOPE)
    assert dashscope.api_key() == "ds-key-5678" and dashscope.workspace == "ws_1"
    settings.DASHSCOPE_API_KEY = ""
    sync_env_connections()
    dashscope.refresh_from_db()
    assert not dashscope.enabled
    assert ProviderConnection.objects.filter(enabled=True).count() == 2


def test_env_managed_connections_cannot_be_edited_in_the_admin(admin_client, settings):
    settings.MINIMAX_API_KEY = SECRET
    sync_env_connections()
    connection = ProviderConnection.objects.first()
    response = admin_client.post(
        f"/admin/providers/providerconnection/{connection.pk}/change/",
        {
            "name": "hijack",
            "kind": catalog.MINIMAX_OPENAI,
            "base_url": "https://evil.example",
            "enabled": "on",
        },
    )
    assert response.status_code == 403
    connection.refresh_from_db()
    assert connection.base_url == "https://api.minimax.io/v1"


def test_connections_offer_their_enabled_catalog_models(settings):
    settings.PARLEY_DEMO = False
    connection = ProviderConnection(
        name="CF",
        kind=catalog.CLOUDFLARE,
        base_url="https://api.cloudflare.com/client/v4",
        account_id="acct",
        gateway_id="gw",
    )
    connection.set_api_key(SECRET)
    connection.save()
    options = registry.available_models()
    assert [option.key for option in options] == [f"c{connection.pk}:minimax/m2.7"]
    client = registry.client_for(options[0])
    assert (
        isinstance(client, CloudflareClient)
        and "gateway.ai.cloudflare.com" in client.endpoint.base_url
    )
    CatalogModel.objects.filter(kind=catalog.CLOUDFLARE).update(enabled=False)
    registry.forget_models()  # a bulk update sends no signal; the admin saves rows
    assert registry.available_models() == []


def test_the_registry_builds_a_client_per_api(settings):
    settings.PARLEY_DEMO = False
    connection = ProviderConnection(
        name="DS",
        kind=catalog.DASHSCOPE,
        base_url="https://dashscope.aliyuncs.com/api/v1",
        workspace="ws",
    )
    connection.set_api_key(SECRET)
    connection.save()
    option = registry.get_model(f"c{connection.pk}:abab6.5t-chat")
    assert option.spec.context_window == 8192 and option.spec.temperature.default == 0.9
    client = registry.client_for(option)
    assert isinstance(client, DashScopeClient)
    assert client.endpoint.headers["X-DashScope-WorkSpace"] == "ws"


def test_the_demo_offers_every_api_and_labels_them_simulated():
    options = registry.available_models()
    kinds = {option.connection.kind for option in options if option.simulated}
    assert kinds == set(catalog.API_KINDS)
    assert all("simulated" in option.label for option in options if option.simulated)


def test_calibration_updates_the_models_ratio():
    option = registry.get_model("demo:MiniMax-M2.7")
    registry.record_prompt_tokens(option, estimated=1000, reported=600)
    row = CatalogModel.objects.get(kind=catalog.MINIMAX_OPENAI, name="MiniMax-M2.7")
    assert 0.6 < row.prompt_token_ratio < 1.0


def test_the_ask_command_streams_an_answer_with_reasoning_apart(capsys):
    call_command("ask", "Are you there?", model="demo-dashscope:MiniMax-M2.5")
    output = capsys.readouterr()
    assert output.out.startswith("Thinking: The user wrote")
    assert "\n\n" in output.out and "Received:" in output.out
    assert "[finished: stop (stop)" in output.err


def test_the_ask_command_closes_the_connections_it_kept(capsys, settings):
    settings.UPSTREAM_KEEPALIVE_SECONDS = 30.0
    call_command("ask", "Are you there?", model="demo:MiniMax-M2.7")

    assert "[finished: stop (stop)" in capsys.readouterr().err
    pool = registry.shared_pool(guarded=False)
    assert not any(pool._idle.values())  # its loop has ended: nothing left open for it
