"""Web and secret hygiene: staff-only pages, CSRF on every form, client-set upstream URLs refused,
API keys stored as keyed hashes, provider/Stripe secrets and raw upstream error bodies never in a
response, a page or the log file."""

import hashlib
import hmac
import re

import httpx
import pytest
import responses
from django.conf import settings as django_settings
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from gateway.keys import api_key_create
from gateway.models import ApiKey
from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    GEMINI_HOST,
    GROQ_HOST,
    OPENAI_HOST,
    OPENROUTER_HOST,
    ZAI_HOST,
    balance,
    grant,
)

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Say hello"}]
CHAT_PATHS = ("/v1/chat/completions", "/api/llm/chat")


# --- staff only ----------------------------------------------------------------------------------


def admin_urls():
    urls = ["/admin/"]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    return urls


def test_admin_and_staff_pages_turn_away_everyone_but_staff(client, user, django_user_model):
    staff = django_user_model.objects.create_user(
        "staffer", password="pw-staff-123", is_staff=True, is_superuser=True
    )
    urls = [*admin_urls(), "/staff/"]
    assert len(urls) > 10
    for who in (None, user):
        if who:
            client.force_login(who)
        for url in urls:
            r = client.get(url)
            assert r.status_code == 302, (who, url, r.status_code)
            assert r["Location"].startswith(("/admin/login/", "/accounts/login/")), (url, r["Location"])
    # An API key opens none of them either.
    _, raw = api_key_create(user=user)
    keyed = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert all(keyed.get(url).status_code == 302 for url in urls)
    client.force_login(staff)
    assert client.get("/staff/").status_code == 200
    assert client.get("/admin/").status_code == 200


# --- CSRF on every form --------------------------------------------------------------------------

FORM = re.compile(r"<form\b[^>]*>", re.I)


def _post_forms(html: str, page: str) -> list[str]:
    actions = []
    for tag in FORM.findall(html):
        if not re.search(r'method="post"', tag, re.I):
            continue
        action = re.search(r'action="([^"]*)"', tag)
        actions.append(action.group(1) if action and action.group(1) else page)
    return actions


def test_every_form_refuses_a_post_without_the_csrf_token(user, other_user, demo_only):
    grant(user, 5)
    key, _ = api_key_create(user=user, name="mine")
    browser = Client(enforce_csrf_checks=True)
    anonymous_forms = {
        a
        for page in ("/accounts/login/", "/accounts/signup/")
        for a in _post_forms(browser.get(page).content.decode(), page)
    }
    browser.force_login(user)
    pages = ("/", "/keys/", "/topup/", "/playground/", "/transactions/")
    forms = set()
    for page in pages:
        r = browser.get(page)
        assert r.status_code == 200, page
        forms |= set(_post_forms(r.content.decode(), page))
    expected = {
        "/accounts/logout/",
        "/keys/",
        f"/keys/{key.pk}/revoke/",
        f"/keys/{key.pk}/limits/",
        "/api/billing/checkout",
        "/api/llm/chat",
    }
    assert expected <= forms, forms
    assert {"/accounts/login/", "/accounts/signup/"} <= anonymous_forms

    before = (ApiKey.objects.count(), balance(user), get_user_count())
    data = {"name": "forged", "requests_per_minute": "1", "amount_usd": "10", "messages": "hi"}
    for action in sorted(forms):
        # The API forms are sent as JSON by the pages' scripts; the rest as ordinary form posts.
        if action.startswith("/api/"):
            r = browser.post(action, data, content_type="application/json")
        else:
            r = browser.post(action, data)
        assert r.status_code == 403, (action, r.status_code, r.content[:300])
    stranger = Client(enforce_csrf_checks=True)
    for action in sorted(anonymous_forms):
        r = stranger.post(
            action,
            {
                "username": "mallory",
                "password": "x",
                "password1": "Zq9!long-pass",
                "password2": "Zq9!long-pass",
            },
        )
        assert r.status_code == 403, action
    key.refresh_from_db()
    assert key.revoked_at is None and key.requests_per_minute is None
    assert (ApiKey.objects.count(), balance(user), get_user_count()) == before
    # Still signed in: the forged logout did nothing.
    assert browser.get("/keys/").status_code == 200


def get_user_count():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.count()


