"""Thin views: validate input, call chat.actions or chat.access, render."""

from __future__ import annotations

import contextlib
import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from chat import actions
from chat.access import access_conversation
from chat.actions import quotas
from chat.forms import (
    CharacterCardForm,
    ConversationSettingsForm,
    NewChatForm,
    PrivatePersonaForm,
    SignUpForm,
)
from chat.listing import conversation_page
from chat.models import Conversation, Message, PersonaPreset, SiteSettings, Usage, User
from chat.permissions import models_for
from chat.rendering import MessageView, older_messages_html, render_message
from chat.search import search as search_conversations
from chat.tree import Shape, branch_page, versions_of
from providers import registry


def _sidebar(
    request: HttpRequest, options: list[registry.ModelOption], active_id: int | None = None
) -> dict[str, object]:
    return {
        "page": conversation_page(request.user),
        "active_id": active_id,
        "new_chat_form": NewChatForm(options=options, user=request.user),
        "models_available": bool(options),
    }


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/home.html", _sidebar(request, models_for(request.user)))


@require_POST
def new_chat(request: HttpRequest) -> HttpResponse:
    options = models_for(request.user)
    form = NewChatForm(request.POST, options=options, user=request.user)
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
    options = models_for(request.user)
    focus = request.GET.get("m", "")
    if focus.isdigit() and chat.current_leaf_id != int(focus):
        # A link to one message (a search result): show the branch it is on.
        with contextlib.suppress(actions.ActionError):
            actions.switch_branch(
                user=request.user,
                conversation_id=chat.pk,
                message_id=int(focus),
                only_if_hidden=True,
            )
            chat.refresh_from_db(fields=["current_leaf"])
    shape = Shape.of(chat)
    history = older_messages_html(
        chat, branch_page(chat, shape), speaker=actions.speaker_for(chat), shape=shape
    )
    context = _sidebar(request, options, chat.pk)
    context.update(
        {
            "conversation": chat,
            "history": history,
            **_model_context(chat, options),
            **_settings_context(chat, options),
        }
    )
    return render(request, "chat/conversation.html", context)


