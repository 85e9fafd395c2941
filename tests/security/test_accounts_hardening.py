"""Accounts and keys (issue 11): deactivating a user stops their keys at once (not when the key cache
expires), by any path that saves the user; login throttling by account and by IP; staff limits on a
key are a ceiling its owner can lower but not raise; customers see aggregate provider health only."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def _whoami(api_key) -> int:
    return Client().get("/api/auth/whoami", HTTP_AUTHORIZATION=f"Bearer {api_key}").status_code


def _chat(api_key) -> int:
    return (
        Client()
        .post(
            "/v1/chat/completions",
            CHAT,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api_key}",
        )
        .status_code
    )


@pytest.mark.parametrize("path", ["model_save", "admin"])
def test_deactivating_a_user_stops_their_cached_keys_at_once(
    demo_only, user, api_key, settings, django_user_model, path
):
    from tests.gateway.conftest import grant

    settings.API_KEY_CACHE_SECONDS = 3600
    grant(user, 1000)
    assert _whoami(api_key) == 200 and _chat(api_key) == 200  # the key is now in the cache
    if path == "model_save":
        user.is_active = False
        user.save()
    else:
        staff = django_user_model.objects.create_superuser(username="root", password="pw-root-123")
        admin = Client()
        admin.force_login(staff)
        page = admin.get(f"/admin/auth/user/{user.pk}/change/")
        assert page.status_code == 200
        form = page.context["adminform"].form
        data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
        data.update(
            {
                "username": user.username,
                "is_active": "",
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
                "last_login_0": "",
                "last_login_1": "",
            }
        )
        data.pop("groups", None)
        data.pop("user_permissions", None)
        response = admin.post(f"/admin/auth/user/{user.pk}/change/", data)
        assert response.status_code == 302, response.content[:2000]
        user.refresh_from_db()
        assert not user.is_active
    assert _whoami(api_key) == 401
    assert _chat(api_key) == 401
    # Reactivated: the same key works again at once.
    user.is_active = True
    user.save()
    assert _whoami(api_key) == 200


def test_a_login_that_saves_only_last_login_reads_no_keys(user, django_assert_num_queries):
    from gateway.signals import user_saved

    with django_assert_num_queries(0):
        user_saved(sender=type(user), instance=user, update_fields={"last_login"})


def test_customers_see_aggregate_provider_health_and_staff_the_detail(
    user, api_key, django_user_model, settings
):
    import uuid

    from monitoring.services import ProviderHealthMonitor

    settings.HEALTH_KEY_PREFIX = f"test-acct-health-{uuid.uuid4().hex[:8]}"
    monitor = ProviderHealthMonitor()
    for ok in (True, False):
        monitor.record_attempt(
            provider="openrouter",
            model="openai/gpt-4o",
            ok=ok,
            latency_ms=120,
            error_class="" if ok else "UpstreamTimeout",
        )
    customer = Client().get("/api/monitoring/providers", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert customer.status_code == 200
    rows = customer.json()["providers"]
    assert [r["provider"] for r in rows] == ["openrouter"]
    assert set(rows[0]) == {"provider", "healthy", "success_rate", "latency_p50_ms", "latency_p95_ms"}
    assert "UpstreamTimeout" not in customer.content.decode()

    staff = django_user_model.objects.create_user(username="ops", password="pw-ops-12345", is_staff=True)
    client = Client()
    client.force_login(staff)
    detail = client.get("/api/monitoring/providers").json()["providers"]
    assert {r["model"] for r in detail} == {None, "openai/gpt-4o"}
    assert any(r["last_error"] == "UpstreamTimeout" for r in detail)


def _login(client, username: str, password: str, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_login_is_throttled_by_account_and_the_right_password_then_fails_too(user, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.LOGIN_FAILURES_PER_IP = 1000
    for i in range(5):
        # From five different addresses: the account's own count locks it.
        response = _login(Client(), "alice", f"wrong-{i}", REMOTE_ADDR=f"10.0.0.{i + 1}")
        assert response.status_code == 200 and "Please enter a correct username" in response.content.decode()
    locked = _login(Client(), "ALICE", "pw-alice-123", REMOTE_ADDR="10.0.0.99")
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    assert "_auth_user_id" not in locked.wsgi_request.session
    # Another account is not affected.
    Client().get("/")
    bob = type(user).objects.create_user(username="bob", password="pw-bob-123")
    assert _login(Client(), bob.username, "pw-bob-123").status_code == 302


def test_login_is_throttled_by_address_across_accounts(user, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 1000
    settings.LOGIN_FAILURES_PER_IP = 10
    for i in range(10):
        assert _login(Client(), f"someone-{i}", "guess", REMOTE_ADDR="203.0.113.7").status_code == 200
    assert _login(Client(), "alice", "pw-alice-123", REMOTE_ADDR="203.0.113.7").status_code == 429
    assert _login(Client(), "alice", "pw-alice-123", REMOTE_ADDR="203.0.113.8").status_code == 302


def test_a_successful_login_clears_the_account_count(user, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    for _ in range(2):
        assert _login(Client(), "alice", "nope").status_code == 200
    assert _login(Client(), "alice", "pw-alice-123").status_code == 302
    for _ in range(2):
        assert _login(Client(), "alice", "nope").status_code == 200
    assert _login(Client(), "alice", "pw-alice-123").status_code == 302


def test_admin_sign_in_is_throttled_too(django_user_model, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    django_user_model.objects.create_superuser(username="root", password="pw-root-12345")
    for _ in range(3):
        Client().post("/admin/login/", {"username": "root", "password": "bad"})
    response = Client().post("/admin/login/", {"username": "root", "password": "pw-root-12345"})
    assert response.status_code == 200 and "Too many failed sign-in attempts" in response.content.decode()


def test_staff_limits_are_a_ceiling_the_owner_can_lower_but_not_raise_or_clear(
    user, django_user_model, settings
):
    from gateway.keys import api_key_create
    from gateway.limits import KeyLimits
    from gateway.models import ApiKey

    key, _ = api_key_create(user=user)
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    admin = Client()
    admin.force_login(staff)
    r = admin.post(
        f"/admin/gateway/apikey/{key.pk}/change/",
        {
            "name": "ci",
            "requests_per_minute": "",
            "tokens_per_minute": "",
            "credits_per_day_credits": "",
            "credits_per_month_credits": "",
            "ceiling_requests_per_minute": "30",
            "ceiling_tokens_per_minute": "",
            "ceiling_credits_per_day_credits": "12.5",
            "ceiling_credits_per_month_credits": "",
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    key.refresh_from_db()
    assert (key.ceiling_requests_per_minute, key.ceiling_credits_per_day) == (30, 12_500_000)
    limits = KeyLimits.from_api_key(key)
    assert (limits.requests_per_minute, limits.credits_per_day) == (30, 12_500_000)

    owner = Client()
    owner.force_login(user)
    page = owner.get("/keys/").content.decode()
    assert "Staff limit: at most 30" in page and "30 requests/min" in page
    # Raising past the ceiling is refused, naming it; nothing is saved.
    raised = owner.post(f"/keys/{key.pk}/limits/", {"requests_per_minute": "100"}, follow=True)
    assert "you can lower it, not raise it" in raised.content.decode()
    key.refresh_from_db()
    assert key.requests_per_minute is None
    # Clearing (an empty form) leaves the ceiling in force.
    assert owner.post(f"/keys/{key.pk}/limits/", {}).status_code == 302
    key.refresh_from_db()
    assert KeyLimits.from_api_key(key).requests_per_minute == 30
    assert KeyLimits.from_api_key(key).credits_per_day == 12_500_000
    # Lowering works, and is what applies.
    form = {"requests_per_minute": "10", "credits_per_day_credits": "2"}
    assert owner.post(f"/keys/{key.pk}/limits/", form).status_code == 302
    key = ApiKey.objects.get(pk=key.pk)
    limits = KeyLimits.from_api_key(key)
    assert (limits.requests_per_minute, limits.credits_per_day) == (10, 2_000_000)
    too_much = owner.post(f"/keys/{key.pk}/limits/", {"credits_per_day_credits": "13"}, follow=True)
    assert "at most 12.5" in too_much.content.decode() or "at most 12.50" in too_much.content.decode()
    key.refresh_from_db()
    assert key.credits_per_day == 2_000_000


def test_the_ceiling_is_enforced_on_calls(demo_only, user, api_key, settings, limits_prefix):
    from gateway.models import ApiKey
    from tests.gateway.conftest import grant

    grant(user, 1000)
    ApiKey.objects.filter(user=user).update(ceiling_requests_per_minute=2, requests_per_minute=None)
    from gateway.keys import api_keys_user_status_changed

    api_keys_user_status_changed(user=user)  # drop the cached key
    assert [_chat(api_key) for _ in range(3)] == [200, 200, 429]
