from django.contrib.auth import views as auth_views
from django.urls import path

from chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/new/", views.new_chat, name="new_chat"),
    path("c/<int:conversation_id>/", views.conversation, name="conversation"),
    path(
        "c/<int:conversation_id>/m/<int:message_id>/",
        views.message,
        name="message",
    ),
    path(
        "c/<int:conversation_id>/settings/",
        views.conversation_settings,
        name="conversation_settings",
    ),
    path("c/<int:conversation_id>/rename/", views.rename_conversation, name="rename_conversation"),
    path("c/<int:conversation_id>/pin/", views.pin_conversation, name="pin_conversation"),
    path("c/<int:conversation_id>/delete/", views.delete_conversation, name="delete_conversation"),
    path(
        "c/<int:conversation_id>/export.<str:fmt>",
        views.export_conversation,
        name="export_conversation",
    ),
    path("c/<int:conversation_id>/older/", views.older_messages, name="older_messages"),
    path("conversations/", views.conversation_list, name="conversation_list"),
    path("search/", views.search, name="search"),
    path("usage/", views.my_usage, name="my_usage"),
    path("personas/", views.personas, name="personas"),
    path("personas/new/", views.edit_persona, name="new_persona"),
    path("personas/import/", views.import_persona_card, name="import_persona_card"),
    path("personas/<int:persona_id>/", views.edit_persona, name="edit_persona"),
    path("personas/<int:persona_id>/delete/", views.delete_persona, name="delete_persona"),
    path("export/", views.export_all, name="export_all"),
    path("import/", views.import_conversations, name="import"),
    path("settings/time-zone/", views.set_time_zone, name="set_time_zone"),
    path("signup/", views.signup, name="signup"),
    path("pending/", views.pending, name="pending"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
