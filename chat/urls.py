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
    path("signup/", views.signup, name="signup"),
    path("pending/", views.pending, name="pending"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
