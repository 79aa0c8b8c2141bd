"""A new process compiles its templates and loads what sends use before its first burst."""

from __future__ import annotations

import logging
import re
import time

import pytest
from django.template import engines

from chat import warmup
from tests.live import daphne, run_python, server_env


@pytest.fixture
def cold_process(monkeypatch):
    """As a process that has not warmed up: no templates compiled yet."""
    monkeypatch.setattr(warmup, "_done", False)
    for loader in engines["django"].engine.template_loaders:
        if hasattr(loader, "reset"):
            loader.reset()


def test_warming_up_compiles_every_project_template(cold_process, caplog):
    names = warmup._project_templates()
    assert "chat/_message.html" in names and "base.html" in names

    with caplog.at_level(logging.ERROR, logger="chat.warmup"):
        warmup.warm_up()

    assert not caplog.records, [record.getMessage() for record in caplog.records]
    (cached,) = [
        loader
        for loader in engines["django"].engine.template_loaders
        if hasattr(loader, "get_template_cache")
    ]
    assert set(names) <= set(cached.get_template_cache)


def test_a_template_that_does_not_compile_is_logged_and_the_rest_still_are(
    cold_process, caplog, tmp_path, settings
):
    (tmp_path / "broken.html").write_text("{% if %}")
    (tmp_path / "fine.html").write_text("{{ value }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]  # a fresh engine

    with caplog.at_level(logging.ERROR, logger="chat.warmup"):
        warmup.warm_up()

    assert [record.getMessage() for record in caplog.records] == [
        "Template broken.html could not be compiled"
    ]


def test_a_process_warms_up_once(cold_process):
    assert warmup.warm_up() > 0
    assert warmup.warm_up() == 0.0


def test_a_served_process_leaves_what_it_loaded_to_start_out_of_the_collectors_passes(
    tmp_path,
):
    log = tmp_path / "daphne.log"
    with daphne(server_env(f"sqlite:///{tmp_path / 'db.sqlite3'}"), log):
        deadline = time.monotonic() + 20
        while "Collector settled" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        settled = re.search(
            r"Collector settled: (\d+) objects .* every (\d+) allocations", log.read_text()
        )
    assert settled, log.read_text()
    assert int(settled[1]) > 10_000  # Django, the project, its templates
    assert int(settled[2]) == warmup.YOUNG_GENERATION


def test_a_process_that_does_not_serve_keeps_the_collectors_defaults():
    """Tests and management commands load Twisted's reactor (daphne is an installed app)
    but never run it."""
    printed = run_python(
        """
        import gc
        import django
        django.setup()
        from chat.warmup import settle_collector_when_serving
        threshold = gc.get_threshold()
        assert settle_collector_when_serving() is True  # scheduled for when it serves
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold
        print("left alone")
        """,
        {**server_env("sqlite:///:memory:"), "DJANGO_SETTINGS_MODULE": "project.settings"},
    )
    assert printed == "left alone"
