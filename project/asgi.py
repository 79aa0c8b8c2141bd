"""ASGI entry point: HTTP through Django, websockets through Channels.

The websocket stack checks the Origin (scheme, host and port: chat.origin), then loads
the session user, then routes. Under daphne, SIGTERM drains running replies (chat.lifecycle)
and frames are sent as they are written (chat.socket_writes).
A new process does its once-per-process work before its first burst, then leaves what
it loaded out of the garbage collector's passes (chat.warmup).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.lifecycle import install_shutdown_hook, with_supervisor  # noqa: E402
from chat.origin import SameOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.socket_writes import install_eager_writes  # noqa: E402
from chat.warmup import settle_collector_when_serving, warm_up  # noqa: E402

# Under daphne: on SIGTERM, let running replies finish before the process exits.
install_shutdown_hook()
# Under daphne: a frame goes out as it is written, not on the reactor's next turn.
install_eager_writes()

warm_up()
# Under daphne, as it starts serving: what was loaded to start is left out of the
# garbage collector's passes.
settle_collector_when_serving()

# Every process runs the orphan check from its first request on.
application = with_supervisor(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
