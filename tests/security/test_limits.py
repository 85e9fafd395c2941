"""Per-key limits through both chat endpoints: requests and tokens per minute, daily and monthly
spend caps, the bounds of one request (messages, max_tokens, size) and the upstream timeouts."""

import asyncio
import json
import threading

import httpx
import pytest
from django.test import Client

from gateway.models import ApiKey
from tests.gateway.conftest import (
    OPENROUTER_HOST,
    balance,
    json_response,
    openrouter_completion,
)
from tests.support import asgi_post_scope

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Say hello"}]
PATHS = ("/v1/chat/completions", "/api/llm/chat")


def post(http, body, path="/v1/chat/completions"):
    return http.post(path, body, content_type="application/json")


def worst_tokens(messages, max_tokens):
    return len(json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode()) + max_tokens


def set_limits(**fields):
    from gateway.keys import api_key_cache_drop

    # A direct update bypasses the limits form, so drop the cached keys as the form does.
    ApiKey.objects.update(**fields)
    for api_key in ApiKey.objects.all():
        api_key_cache_drop(api_key=api_key)


def usage_rows():
    from monitoring.models import UsageRecord

    return list(UsageRecord.objects.order_by("id"))


@pytest.fixture
def answering(providers, limits_prefix):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    return providers


def test_requests_per_minute_is_shared_by_both_endpoints_then_429_with_retry_after(
    answering, funded_user, http
):
    set_limits(requests_per_minute=2)
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}, PATHS[0]).status_code == 200
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}, PATHS[1]).status_code == 200
    spent = balance(funded_user)

    for path in PATHS:
        r = post(http, {"model": "openai/gpt-4o", "messages": HELLO}, path)
        assert r.status_code == 429, r.content
        assert r.json() == {
            "error": {
                "message": "This key's limit of requests per minute is reached; retry after the minute rolls over.",
                "type": "rate_limit_error",
                "code": "rate_limited",
            }
        }
        assert 1 <= int(r["Retry-After"]) <= 61
    # Refused calls reach no upstream and move no money.
    assert len(answering.calls) == 2
    assert balance(funded_user) == spent
    assert len(usage_rows()) == 2


def test_requests_per_minute_covers_the_other_apis_on_the_same_counter(answering, funded_user, http):
    set_limits(requests_per_minute=3)
    assert http.get("/api/credits/balance").status_code == 200
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200
    assert http.get("/api/monitoring/usage").status_code == 200
    for path in ("/api/credits/balance", "/api/credits/transactions", "/v1/models"):
        r = http.get(path)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r["Retry-After"]) <= 61
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 429


