"""Who may use which personas and models: per Django group, "everyone" by default, and
private personas. The pickers, every view and the socket's actions apply one rule.

The access matrix: a group member, a non-member, the owner of a private persona, and
another user."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group

from chat import actions
from chat.models import Conversation, PersonaPreset, SiteSettings, User
from chat.permissions import may_use_persona, model_for, models_for, personas_for
from providers import catalog
from providers.models import CatalogModel
from providers.registry import forget_models
from tests.access import restrict_model
from tests.streams import is_final, receive_until

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

HER = "demo:M2-her"
GENERAL = "demo:MiniMax-M2.7"


@pytest.fixture
def crew(owner):
    crew = Group.objects.create(name="crew")
    owner.groups.add(crew)  # the owner is the member
    captain = PersonaPreset.objects.create(name="Crew captain", greeting="Aboard!")
    captain.groups.add(crew)
    CatalogModel.objects.get(kind=catalog.MINIMAX_OPENAI, name="M2-her").groups.add(crew)
    forget_models()
    return crew, captain


@pytest.fixture
def stranger(db):
    return User.objects.create_user("stranger", password="s3cret-pass-word", is_approved=True)


def test_everyone_may_use_what_has_no_groups(owner, stranger):
    assert {o.key for o in models_for(stranger)} == {o.key for o in models_for(owner)}
    assert set(personas_for(stranger)) == set(personas_for(owner))


def test_a_send_checks_a_persona_by_the_same_rule_as_the_pickers(crew, owner, stranger):
    """The send path checks the persona its conversation already loaded; every user and
    persona of the access matrix gets the answer ``personas_for`` gives."""
    group, captain = crew
    boss = User.objects.create_superuser("boss", password="b0ss-pass-word", is_approved=True)
    personas = [
        None,
        PersonaPreset.objects.create(name="Open to all"),
        captain,  # the crew's
        PersonaPreset.objects.create(name="Owner's own", owner=owner),
        PersonaPreset.objects.create(name="Stranger's own", owner=stranger),
    ]
    for user in (owner, stranger, boss):
        user = User.objects.get(pk=user.pk)
        for persona in personas:
            expected = persona is None or personas_for(user).filter(pk=persona.pk).exists()
            assert may_use_persona(user, persona) == expected, (user, persona)
    assert not may_use_persona(User.objects.get(pk=stranger.pk), captain)
    assert may_use_persona(User.objects.get(pk=owner.pk), captain)


def test_the_pickers_show_a_member_what_their_group_may_use_and_no_one_else(
    crew, client_for, owner, stranger
):
    _, captain = crew
    member_page = client_for(owner).get("/").content.decode()
    stranger_page = client_for(stranger).get("/").content.decode()
    assert "Crew captain" in member_page and f'value="{HER}"' in member_page
    assert "Crew captain" not in stranger_page and f'value="{HER}"' not in stranger_page
    assert f'value="{GENERAL}"' in stranger_page  # the rest stays everyone's


def test_a_non_member_cannot_start_a_chat_with_them_by_view_or_action(crew, client_for, stranger):
    _, captain = crew
    client = client_for(stranger)
    client.post("/c/new/", {"persona": captain.pk, "model": GENERAL})
    client.post("/c/new/", {"persona": "", "model": HER})
    assert not Conversation.objects.filter(owner=stranger).exists()
    with pytest.raises(actions.ActionError, match="Pick a model from the list."):
        actions.create_conversation(user=stranger, persona_id=None, model_key=HER)
    with pytest.raises(actions.ActionError, match="That persona no longer exists."):
        actions.create_conversation(user=stranger, persona_id=captain.pk, model_key=GENERAL)


def test_a_non_member_cannot_switch_a_chat_to_a_group_model(crew, stranger):
    chat = actions.create_conversation(user=stranger, persona_id=None, model_key=GENERAL)
    with pytest.raises(actions.ActionError, match="Pick a model from the list."):
        actions.update_conversation_settings(
            user=stranger,
            conversation_id=chat.pk,
            model_key=HER,
            temperature=None,
            top_p=None,
            max_output_tokens=None,
        )


def test_leaving_the_group_stops_sending_in_its_chats_with_a_sentence(crew, owner):
    group, captain = crew
    chat = actions.create_conversation(user=owner, persona_id=captain.pk, model_key=HER)
    owner.groups.remove(group)
    owner = User.objects.get(pk=owner.pk)  # a fresh request: group ids read again
    with pytest.raises(actions.ActionError, match="model is no longer available"):
        actions.send_message(user=owner, conversation_id=chat.pk, text="Still there?")
    actions.update_conversation_settings(
        user=owner,
        conversation_id=chat.pk,
        model_key=GENERAL,
        temperature=None,
        top_p=None,
        max_output_tokens=None,
    )
    with pytest.raises(actions.ActionError, match="persona is no longer available to you"):
        actions.send_message(user=owner, conversation_id=chat.pk, text="Still there?")


def test_a_superuser_may_use_everything(crew, stranger):
    stranger.is_superuser = True
    assert model_for(stranger, HER) is not None
    assert personas_for(stranger).filter(name="Crew captain").exists()


class TestPrivatePersonas:
    @pytest.fixture
    def allowed(self, db):
        settings = SiteSettings.current()
        settings.users_create_personas = True
        settings.save()

    FIELDS = {"name": "My muse", "description": "Mine only", "system_prompt": "Be brief."}

    def test_refused_until_the_site_allows_them(self, client_for, owner):
        response = client_for(owner).post("/personas/new/", self.FIELDS)
        assert response.status_code == 422
        assert "Private personas are not enabled here." in response.content.decode()
        assert not PersonaPreset.objects.filter(name="My muse").exists()

    def test_the_owner_alone_sees_and_uses_a_private_persona(
        self, allowed, client_for, owner, stranger
    ):
        response = client_for(owner).post("/personas/new/", self.FIELDS)
        assert response.status_code == 302
        muse = PersonaPreset.objects.get(name="My muse", owner=owner)
        assert "My muse" in client_for(owner).get("/").content.decode()
        assert "My muse" not in client_for(stranger).get("/").content.decode()
        with pytest.raises(actions.ActionError):
            actions.create_conversation(user=stranger, persona_id=muse.pk, model_key=GENERAL)
        chat = actions.create_conversation(user=owner, persona_id=muse.pk, model_key=GENERAL)
        assert chat.persona == muse
        # Another user's private persona is not found, for viewing, editing or deleting.
        other = client_for(stranger)
        assert other.get(f"/personas/{muse.pk}/").status_code == 404
        assert other.post(f"/personas/{muse.pk}/", self.FIELDS).status_code == 404
        assert other.post(f"/personas/{muse.pk}/delete/").status_code == 404
        assert PersonaPreset.objects.filter(pk=muse.pk).exists()

    def test_names_are_unique_per_owner_with_a_clear_error(
        self, allowed, client_for, owner, stranger
    ):
        client_for(owner).post("/personas/new/", self.FIELDS)
        again = client_for(owner).post("/personas/new/", self.FIELDS)
        assert again.status_code == 422
        assert "You have a persona named “My muse” already." in again.content.decode()
        # The same name is someone else's own business.
        assert client_for(stranger).post("/personas/new/", self.FIELDS).status_code == 302

    def test_the_default_model_is_validated_as_in_the_admin(self, allowed, client_for, owner):
        response = client_for(owner).post(
            "/personas/new/", {**self.FIELDS, "default_model": "gpt-imaginary"}
        )
        assert response.status_code == 422
        assert not PersonaPreset.objects.filter(name="My muse").exists()

    def test_a_user_imports_a_card_as_a_private_persona(self, allowed, client_for, owner):
        from pathlib import Path

        from django.core.files.uploadedfile import SimpleUploadedFile

        card = (Path(__file__).parent / "fixtures" / "cards" / "lin_v2.json").read_bytes()
        upload = SimpleUploadedFile("lin.json", card, content_type="application/json")
        response = client_for(owner).post("/personas/import/", {"card": upload}, follow=True)
        assert "Imported “Archivist Lin” from the card." in response.content.decode()
        assert PersonaPreset.objects.get(name="Archivist Lin").owner == owner

    def test_deleting_keeps_the_conversations(self, allowed, client_for, owner):
        client_for(owner).post("/personas/new/", self.FIELDS)
        muse = PersonaPreset.objects.get(name="My muse")
        chat = actions.create_conversation(user=owner, persona_id=muse.pk, model_key=GENERAL)
        assert client_for(owner).post(f"/personas/{muse.pk}/delete/").status_code == 302
        chat.refresh_from_db()
        assert chat.persona is None


async def _refused_send(socket, client_id: str) -> str:  # type: ignore[no-untyped-def]
    """Send on the socket; the error frame that refuses this message."""
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": "Hello?", "client_id": client_id})
    )
    return await receive_until(socket, lambda f: f'data-refused="{client_id}"' in f)


async def _user_messages(chat: Conversation) -> int:
    return await database_sync_to_async(chat.messages.filter(role="user").count)()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_refuses_a_model_the_user_may_no_longer_use(connect, owner):
    def setup():
        crew = Group.objects.create(name="crew")
        owner.groups.add(crew)
        restrict_model("M2-her", crew)
        chat = actions.create_conversation(user=owner, persona_id=None, model_key=HER)
        owner.groups.remove(crew)
        return chat

    chat = await database_sync_to_async(setup)()
    socket, _ = await connect(owner, chat.pk)
    assert "no longer available" in await _refused_send(socket, "a-1")
    assert await _user_messages(chat) == 0


def test_an_imported_conversation_takes_the_users_own_persona_of_that_name(owner, stranger):
    shared = PersonaPreset.objects.create(name="Muse", greeting="Shared hello")
    own = PersonaPreset.objects.create(name="Muse", owner=owner, greeting="My hello")
    PersonaPreset.objects.create(name="Muse", owner=stranger)  # someone else's: never
    chat = actions.create_conversation(user=owner, persona_id=shared.pk, model_key=GENERAL)
    exported = actions.export_conversation(user=owner, conversation_id=chat.pk, fmt="json")
    (copy,) = actions.import_conversations(user=owner, raw=exported.body.encode())
    assert copy.persona == own
    (theirs,) = actions.import_conversations(user=stranger, raw=exported.body.encode())
    assert theirs.persona.owner == stranger


@pytest.mark.django_db(transaction=True)
async def test_an_open_socket_stops_sending_once_its_user_leaves_the_group(connect, owner):
    """The socket's user lives as long as the socket: what it may use is read afresh
    for each send, not remembered from the first."""

    def setup():
        crew = Group.objects.create(name="crew")
        owner.groups.add(crew)
        restrict_model("M2-her", crew)
        return crew, actions.create_conversation(user=owner, persona_id=None, model_key=HER)

    crew, chat = await database_sync_to_async(setup)()
    socket, _ = await connect(owner, chat.pk)
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": "Hello?", "client_id": "a-1"})
    )
    await receive_until(socket, lambda f: 'data-ack="a-1"' in f)
    reply = await database_sync_to_async(chat.messages.filter(role="assistant").last)()
    await receive_until(socket, is_final(reply.pk), within=20)

    await database_sync_to_async(owner.groups.remove)(crew)
    assert "no longer available" in await _refused_send(socket, "a-2")
    assert await _user_messages(chat) == 1
