"""Static files served by daphne itself (no separate web server needed)."""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse


class StaticFiles(ASGIStaticFilesHandler):
    """Django's handler, except that a path escaping the static root (``..%2f``) is a
    404, not an unhandled SuspiciousFileOperation (a 500)."""

    def serve(self, request: HttpRequest) -> HttpResponse:
        try:
            return super().serve(request)
        except SuspiciousFileOperation:
            raise Http404("Not found") from None
