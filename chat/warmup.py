"""What a fresh process would otherwise do during its first sends, done as it starts.

After a restart or a deploy every open page reconnects at once and sends again what was
not acknowledged, so a new process meets a burst first thing. That burst also paid
for what the hot path does once per process, lazily: compiling the templates the
frames are rendered from, building the URL resolver, importing what the code
highlighter imports on first use, and loading the CA bundle for TLS.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.urls import reverse

logger = logging.getLogger(__name__)

_done = False


def warm_up() -> float:
    """Do it (once per process); the seconds it took."""
    global _done
    if _done:
        return 0.0
    _done = True
    started = time.perf_counter()
    for name in _project_templates():
        try:
            get_template(name)  # compiled and kept by the cached loader
        except (TemplateDoesNotExist, TemplateSyntaxError):
            logger.exception("Template %s could not be compiled", name)
    reverse("home")  # builds the resolver the title and link frames use

    from chat.markdown import render_markdown
    from providers.clients.http import tls_context

    render_markdown("A *warm* start:\n\n```python\nprint('hello')\n```\n")
    tls_context()
    took = time.perf_counter() - started
    logger.info("Warmed up in %.0f ms", took * 1000)
    return took


def _project_templates() -> list[str]:
    """The project's own templates (not the admin's or other apps')."""
    roots = [Path(root) for engine in settings.TEMPLATES for root in engine.get("DIRS", [])]
    return sorted(
        path.relative_to(root).as_posix()
        for root in roots
        if root.is_dir()
        for path in root.rglob("*.html")
    )
