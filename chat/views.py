"""Thin views: validate input, call chat.actions or chat.access, render."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from chat import actions
from chat.access import access_conversation, conversations_for
from chat.forms import ConversationSettingsForm, NewChatForm, SignUpForm
from chat.models import Conversation, Message, User
from chat.rendering import MessageView, render_message
from providers import registry


def _sidebar(
    request: HttpRequest, options: list[registry.ModelOption], active_id: int | None = None
) -> dict[str, object]:
    return {
        "conversations": conversations_for(request.user).only("id", "title", "updated_at")[:100],
        "active_id": active_id,
        "new_chat_form": NewChatForm(options=options),
        "models_available": bool(options),
    }


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/home.html", _sidebar(request, registry.available_models()))


@require_POST
def new_chat(request: HttpRequest) -> HttpResponse:
    options = registry.available_models()
    form = NewChatForm(request.POST, options=options)
    if not form.is_valid():
        context = _sidebar(request, options)
        context["new_chat_form"] = form
        return render(request, "chat/home.html", context, status=400)
    persona = form.cleaned_data["persona"]
    try:
        conversation = actions.create_conversation(
            user=request.user,
            persona_id=persona.pk if persona else None,
            model_key=form.cleaned_data["model"],
        )
    except actions.ActionError as error:
        messages.error(request, str(error))
        return redirect("home")
    return redirect("conversation", conversation_id=conversation.pk)


def conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    chat = access_conversation(request.user, conversation_id)
    actions.take_over_stale_replies(conversation_id=chat.pk)
    # Listing models queries connections and decrypts their keys: once per request.
    options = registry.available_models()
    option = registry.find(options, chat.model)
    model_label = option.label if option else f"{chat.model} (unavailable)"
    speaker = actions.speaker_for(chat)
    views = [
        MessageView.from_message(
            message,
            speaker=speaker if message.role == Message.Role.ASSISTANT else "",
        )
        for message in chat.messages.all()
    ]
    context = _sidebar(request, options, chat.pk)
    context.update(
        {
            "conversation": chat,
            "messages_": views,
            "model_label": model_label,
            "simulated": bool(option and option.simulated),
            **_settings_context(chat, options),
        }
    )
    return render(request, "chat/conversation.html", context)


def message(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """One message as the page shows it: for replies too big for a socket frame."""
    chat = access_conversation(request.user, conversation_id)
    found = get_object_or_404(chat.messages, pk=message_id)
    speaker = actions.speaker_for(chat) if found.role == Message.Role.ASSISTANT else ""
    return HttpResponse(render_message(MessageView.from_message(found, speaker=speaker)))


def _lockout_minutes() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def locked_out(
    request: HttpRequest, original_response: object = None, credentials: object = None
) -> HttpResponse:
    """django-axes' answer to a locked-out log-in (AXES_LOCKOUT_CALLABLE)."""
    context = {"reason": "Too many failed log-ins.", "minutes": _lockout_minutes()}
    return render(request, "registration/locked_out.html", context, status=429)


def _signup_allowed(request: HttpRequest) -> bool:
    """At most SIGNUP_RATE_LIMIT sign-up attempts per IP address per lockout period."""
    key = f"signup-attempts:{request.META.get('REMOTE_ADDR', '')}"
    cache.add(key, 0, timeout=int(settings.AXES_COOLOFF_TIME.total_seconds()))
    try:
        attempts = cache.incr(key)
    except ValueError:  # expired between add and incr
        attempts = 1
    return attempts <= settings.SIGNUP_RATE_LIMIT


@login_not_required
def signup(request: HttpRequest) -> HttpResponse:
    first_account = not User.objects.exists()
    if settings.SIGNUP_MODE == "closed" and not first_account:
        return render(request, "registration/signup_closed.html", status=403)
    if request.method == "POST" and not _signup_allowed(request):
        context = {"reason": "Too many sign-ups from here.", "minutes": _lockout_minutes()}
        return render(request, "registration/locked_out.html", context, status=429)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = actions.sign_up(user=form.save(commit=False))
        except actions.ActionError as error:
            form.add_error(None, str(error))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home" if user.is_approved else "pending")
    return render(
        request, "registration/signup.html", {"form": form, "first_account": first_account}
    )


def pending(request: HttpRequest) -> HttpResponse:
    if request.user.is_approved:
        return redirect("home")
    return render(request, "registration/pending.html")


@require_POST
def conversation_settings(request: HttpRequest, conversation_id: int) -> HttpResponse:
    chat = access_conversation(request.user, conversation_id)
    options = registry.available_models()
    form = ConversationSettingsForm(request.POST, options=options)
    saved = False
    if form.is_valid():
        data = form.cleaned_data
        try:
            chat = actions.update_conversation_settings(
                user=request.user,
                conversation_id=chat.pk,
                model_key=data["model"],
                temperature=data["temperature"],
                top_p=data["top_p"],
                max_output_tokens=data["max_output_tokens"],
            )
            saved = True
        except actions.ActionError as error:
            form.add_error(None, str(error))
    if saved and not request.htmx:
        return redirect("conversation", conversation_id=chat.pk)
    context = _settings_context(chat, options, form, saved=saved)
    return render(request, "chat/_settings.html", context, status=200 if saved else 422)


def _settings_context(
    chat: Conversation,
    options: list[registry.ModelOption],
    form: ConversationSettingsForm | None = None,
    *,
    saved: bool = False,
) -> dict[str, object]:
    option = registry.find(options, chat.model)
    if form is None:
        form = ConversationSettingsForm(
            options=options,
            initial={
                "model": chat.model,
                "temperature": chat.temperature,
                "top_p": chat.top_p,
                "max_output_tokens": chat.max_output_tokens,
            },
        )
    return {"conversation": chat, "settings_form": form, "option": option, "saved": saved}
