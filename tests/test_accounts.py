import pytest

from chat.models import User

pytestmark = pytest.mark.django_db


def _sign_up(client, username="ada", password="a-long-passphrase-9"):
    return client.post(
        "/signup/", {"username": username, "password1": password, "password2": password}
    )


def test_the_first_account_becomes_the_admin(client):
    response = _sign_up(client)
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="ada")
    assert user.is_superuser and user.is_staff and user.is_approved


def test_later_sign_ups_wait_for_approval_by_default(client, owner):
    response = _sign_up(client, "bob")
    assert response["Location"] == "/pending/"
    assert not User.objects.get(username="bob").is_approved
    page = client.get("/", follow=True)
    assert page.status_code == 200
    assert b"Waiting for approval" in page.content


def test_a_pending_user_sees_the_pending_page_everywhere(client_for, outsider, conversation):
    client = client_for(outsider)
    for path in ("/", f"/c/{conversation.pk}/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == "/pending/"


def test_open_sign_up_approves_at_once(client, owner, settings):
    settings.SIGNUP_MODE = "open"
    response = _sign_up(client, "carol")
    assert response["Location"] == "/"
    assert User.objects.get(username="carol").is_approved


def test_closed_sign_up_refuses_new_accounts(client, owner, settings):
    settings.SIGNUP_MODE = "closed"
    response = _sign_up(client, "dave")
    assert response.status_code == 403
    assert b"Sign-up is closed" in response.content
    assert not User.objects.filter(username="dave").exists()


def test_closed_sign_up_still_lets_the_first_admin_in(client, settings):
    settings.SIGNUP_MODE = "closed"
    assert _sign_up(client).status_code == 302
    assert User.objects.get().is_superuser


def test_a_bad_sign_up_shows_errors_and_creates_nothing(client):
    response = client.post("/signup/", {"username": "x", "password1": "a", "password2": "b"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert not User.objects.exists()


@pytest.mark.parametrize("path", ["/", "/c/1/", "/admin/"])
def test_pages_require_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_log_in_and_log_out(client, owner):
    response = client.post("/login/", {"username": "owner", "password": "s3cret-pass-word"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_login_form_has_the_accessible_names(client):
    html = client.get("/login/").content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert ">Log in</button>" in html


def test_an_admin_approves_a_pending_user_in_the_admin(client_for, owner, outsider):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    response = client_for(owner).post(
        "/admin/chat/user/",
        {"action": "approve", "_selected_action": [outsider.pk]},
        follow=True,
    )
    assert b"Approved 1 user(s)." in response.content
    outsider.refresh_from_db()
    assert outsider.is_approved
    assert client_for(outsider).get("/").status_code == 200


def test_admins_manage_personas_with_example_turns_inline(client_for, owner, persona):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    page = client_for(owner).get(f"/admin/chat/personapreset/{persona.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Bait, probably." in html and 'name="examples-0-user_text"' in html


@pytest.mark.integration
def test_eight_simultaneous_first_sign_ups_make_exactly_one_account(tmp_path):
    """Two server processes on one empty database, sign-ups closed: one admin, no 500s."""
    import re
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.live import daphne, e2e_database, migrate, server_env

    def sign_up(base_url: str, n: int) -> int:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            page = client.get("/signup/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
            return client.post(
                "/signup/",
                data={
                    "csrfmiddlewaretoken": token,
                    "username": f"racer{n}",
                    "password1": "a-long-passphrase-9",
                    "password2": "a-long-passphrase-9",
                },
            ).status_code

    with e2e_database(tmp_path) as database_url:
        env = server_env(database_url, SIGNUP_MODE="closed")
        migrate(env)
        with (
            daphne(env, tmp_path / "a.log") as first,
            daphne(env, tmp_path / "b.log") as second,
            ThreadPoolExecutor(8) as pool,
        ):
            codes = list(pool.map(sign_up, [first, second] * 4, range(8)))
        assert 500 not in codes, codes
        assert codes.count(302) == 1, codes
        if database_url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
                users = conn.execute("SELECT username, is_superuser FROM chat_user").fetchall()
        else:
            import psycopg

            with psycopg.connect(database_url) as conn:
                users = conn.execute("SELECT username, is_superuser FROM chat_user").fetchall()
        assert len(users) == 1 and users[0][1]
