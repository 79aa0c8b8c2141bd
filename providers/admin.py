from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from providers import catalog
from providers.clients.netguard import BlockedAddressError, public_addresses
from providers.models import CatalogModel, ProviderConnection


def _region_choices() -> list[tuple[str, str]]:
    choices = [("", "Keep the base URL below")]
    for kind in catalog.API_KINDS.values():
        choices += [(url, f"{kind.label}: {region}") for region, url in kind.regions]
    return choices


def _private_address_problem(url: str) -> str:
    """Why Parley will not call ``url`` (SSRF), or "" when it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Give an http:// or https:// URL with a host name."
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        public_addresses(parts.hostname, port)
    except BlockedAddressError:
        return (
            "This address is on a private or local network. Parley only calls public "
            "addresses from the admin (set UPSTREAM_ALLOW_PRIVATE=true to allow others)."
        )
    except OSError:
        # Not resolvable from here right now: the check at connect time still applies.
        return ""
    return ""


class ProviderConnectionForm(forms.ModelForm):  # type: ignore[type-arg]
    region = forms.ChoiceField(
        label="Region preset",
        required=False,
        choices=_region_choices,
        help_text="Fills in the base URL for a known region.",
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave blank to keep the stored key.",
    )
    base_url = forms.URLField(required=False, max_length=300, assume_scheme="https")

    class Meta:
        model = ProviderConnection
        fields = [
            "name",
            "kind",
            "region",
            "base_url",
            "api_key",
            "account_id",
            "gateway_id",
            "cloudflare_style",
            "workspace",
            "endpoint_path",
            "enabled",
            "groups",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("region"):
            data["base_url"] = data["region"]
            self.instance.base_url = data["region"]
        if not data.get("base_url"):
            kind = catalog.API_KINDS.get(data.get("kind", ""))
            if kind is None:
                self.add_error("base_url", "Give a base URL or pick a region preset.")
            else:
                data["base_url"] = kind.regions[0][1]
                self.instance.base_url = data["base_url"]
        if not data.get("api_key") and not self.instance.has_api_key:
            self.add_error("api_key", "A new connection needs an API key.")
        if data.get("base_url") and not settings.UPSTREAM_ALLOW_PRIVATE:
            problem = _private_address_problem(data["base_url"])
            if problem:
                self.add_error("base_url" if not data.get("region") else "region", problem)
        return data

    def save(self, commit: bool = True) -> ProviderConnection:
        connection: ProviderConnection = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            connection.set_api_key(self.cleaned_data["api_key"])
        if commit:
            connection.save()
        return connection


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ProviderConnectionForm
    list_display = ("name", "kind", "base_url", "key_stored", "enabled", "managed")
    list_filter = ("kind", "enabled")
    filter_horizontal = ("groups",)

    @admin.display(boolean=True, description="Key stored")
    def key_stored(self, obj: ProviderConnection) -> bool:
        return obj.has_api_key

    @admin.display(description="Managed by")
    def managed(self, obj: ProviderConnection) -> str:
        return "environment" if obj.managed_by_env else "admin"

    @admin.display(description="API key")
    def key_status(self, obj: ProviderConnection) -> str:
        return "Stored, encrypted (never shown)" if obj.has_api_key else "Not set"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only, Django would render ``api_key`` by calling the model's
            # ``api_key()``: the decrypted key. Show only whether one is stored.
            fields = ["key_status" if name == "api_key" else name for name in fields]
            fields = [name for name in fields if name != "region"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            readonly.append("key_status")
        return readonly

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Connections created from environment variables are changed there, not here.
        if obj is not None and obj.managed_by_env:
            return False
        return super().has_change_permission(request, obj)


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "name",
        "kind",
        "enabled",
        "context_window",
        "max_output_tokens",
        "default_output_tokens",
        "reasoning",
        "extra_roles",
        "prompt_token_ratio",
        "input_price",
        "output_price",
    )
    list_editable = ("enabled",)
    list_filter = ("kind", "enabled", "reasoning")
    search_fields = ("name", "label")
    fieldsets = (
        (None, {"fields": ("kind", "name", "label", "enabled")}),
        (
            "Tokens",
            {
                "fields": (
                    "context_window",
                    "max_output_tokens",
                    "default_output_tokens",
                    "prompt_token_ratio",
                )
            },
        ),
        (
            "Parameter ranges",
            {
                "fields": (
                    (
                        "temperature_min",
                        "temperature_min_exclusive",
                        "temperature_max",
                        "temperature_default",
                    ),
                    ("top_p_min", "top_p_min_exclusive", "top_p_max", "top_p_default"),
                    "max_stop",
                    "tool_choices",
                )
            },
        ),
        ("Capabilities", {"fields": ("reasoning", "tools", "images", "extra_roles")}),
        (
            "Prices (USD per million tokens)",
            {"fields": (("input_price", "cached_input_price", "output_price"),)},
        ),
        ("Who may use it", {"fields": ("groups",)}),
    )
    filter_horizontal = ("groups",)