# --- client-set upstream URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("path", CHAT_PATHS)
@pytest.mark.parametrize(
    "extra",
    [
        {"api_base": "http://169.254.169.254/latest/meta-data/"},
        {"base_url": "http://127.0.0.1:6379/"},
        {"api_key": "sk-or-v1-someone-elses"},
    ],
    ids=["api_base", "base_url", "api_key"],
)
def test_client_set_upstream_url_or_key_is_400_on_both_chat_endpoints(
    providers, funded_user, http, path, extra
):
    before = balance(funded_user)
    for stream in (False, True):
        r = http.post(path, {"messages": HELLO, "stream": stream, **extra}, content_type="application/json")
        assert r.status_code == 400, r.content
        (field,) = extra
        assert r.json()["error"]["code"] == "forbidden_field" and field in r.json()["error"]["message"]
    assert providers.calls == [] and balance(funded_user) == before


# --- API keys at rest ------------------------------------------------------------------------------


def test_api_keys_are_stored_as_a_keyed_hash_and_a_bad_key_costs_no_lookup(user, django_assert_num_queries):
    from gateway.keys import api_key_authenticate

    key, raw = api_key_create(user=user, name="k")
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert raw not in str(row)
    assert (
        row["key_hash"]
        == hmac.new(django_settings.API_KEY_SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
    )
    assert row["prefix"] == raw[: len(row["prefix"])] and len(row["prefix"]) < len(raw) // 2
    # A mistyped key fails its checksum (compared in constant time) before any database read.
    mistyped = raw[:-7] + ("A" if raw[-7] != "A" else "B") + raw[-6:]
    with django_assert_num_queries(0):
        assert api_key_authenticate(mistyped) is None


# --- secrets and raw upstream bodies never leave ---------------------------------------------------

SECRETS = {
    "OPENROUTER_API_KEY": "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",
    "OPENAI_API_KEY": "sk-proj-Qm4XbV7nT2wLr9KpZs3HcYd8FgJe1UaN",
    "ANTHROPIC_API_KEY": "sk-ant-api03-Xv8Lq2Rb6Nm1Tc4Wz7Ky9Pd3Hs5Fg0Jk",
    "GOOGLE_API_KEY": "AIzaSyD3x9Qm2Lk7Vb4Nc8Rt1Hz6Wp5Js0Fg",
    "GROQ_API_KEY": "gsk_Zt7Nq2Xv9Lm4Rb8Kc1Wd6Hp3Fs5Jg0Ty",
    # No pattern of the log scrubber matches this one: it must simply never be written.
    "ZAI_API_KEY": "5e1b7c9d3f2a4b6c8d0e1f3a5b7c9d1e.Kq7ZxTm2Vn",
    "STRIPE_SECRET_KEY": "sk_test_51HqLyjWDarjtT1zdp7dc8qfYs",
    "STRIPE_WEBHOOK_SECRET": "whsec_Q8nT2vXb7Lm4Rk9Zp1Cd6Hs3Fj5Wg0Ya",
}
MARKER = "UPSTREAM-BODY-MARKER-41c9"


@pytest.fixture
def secret_providers(providers, settings):
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    settings.DEBUG = False
    return providers


@pytest.fixture
def log_tail():
    path = django_settings.LOG_DIR / "smartspec.log"
    start = path.stat().st_size if path.exists() else 0

    def read() -> str:
        import logging

        for handler in logging.getLogger().handlers:
            handler.flush()
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    return read


def _echoing(status: int, wire: str):
    """An upstream error whose body quotes the request's credentials and a marker, as some do."""

    def responder(request, body):
        presented = " ".join(f"{k}={v}" for k, v in request.headers.items()) + f" url={request.url}"
        message = f"{MARKER} Incorrect API key provided: {presented}"
        if wire == "anthropic":
            payload = {"type": "error", "error": {"type": "authentication_error", "message": message}}
        elif wire == "gemini":
            payload = {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}
        else:
            payload = {
                "error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
            }
        return httpx.Response(status, json=payload)

    return responder


def _assert_clean(texts: list[str]):
    for text in texts:
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} leaked: ...{text[max(0, text.find(secret) - 200) :][:400]}"
        assert MARKER not in text, f"upstream body leaked: {text[max(0, text.find(MARKER) - 200) :][:400]}"


