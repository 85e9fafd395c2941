"""The pages read like a statement: number formats, the dashboard's empty and failed states, the
call page's failure naming, the keys page's revoke confirmation and limits summary, the top-up
success page tied to its payment, sign-up with email, password reset, the 404 page and favicon."""

import re

import pytest

from billing.credits import credits_display, usd_display
from billing.services import adjustment_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("micro", "shown"),
    [
        (0, "0.00"),
        (50_131_000_000, "50,131.00"),
        (86_956_500_000, "86,956.50"),
        (-2_000_000, "-2.00"),
        (10_000_000, "10.00"),
        (1_086_000, "1.086"),  # below a cent's worth (10 credits): the digits that matter
        (43_500, "0.0435"),
        (1, "0.000001"),
        (None, ""),
    ],
)
def test_credits_read_like_a_statement(micro, shown):
    assert credits_display(micro) == shown


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        ("0", "$0.00"),
        ("7.77", "$7.77"),
        ("1234.5", "$1,234.50"),
        ("0.0000435", "$0.0000435"),
        ("-0.5", "-$0.50"),
    ],
)
def test_dollars_read_like_a_statement(usd, shown):
    assert usd_display(usd) == shown


def test_dashboard_without_spend_says_so_and_latency_says_no_calls(logged_in):
    html = logged_in.get("/").content.decode()
    assert 'data-testid="no-spend"' in html and "No credits spent in the last 30 days" in html
    assert "latency: no calls yet" in html and "– ms" not in html


def test_dashboard_groups_failures_before_a_provider_and_leaves_zero_spend_out(logged_in, user, make_usage):
    make_usage(user, credits=12_345_678_900, prompt_tokens=40_000, completion_tokens=10_131)
    make_usage(user, model="google/gemini-flash-1.5", provider="google", credits=0)
    make_usage(
        user, model="", provider="", credits=0, status="error", error_class="InsufficientCredits", attempts=[]
    )
    html = logged_in.get("/").content.decode()
    charts = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html).group(1)
    assert '"labels": ["openai/gpt-4o"]' in charts  # the zero-spend model is not in the legend
    assert "failed before a provider" in charts and '"-"' not in charts
    assert re.search(r'data-testid="tokens">50,431<', html)  # thousands separators (+ 2 x 150)
    assert re.search(r'data-testid="spent">12,345.68<', html)
    assert "$12.35" in html


def test_a_failed_call_names_what_failed(logged_in, user, make_usage):
    before = make_usage(
        user,
        model="",
        provider="",
        credits=0,
        status="error",
        error_class="ModelNotFound",
        attempts=[
            {
                "model": "x/unknown",
                "provider": "",
                "status": "skipped",
                "error_class": "",
                "reason": "not in the catalog",
            }
        ],
    )
    html = logged_in.get(f"/calls/{before.pk}/").content.decode()
    assert re.search(r'data-testid="failure">Failed before a provider: not in the catalog\.<', html)
    assert "no model chosen" in html and "model ·" not in html

    upstream = make_usage(
        user,
        provider="",
        credits=0,
        status="error",
        error_class="UpstreamUnavailable",
        attempts=[
            {
                "model": "openai/gpt-4o",
                "provider": "openrouter",
                "status": "error",
                "error_class": "UpstreamTimeout",
            },
            {
                "model": "openai/gpt-4o",
                "provider": "openai",
                "status": "error",
                "error_class": "UpstreamUnavailable",
            },
        ],
    )
    html = logged_in.get(f"/calls/{upstream.pk}/").content.decode()
    assert "Every attempt failed: openrouter (UpstreamTimeout), openai (UpstreamUnavailable)." in html
    assert 'class="pill error" data-testid="status"' in html
    assert html.count('class="pill error" data-testid="attempt-status"') == 2


def test_a_cancelled_streams_attempt_says_cancelled(logged_in, user, make_usage):
    record = make_usage(user, status="cancelled", stream=True)
    html = logged_in.get(f"/calls/{record.pk}/").content.decode()
    assert re.findall(r'data-testid="attempt-status">(\w+)<', html) == ["cancelled"]
    assert "Cancelled by the client while openrouter was answering." in html


