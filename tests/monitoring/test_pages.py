"""Dashboard pages: login required, the numbers shown, the owner's data only, CSRF, query counts."""

import json
import re

import pytest
from django.test import Client

from billing.services import adjustment_create, hold_place, hold_settle
from gateway.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="pw-ops-123", is_staff=True)


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def funded(user, staff):
    adjustment_create(user=user, amount=120_500_000, actor=staff, reason="starter credits")
    return user


@pytest.mark.parametrize("path", ["/", "/transactions/", "/topup/", "/keys/", "/playground/", "/calls/1/"])
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_dashboard_shows_balance_usage_and_chart_data(
    logged_in, funded, make_usage, django_assert_max_num_queries
):
    hold = hold_place(user=funded, amount=3_000_000, request_id="req-dash")
    hold_settle(hold_id=hold.pk, amount=2_500_000)
    make_usage(funded, request_id="req-dash", credits=2_500_000, model="openai/gpt-4o", provider="openrouter")
    make_usage(funded, credits=500_000, model="google/gemini-flash-1.5", provider="google", latency_ms=321)

    with django_assert_max_num_queries(10):
        response = logged_in.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'data-testid="balance">118\.00<', html)
    assert "credits · $0.12" in html  # dollars beside credits
    assert re.search(r'data-testid="spent">3\.00<', html)
    assert re.search(r'data-testid="requests">2<', html)
    assert "google/gemini-flash-1.5" in html and "321 ms" in html
    assert "starter credits" in html
    charts = json.loads(
        re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html).group(1)
    )
    assert charts["by_model"]["labels"] == ["openai/gpt-4o", "google/gemini-flash-1.5"]
    assert charts["by_model"]["credits"] == ["2.500000", "0.500000"]
    assert sum(charts["daily"]["requests"]) == 2 and len(charts["daily"]["labels"]) == 30
    assert "vendor/chartjs/chart.umd.min.js" in html


def test_dashboard_query_count_does_not_grow_with_calls(
    logged_in, funded, make_usage, django_assert_max_num_queries
):
    for i in range(40):
        make_usage(funded, model=f"vendor/model-{i % 7}", provider=["openrouter", "openai", "groq"][i % 3])
    with django_assert_max_num_queries(10):
        assert logged_in.get("/").status_code == 200


def test_call_page_explains_the_charge(logged_in, funded, make_usage):
    from gateway.models import ModelCatalogEntry

    ModelCatalogEntry.objects.update_or_create(
        id="openai/gpt-4o",
        defaults={
            "display_name": "GPT-4o",
            "context_length": 128000,
            "prompt_price": "0.0000025",
            "completion_price": "0.00001",
            "providers": {"openrouter": "openai/gpt-4o"},
        },
    )
    hold = hold_place(user=funded, amount=4_000_000, request_id="req-call")
    hold_settle(hold_id=hold.pk, amount=1_250_000)
    attempts = [
        {
            "model": "openai/gpt-4o",
            "provider": "openrouter",
            "status": "error",
            "error_class": "UpstreamTimeout",
            "latency_ms": 30000,
            "reason": "",
        },
        {
            "model": "openai/gpt-4o",
            "provider": "openai",
            "status": "ok",
            "error_class": "",
            "latency_ms": 900,
            "reason": "",
        },
    ]
    record = make_usage(
        funded,
        request_id="req-call",
        route="matrix:analysis/balanced",
        credits=1_250_000,
        hold=4_000_000,
        attempts=attempts,
        prompt_tokens=300,
        completion_tokens=50,
    )
    html = logged_in.get(f"/calls/{record.pk}/").content.decode()
    assert "Routing matrix cell" in html and "analysis/balanced" in html
    assert "UpstreamTimeout" in html and "30,000 ms" in html
    assert re.search(r'data-testid="charged">1\.25<', html)
    assert re.search(r'data-testid="settled">1\.25 credits charged · 2\.75 released', html)
    assert re.search(r"\d{4} \d\d:\d\d:\d\d UTC", html)  # times carry their zone
    assert "$2.5 per 1M prompt tokens" in html and "$10 per 1M completion tokens" in html
    assert "300 prompt + 50 completion = 350" in html


def test_another_users_call_is_not_found(client, other_user, user, make_usage):
    record = make_usage(user)
    client.force_login(other_user)
    assert client.get(f"/calls/{record.pk}/").status_code == 404


