import pytest

pytestmark = pytest.mark.django_db


def test_dashboard_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_signup_creates_account_and_logs_in(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": "a-Long-pass-9931", "password2": "a-Long-pass-9931"},
    )
    assert response.status_code == 302
    assert django_user_model.objects.filter(username="dora").exists()
    assert client.get("/").status_code == 200


def test_signup_rejects_mismatched_passwords(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": "eve", "password1": "a-Long-pass-9931", "password2": "different-pass-1"},
    )
    assert response.status_code == 200
    assert not django_user_model.objects.filter(username="eve").exists()


def test_login_and_logout(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_admin_requires_staff(client, user):
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302
