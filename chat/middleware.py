from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse


class ApprovedUserMiddleware:
    """Signed-in users whose account awaits approval see one clear page, nothing else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not user.is_approved:
            allowed = (reverse("pending"), reverse("logout"))
            if request.path not in allowed and not request.path.startswith("/static/"):
                return redirect("pending")
        return self.get_response(request)
