import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import actions
from chat.models import Conversation, Message
from chat.tree import append

pytestmark = pytest.mark.django_db


def test_owner_sees_the_conversation_with_the_greeting(client_for, owner, conversation):
    response = client_for(owner).get(f"/c/{conversation.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "re the new navigator? Good." in html
    assert 'ws-connect="/ws/c/' in html
    assert 'aria-live="polite"' in html
    assert "Offline demo (simulated replies)" in html and "Simulated" in html


@pytest.mark.parametrize("who", ["teammate", "outsider_anonymous"])
def test_others_get_404(client_for, teammate, conversation, who):
    client = client_for(teammate) if who == "teammate" else client_for(None)
    response = client.get(f"/c/{conversation.pk}/")
    assert response.status_code == (404 if who == "teammate" else 302)


def test_missing_conversation_is_404(client_for, owner):
    assert client_for(owner).get("/c/999999/").status_code == 404


def test_new_chat_starts_a_conversation_with_persona_and_model(client_for, owner, persona):
    response = client_for(owner).post(
        "/c/new/", {"persona": persona.pk, "model": "demo:MiniMax-M2.7"}
    )
    conversation = Conversation.objects.get(owner=owner)
    assert response["Location"] == f"/c/{conversation.pk}/"
    assert conversation.persona == persona and conversation.model == "demo:MiniMax-M2.7"
    assert conversation.temperature == persona.temperature
    greeting = conversation.messages.get()
    assert greeting.role == "assistant" and greeting.content == persona.greeting


def test_new_chat_with_an_unknown_model_is_refused_clearly(client_for, owner):
    response = client_for(owner).post("/c/new/", {"model": "nope:nothing"})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_sidebar_lists_conversations_newest_first(client_for, owner):
    first = actions.create_conversation(user=owner, persona_id=None, model_key="demo:MiniMax-M2.7")
    second = actions.create_conversation(user=owner, persona_id=None, model_key="demo:MiniMax-M2.7")
    Conversation.objects.filter(pk=first.pk).update(title="Older")
    Conversation.objects.filter(pk=second.pk).update(title="Newer")
    html = client_for(owner).get("/").content.decode()
    assert html.index("Newer") < html.index("Older")


def test_sidebar_hides_other_peoples_conversations(client_for, owner, teammate, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(title="Owner's secret plan")
    html = client_for(teammate).get("/").content.decode()
    assert "secret plan" not in html


def test_chat_page_has_the_accessible_controls(client_for, owner, conversation):
    html = client_for(owner).get(f"/c/{conversation.pk}/").content.decode()
    assert '<label for="composer-input" class="visually-hidden">Message</label>' in html
    assert ">Send</button>" in html and ">Stop</button>" in html
    assert '<label for="new-chat-persona">Persona</label>' in html
    assert '<label for="new-chat-model">Model</label>' in html
    assert ">New chat</button>" in html


def test_conversation_page_query_count_does_not_grow_with_messages(client_for, owner, conversation):
    client = client_for(owner)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/c/{conversation.pk}/").status_code == 200
        return len(queries)

    baseline = count()
    for i, role in enumerate(["user", "assistant"] * 20):
        append(conversation, role=role, content=f"message {i}")
    assert count() == baseline


def test_reply_markdown_is_rendered_safely(client_for, owner, conversation):
    append(
        conversation,
        role="assistant",
        content="**bold** <script>alert(1)</script> [x](javascript:alert(1))",
    )
    html = client_for(owner).get(f"/c/{conversation.pk}/").content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert 'href="javascript:' not in html


def test_the_shipped_personas_include_a_full_role_play_persona():
    from chat.models import PersonaPreset

    mara = PersonaPreset.objects.get(name="Captain Mara Voss")
    filled = [
        mara.system_prompt,
        mara.character_name,
        mara.user_persona,
        mara.user_name,
        mara.scene,
        mara.greeting,
        mara.default_model,
    ]
    assert all(filled) and mara.examples.count() == 2
    assert mara.temperature and mara.top_p and mara.max_output_tokens
    assert PersonaPreset.objects.count() >= 3


def test_a_reply_whose_process_died_is_marked_interrupted(
    client_for, owner, conversation, settings
):
    from datetime import timedelta

    from django.utils import timezone

    reply = append(conversation, role="assistant", status="streaming", content="Half a")
    Message.objects.filter(pk=reply.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.REPLY_STALE_AFTER + 5)
    )
    html = client_for(owner).get(f"/c/{conversation.pk}/").content.decode()
    reply.refresh_from_db()
    assert reply.status == "interrupted" and reply.content == "Half a"
    assert "stopped before it finished" in html


def test_sending_to_a_conversation_whose_model_is_gone_is_refused(owner, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(model="minimax:MiniMax-M2.7")
    with pytest.raises(actions.ActionError, match="no longer available"):
        actions.send_message(user=owner, conversation_id=conversation.pk, text="Hello?")
    assert not conversation.messages.filter(role="user").exists()


def test_a_teammate_cannot_send_into_someone_elses_conversation(teammate, conversation):
    from django.http import Http404

    with pytest.raises(Http404):
        actions.send_message(user=teammate, conversation_id=conversation.pk, text="Hi")


def test_parameters_show_each_limit_next_to_its_control(client_for, owner, conversation):
    html = client_for(owner).get(f"/c/{conversation.pk}/").content.decode()
    assert "<summary>Parameters</summary>" in html
    assert "0 &lt; value ≤ 1" in html and "context window 204800 tokens" in html


def test_out_of_range_parameters_are_refused_with_the_limit_named(client_for, owner, conversation):
    client = client_for(owner)
    response = client.post(
        f"/c/{conversation.pk}/settings/",
        {"model": "demo:M2-her", "temperature": "1.5", "max_output_tokens": "512"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "Temperature must be 0 &lt; value ≤ 1 for M2-her" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.model == "demo:MiniMax-M2.7"  # nothing half-saved
    response = client.post(
        f"/c/{conversation.pk}/settings/",
        {"model": "demo:M2-her", "max_output_tokens": "4096"},
        HTTP_HX_REQUEST="true",
    )
    assert "at most 2,048 for M2-her" in response.content.decode()


def test_valid_parameters_are_saved(client_for, owner, conversation):
    response = client_for(owner).post(
        f"/c/{conversation.pk}/settings/",
        {
            "model": "demo-dashscope:abab6.5s-chat",
            "temperature": "0.1",
            "top_p": "0.9",
            "max_output_tokens": "3000",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "Saved." in response.content.decode()
    conversation.refresh_from_db()
    assert (conversation.model, conversation.temperature, conversation.max_output_tokens) == (
        "demo-dashscope:abab6.5s-chat",
        0.1,
        3000,
    )


def test_a_teammate_cannot_change_someone_elses_parameters(client_for, teammate, conversation):
    response = client_for(teammate).post(
        f"/c/{conversation.pk}/settings/", {"model": "demo:M2-her"}
    )
    assert response.status_code == 404


def test_static_files_are_cache_busted_compressed_and_cached_for_long(tmp_path, settings):
    import re

    from django.core.management import call_command
    from django.test import Client

    from project.static import CompressedStaticFiles

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    url = CompressedStaticFiles().url("chat/chat.css")
    assert re.fullmatch(r"/static/chat/chat\.[0-9a-f]{12}\.css", url)
    assert (tmp_path / f"{url.removeprefix('/static/')}.gz").exists()
    response = Client().get(url, headers={"accept-encoding": "gzip"})
    response.close()  # WhiteNoise streams the file
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert "immutable" in response["Cache-Control"]
