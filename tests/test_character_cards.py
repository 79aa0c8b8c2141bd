"""Tavern character cards (V1, V2, V3; PNG and JSON) become personas in the admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat import actions
from chat.cards import CardError, read_card
from chat.models import PersonaPreset
from providers.clients.persona import native_messages
from providers.clients.types import ExampleTurn, Persona

pytestmark = pytest.mark.django_db

CARDS = Path(__file__).parent / "fixtures" / "cards"


def _card(name: str) -> bytes:
    return (CARDS / name).read_bytes()


def test_a_v2_png_card_maps_onto_persona_fields_and_m2_her_roles():
    card = read_card(_card("mara_v2.png"))
    assert card.name == card.character_name == "Captain Mara Voss"
    assert card.system_prompt.startswith("Stay in character as Captain Mara Voss. Never speak")
    assert "commands the airship Kestrel" in card.system_prompt
    assert "personality: dry humour" in card.system_prompt
    assert "Keep replies under 150 words." in card.system_prompt
    assert "{{" not in card.system_prompt + card.greeting + card.scene
    assert card.scene.startswith("User has just signed on")
    assert card.greeting.startswith("*Mara looks up from the charts.*")
    assert card.description == (
        "A swashbuckling airship captain for adventure role-play. Works best with short replies."
    )
    assert card.examples == [
        ("What's our heading?", "West by south-west, until the storm says otherwise."),
        ("Why the Kestrel?", "Because she's fast,\nand because she came cheap."),
        ("Cheap?", "Don't ask."),
    ]
    assert any("2 alternate greetings" in note for note in card.notes)
    assert any("lorebook" in note for note in card.notes)
    roles = native_messages(
        Persona(
            system_prompt=card.system_prompt,
            character_name=card.character_name,
            user_name=card.user_name,
            scene=card.scene,
            examples=tuple(ExampleTurn(u, a) for u, a in card.examples),
        )
    )
    assert [m["role"] for m in roles][:4] == [
        "system",
        "group",
        "sample_message_user",
        "sample_message_ai",
    ]


def test_a_v3_png_prefers_its_ccv3_chunk():
    card = read_card(_card("mara_v3.png"))
    assert card.name == "Captain Mara Voss" and card.character_name == "Mara"
    assert card.greeting.startswith("*Mara looks up")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("lin_v2.json", "Archivist Lin"), ("tom_v1.json", "Old Tom")],
)
def test_json_cards_v2_and_v1_are_read(name, expected):
    card = read_card(_card(name))
    assert card.name == expected and card.greeting
    if name == "tom_v1.json":
        assert card.greeting == ("Sit down, User, and I'll tell you about the one that got away.")
        assert card.examples == [("Was it big?", "Bigger than this boat!")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_card("no_card.png"), "no “chara” or “ccv3” text chunk"),
        (_card("bad_base64.png"), "not valid base64"),
        (_card("mara_v2.png")[:200], "cut short"),
        (b"GIF89a....", "neither a PNG character card nor card JSON"),
        (b'{"spec": "chara_card_v9", "data": {}}', "Unknown card format"),
        (b'{"spec": "chara_card_v2"}', "has no “data” object"),
        (b'{"spec": "chara_card_v2", "data": {"name": ""}}', "has no name"),
        (b'{"name": "X", "first_mes": 12}', "“first_mes” is not text"),
        (b"[1, 2]", "not an object"),
    ],
)
def test_a_malformed_card_is_refused_with_what_is_wrong(data, problem):
    with pytest.raises(CardError, match=problem):
        read_card(data)


def test_importing_stores_the_persona_whole_and_numbers_a_taken_name():
    PersonaPreset.objects.filter(name__startswith="Captain Mara").delete()  # the seeded one
    first = actions.import_character_card(data=_card("mara_v2.png"))
    assert first.persona.name == "Captain Mara Voss" and first.persona.user_name == "User"
    assert first.persona.examples.count() == 3
    again = actions.import_character_card(data=_card("mara_v2.png"))
    assert again.persona.name == "Captain Mara Voss (2)"
    assert any("exists already" in note for note in again.notes)
    before = PersonaPreset.objects.count()
    with pytest.raises(actions.ActionError):
        actions.import_character_card(data=_card("no_card.png"))
    assert PersonaPreset.objects.count() == before


@pytest.fixture
def admin_user(owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    return owner


def test_the_admin_imports_a_card_and_shows_what_was_left_out(client_for, admin_user):
    client = client_for(admin_user)
    page = client.get("/admin/chat/personapreset/")
    assert "Import character card" in page.content.decode()
    upload = SimpleUploadedFile("mara.png", _card("mara_v3.png"), content_type="image/png")
    response = client.post("/admin/chat/personapreset/import-card/", {"card": upload}, follow=True)
    persona = PersonaPreset.objects.latest("pk")
    assert persona.character_name == "Mara" and persona.examples.count() == 3
    assert response.redirect_chain[-1][0] == f"/admin/chat/personapreset/{persona.pk}/change/"
    text = response.content.decode()
    assert f"Imported “{persona.name}” from the card." in text and "lorebook" in text


def test_the_admin_refuses_a_bad_card_in_the_form(client_for, admin_user):
    client = client_for(admin_user)
    upload = SimpleUploadedFile("x.png", _card("no_card.png"), content_type="image/png")
    response = client.post("/admin/chat/personapreset/import-card/", {"card": upload})
    assert response.status_code == 200
    assert "This PNG carries no character card" in response.content.decode()


def test_only_staff_reach_the_card_import(client_for, teammate):
    response = client_for(teammate).get("/admin/chat/personapreset/import-card/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