def message(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """One message as the page shows it: for replies too big for a socket frame."""
    chat = access_conversation(request.user, conversation_id)
    found = get_object_or_404(chat.messages, pk=message_id)
    speaker = actions.speaker_for(chat) if found.role == Message.Role.ASSISTANT else ""
    view = MessageView.from_message(found, speaker=speaker, versions=versions_of(found))
    return HttpResponse(render_message(view))


def _lockout_minutes() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def locked_out(
    request: HttpRequest, original_response: object = None, credentials: object = None
) -> HttpResponse:
    """django-axes' answer to a locked-out log-in (AXES_LOCKOUT_CALLABLE)."""
    context = {"reason": _("Too many failed log-ins."), "minutes": _lockout_minutes()}
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
        context = {"reason": _("Too many sign-ups from here."), "minutes": _lockout_minutes()}
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
    options = models_for(request.user)
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
    response = render(request, "chat/_settings.html", context, status=200 if saved else 422)
    if saved:
        # The header names the model: it follows the change at once.
        response.content += render_to_string(
            "chat/_chat_model.html", {**_model_context(chat, options), "oob": True}, request
        ).encode()
    return response


def _model_context(chat: Conversation, options: list[registry.ModelOption]) -> dict[str, object]:
    option = registry.find(options, chat.model)
    return {
        "conversation": chat,
        "model_label": option.label
        if option
        else _("{model} (unavailable)").format(model=chat.model),
        "simulated": bool(option and option.simulated),
    }


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


def conversation_list(request: HttpRequest) -> HttpResponse:
    """The next page of the sidebar's list (loaded when its end scrolls into view)."""
    page = conversation_page(
        request.user,
        cursor=request.GET.get("cursor", "")[:80] or "-",
        after_group=request.GET.get("after", "")[:40],
    )
    active = request.GET.get("active", "")
    context = {"page": page, "active_id": int(active) if active.isdigit() else None}
    return render(request, "chat/_conversation_page.html", context)


@require_POST
def rename_conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    chat = access_conversation(request.user, conversation_id)
    error = ""
    try:
        chat = actions.rename_conversation(
            user=request.user, conversation_id=chat.pk, title=request.POST.get("title", "")
        )
    except actions.ActionError as problem:
        error = str(problem)
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("conversation", conversation_id=chat.pk)
    context = {"conversation": chat, "rename_error": error}
    return render(request, "chat/_conversation_tools.html", context, status=422 if error else 200)


@require_POST
def set_time_zone(request: HttpRequest) -> HttpResponse:
    """The page reports the browser's time zone when it differs from the one kept."""
    try:
        actions.set_time_zone(user=request.user, name=request.POST.get("time_zone", ""))
    except actions.ActionError as problem:
        return HttpResponse(str(problem), status=400, content_type="text/plain; charset=utf-8")
    return HttpResponse(status=204)


@require_POST
def pin_conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    chat = actions.set_pinned(
        user=request.user,
        conversation_id=conversation_id,
        pinned=request.POST.get("pinned") == "true",
    )
    if not request.htmx:
        return redirect("conversation", conversation_id=chat.pk)
    response = render(request, "chat/_conversation_tools.html", {"conversation": chat})
    # The sidebar moves it in or out of "Pinned".
    sidebar = render_to_string(
        "chat/_conversation_page.html",
        {"page": conversation_page(request.user), "first_page": True, "active_id": chat.pk},
        request=request,
    )
    response.content += (
        f'<ul id="conversation-list" class="conversation-list" aria-label="Your conversations" '
        f'hx-swap-oob="true">{sidebar}</ul>'
    ).encode()
    return response


@require_POST
def delete_conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    chat = access_conversation(request.user, conversation_id)
    actions.delete_conversation(user=request.user, conversation_id=chat.pk)
    messages.success(request, _("Deleted “{title}”.").format(title=chat.display_title))
    return redirect("home")


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    options = models_for(request.user)
    context = _sidebar(request, options)
    context.update({"query": query, "hits": search_conversations(request.user, query)})
    return render(request, "chat/search.html", context)


def my_usage(request: HttpRequest) -> HttpResponse:
    """A user's own usage: what is used and left of each limit, and recent requests."""
    options = models_for(request.user)
    context = _sidebar(request, options)
    context.update(
        {
            "standing": quotas.standing(request.user),
            "recent": Usage.objects.filter(user=request.user).order_by("-created_at")[:25],
        }
    )
    return render(request, "chat/usage.html", context)


def personas(request: HttpRequest) -> HttpResponse:
    """A user's private personas, and a card import, when the site allows them."""
    context = _sidebar(request, models_for(request.user))
    context.update(
        {
            "allowed": SiteSettings.current().users_create_personas,
            "personas": PersonaPreset.objects.filter(owner=request.user),
            "card_form": CharacterCardForm(),
        }
    )
    return render(request, "chat/personas.html", context)


def edit_persona(request: HttpRequest, persona_id: int | None = None) -> HttpResponse:
    try:
        persona = (
            actions.private_persona(request.user, persona_id)
            if persona_id is not None
            else PersonaPreset(owner=request.user)
        )
    except actions.ActionError:
        raise Http404("No such persona") from None
    form = PrivatePersonaForm(request.POST or None, instance=persona)
    if request.method == "POST" and form.is_valid():
        try:
            actions.save_private_persona(user=request.user, persona=form.save(commit=False))
        except actions.ActionError as problem:
            form.add_error(None, str(problem))
        else:
            messages.success(request, _("Saved “%(name)s”.") % {"name": persona.name})
            return redirect("personas")
    context = _sidebar(request, models_for(request.user))
    context.update({"form": form, "persona": persona})
    status = 422 if request.method == "POST" else 200
    return render(request, "chat/persona_form.html", context, status=status)


@require_POST
def delete_persona(request: HttpRequest, persona_id: int) -> HttpResponse:
    try:
        actions.delete_private_persona(user=request.user, persona_id=persona_id)
    except actions.ActionError:
        raise Http404("No such persona") from None
    messages.success(request, _("The persona was deleted."))
    return redirect("personas")


@require_POST
def import_persona_card(request: HttpRequest) -> HttpResponse:
    form = CharacterCardForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            imported = actions.import_card_file(
                upload=form.cleaned_data["card"], owner=request.user
            )
        except actions.ActionError as problem:
            messages.error(request, str(problem))
        else:
            messages.success(
                request, _("Imported “%(name)s” from the card.") % {"name": imported.persona.name}
            )
            for note in imported.notes:
                messages.warning(request, note)
    else:
        messages.error(request, _("Choose a card file to import."))
    return redirect("personas")


def export_conversation(request: HttpRequest, conversation_id: int, fmt: str) -> HttpResponse:
    try:
        exported = actions.export_conversation(
            user=request.user, conversation_id=conversation_id, fmt=fmt
        )
    except actions.ActionError:
        raise Http404("No such export") from None
    return _download(exported)


def export_all(request: HttpRequest) -> HttpResponse:
    return _download(actions.export_all(user=request.user))


def _download(exported: actions.ExportFile) -> HttpResponse:
    response = HttpResponse(exported.body, content_type=exported.content_type)
    response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
    return response


def import_conversations(request: HttpRequest) -> HttpResponse:
    """Parley, Open WebUI or ChatGPT JSON: new conversations of the user's own."""
    error = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            error = _("Choose a file to import.")
        elif upload.size is not None and upload.size > settings.IMPORT_MAX_BYTES:
            error = _("The file is larger than {size} MiB.").format(
                size=settings.IMPORT_MAX_BYTES // (1024 * 1024)
            )
        else:
            try:
                created = actions.import_conversations(user=request.user, raw=upload.read())
            except actions.ActionError as problem:
                error = str(problem)
            else:
                count = len(created)
                messages.success(
                    request,
                    ngettext(
                        "Imported {count} conversation.", "Imported {count} conversations.", count
                    ).format(count=count),
                )
                if count == 1:
                    return redirect("conversation", conversation_id=created[0].pk)
                return redirect("home")
    context = _sidebar(request, models_for(request.user))
    context.update({"error": error, "max_mib": settings.IMPORT_MAX_BYTES // (1024 * 1024)})
    return render(request, "chat/import.html", context, status=422 if error else 200)


def older_messages(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The page of the current branch above message ``before`` (loaded on scroll up)."""
    chat = access_conversation(request.user, conversation_id)
    before = request.GET.get("before", "")
    if not before.isdigit():
        raise Http404("No such message")
    page = branch_page(chat, before=int(before))
    html = older_messages_html(chat, page, speaker=actions.speaker_for(chat))
    return HttpResponse(html)
