from __future__ import annotations

import csv
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import actions, audit
from chat.actions import usage as usage_actions
from chat.charts import daily_usage_svg
from chat.forms import CharacterCardForm, PersonaPresetForm
from chat.models import (
    AuditEvent,
    Conversation,
    Message,
    PersonaExample,
    PersonaPreset,
    Quota,
    SiteSettings,
    Usage,
    User,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "is_approved", "is_staff", "is_active", "date_joined")
    list_filter = ("is_approved", "is_staff", "is_active")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Parley", {"fields": ("is_approved",)}))
    actions = ["approve"]

    @admin.action(description="Approve selected users", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        waiting = list(queryset.filter(is_approved=False))
        count = queryset.update(is_approved=True)
        for user in waiting:
            audit.record(
                AuditEvent.Action.APPROVE, actor=request.user, target=user, request=request
            )
        self.message_user(request, f"Approved {count} user(s).", messages.SUCCESS)


class PersonaExampleInline(admin.TabularInline):
    model = PersonaExample
    extra = 1
    fields = ("position", "user_text", "assistant_text")


@admin.register(PersonaPreset)
class PersonaPresetAdmin(admin.ModelAdmin):
    form = PersonaPresetForm
    change_list_template = "admin/chat/personapreset/change_list.html"
    list_display = ("name", "description", "default_model", "owner", "position")
    list_filter = (("owner", admin.EmptyFieldListFilter), "groups")
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
        (
            gettext_lazy("Who may use it"),
            {
                "fields": ("groups", "owner"),
                "description": gettext_lazy(
                    "No groups: everyone. An owner makes it that user's private persona."
                ),
            },
        ),
    )
    filter_horizontal = ("groups",)
    raw_id_fields = ("owner",)

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
            try:
                imported = actions.import_card_file(upload=form.cleaned_data["card"])
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


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "tokens_per_day",
        "tokens_per_month",
        "replies_at_once",
        "messages_per_minute",
    )
    raw_id_fields = ("user",)
    fieldsets = (
        (
            None,
            {
                "fields": ("user", "group"),
                "description": gettext_lazy(
                    "For one user, or for a group's members as a default. A user's own "
                    "quota wins field by field; otherwise the most generous of their "
                    "groups' applies. Empty means no limit."
                ),
            },
        ),
        (
            gettext_lazy("Limits"),
            {
                "fields": (
                    "tokens_per_day",
                    "tokens_per_month",
                    "replies_at_once",
                    "messages_per_minute",
                )
            },
        ),
    )


class UsageReportForm(forms.Form):
    start = forms.DateField(
        label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(label=gettext_lazy("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError(_("The period ends before it starts."))
        if start and end and (end - start).days > 366:
            raise forms.ValidationError(_("Choose a period of at most a year."))
        return data


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that are records of what happened: viewed and filtered, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Usage)
class UsageAdmin(ReadOnlyAdmin):
    """Every request's usage, read-only, and the report built from it."""

    list_display = (
        "created_at",
        "user",
        "kind",
        "model",
        "connection",
        "input_tokens",
        "output_tokens",
        "estimated",
        "cost",
    )
    list_filter = ("kind", "estimated", "simulated", "api", "model")
    search_fields = ("user__username", "model", "connection")
    date_hierarchy = "created_at"
    change_list_template = "admin/chat/usage/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "report/",
                self.admin_site.admin_view(self.report),
                name="chat_usage_report",
            )
        ]
        return extra + super().get_urls()

    def report(self, request: HttpRequest) -> HttpResponse:
        """Totals by user, group, model and connection over a period; a chart; CSV."""
        if not self.has_view_permission(request):
            return redirect("admin:index")
        today = timezone.localdate()
        form = UsageReportForm(request.GET or {"start": today - timedelta(days=29), "end": today})
        report = None
        zone = timezone.get_current_timezone()
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            if request.GET.get("format") == "csv":
                return _usage_csv(usage_actions.period_usage(start, end, zone), start, end)
            report = usage_actions.usage_report(start, end, zone)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "chart": daily_usage_svg(report.by_day) if report else "",
            "title": _("Usage report"),
        }
        return TemplateResponse(request, "admin/chat/usage/report.html", context)


def _usage_csv(rows: QuerySet[Usage], start: Any, end: Any) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="parley-usage-{start}-{end}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "time",
            "user",
            "kind",
            "connection",
            "api",
            "model",
            "input_tokens",
            "cached_tokens",
            "output_tokens",
            "reasoning_tokens",
            "estimated",
            "simulated",
            "cost_usd",
        ]
    )
    for row in rows.select_related("user").order_by("created_at").iterator():
        writer.writerow(
            [
                row.created_at.isoformat(),
                _csv_safe(row.user.username),
                row.kind,
                _csv_safe(row.connection),
                row.api,
                _csv_safe(row.model),
                row.input_tokens,
                row.cached_tokens,
                row.output_tokens,
                row.reasoning_tokens,
                int(row.estimated),
                int(row.simulated),
                "" if row.cost is None else f"{row.cost:f}",
            ]
        )
    return response


def _csv_safe(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the log is evidence. Filter by action and date, search names."""

    list_display = ("created_at", "actor_name", "action", "target_type", "target", "ip", "detail")
    list_filter = ("action", "target_type")
    search_fields = ("actor_name", "target", "ip", "detail")
    date_hierarchy = "created_at"


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    """One row: opening it edits it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SiteSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return redirect("admin:chat_sitesettings_change", SiteSettings.current().pk)
