"""A new chat starts on the right model: the persona's, else the site's default, else
the newest general model (never the 2,048-token role-play model by accident)."""

from __future__ import annotations

import pytest
from django.test import Client

from chat.models import PersonaPreset
from providers import registry

pytestmark = pytest.mark.django_db


def _option(key, name):
    return registry.ModelOption(
        key=key,
        label=name,
        upstream_model=name,
        connection=None,  # type: ignore[arg-type]
        spec=None,  # type: ignore[arg-type]
    )


OPTIONS = [
    _option("c1:M2-her", "M2-her"),
    _option("c1:MiniMax-M2.5", "MiniMax-M2.5"),
    _option("c1:MiniMax-M2.7", "MiniMax-M2.7"),
    _option("c2:minimax/m2.7", "minimax/m2.7"),
]


def test_the_default_is_the_newest_general_model_not_m2_her():
    assert registry.default_option(OPTIONS).key == "c1:MiniMax-M2.7"
    assert registry.default_option(OPTIONS[:2]).key == "c1:MiniMax-M2.5"
    assert registry.default_option(OPTIONS[:1]).key == "c1:M2-her"  # the only one


def test_a_persona_or_the_site_setting_chooses_first(settings):
    assert registry.default_option(OPTIONS, "M2-her").key == "c1:M2-her"
    assert registry.default_option(OPTIONS, "minimax:M2-her").key == "c1:M2-her"
    settings.DEFAULT_MODEL = "minimax/m2.7"
    assert registry.default_option(OPTIONS).key == "c2:minimax/m2.7"
    assert registry.default_option(OPTIONS, "no-such-model").key == "c2:minimax/m2.7"


def test_the_picker_carries_each_personas_model_and_description(client_for, owner, persona):
    persona.default_model = "M2-her"
    persona.description = "A starship captain with a past."
    persona.save()
    html = client_for(owner).get("/").content.decode()
    assert 'data-model="demo:M2-her"' in html
    assert 'data-description="A starship captain with a past."' in html
    assert '<option value="demo:MiniMax-M2.7" selected>' in html


def test_the_shipped_persona_starts_on_m2_her(client_for, owner):
    captain = PersonaPreset.objects.get(name="Captain Mara Voss")
    assert captain.default_model == "M2-her"
    html = client_for(owner).get("/").content.decode()
    start = html.index(f'value="{captain.pk}"')
    assert 'data-model="demo:M2-her"' in html[start - 200 : start + 300]


def test_the_admin_refuses_a_default_model_outside_the_catalog(owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client = Client()
    client.force_login(owner)
    data = {
        "name": "Navigator",
        "position": 0,
        "default_model": "gpt-nothing",
        "examples-TOTAL_FORMS": 0,
        "examples-INITIAL_FORMS": 0,
    }
    response = client.post("/admin/chat/personapreset/add/", data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not PersonaPreset.objects.filter(name="Navigator").exists()
    data["default_model"] = "M2-her"
    response = client.post("/admin/chat/personapreset/add/", data)
    assert response.status_code == 302
    assert PersonaPreset.objects.get(name="Navigator").default_model == "M2-her"