CALLS = [
    # model, use_openrouter: reaching every provider, each failing with an echoing body
    ("openai/gpt-4o", True),
    ("openai/gpt-4o", False),
    ("anthropic/claude-sonnet-4.6", False),
    ("google/gemini-3.1-flash-lite", False),
    ("meta-llama/llama-3.3-70b-instruct", False),
    ("z-ai/glm-4.7", False),
]


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_secrets_and_upstream_bodies_never_reach_clients_pages_or_logs(
    secret_providers, funded_user, http, status, log_tail, client, django_user_model, settings
):
    net = secret_providers
    # Every call must reach its provider's error: the circuit breaker would stop calling one that failed.
    settings.HEALTH_DOWN_AFTER = 1_000_000
    for host, wire in (
        (OPENROUTER_HOST, "openai"),
        (OPENAI_HOST, "openai"),
        (ANTHROPIC_HOST, "anthropic"),
        (GEMINI_HOST, "gemini"),
        (GROQ_HOST, "openai"),
        (ZAI_HOST, "openai"),
    ):
        net.on(host, _echoing(status, wire))
    texts = []
    before = balance(funded_user)
    for model, use_openrouter in CALLS:
        for path in CHAT_PATHS:
            for stream in (False, True):
                r = http.post(
                    path,
                    {"model": model, "messages": HELLO, "use_openrouter": use_openrouter, "stream": stream},
                    content_type="application/json",
                )
                assert 400 <= r.status_code < 600 and r.status_code != 500, r.content
                texts.append(r.content.decode() + str(r.headers))
    assert {h for h, _ in net.calls} == {
        OPENROUTER_HOST,
        OPENAI_HOST,
        ANTHROPIC_HOST,
        GEMINI_HOST,
        GROQ_HOST,
        ZAI_HOST,
    }
    # A network failure too (the fake network refuses hosts without a responder).
    net.responders.clear()
    r = http.post(
        CHAT_PATHS[0], {"model": "openai/gpt-4o", "messages": HELLO}, content_type="application/json"
    )
    assert r.status_code == 502
    texts.append(r.content.decode())
    assert balance(funded_user) == before

    # Stripe failing (its 401 quotes the key) on both payment endpoints, and a forged webhook.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stripe_api:
        body = {
            "error": {
                "message": f"Invalid API Key provided: {SECRETS['STRIPE_SECRET_KEY']}",
                "type": "invalid_request_error",
            }
        }
        stripe_api.add(
            responses.GET,
            re.compile(r"https://api\.stripe\.com/v1/payment_intents/.*"),
            json=body,
            status=401,
        )
        stripe_api.add(responses.POST, "https://api.stripe.com/v1/checkout/sessions", json=body, status=401)
        r1 = http.post(
            "/api/credits/topup",
            {"payment_usd": "10.00", "payment_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa"},
            content_type="application/json",
        )
        r2 = http.post("/api/billing/checkout", {"amount_usd": "10.00"}, content_type="application/json")
    r3 = http.post(
        "/api/billing/stripe/webhook",
        b"{}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )
    assert (r1.status_code, r2.status_code, r3.status_code) == (502, 502, 400)
    texts += [r.content.decode() for r in (r1, r2, r3)]

    # The pages that show errors and settings: staff health page, admin, the user's own pages.
    staff = django_user_model.objects.create_user(
        "staffer", password="pw-staff-123", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    for url in ("/staff/", "/admin/monitoring/usagerecord/", "/admin/gateway/apikey/", "/admin/"):
        page = client.get(url)
        assert page.status_code == 200, url
        texts.append(page.content.decode())
    client.force_login(funded_user)
    for url in ("/", "/transactions/", "/keys/", "/playground/"):
        texts.append(client.get(url).content.decode())

    log = log_tail()
    assert "upstream" in log  # the failures were logged, just not their secrets or bodies
    _assert_clean([*texts, log])


# --- Content-Security-Policy (issue 11) ------------------------------------------------------------

CSP_PAGES = [
    "/",
    "/keys/",
    "/playground/",
    "/topup/",
    "/transactions/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password_reset/",
    "/admin/",
    "/admin/auth/user/",
    "/staff/",
    "/api/docs/",
    "/no-such-page/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", CSP_PAGES)
def test_every_html_page_carries_a_script_tight_csp_and_no_inline_script(path, django_user_model, catalog):
    staff = django_user_model.objects.create_superuser(username="csp", password="pw-csp-12345")
    client = Client()
    if not path.startswith("/accounts/"):
        client.force_login(staff)
    response = client.get(path, follow=False)
    assert response["Content-Type"].startswith("text/html"), (path, response.status_code)
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    html = response.content.decode()
    # Every script is a file of ours (no inline code, no other origin), and no inline handler.
    for tag in re.findall(r"<script\b[^>]*>", html):
        if 'type="application/json"' in tag:
            continue  # data (json_script), never executed
        src = re.search(r'src="([^"]+)"', tag)
        assert src and src.group(1).startswith("/"), (path, tag)
    assert not re.search(r"\son[a-z]+=\"", html), path


@pytest.mark.django_db
def test_api_responses_and_the_docs_script_are_not_html_pages(api_client):
    assert "Content-Security-Policy" not in api_client.get("/api/credits/balance")
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