def test_keys_page_asks_before_revoking_and_shows_the_saved_limits(logged_in, user):
    from gateway.keys import api_key_create

    key, _ = api_key_create(user=user, name="ci")
    response = logged_in.post(
        f"/keys/{key.pk}/limits/",
        {"requests_per_minute": "1200", "tokens_per_minute": "", "credits_per_day_credits": "2500.5"},
    )
    assert response.status_code == 302
    html = logged_in.get("/keys/").content.decode()
    summary = re.search(r'data-testid="limits-summary">(.*?)<', html).group(1)
    assert summary == "1,200 requests/min · 2,500.50 credits/day"
    assert re.search(
        r'<form method="post" action="/keys/\d+/revoke/" class="inline" data-confirm="Revoke key', html
    )
    assert "/static/js/keys.js" in html and "<script>" not in html  # page JS lives in static files


def test_topup_success_page_shows_the_payment_it_refers_to(logged_in, user):
    from billing.services import topup_apply

    # Stripe's return lands on the dashboard; the session id survives the hop.
    hop = logged_in.get("/?topup=success&session_id=cs_test_777")
    assert hop.status_code == 302 and hop["Location"] == "/topup/success/?session_id=cs_test_777"

    pending = logged_in.get(hop["Location"]).content.decode()
    assert "Payment pending" in pending and "cs_test_777" in pending and "went through" not in pending

    topup_apply(
        user=user,
        amount_cents=777,
        payment_intent_id="pi_test_777",
        checkout_session_id="cs_test_777",
        source="test",
    )
    done = logged_in.get(hop["Location"]).content.decode()
    assert "Payment credited" in done and "$7.77" in done
    assert re.search(r'data-testid="topup-credits">6,756.00<', done)

    assert "No payment named" in logged_in.get("/topup/success/").content.decode()


def test_another_users_payment_reads_as_pending(logged_in, other_user):
    from billing.services import topup_apply

    topup_apply(
        user=other_user,
        amount_cents=5000,
        payment_intent_id="pi_test_theirs",
        checkout_session_id="cs_test_theirs",
        source="test",
    )
    html = logged_in.get("/topup/success/?session_id=cs_test_theirs").content.decode()
    assert "Payment pending" in html and "$50.00" not in html


def test_signup_asks_for_an_email_and_styles_its_errors(client, django_user_model):
    html = client.get("/accounts/signup/").content.decode()
    assert 'name="email"' in html
    response = client.post(
        "/accounts/signup/",
        {"username": "ida", "email": "not-an-email", "password1": "a-Long-pass-9931", "password2": "x"},
    )
    html = response.content.decode()
    assert response.status_code == 200 and not django_user_model.objects.filter(username="ida").exists()
    assert html.count('class="errorlist" role="alert"') >= 2


def test_password_reset_mails_a_link_that_sets_a_new_password(client, django_user_model, mailoutbox):
    django_user_model.objects.create_user(username="jo", email="jo@example.com", password="old-Pass-1234")
    assert "Forgot your password?" in client.get("/accounts/login/").content.decode()
    response = client.post("/accounts/password_reset/", {"email": "jo@example.com"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["jo@example.com"]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "new-Pass-98765", "new_password2": "new-Pass-98765"}
    )
    assert done.status_code == 302
    assert client.login(username="jo", password="new-Pass-98765")


def test_console_mail_is_the_embedded_default():
    import subprocess
    import sys
    from pathlib import Path

    code = "import django; django.setup(); from django.conf import settings as s; print(s.EMAIL_BACKEND)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "smartspec.settings",
            "DEBUG": "true",
            "DJANGO_READ_DOT_ENV_FILE": "false",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "django.core.mail.backends.console.EmailBackend", out.stderr


def test_404_is_a_styled_page_when_debug_is_off(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'data-testid="not-found"' in html and "/static/css/app.css" in html and "/no/such/page/" in html
    assert client.get("/v1/nope").json()["error"]["type"]  # API paths keep the JSON error


def test_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()


def test_transactions_show_dollars_and_zoned_times(logged_in, user, django_user_model):
    staff = django_user_model.objects.create_user(username="ops2", is_staff=True)
    adjustment_create(user=user, amount=1_234_567_000_000, actor=staff, reason="big grant")
    html = logged_in.get("/transactions/").content.decode()
    assert "1,234,567.00" in html and "$1,234.57" in html
    assert re.search(r"\d{4} \d\d:\d\d UTC", html)
