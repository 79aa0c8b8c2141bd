from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext


class User(AbstractUser):
    # Approval is separate from is_active so a pending user can sign in and be told
    # plainly that an admin still has to approve the account.
    is_approved = models.BooleanField(
        default=False, help_text="Approved users may chat. The first account is approved."
    )
    #: The browser's IANA time zone, sent by the page; dates are shown in it.
    time_zone = models.CharField(max_length=64, blank=True, default="")


_temperature = [MinValueValidator(0.01), MaxValueValidator(1.0)]
_top_p = [MinValueValidator(0.01), MaxValueValidator(1.0)]


class PersonaPreset(models.Model):
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    system_prompt = models.TextField(blank=True, help_text="Who the model plays and how.")
    character_name = models.CharField(
        max_length=80, blank=True, help_text="The model's speaker name in role-play."
    )
    user_persona = models.TextField(blank=True, help_text="Who the user plays.")
    user_name = models.CharField(max_length=80, blank=True, help_text="The user's speaker name.")
    scene = models.CharField(
        max_length=300, blank=True, help_text="The scene, conversation or group name."
    )
    greeting = models.TextField(blank=True, help_text="The first message, from the persona.")
    default_model = models.CharField(max_length=120, blank=True)
    temperature = models.FloatField(null=True, blank=True, validators=_temperature)
    top_p = models.FloatField(null=True, blank=True, validators=_top_p)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    position = models.PositiveIntegerField(default=0)
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        help_text="Only members of these groups may pick this persona. None: everyone.",
    )
    #: A private persona, seen only by the user who made it (when SiteSettings allow).
    owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="personas"
    )

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            # Shared personas have names of their own; private ones are unique per owner.
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(owner=None), name="persona_shared_name"
            ),
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=~models.Q(owner=None),
                name="persona_private_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PersonaExample(models.Model):
    persona = models.ForeignKey(PersonaPreset, on_delete=models.CASCADE, related_name="examples")
    position = models.PositiveIntegerField(default=0)
    user_text = models.TextField()
    assistant_text = models.TextField()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"Example {self.position} of {self.persona}"


class Conversation(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=120, blank=True)
    persona = models.ForeignKey(
        PersonaPreset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.CharField(max_length=120)
    temperature = models.FloatField(null=True, blank=True, validators=_temperature)
    top_p = models.FloatField(null=True, blank=True, validators=_top_p)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    pinned = models.BooleanField(default=False)
    #: The title is Parley's (first line, then the model's suggestion), not the owner's.
    auto_title = models.BooleanField(default=True)
    #: The conversation is a tree of messages; this is the end of the branch shown and
    #: continued. The history sent upstream is the path from the root down to it.
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "-pinned", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    @property
    def display_title(self) -> str:
        return self.title or gettext("New chat")


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        INTERRUPTED = "interrupted"
        FAILED = "failed"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    #: The message this one answers or follows; siblings are other versions of it
    #: (a regenerated reply, an edited message). None at the root.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=120, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Notes on how the reply was produced (older turns left out, a fallback), one a line.
    notices = models.TextField(blank=True)
    # What the upstream asked to get back unchanged next turn (reasoning_details, ...).
    provider_data = models.JSONField(default=dict, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    # The browser's id for a user message, so a message resent after a dropped socket is
    # stored once.
    client_id = models.CharField(max_length=64, blank=True, default="")
    # Ended by another process after the one writing it stopped heartbeating. If that
    # process was alive after all, its own final save still wins.
    taken_over = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "status"]),
            models.Index(fields=["status", "updated_at"], name="message_status_updated"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~models.Q(client_id=""),
                name="message_unique_client_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"

    @property
    def is_streaming(self) -> bool:
        return self.status == self.Status.STREAMING


class Usage(models.Model):
    """What one upstream request used and cost: a reply (stopped and failed ones too) or
    a title. Kept when its conversation is deleted: quotas and bills still count it."""

    class Kind(models.TextChoices):
        REPLY = "reply"
        TITLE = "title"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="usage")
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REPLY)
    connection = models.CharField(max_length=120)
    api = models.CharField(max_length=32)
    model = models.CharField(max_length=120)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    #: The upstream reported nothing: the counts are Parley's estimate from the text.
    estimated = models.BooleanField(default=False)
    #: USD; empty when the catalog has no price for the model.
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_time")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.user_id}: {self.total_tokens} tokens"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Quota(models.Model):
    """Limits for one user, or for a group's members as a default. A user's own row wins
    field by field; otherwise the most generous of their groups' rows applies. Empty
    means no limit."""

    user = models.OneToOneField(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    group = models.OneToOneField(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    replies_at_once = models.PositiveSmallIntegerField(null=True, blank=True)
    messages_per_minute = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="quota_for_a_user_or_a_group",
            )
        ]

    def __str__(self) -> str:
        return f"Quota for {self.user or self.group}"


class AuditEvent(models.Model):
    """Who did what, when, from where: sign-ins, sign-ups, approvals, and every change
    made in the admin. Never a key or a password: changes name fields, not values."""

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "signed in"
        SIGN_IN_FAILED = "sign_in_failed", "failed to sign in"
        SIGN_OUT = "sign_out", "signed out"
        SIGN_UP = "sign_up", "signed up"
        APPROVE = "approve", "approved"
        ADD = "add", "added"
        CHANGE = "change", "changed"
        DELETE = "delete", "deleted"

    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: Kept when the account is deleted, and for failed sign-ins (the name tried).
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, blank=True)
    detail = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["action", "-created_at"], name="audit_action_time")]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.get_action_display()} {self.target}".strip()


class SiteSettings(models.Model):
    """Settings an admin changes in the admin, not in the environment. One row."""

    users_create_personas = models.BooleanField(
        default=False,
        help_text="Users may make private personas (and import character cards into them), "
        "seen only by themselves.",
    )

    class Meta:
        verbose_name = "site settings"
        verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"

    @classmethod
    def current(cls) -> SiteSettings:
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings
