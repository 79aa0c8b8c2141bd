"""Websocket origin check by scheme, host and port, as Django's CSRF check does.

Channels' AllowedHostsOriginValidator compares host names only, so a page on another
port of the same host, or plain http when the site is https, could open a user's
socket. Here the Origin must be this site's own origin (the scheme the request came in
with, and its Host header, which must be in ALLOWED_HOSTS) or one of
CSRF_TRUSTED_ORIGINS.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, expected = proxy_header
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        return _header(scope, header).split(",")[0].strip() == expected
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or not host:
        return False
    domain, _port = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed_hosts):
        return False
    own = f"{'https' if _secure(scope) else 'http'}://{host}"
    return origin == own or origin in settings.CSRF_TRUSTED_ORIGINS


class SameOriginValidator:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
