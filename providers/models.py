from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from providers import catalog, crypto
from providers.clients.types import ModelSpec, Range

KIND_CHOICES = [(kind.key, kind.label) for kind in catalog.API_KINDS.values()]


class ProviderConnection(models.Model):
    """One account on one upstream API: where it is, and the key to use."""

    class CloudflareStyle(models.TextChoices):
        RUN = "run", "/ai/run (v4 envelope)"
        OPENAI = "openai", "/ai/v1/chat/completions (OpenAI-compatible)"

    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField("API", max_length=32, choices=KIND_CHOICES)
    base_url = models.URLField(max_length=300)
    api_key_encrypted = models.TextField(blank=True, editable=False)
    account_id = models.CharField(
        "Cloudflare account id", max_length=64, blank=True, help_text="Cloudflare only."
    )
    gateway_id = models.CharField(
        "Cloudflare AI Gateway id", max_length=64, blank=True, help_text="Cloudflare, optional."
    )
    cloudflare_style = models.CharField(
        "Cloudflare endpoint",
        max_length=8,
        choices=CloudflareStyle.choices,
        default=CloudflareStyle.RUN,
    )
    workspace = models.CharField(
        "DashScope workspace", max_length=64, blank=True, help_text="DashScope, optional."
    )
    endpoint_path = models.CharField(
        "Cloudsway endpoint path", max_length=120, blank=True, help_text="Cloudsway only."
    )
    enabled = models.BooleanField(default=True)
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        help_text="Only members of these groups may use this connection's models. None: everyone.",
    )
    managed_by_env = models.CharField(
        max_length=32,
        blank=True,
        editable=False,
        help_text="Set when environment variables create and update this connection.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    def set_api_key(self, key: str) -> None:
        self.api_key_encrypted = crypto.encrypt(key.strip())

    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def clean(self) -> None:
        if self.kind == catalog.CLOUDFLARE and not self.account_id:
            raise ValidationError({"account_id": "Cloudflare needs the account id."})
        if self.kind == catalog.CLOUDSWAY and not self.endpoint_path:
            raise ValidationError({"endpoint_path": "Cloudsway needs the endpoint path."})


class CatalogModel(models.Model):
    """What Parley knows about one model on one API. Seeded from the vendors' pages."""

    kind = models.CharField("API", max_length=32, choices=KIND_CHOICES)
    name = models.CharField(max_length=120, help_text="The model id the API expects.")
    label = models.CharField(max_length=120, blank=True)
    enabled = models.BooleanField(default=True)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    default_output_tokens = models.PositiveIntegerField(
        help_text="Sent when a conversation sets none (DashScope's default, 256, is too short)."
    )
    temperature_min = models.FloatField(default=0.0)
    temperature_min_exclusive = models.BooleanField(default=True)
    temperature_max = models.FloatField(default=1.0)
    temperature_default = models.FloatField(null=True, blank=True)
    top_p_min = models.FloatField(default=0.0)
    top_p_min_exclusive = models.BooleanField(default=True)
    top_p_max = models.FloatField(default=1.0)
    top_p_default = models.FloatField(null=True, blank=True)
    max_stop = models.PositiveSmallIntegerField(
        default=4, help_text="0 where the API ignores stop sequences."
    )
    tool_choices = models.CharField(max_length=80, default="none,auto")
    reasoning = models.BooleanField(default=True)
    tools = models.BooleanField(default=True)
    images = models.BooleanField(default=False)
    extra_roles = models.BooleanField(
        default=False, help_text="user_system, group and sample_message_* roles."
    )
    prompt_token_ratio = models.FloatField(
        default=1.0,
        help_text="Calibrates Parley's token estimate from the prompt counts upstreams report.",
    )
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        help_text="Only members of these groups may use this model. None: everyone.",
    )
    input_price = models.DecimalField(
        "input price",
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="USD per million input tokens. Empty: cost unknown.",
    )
    cached_input_price = models.DecimalField(
        "cached input price",
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="USD per million input tokens read from the API's prompt cache.",
    )
    output_price = models.DecimalField(
        "output price",
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="USD per million output tokens (reasoning included).",
    )

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="unique_model_per_api")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            context_window=self.context_window,
            max_output_tokens=self.max_output_tokens,
            default_output_tokens=self.default_output_tokens,
            temperature=Range(
                self.temperature_min,
                self.temperature_max,
                self.temperature_min_exclusive,
                self.temperature_default,
            ),
            top_p=Range(
                self.top_p_min, self.top_p_max, self.top_p_min_exclusive, self.top_p_default
            ),
            max_stop=self.max_stop,
            tool_choices=tuple(c.strip() for c in self.tool_choices.split(",") if c.strip()),
            reasoning=self.reasoning,
            tools=self.tools,
            images=self.images,
            extra_roles=self.extra_roles,
        )

    @classmethod
    def fields_from_spec(cls, kind: str, spec: ModelSpec) -> dict[str, object]:
        return {
            "kind": kind,
            "name": spec.name,
            "context_window": spec.context_window,
            "max_output_tokens": spec.max_output_tokens,
            "default_output_tokens": spec.default_output_tokens,
            "temperature_min": spec.temperature.minimum,
            "temperature_min_exclusive": spec.temperature.min_exclusive,
            "temperature_max": spec.temperature.maximum,
            "temperature_default": spec.temperature.default,
            "top_p_min": spec.top_p.minimum,
            "top_p_min_exclusive": spec.top_p.min_exclusive,
            "top_p_max": spec.top_p.maximum,
            "top_p_default": spec.top_p.default,
            "max_stop": spec.max_stop,
            "tool_choices": ",".join(spec.tool_choices),
            "reasoning": spec.reasoning,
            "tools": spec.tools,
            "images": spec.images,
            "extra_roles": spec.extra_roles,
        }
