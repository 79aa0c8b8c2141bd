from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import database_from_url, envbool, envchoice, envfloat, envint, envlist, envsecret


def test_envbool_reads_the_usual_spellings(monkeypatch):
    for raw, expected in [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("FLAG", raw)
        assert envbool("FLAG", not expected) is expected


def test_envbool_fails_loudly_naming_the_variable(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        envbool("FLAG", False)


def test_envint_and_envfloat_reject_garbage_and_out_of_range(monkeypatch):
    monkeypatch.setenv("N", "ten")
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        envint("N", 1)
    monkeypatch.setenv("PACE", "-3")
    with pytest.raises(ImproperlyConfigured, match="PACE must be at least"):
        envfloat("PACE", 40.0, minimum=0.1)


def test_missing_values_take_the_default(monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    assert envint("NOPE", 7) == 7 and envlist("NOPE", ["a"]) == ["a"]


def test_envlist_splits_and_trims(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example , b.example,,")
    assert envlist("HOSTS", []) == ["a.example", "b.example"]


def test_envchoice_refuses_unknown_modes(monkeypatch):
    monkeypatch.setenv("SIGNUP_MODE", "sometimes")
    with pytest.raises(ImproperlyConfigured, match="open, approval, closed"):
        envchoice("SIGNUP_MODE", "approval", ("open", "approval", "closed"))


def test_envsecret_reads_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("API_KEY_FILE", str(secret))
    assert envsecret("API_KEY") == "from-a-file"
    monkeypatch.setenv("API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="API_KEY_FILE"):
        envsecret("API_KEY")


def test_database_urls():
    base = Path("/srv/parley")
    assert (
        database_from_url("sqlite:///db.sqlite3", base_dir=base)["NAME"] == "/srv/parley/db.sqlite3"
    )
    assert (
        database_from_url("sqlite:////var/db.sqlite3", base_dir=base)["NAME"] == "/var/db.sqlite3"
    )
    pg = database_from_url("postgres://u:p%40ss@db:5433/parley?sslmode=require", base_dir=base)
    assert (pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "u",
        "p@ss",
        "db",
        "5433",
        "parley",
    )
    assert pg["OPTIONS"] == {"sslmode": "require"}
    with pytest.raises(ImproperlyConfigured, match="not supported"):
        database_from_url("mysql://x/y", base_dir=base)


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "DJANGO_"))}
    env.update(DEBUG="false", DJANGO_SETTINGS_MODULE="project.settings")
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