def test_other_keys_and_unlimited_keys_are_not_affected(answering, funded_user, http):
    from gateway.keys import api_key_create

    set_limits(requests_per_minute=1)
    _, second = api_key_create(user=funded_user, name="unlimited")
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 429
    other = Client(HTTP_AUTHORIZATION=f"Bearer {second}")
    for _ in range(3):
        assert post(other, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200


def test_tokens_per_minute_counts_the_worst_case_then_what_was_used(answering, funded_user, http):
    worst = worst_tokens(HELLO, 100)
    # Room for one worst case plus a little: the first call's reservation shrinks to the 23 tokens it
    # used (OpenRouter's usage), so a second worst case no longer fits.
    set_limits(tokens_per_minute=worst + 10)
    body = {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100}
    assert post(http, body).status_code == 200
    r = post(http, body)
    assert r.status_code == 429 and r["Retry-After"]
    set_limits(tokens_per_minute=worst + 23)
    assert post(http, body).status_code == 200
    assert len(answering.calls) == 2


def test_a_call_whose_worst_case_alone_exceeds_the_token_limit_is_400(answering, funded_user, http):
    set_limits(tokens_per_minute=50)
    for path in PATHS:
        r = post(http, {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100}, path)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "exceeds_key_limit"
    assert answering.calls == []


def test_failed_calls_give_their_tokens_back(providers, limits_prefix, funded_user, http):
    worst = worst_tokens(HELLO, 100)
    set_limits(tokens_per_minute=worst + 5)
    providers.on(OPENROUTER_HOST, lambda req, body: httpx.Response(400, json={"error": {"message": "bad"}}))
    body = {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100, "use_openrouter": True}
    for _ in range(3):
        assert post(http, body).status_code == 400
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    assert post(http, body).status_code == 200


@pytest.mark.parametrize("field", ["credits_per_day", "credits_per_month"])
def test_spend_cap_is_seeded_from_usage_and_refuses_a_hold_that_would_pass_it(
    answering, funded_user, http, field
):
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200
    (first,) = usage_rows()
    assert first.credits == 125_000  # $0.000125 at cost
    # The counter starts from the usage records: spent + the next worst case must fit in the cap.
    set_limits(**{field: first.credits + first.hold - 1})
    before = balance(funded_user)
    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "spend_cap_exceeded"
    assert int(r["Retry-After"]) > 0
    assert balance(funded_user) == before and len(answering.calls) == 1

    set_limits(**{field: first.credits + first.hold})
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200


def test_a_hold_larger_than_the_whole_cap_is_400(answering, funded_user, http):
    set_limits(credits_per_day=1_000)  # 0.001 credit: no gpt-4o call's worst case fits
    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 400 and r.json()["error"]["code"] == "exceeds_key_limit"
    assert answering.calls == []


def test_the_limit_store_down_fails_closed_for_limited_keys(answering, funded_user, http, monkeypatch):
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

            return fail

    monkeypatch.setattr("gateway.limits.cache", Down())
    set_limits(requests_per_minute=100)
    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
    assert answering.calls == []
    set_limits(requests_per_minute=None)
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200


def test_new_keys_start_from_the_settings_defaults(user, settings):
    from gateway.keys import api_key_create

    settings.KEY_DEFAULT_REQUESTS_PER_MINUTE = 60
    settings.KEY_DEFAULT_CREDITS_PER_DAY = 500
    key, _ = api_key_create(user=user)
    assert key.requests_per_minute == 60
    assert key.tokens_per_minute is None
    assert key.credits_per_day == 500_000_000
    assert key.credits_per_month is None


def test_staff_edit_limits_in_admin_in_credits(client, user, api_key, django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    key = ApiKey.objects.get(user=user)
    client.force_login(staff)
    page = client.get(f"/admin/gateway/apikey/{key.pk}/change/")
    assert page.status_code == 200 and "credits_per_day_credits" in page.content.decode()
    r = client.post(
        f"/admin/gateway/apikey/{key.pk}/change/",
        {
            "name": "ci",
            "requests_per_minute": "30",
            "tokens_per_minute": "",
            "credits_per_day_credits": "12.5",
            "credits_per_month_credits": "",
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    key.refresh_from_db()
    assert (key.requests_per_minute, key.tokens_per_minute) == (30, None)
    assert (key.credits_per_day, key.credits_per_month) == (12_500_000, None)


def test_users_set_their_own_keys_limits_on_the_dashboard(client, user, other_user):
    from gateway.keys import api_key_create

    mine, _ = api_key_create(user=user)
    theirs, _ = api_key_create(user=other_user)
    client.force_login(user)
    assert 'name="credits_per_month_credits"' in client.get("/keys/").content.decode()
    form = {"requests_per_minute": "10", "tokens_per_minute": "5000", "credits_per_month_credits": "100"}
    assert client.post(f"/keys/{mine.pk}/limits/", form).status_code == 302
    mine.refresh_from_db()
    assert (mine.requests_per_minute, mine.tokens_per_minute) == (10, 5000)
    assert (mine.credits_per_day, mine.credits_per_month) == (None, 100_000_000)

    bad = client.post(f"/keys/{mine.pk}/limits/", {"requests_per_minute": "-1"}, follow=True)
    assert "Limits not saved" in bad.content.decode()
    mine.refresh_from_db()
    assert mine.requests_per_minute == 10

    assert client.post(f"/keys/{theirs.pk}/limits/", form).status_code == 404
    theirs.refresh_from_db()
    assert theirs.requests_per_minute is None and theirs.credits_per_month is None


@pytest.mark.redis
def test_the_counter_is_shared_and_exact_under_concurrency(settings, limits_prefix):
    """Redis-backed: 20 threads (as many workers would) race for a limit of 5; exactly 5 get in."""
    from gateway.limits import KeyLimits, limits_admit
    from smartspec.errors import RateLimited

    limits = KeyLimits(key_id=424242, user_id=1, requests_per_minute=5)
    admitted, refused = [], []
    barrier = threading.Barrier(20)

    def call():
        barrier.wait()
        try:
            limits_admit(limits=limits, tokens=10, credits=0)
            admitted.append(1)
        except RateLimited:
            refused.append(1)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(admitted), len(refused)) == (5, 15)

    import redis

    raw = redis.Redis.from_url(settings.REDIS_URL)
    names = [k.decode() for k in raw.scan_iter(match=f"*{limits_prefix}:424242:rpm:*")]
    assert len(names) == 1  # in Redis, where every worker and host sees it


@pytest.mark.parametrize("path", PATHS)
def test_too_many_messages_and_max_tokens_bounds_are_400(providers, funded_user, http, settings, path):
    settings.MAX_MESSAGES = 3
    settings.MAX_OUTPUT_TOKENS = 1000
    before = balance(funded_user)
    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO * 4}, path)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_messages"
    for max_tokens in (0, -5, 1001, 10**30, "many", True, 1.5, [5]):
        r = post(http, {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": max_tokens}, path)
        assert r.status_code == 400, (max_tokens, r.content)
        assert "max_tokens" in r.json()["error"]["message"]
    assert providers.calls == [] and balance(funded_user) == before


POST_API_PATHS = (
    "/v1/chat/completions",
    "/api/llm/chat",
    "/api/credits/topup",
    "/api/billing/checkout",
    "/api/billing/stripe/webhook",
)


@pytest.mark.parametrize("path", POST_API_PATHS)
def test_every_api_path_refuses_a_body_over_the_limit_with_413(providers, funded_user, http, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    before = balance(funded_user)
    r = post(http, {"messages": [{"role": "user", "content": "x" * 5000}]}, path)
    assert r.status_code == 413
    assert r.json()["error"] == {
        "message": "Request body too large.",
        "type": "invalid_request_error",
        "code": "request_too_large",
    }
    assert providers.calls == [] and balance(funded_user) == before


@pytest.mark.parametrize("path", PATHS)
def test_a_chunked_body_without_content_length_is_also_413(providers, funded_user, api_key, settings, path):
    """Through the real ASGI app: no Content-Length for Django to check up front."""
    from asgiref.sync import async_to_sync
    from django.core import signals
    from django.db import close_old_connections

    from smartspec.asgi import application

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    sent = []

    async def receive():
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        # The client stays connected until the answer is sent (Django cancels on a disconnect).
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    scope = asgi_post_scope(
        path,
        [
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", f"Bearer {api_key}".encode()),
        ],
    )
    before = balance(funded_user)
    # As Django's test client does: the handler must not close the test's own connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        async_to_sync(application)(scope, receive, send)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert json.loads(body_out)["error"]["code"] == "request_too_large"
    assert providers.calls == [] and balance(funded_user) == before


def test_every_upstream_call_carries_connect_and_read_timeouts(providers, funded_user, http, settings):
    from asgiref.sync import async_to_sync

    from gateway import transport
    from gateway.providers import provider_configs
    from gateway.providers.base import UpstreamRequest

    settings.UPSTREAM_CONNECT_TIMEOUT = 3.0
    settings.UPSTREAM_READ_TIMEOUT = 7.0
    expected = {"connect": 3.0, "read": 7.0, "write": 7.0, "pool": 3.0}
    configs = provider_configs()
    assert {name: (c.connect_timeout, c.read_timeout) for name, c in configs.items()} == dict.fromkeys(
        configs, (3.0, 7.0)
    )
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    assert post(http, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200
    assert providers.requests[0].extensions["timeout"] == expected

    # Streams go through the same request builder.
    async def open_one():
        upstream = UpstreamRequest(
            method="POST", url=f"https://{OPENROUTER_HOST}/api/v1/chat/completions", headers={}, json={}
        )
        async with transport.open_stream(
            upstream, provider="openrouter", connect_timeout=3.0, read_timeout=7.0
        ):
            pass

    async_to_sync(open_one)()
    assert providers.requests[1].extensions["timeout"] == expected
