from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from chat.models import PersonaPreset, User
from providers import registry


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = registry.available_models()
        self.fields["model"].choices = [(option.key, option.label) for option in options]
        if options and not self.is_bound:
            self.initial.setdefault("model", options[0].key)
