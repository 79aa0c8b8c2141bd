"""Liveness and readiness: what a load balancer asks before sending people here."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db(transaction=True)


def test_liveness_answers_without_signing_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_checks_the_database_the_migrations_and_the_channel_layer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "channel_layer": "ok"},
    }


def test_an_unapplied_migration_makes_the_process_not_ready(client):
    with mock.patch(
        "django.db.migrations.executor.MigrationExecutor.migration_plan", return_value=[1, 2]
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["migrations"]
    assert body["checks"]["migrations"] == "failing: 2 migrations not applied"


def test_a_channel_layer_that_does_not_answer_is_named_without_its_address(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://:hunter2-secret@127.0.0.1:1/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = client.get("/readyz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"].startswith("failing: ")
    assert (
        "hunter2" not in response.content.decode() and "127.0.0.1" not in response.content.decode()
    )


def test_a_database_that_does_not_answer_is_named(client):
    from django.db.utils import OperationalError

    with mock.patch.object(
        type(connections["default"]), "cursor", side_effect=OperationalError("down")
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["failing"]
