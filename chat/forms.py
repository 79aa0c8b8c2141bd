from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from chat.models import PersonaPreset, User
from providers import registry
from providers.clients.errors import LimitExceededError
from providers.clients.limits import check_limits
from providers.clients.types import ChatRequest


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ("username",)


class NewChatForm(forms.Form):
    persona = forms.ModelChoiceField(
        queryset=PersonaPreset.objects.all(),
        required=False,
        empty_label="No persona",
        widget=forms.Select(attrs={"id": "new-chat-persona"}),
    )
    model = forms.ChoiceField(choices=(), widget=forms.Select(attrs={"id": "new-chat-model"}))

    def __init__(self, *args: Any, options: list[registry.ModelOption], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = model_choices(options)
        if options and not self.is_bound:
            self.initial.setdefault("model", options[0].key)


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
    temperature = forms.FloatField(required=False, widget=forms.NumberInput(attrs={"step": "0.05"}))
    top_p = forms.FloatField(
        label="Top-p", required=False, widget=forms.NumberInput(attrs={"step": "0.05"})
    )
    max_output_tokens = forms.IntegerField(label="Max output tokens", required=False)

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
            raise forms.ValidationError(str(error)) from None
        return data
