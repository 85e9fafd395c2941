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
        {
            "username": "dora",
            "email": "dora@example.com",
            "password1": "a-Long-pass-9931",
            "password2": "a-Long-pass-9931",
        },
    )
    assert response.status_code == 302
    assert django_user_model.objects.filter(username="dora").exists()
    assert client.get("/").status_code == 200


def test_signup_rejects_mismatched_passwords(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "eve",
            "email": "eve@example.com",
            "password1": "a-Long-pass-9931",
            "password2": "different-pass-1",
        },
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


def _ledger(user):
    from billing.models import LedgerEntry

    return list(LedgerEntry.objects.filter(account__user=user).values_list("kind", "amount", "description"))


def test_signup_grants_the_starter_credits_once_as_a_ledger_entry_with_its_reason(
    client, settings, django_user_model
):
    from billing.services import signup_credits_grant

    settings.SIGNUP_CREDITS = 250
    client.post(
        "/accounts/signup/",
        {
            "username": "fay",
            "email": "fay@example.com",
            "password1": "a-Long-pass-9931",
            "password2": "a-Long-pass-9931",
        },
    )
    fay = django_user_model.objects.get(username="fay")
    assert _ledger(fay) == [("adjustment", 250_000_000, "Starter credits for a new account (SIGNUP_CREDITS)")]
    assert signup_credits_grant(user=fay) is None  # once per account
    assert len(_ledger(fay)) == 1


def test_no_starter_credits_when_signup_credits_is_zero(client, settings, django_user_model):
    settings.SIGNUP_CREDITS = 0
    client.post(
        "/accounts/signup/",
        {
            "username": "gil",
            "email": "gil@example.com",
            "password1": "a-Long-pass-9931",
            "password2": "a-Long-pass-9931",
        },
    )
    assert _ledger(django_user_model.objects.get(username="gil")) == []


def test_issue_api_key_create_user_grants_starter_credits(settings, django_user_model):
    from io import StringIO

    from django.core.management import call_command

    settings.SIGNUP_CREDITS = 1000
    out, err = StringIO(), StringIO()
    call_command("issue_api_key", "hal", "--create-user", stdout=out, stderr=err)
    hal = django_user_model.objects.get(username="hal")
    assert [amount for _, amount, _ in _ledger(hal)] == [1_000_000_000]
    assert "Granted 1000.000000 starter credits" in err.getvalue()
    assert out.getvalue().strip().startswith("sk-ss-")
    # A second key for the same (existing) user grants nothing more.
    call_command("issue_api_key", "hal", stdout=StringIO(), stderr=StringIO())
    assert len(_ledger(hal)) == 1
