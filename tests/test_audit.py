"""The audit log: who did what, when, from where, for sign-ins, sign-ups, approvals and
every admin change; never a key or a password; read-only; pruned after its retention."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chat.models import AuditEvent, Quota, User
from providers import catalog

pytestmark = pytest.mark.django_db

SECRET = "sk-audit-0123456789abcdef"
PASSWORD = "s3cret-pass-word"


def _events(action=None):
    events = AuditEvent.objects.all()
    return list(events.filter(action=action) if action else events)


def _everything_logged() -> str:
    return " ".join(
        " ".join(str(v) for v in row)
        for row in AuditEvent.objects.values_list(
            "actor_name", "target", "target_type", "target_id", "detail"
        )
    )


@pytest.fixture
def admin(owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client = Client()
    client.force_login(owner)
    return client


def test_signing_in_out_and_failing_are_recorded_with_the_address(owner):
    client = Client(REMOTE_ADDR="203.0.113.9")
    client.post("/login/", {"username": "owner", "password": "wrong-password-1"})
    client.post("/login/", {"username": "owner", "password": PASSWORD})
    client.post("/logout/")
    (failed,) = _events("sign_in_failed")
    assert failed.actor_name == "owner" and failed.actor is None and failed.ip == "203.0.113.9"
    (signed_in,) = _events("sign_in")
    assert signed_in.actor == owner and signed_in.ip == "203.0.113.9"
    assert len(_events("sign_out")) == 1
    assert "wrong-password-1" not in _everything_logged() and PASSWORD not in _everything_logged()


def test_signing_up_is_recorded(settings):
    settings.SIGNUP_MODE = "approval"
    User.objects.create_user("first", password=PASSWORD, is_approved=True)
    Client().post(
        "/signup/",
        {
            "username": "newcomer",
            "password1": "a-long-passphrase-9",
            "password2": "a-long-passphrase-9",
        },
    )
    (event,) = _events("sign_up")
    assert event.actor.username == "newcomer" and event.target == "newcomer"


def test_approving_by_the_action_or_the_form_is_recorded(admin, owner, teammate):
    waiting = User.objects.create_user("waiting", password=PASSWORD, is_approved=False)
    other = User.objects.create_user("other", password=PASSWORD, is_approved=False)
    admin.post(
        "/admin/chat/user/",
        {"action": "approve", "_selected_action": [waiting.pk, teammate.pk]},
    )
    approvals = _events("approve")
    assert [(e.actor, e.target) for e in approvals] == [(owner, "waiting")]  # teammate was already
    page = admin.get(f"/admin/chat/user/{other.pk}/change/")
    form = page.context["adminform"].form
    data = {
        key: value
        for key, value in form.initial.items()
        if value is not None and key not in ("groups", "user_permissions", "password")
    }
    data.update(
        {
            "is_approved": "on",
            "is_active": "on",
            "date_joined_0": other.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": other.date_joined.strftime("%H:%M:%S"),
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = admin.post(f"/admin/chat/user/{other.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    other.refresh_from_db()
    assert other.is_approved, [e.detail for e in _events("change")]
    assert [e.target for e in _events("approve")] == ["other", "waiting"]
    change = [e for e in _events("change") if e.target == "other"][0]
    assert "Is approved" in change.detail or "is_approved" in change.detail


def test_admin_changes_name_fields_never_a_key(admin, owner):
    response = admin.post(
        "/admin/providers/providerconnection/add/",
        {
            "name": "Alibaba",
            "kind": catalog.DASHSCOPE,
            "region": "https://dashscope-intl.aliyuncs.com/api/v1",
            "base_url": "",
            "api_key": SECRET,
            "workspace": "ws_9",
            "cloudflare_style": "run",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    (added,) = _events("add")
    assert added.actor == owner and added.target == "Alibaba"
    assert added.target_type == "providers.providerconnection"
    assert SECRET not in _everything_logged()


def test_groups_and_quotas_changed_in_the_admin_are_recorded(admin, owner):
    admin.post("/admin/auth/group/add/", {"name": "crew"})
    crew = Group.objects.get(name="crew")
    admin.post("/admin/chat/quota/add/", {"group": crew.pk, "tokens_per_day": "5000"})
    quota = Quota.objects.get()
    admin.post(f"/admin/chat/quota/{quota.pk}/delete/", {"post": "yes"})
    kinds = [
        (e.action, e.target_type)
        for e in reversed(_events())
        if e.action in ("add", "change", "delete")
    ]
    assert kinds == [
        ("add", "auth.group"),
        ("add", "chat.quota"),
        ("delete", "chat.quota"),
    ]


def test_deleting_a_selection_in_the_admin_records_each_object(admin):
    crew, deck = Group.objects.create(name="crew"), Group.objects.create(name="deck")
    for group in (crew, deck):
        Quota.objects.create(group=group, replies_at_once=1)
    selected = list(Quota.objects.values_list("pk", flat=True))
    response = admin.post(
        "/admin/chat/quota/",
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
    )
    assert response.status_code == 302 and not Quota.objects.exists()
    deleted = sorted(e.target_id for e in _events("delete"))
    assert deleted == sorted(str(pk) for pk in selected)


def test_the_log_is_read_only_in_the_admin(admin):
    AuditEvent.objects.filter(action="sign_in").delete()
    AuditEvent.objects.create(created_at=timezone.now(), action="sign_in", actor_name="admin")
    AuditEvent.objects.create(created_at=timezone.now(), action="sign_in", actor_name="x")
    event = AuditEvent.objects.get(actor_name="x")
    assert admin.get("/admin/chat/auditevent/").status_code == 200
    assert admin.get("/admin/chat/auditevent/?action__exact=sign_in").status_code == 200
    assert admin.get("/admin/chat/auditevent/add/").status_code == 403
    assert (
        admin.post(f"/admin/chat/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    # The admin's own sign-in is there too (force_login signs in like a form would).
    assert AuditEvent.objects.filter(action="sign_in").count() == 2


def test_entries_older_than_the_retention_are_pruned(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    AuditEvent.objects.create(created_at=now - timedelta(days=31), action="sign_in")
    AuditEvent.objects.create(created_at=now - timedelta(days=29), action="sign_in")
    out = io.StringIO()
    call_command("prune_audit_log", stdout=out)
    assert "Deleted 1 audit entries older than 30 days." in out.getvalue()
    assert AuditEvent.objects.count() == 1
