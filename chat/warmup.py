"""What a fresh process would otherwise do during its first sends, done as it starts.

After a restart or a deploy every open page reconnects at once and sends again what was
not acknowledged, so a new process meets a burst first thing. That burst also paid
for what the hot path does once per process, lazily: compiling the templates the
frames are rendered from, building the URL resolver, importing what the code
highlighter imports on first use, and loading the CA bundle for TLS.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from django.conf import settings
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.urls import reverse

from chat.lifecycle import reactor_loaded

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


#: Container objects allocated (net) before the collector's youngest generation is
#: scanned; Python's default is 700.
YOUNG_GENERATION = 10_000


def settle_collector_when_serving() -> bool:
    """Under daphne, settle the collector (``settle_collector``) as the server starts:
    when Twisted's reactor runs, before the first connection is served. Tests and
    management commands load the reactor too (daphne is an installed app) but never run
    it, and keep Python's defaults. Whether it was scheduled."""
    if not reactor_loaded():
        return False
    from twisted.internet import reactor

    reactor.callWhenRunning(settle_collector)  # type: ignore[attr-defined]
    return True


def settle_collector() -> int:
    """Keep what the process loaded to start out of the garbage collector's passes, and
    collect its youngest objects less often; the number of objects frozen.

    The modules, templates, URL patterns and settings a process loads at start live as
    long as it does, yet every full collection scanned them all again: 70 ms with the
    event loop stopped, every ten seconds or so while replies streamed, and every reply
    of the process late by as much (issue 8). Frozen, they are left out of every pass:
    a full pass scans what came since, a few milliseconds. With the youngest
    generation's threshold at Python's 700, a process relaying a hundred replies ran a
    collection every few dozen milliseconds, up to 17 ms each.
    """
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GENERATION), *older)
    frozen = gc.get_freeze_count()
    logger.info(
        "Collector settled: %d objects loaded at start left out of its passes; "
        "young objects collected every %d allocations",
        frozen,
        gc.get_threshold()[0],
    )
    return frozen


def _project_templates() -> list[str]:
    """The project's own templates (not the admin's or other apps')."""
    roots = [Path(root) for engine in settings.TEMPLATES for root in engine.get("DIRS", [])]
    return sorted(
        path.relative_to(root).as_posix()
        for root in roots
        if root.is_dir()
        for path in root.rglob("*.html")
    )
