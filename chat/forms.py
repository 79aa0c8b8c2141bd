from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext, gettext_lazy

from chat.i18n import translated_error
from chat.models import PersonaPreset, User
from chat.permissions import personas_for
from providers import registry
from providers.clients.errors import LimitExceededError
from providers.clients.limits import check_limits
from providers.clients.types import ChatRequest
from providers.models import CatalogModel


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ("username",)


class PersonaSelect(forms.Select):
    """Each persona option carries its description and the model it starts on, so the
    picker can show one and select the other (chat.js)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extras: dict[str, dict[str, str]] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):  # type: ignore[no-untyped-def]
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        option["attrs"].update(self.extras.get(str(getattr(value, "value", value)), {}))
        return option


class NewChatForm(forms.Form):
    persona = forms.ModelChoiceField(
        queryset=PersonaPreset.objects.all(),
        required=False,
        empty_label=gettext_lazy("No persona"),
        widget=PersonaSelect(attrs={"id": "new-chat-persona"}),
    )
    model = forms.ChoiceField(
        choices=(), widget=forms.Select(attrs={"id": "new-chat-model", "data-model-picker": ""})
    )

    def __init__(
        self, *args: Any, options: list[registry.ModelOption], user: User, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        personas = personas_for(user)
        self.fields["persona"].queryset = personas
        self.fields["model"].choices = model_choices(options)
        default = registry.default_option(options)
        if default is not None and not self.is_bound:
            self.initial.setdefault("model", default.key)
        widget = self.fields["persona"].widget
        widget.extras = {"": {"data-model": default.key if default else ""}}
        for persona in personas.only("pk", "description", "default_model"):
            chosen = registry.default_option(options, persona.default_model)
            widget.extras[str(persona.pk)] = {
                "data-model": chosen.key if chosen else "",
                "data-description": persona.description,
            }


def model_choices(options: list[registry.ModelOption]) -> list[tuple[str, Any]]:
    """Options grouped by connection, for an <optgroup> per account."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for option in options:
        groups.setdefault(option.group, []).append((option.key, option.label))
    return list(groups.items())


class ConversationSettingsForm(forms.Form):
    """The model and sampling parameters of one conversation, checked against the
    model's documented limits: out-of-range values are refused, never clamped."""

    model = forms.ChoiceField(choices=(), widget=forms.Select(attrs={"id": "settings-model"}))
    temperature = forms.FloatField(
        label=gettext_lazy("Temperature"),
        required=False,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
    )
    top_p = forms.FloatField(
        label=gettext_lazy("Top-p"),
        required=False,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
    )
    max_output_tokens = forms.IntegerField(label=gettext_lazy("Max output tokens"), required=False)

    def __init__(self, *args: Any, options: list[registry.ModelOption], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = {option.key: option for option in options}
        self.fields["model"].choices = model_choices(options)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        option = self.options.get(data.get("model", ""))
        if option is None:
            return data
        request = ChatRequest(
            model=option.upstream_model,
            messages=(),
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            max_output_tokens=data.get("max_output_tokens"),
        )
        try:
            check_limits(request, option.spec, api=option.connection.api_label)
        except LimitExceededError as error:
            raise forms.ValidationError(translated_error(str(error))) from None
        return data


class PersonaPresetForm(forms.ModelForm):
    """The default model is picked from the catalog, so it always exists."""

    default_model = forms.ChoiceField(
        label=gettext_lazy("Default model"),
        required=False,
        help_text=gettext_lazy(
            "The model a new chat with this persona starts on. Empty: the site's default."
        ),
    )

    class Meta:
        model = PersonaPreset
        fields = ("default_model",)  # the admin adds the fieldsets' fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = sorted(set(CatalogModel.objects.values_list("name", flat=True)))
        current = self.instance.default_model if self.instance else ""
        choices = [("", gettext("Site default")), *((name, name) for name in names)]
        if current and current not in names:
            choices.append(
                (current, gettext("%(name)s (no longer in the catalog)") % {"name": current})
            )
        self.fields["default_model"].choices = choices

    def clean_default_model(self) -> str:
        value: str = self.cleaned_data["default_model"]
        if value and not CatalogModel.objects.filter(name=value).exists():
            raise forms.ValidationError(gettext("Pick a model from the catalog."))
        return value


class CharacterCardForm(forms.Form):
    card = forms.FileField(
        label=gettext_lazy("Character card"),
        help_text=gettext_lazy("A Tavern card, V1 to V3: a PNG with the card inside, or its JSON."),
    )


class PrivatePersonaForm(PersonaPresetForm):
    """A user's own persona: the admin's fields, minus who may use it."""

    class Meta:
        model = PersonaPreset
        fields = (
            "name",
            "description",
            "system_prompt",
            "character_name",
            "user_persona",
            "user_name",
            "scene",
            "greeting",
            "default_model",
            "temperature",
            "top_p",
            "max_output_tokens",
        )
        widgets = {"description": forms.TextInput()}
        labels = {
            "name": gettext_lazy("Name"),
            "description": gettext_lazy("Description"),
            "system_prompt": gettext_lazy("System prompt"),
            "character_name": gettext_lazy("Character name"),
            "user_persona": gettext_lazy("Who you play"),
            "user_name": gettext_lazy("Your name in the story"),
            "scene": gettext_lazy("Scene"),
            "greeting": gettext_lazy("Greeting"),
            "default_model": gettext_lazy("Default model"),
            "temperature": gettext_lazy("Temperature"),
            "top_p": gettext_lazy("Top-p"),
            "max_output_tokens": gettext_lazy("Max output tokens"),
        }
        help_texts = {
            "description": gettext_lazy("Shown under the persona picker."),
            "system_prompt": gettext_lazy("Who the model plays and how."),
            "character_name": gettext_lazy("The model's speaker name in role-play."),
            "user_persona": gettext_lazy("Who the user plays."),
            "user_name": gettext_lazy("The user's speaker name."),
            "scene": gettext_lazy("The scene, conversation or group name."),
            "greeting": gettext_lazy("The first message, from the persona."),
        }
