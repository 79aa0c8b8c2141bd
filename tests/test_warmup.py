"""A new process compiles its templates and loads what sends use before its first burst."""

from __future__ import annotations

import logging

import pytest
from django.template import engines

from chat import warmup


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
