"""Object-level authorization: a sweep over every URL of the project that takes an object id, with
user A's session and A's API key against user B's objects. Every answer is 403/404 (or the login
redirect, for a page an API key does not open), nothing of B's changes, and nothing of B's shows.

A new URL with an id fails `test_every_url_with_an_id_is_swept` until it is added to OBJECT_IDS.
"""

import pytest
from django.test import Client
from django.urls import get_resolver

from billing.selectors import balance_get
from gateway.keys import api_key_create
from gateway.models import ApiKey
from tests.gateway.conftest import grant

pytestmark = pytest.mark.django_db

# URL parameter -> how to find B's object of that kind.
OBJECT_IDS = {
    "record_id": lambda b: b["usage"].pk,
    "key_id": lambda b: b["key"].pk,
    "response_id": lambda b: b["response_id"],
}
# Parameters that name public catalog entries, not anyone's objects (every caller may read them).
PUBLIC_IDS = {"model_id"}
# Staff-only trees, swept by the staff tests instead (every non-staff request is sent to log in).
STAFF_PREFIXES = ("admin/",)
# Public URLs whose parameters are a signed token, not an object id: each has its own test below.
TOKEN_ROUTES = ("accounts/reset/<uidb64>/<token>/",)


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def routes_with_ids():
    found = []
    for route, pattern in _routes(get_resolver().url_patterns):
        if route.startswith(STAFF_PREFIXES) or route in TOKEN_ROUTES:
            continue
        converters = getattr(pattern.pattern, "converters", {})
        if converters and not set(converters) <= PUBLIC_IDS:
            found.append((route, sorted(converters)))
    return found


@pytest.fixture
def victim(django_user_model, demo_only):
    """User B with credits, a key, a billed call's usage row and ledger entries."""
    b = django_user_model.objects.create_user(username="bob", password="pw-bob-123")
    grant(b, 50)
    key, raw = api_key_create(user=b, name="bob's key")
    r = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
        "/api/llm/chat",
        {"messages": [{"role": "user", "content": "bob's secret question"}]},
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    stored = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
        "/v1/responses",
        {"input": "bob's secret question", "model": "openai/gpt-4o"},
        content_type="application/json",
    )
    assert stored.status_code == 200, stored.content
    from monitoring.models import UsageRecord

    return {
        "user": b,
        "key": key,
        "raw": raw,
        "usage": UsageRecord.objects.filter(user=b).first(),
        "response_id": stored.json()["id"],
    }


def _snapshot(b):
    from gateway.models import StoredResponse

    key = ApiKey.objects.get(pk=b["key"].pk)
    return (
        StoredResponse.objects.filter(id=b["response_id"], user=b["user"]).exists(),
        balance_get(user=b["user"]),
        key.revoked_at,
        key.name,
        key.requests_per_minute,
        key.credits_per_day,
        key.credits_per_month,
    )


def test_every_url_with_an_id_is_swept():
    unknown = {
        (route, name) for route, names in routes_with_ids() for name in names if name not in OBJECT_IDS
    }
    assert unknown == set(), "add these URL parameters to OBJECT_IDS so the sweep covers them"
    assert len(routes_with_ids()) >= 2


def test_user_a_cannot_read_or_change_user_b_objects_through_any_id_url(user, api_key, victim):
    session = Client()
    session.force_login(user)
    keyed = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    before = _snapshot(victim)
    swept = 0
    for route, names in routes_with_ids():
        path = "/" + route
        for name in names:
            for converter in ("int", "str"):
                path = path.replace(f"<{converter}:{name}>", str(OBJECT_IDS[name](victim)))
        for method in ("get", "post", "delete"):
            form = {"requests_per_minute": "1", "name": "pwned", "credits_per_day_credits": "0"}
            as_session = getattr(session, method)(path, form if method == "post" else None)
            # 405 is the answer for a method the URL never takes (before any object is looked up).
            assert as_session.status_code in (403, 404, 405), (method, path, as_session.status_code)
            as_key = getattr(keyed, method)(path, form if method == "post" else None)
            # API keys open no dashboard page: the login redirect, or the same 403/404/405.
            assert as_key.status_code in (302, 403, 404, 405), (method, path, as_key.status_code)
            if as_key.status_code == 302:
                assert as_key["Location"].startswith("/accounts/login/")
            for response in (as_session, as_key):
                text = response.content.decode(errors="replace")
                assert "bob's secret question" not in text and victim["key"].prefix not in text
            swept += 1
    assert swept >= 4
    assert _snapshot(victim) == before


def test_usage_api_refuses_another_users_id_and_lists_only_the_callers_data(user, api_key, victim):
    keyed = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    r = keyed.get(f"/api/monitoring/usage?user_id={victim['user'].pk}")
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    mine = keyed.get("/api/monitoring/usage").json()
    assert mine["overview"]["requests"] == 0
    theirs = Client(HTTP_AUTHORIZATION=f"Bearer {victim['raw']}").get("/api/monitoring/usage").json()
    assert theirs["overview"]["requests"] == 2  # the chat call and the stored response


def test_balance_transactions_and_keys_are_only_ever_the_callers(user, api_key, victim):
    grant(user, 7)
    keyed = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert keyed.get("/api/credits/balance").json()["credits"] == "7.000000"
    entries = keyed.get("/api/credits/transactions?limit=100").json()
    assert [e["credits"] for e in entries] == ["7.000000"]
    assert keyed.get("/api/auth/whoami").json()["username"] == user.username

    # The dashboard's ledger cursor is a position in the caller's own ledger, not a way into B's.
    session = Client()
    session.force_login(user)
    from billing.models import LedgerEntry

    newest = LedgerEntry.objects.order_by("-id").first()
    page = session.get(f"/transactions/?before={newest.pk + 1}").content.decode()
    assert "test credits" in page  # A's own grant
    assert "bob" not in page and victim["usage"].request_id not in page
    keys_page = session.get("/keys/").content.decode()
    assert victim["key"].prefix not in keys_page


def test_a_call_spends_only_the_callers_credits(user, api_key, victim, providers):
    """A's key charges A; B's balance is untouched whatever A's request says."""
    from tests.gateway.conftest import OPENROUTER_HOST, json_response, openrouter_completion

    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    grant(user, 100)
    b_before = balance_get(user=victim["user"])
    r = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}").post(
        "/v1/chat/completions",
        {
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "user": str(victim["user"].pk),
        },
        content_type="application/json",
    )
    assert r.status_code == 200
    assert balance_get(user=user)["balance"] == 100_000_000 - 125_000
    assert balance_get(user=victim["user"]) == b_before


def test_a_password_reset_link_for_user_b_with_a_forged_token_changes_nothing(client, victim):
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(victim["user"].pk))
    for token in ("set-password", "forged-0123456789abcdef", "x" * 40):
        page = client.get(f"/accounts/reset/{uid}/{token}/", follow=True)
        assert page.status_code == 200 and "This link does not work" in page.content.decode()
        client.post(
            f"/accounts/reset/{uid}/{token}/",
            {"new_password1": "pwned-Pass-1234", "new_password2": "pwned-Pass-1234"},
        )
    victim["user"].refresh_from_db()
    assert victim["user"].check_password("pw-bob-123") and not victim["user"].check_password(
        "pwned-Pass-1234"
    )
