from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import actions
from chat.cards import CARD_MAX_BYTES
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


class CharacterCardForm(forms.Form):
    card = forms.FileField(
        label=gettext_lazy("Character card"),
        help_text=gettext_lazy("A Tavern card, V1 to V3: a PNG with the card inside, or its JSON."),
    )


@admin.register(PersonaPreset)
class PersonaPresetAdmin(admin.ModelAdmin):
    form = PersonaPresetForm
    change_list_template = "admin/chat/personapreset/change_list.html"
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

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "import-card/",
                self.admin_site.admin_view(self.import_card),
                name="chat_personapreset_import_card",
            )
        ]
        return extra + super().get_urls()

    def import_card(self, request: HttpRequest) -> HttpResponse:
        """Upload a character card; it becomes a persona, whole or not at all."""
        if not self.has_add_permission(request):
            return redirect("admin:chat_personapreset_changelist")
        form = CharacterCardForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["card"]
            try:
                if upload.size > CARD_MAX_BYTES:
                    raise actions.ActionError(
                        _("The card is larger than %(size)d MiB.")
                        % {"size": CARD_MAX_BYTES // 2**20}
                    )
                imported = actions.import_character_card(data=upload.read())
            except actions.ActionError as problem:
                form.add_error("card", str(problem))
            else:
                self.log_addition(request, imported.persona, [{"added": {}}])
                messages.success(
                    request,
                    _("Imported “%(name)s” from the card.") % {"name": imported.persona.name},
                )
                for note in imported.notes:
                    messages.warning(request, note)
                return redirect("admin:chat_personapreset_change", imported.persona.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Import a character card"),
        }
        return TemplateResponse(request, "admin/chat/personapreset/import_card.html", context)


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
