from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _

from chat.models import Conversation, Message, PersonaExample, PersonaPreset, User
from providers.models import CatalogModel


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "is_approved", "is_staff", "is_active", "date_joined")
    list_filter = ("is_approved", "is_staff", "is_active")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Parley", {"fields": ("is_approved",)}))
    actions = ["approve"]

    @admin.action(description="Approve selected users", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = queryset.update(is_approved=True)
        self.message_user(request, f"Approved {count} user(s).", messages.SUCCESS)


class PersonaExampleInline(admin.TabularInline):
    model = PersonaExample
    extra = 1
    fields = ("position", "user_text", "assistant_text")


class PersonaPresetForm(forms.ModelForm):
    """The default model is picked from the catalog, so it always exists."""

    default_model = forms.ChoiceField(
        required=False,
        help_text="The model a new chat with this persona starts on. Empty: the site's default.",
    )

    class Meta:
        model = PersonaPreset
        fields = ("default_model",)  # the admin adds the fieldsets' fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = sorted(set(CatalogModel.objects.values_list("name", flat=True)))
        current = self.instance.default_model if self.instance else ""
        choices = [("", "Site default"), *((name, name) for name in names)]
        if current and current not in names:
            choices.append((current, f"{current} (no longer in the catalog)"))
        self.fields["default_model"].choices = choices

    def clean_default_model(self) -> str:
        value: str = self.cleaned_data["default_model"]
        if value and not CatalogModel.objects.filter(name=value).exists():
            raise forms.ValidationError(_("Pick a model from the catalog."))
        return value


@admin.register(PersonaPreset)
class PersonaPresetAdmin(admin.ModelAdmin):
    form = PersonaPresetForm
    list_display = ("name", "description", "default_model", "position")
    search_fields = ("name", "description")
    inlines = [PersonaExampleInline]
    fieldsets = (
        (None, {"fields": ("name", "description", "position")}),
        (
            "Role-play",
            {
                "fields": (
                    "system_prompt",
                    "character_name",
                    "user_persona",
                    "user_name",
                    "scene",
                    "greeting",
                )
            },
        ),
        ("Generation", {"fields": ("default_model", "temperature", "top_p", "max_output_tokens")}),
    )


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("role", "status", "content", "error", "output_tokens")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "persona", "model", "updated_at")
    list_filter = ("model",)
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner",)
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("pk", "conversation", "role", "status", "output_tokens", "created_at")
    list_filter = ("status", "role")
    raw_id_fields = ("conversation",)