def test_transactions_page_pages_through_the_ledger(logged_in, user, staff):
    for i in range(30):
        adjustment_create(user=user, amount=1_000_000 + i, actor=staff, reason=f"grant #{i}")
    first = logged_in.get("/transactions/").content.decode()
    assert "grant #29" in first and "grant #5" in first and "grant #4" not in first
    older = re.search(r'href="\?before=(\d+)"', first).group(1)
    second = logged_in.get(f"/transactions/?before={older}").content.decode()
    assert "grant #4" in second and "grant #0" in second and "grant #5<" not in second
    assert "?before=" not in second  # no older page
    assert logged_in.get("/transactions/?before=abc").status_code == 200


def test_topup_page_offers_amounts_with_their_credits(logged_in, user):
    html = logged_in.get("/topup/").content.decode()
    assert "$100.00" in html and "86,956 credits" in html  # floor(100 / 1.15 * 1000)
    # Any amount from $0.50, cents included ($7.77 must not be refused by the browser).
    assert re.search(r'name="custom_usd"[^>]*min="0\.50"[^>]*step="0\.01"', html)
    assert "/api/billing/checkout" in html and "csrfmiddlewaretoken" in html
    assert "No payment named" in logged_in.get("/topup/success/").content.decode()
    assert "Nothing was charged" in logged_in.get("/topup/cancel/").content.decode()
    # Billing's Checkout success/cancel URLs point at the dashboard with ?topup=...
    assert (
        logged_in.get("/", {"topup": "success", "session_id": "cs_test_a1"})["Location"]
        == "/topup/success/?session_id=cs_test_a1"
    )
    assert logged_in.get("/", {"topup": "cancelled"})["Location"] == "/topup/cancel/"


def test_api_key_is_shown_once_and_can_be_revoked(logged_in, user):
    response = logged_in.post("/keys/", {"name": "laptop"})
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    raw = re.search(r'id="new-key-value" class="mono">(sk-ss-[^<]+)<', response.content.decode()).group(1)
    key = ApiKey.objects.get(user=user, name="laptop")
    assert raw.startswith(key.prefix)

    listing = logged_in.get("/keys/").content.decode()
    assert raw not in listing and f"{key.prefix}…" in listing and "never" in listing

    response = logged_in.post(f"/keys/{key.pk}/revoke/", follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "revoked" in response.content.decode()


def test_revoking_someone_elses_key_changes_nothing(client, user, other_user):
    from gateway.keys import api_key_create

    key, _ = api_key_create(user=other_user, name="theirs")
    client.force_login(user)
    response = client.post(f"/keys/{key.pk}/revoke/")
    # Exactly what an id that does not exist gets: nothing tells the two apart.
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_forms_need_the_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.filter(user=user, name="x").exists()


def test_staff_page_shows_health_and_top_spenders(client, staff, user, other_user, make_usage, settings):
    import uuid

    from monitoring.health import ProviderHealthMonitor

    settings.HEALTH_KEY_PREFIX = f"test-staff-{uuid.uuid4().hex[:8]}"
    monitor = ProviderHealthMonitor()
    try:
        for _ in range(3):
            monitor.record_attempt(
                provider="groq",
                model="meta-llama/llama-3.1-70b-instruct",
                ok=False,
                latency_ms=100,
                error_class="UpstreamUnavailable",
            )
        monitor.record_attempt(provider="openrouter", model="", ok=True, latency_ms=80, probe=True)
        make_usage(user, credits=9_000_000)
        make_usage(other_user, credits=1_000_000)

        client.force_login(user)
        assert client.get("/staff/").status_code == 302  # not staff: sent to the admin login

        client.force_login(staff)
        html = client.get("/staff/").content.decode()
        groq = re.search(r'<tr data-provider="groq">(.*?)</tr>', html, re.S).group(1)
        assert "down" in groq and "UpstreamUnavailable" in groq
        openrouter = re.search(r'<tr data-provider="openrouter">(.*?)</tr>', html, re.S).group(1)
        assert "ok" in openrouter and "80 ms" in openrouter
        assert html.index("alice") < html.index("bob")  # ranked by spend
        assert "9.00" in html
    finally:
        monitor.clear()
