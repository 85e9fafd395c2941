"""The billed pipeline through `POST /v1/chat/completions` and `POST /api/llm/chat`, with the
providers mocked at the transport: routing, fallbacks, errors and exactly what gets charged."""

from decimal import Decimal

import httpx
import pytest

from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    OPENAI_HOST,
    OPENROUTER_HOST,
    ZAI_HOST,
    anthropic_message,
    balance,
    grant,
    json_response,
    openai_completion,
    openrouter_completion,
    openrouter_error,
)

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Say hello"}]


def post(http, body, path="/v1/chat/completions"):
    return http.post(path, body, content_type="application/json")


def usage_rows():
    from monitoring.models import UsageRecord

    return list(UsageRecord.objects.order_by("id"))


def test_explicit_model_via_openrouter_is_charged_exactly_its_reported_cost(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    before = balance(funded_user)["balance"]

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100})

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model"] == "openai/gpt-4o" and body["provider"] == "openrouter"
    assert body["choices"][0]["message"]["content"] == "Hello there!"
    assert body["usage"]["prompt_tokens"] == 14 and body["usage"]["completion_tokens"] == 9
    # JSON numbers carrying the exact digits (as OpenRouter sends usage.cost).
    assert b'"cost":0.000125,' in r.content
    # 0.000125 USD x 1000 credits/USD = 0.125 credits = 125,000 micro-credits.
    assert b'"credits":0.125000' in r.content
    assert before - balance(funded_user)["balance"] == 125_000
    assert balance(funded_user)["held"] == 0
    sent = providers.bodies(OPENROUTER_HOST)[0]
    assert sent["model"] == "openai/gpt-4o"
    assert sent["max_tokens"] == 100
    assert sent["provider"]["allow_fallbacks"] is True and sent["provider"]["data_collection"] == "allow"
    request = providers.requests[0]
    assert request.headers["authorization"] == "Bearer sk-or-v1-test-openrouter-key"
    (row,) = usage_rows()
    assert (row.model, row.provider, row.credits, row.status, row.route) == (
        "openai/gpt-4o",
        "openrouter",
        125_000,
        "ok",
        "explicit",
    )
    assert row.cost_usd == Decimal("0.000125")


@pytest.mark.parametrize(
    "failure",
    [
        json_response(500, openrouter_error(500, "Internal Server Error")),
        json_response(429, openrouter_error(429, "Rate limit exceeded"), {"retry-after": "3"}),
        json_response(503, openrouter_error(503, "No endpoints available")),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        httpx.Response(
            200, content=b"<html>bad gateway</html>", headers={"content-type": "application/json"}
        ),
    ],
    ids=["500", "429", "503", "timeout", "connect", "garbage"],
)
def test_retryable_failure_falls_back_to_the_direct_provider(providers, funded_user, http, failure):
    providers.on(OPENROUTER_HOST, [failure])
    providers.on(
        OPENAI_HOST,
        lambda req, body: json_response(200, openai_completion(prompt_tokens=20, completion_tokens=10)),
    )
    before = balance(funded_user)["balance"]

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["provider"] == "openai" and body["model"] == "openai/gpt-4o"
    assert providers.hosts() == [OPENROUTER_HOST, OPENAI_HOST]
    assert providers.bodies(OPENAI_HOST)[0]["model"] == "gpt-4o"
    # No upstream cost from OpenAI: 20 x $0.0000025 + 10 x $0.00001 = $0.00015 = 150,000 micro-credits.
    assert b'"cost":0.00015,' in r.content
    assert before - balance(funded_user)["balance"] == 150_000
    (row,) = usage_rows()
    assert [a["status"] for a in row.attempts] == ["error", "ok"]


def test_request_caused_400_stops_the_chain_and_charges_nothing(providers, funded_user, http):
    providers.on(OPENROUTER_HOST, [json_response(400, openrouter_error(400, "messages: invalid content"))])
    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion()))
    before = balance(funded_user)

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO, "fallback_models": ["openai/gpt-4o-mini"]})

    assert r.status_code == 400
    assert providers.hosts() == [OPENROUTER_HOST]
    assert balance(funded_user) == before
    (row,) = usage_rows()
    assert row.status == "error" and row.credits == 0


def test_all_attempts_failing_is_502_with_the_attempts_and_no_charge(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST, [json_response(502, openrouter_error(502, "upstream said sk-or-v1-secret"))]
    )
    providers.on(OPENAI_HOST, [json_response(500, {"error": {"message": "boom", "type": "server_error"}})])
    providers.on(
        ANTHROPIC_HOST,
        [
            json_response(
                529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            )
        ],
    )
    before = balance(funded_user)

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO, "models": ["anthropic/claude-sonnet-4.6"]})

    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "all_attempts_failed"
    assert [(a["model"], a["provider"], a["status"]) for a in error["attempts"]] == [
        ("openai/gpt-4o", "openrouter", "error"),
        ("openai/gpt-4o", "openai", "error"),
        ("anthropic/claude-sonnet-4.6", "openrouter", "error"),
        ("anthropic/claude-sonnet-4.6", "anthropic", "error"),
    ]
    text = r.content.decode()
    assert "sk-or-v1" not in text and "boom" not in text and "Overloaded" not in text
    assert balance(funded_user) == before  # nothing charged, nothing left held


def test_all_attempts_timing_out_is_504(providers, funded_user, http):
    providers.on(OPENROUTER_HOST, [httpx.ReadTimeout("slow")])
    providers.on(OPENAI_HOST, [httpx.ReadTimeout("slow")])

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert balance(funded_user)["held"] == 0


def test_max_price_skips_a_dear_model_and_says_why(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: json_response(200, openrouter_completion(model="openai/gpt-4o-mini")),
    )

    r = post(
        http,
        {
            "model": "openai/gpt-4o",
            "fallback_models": ["openai/gpt-4o-mini"],
            "messages": HELLO,
            "max_price": {"prompt": 0.001, "completion": 0.001},
        },
        path="/api/llm/chat",
    )

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model"] == "openai/gpt-4o-mini" and body["fallback_used"] is True
    skipped = body["attempts"][0]
    assert skipped["model"] == "openai/gpt-4o" and skipped["status"] == "skipped"
    assert "max_price.prompt" in skipped["reason"]
    sent = providers.bodies(OPENROUTER_HOST)[0]
    assert sent["model"] == "openai/gpt-4o-mini"
    # $0.001 per 1K tokens is $1 per million, OpenRouter's unit.
    assert sent["provider"]["max_price"] == {"prompt": 1, "completion": 1}


def test_max_price_no_model_fits_is_400_and_nothing_is_called(providers, funded_user, http):
    r = post(
        http,
        {"model": "openai/gpt-4o", "messages": HELLO, "provider": {"max_price": {"prompt": 0.0001}}},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "no_route"
    assert "max_price" in r.json()["error"]["message"]
    assert providers.calls == []


def test_zdr_skips_direct_providers_that_cannot_promise_it(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST,
        [json_response(503, openrouter_error(503, "No endpoints found matching your data policy"))],
    )
    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion()))

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO, "provider": {"zdr": True}})

    assert r.status_code == 502
    attempts = r.json()["error"]["attempts"]
    assert ("openai", "skipped") in [(a["provider"], a["status"]) for a in attempts]
    assert providers.hosts() == [OPENROUTER_HOST]  # the direct provider was never asked
    assert providers.bodies(OPENROUTER_HOST)[0]["provider"]["zdr"] is True


def test_data_collection_deny_without_openrouter_is_400_explaining(providers, funded_user, http):
    r = post(
        http,
        {
            "model": "z-ai/glm-4.7",
            "messages": HELLO,
            "use_openrouter": False,
            "provider": {"data_collection": "deny"},
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "no_route" and "data_collection=deny" in error["message"]
    assert providers.calls == []


def test_use_openrouter_false_goes_direct(providers, funded_user, http):
    providers.on(
        ANTHROPIC_HOST,
        lambda req, body: json_response(200, anthropic_message(input_tokens=12, output_tokens=6)),
    )
    before = balance(funded_user)["balance"]

    r = post(http, {"model": "anthropic/claude-sonnet-4.6", "messages": HELLO, "use_openrouter": False})

    assert r.status_code == 200, r.content
    assert r.json()["provider"] == "anthropic"
    assert providers.hosts() == [ANTHROPIC_HOST]
    assert providers.bodies(ANTHROPIC_HOST)[0]["model"] == "claude-sonnet-4-6"
    # 12 x $0.000003 + 6 x $0.000015 = $0.000126 -> 126,000 micro-credits.
    assert before - balance(funded_user)["balance"] == 126_000


def test_fallback_models_go_to_openrouter_as_its_models_array(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: json_response(
            200, openrouter_completion(model="anthropic/claude-sonnet-4.6", cost="0.0003")
        ),
    )
    before = balance(funded_user)["balance"]

    r = post(
        http,
        {
            "model": "openai/gpt-4o",
            "fallback_models": ["anthropic/claude-sonnet-4.6"],
            "messages": HELLO,
            "provider": {"sort": "throughput"},
        },
    )

    assert r.status_code == 200
    sent = providers.bodies(OPENROUTER_HOST)[0]
    assert sent["models"] == ["openai/gpt-4o", "anthropic/claude-sonnet-4.6"]
    assert sent["provider"]["sort"] == "throughput"
    # OpenRouter fell back itself; the answer names the model that answered and its cost is billed.
    assert r.json()["model"] == "anthropic/claude-sonnet-4.6"
    assert before - balance(funded_user)["balance"] == 300_000


def test_missing_usage_is_estimated_never_free(providers, funded_user, http):
    answer = openrouter_completion(content="x" * 400)
    del answer["usage"]
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))
    before = balance(funded_user)["balance"]

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 200
    usage = r.json()["usage"]
    assert usage["completion_tokens"] == 100  # 400 bytes at 4 bytes a token
    charged = before - balance(funded_user)["balance"]
    expected_usd = usage["prompt_tokens"] * Decimal("0.0000025") + 100 * Decimal("0.00001")
    assert charged == int(expected_usd * 1_000_000_000) and charged > 0
    (row,) = usage_rows()
    assert row.usage_estimated is True


def test_negative_usage_is_not_billed_as_negative(providers, funded_user, http):
    answer = openrouter_completion(prompt_tokens=-5, completion_tokens=-7, cost="-0.5")
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))
    before = balance(funded_user)["balance"]

    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 200
    assert before - balance(funded_user)["balance"] > 0
    assert usage_rows()[0].usage_estimated is True


def test_402_when_the_worst_case_hold_does_not_fit(providers, user, http):
    grant(user, 1)  # 1 credit = $0.001; gpt-4o with 4000 max tokens may cost up to $0.04
    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 402
    assert r.json()["error"]["type"] == "insufficient_credits"
    assert providers.calls == []
    assert balance(user)["balance"] == 1_000_000


def test_the_hold_is_priced_at_the_worst_case(providers, funded_user, http, monkeypatch):
    from billing import services

    seen = []
    real = services.hold_place

    def spy(**kwargs):
        seen.append(kwargs["amount"])
        return real(**kwargs)

    monkeypatch.setattr("gateway.service.hold_place", spy)
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    messages = [{"role": "user", "content": "é" * 100}]

    r = post(
        http,
        {"model": "openai/gpt-4o", "models": ["openai/gpt-4o-mini"], "messages": messages, "max_tokens": 50},
    )

    assert r.status_code == 200
    # Prompt bound = bytes of the messages' JSON; priced at the dearer model of the chain (gpt-4o).
    import json

    prompt_bound = len(json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode())
    assert prompt_bound > 200
    usd = prompt_bound * Decimal("0.0000025") + 50 * Decimal("0.00001")
    assert seen == [int((usd * 1_000_000_000).to_integral_value(rounding="ROUND_CEILING"))]


def test_unknown_model_is_404(providers, funded_user, http):
    r = post(http, {"model": "acme/nope-1", "messages": HELLO})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert providers.calls == []


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"messages": HELLO, "api_base": "http://169.254.169.254/"}, "api_base"),
        ({"messages": HELLO, "base_url": "http://evil.example/"}, "base_url"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
        ({"messages": HELLO, "task_type": "poetry"}, "task_type"),
        ({"messages": HELLO, "budget_priority": "cheap"}, "budget_priority"),
        ({"messages": HELLO, "temperature": 7}, "temperature"),
        ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"messages": HELLO, "n": 17}, "n"),
        ({"messages": HELLO, "provider": {"max_price": {"prompt": "lots"}}}, "max_price"),
        ({"messages": HELLO, "provider": {"sort": "random"}}, "sort"),
    ],
)
def test_bad_input_is_a_clear_400_and_nothing_happens(providers, funded_user, http, body, fragment):
    before = balance(funded_user)
    r = post(http, body)
    assert r.status_code == 400, r.content
    assert fragment in r.json()["error"]["message"]
    assert providers.calls == []
    assert balance(funded_user) == before


def test_not_json_is_400(providers, funded_user, http):
    r = http.post("/v1/chat/completions", "{not json", content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_missing_or_bad_key_is_401(providers, funded_user):
    from django.test import Client

    assert Client().post("/v1/chat/completions", {}, content_type="application/json").status_code == 401
    bad = Client(HTTP_AUTHORIZATION="Bearer sk-ss-notarealkey")
    r = bad.post("/api/llm/chat", {"messages": HELLO}, content_type="application/json")
    assert r.status_code == 401 and "sk-ss-notarealkey" not in r.content.decode()


def test_too_large_is_413(providers, funded_user, http, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = post(http, {"messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413


def test_native_chat_returns_the_llm_response_shape(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: json_response(
            200, openrouter_completion(model="openai/gpt-4o-mini", cost="0.00002")
        ),
    )

    r = post(
        http, {"messages": HELLO, "task_type": "simple", "budget_priority": "quality"}, path="/api/llm/chat"
    )

    assert r.status_code == 200, r.content
    body = r.json()
    assert set(body) >= {
        "content",
        "model",
        "provider",
        "task_type",
        "usage",
        "cost_usd",
        "credits_charged",
        "latency_ms",
        "fallback_used",
        "attempts",
        "request_id",
    }
    assert body["model"] == "openai/gpt-4o-mini" and body["task_type"] == "simple"
    assert body["cost_usd"] == "0.00002" and body["credits_charged"] == "0.020000"
    assert body["usage"] == {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23}
    assert r["X-Request-ID"] == body["request_id"]


def test_zai_direct_for_glm(providers, funded_user, http):
    providers.on(
        ZAI_HOST,
        lambda req, body: json_response(
            200, openai_completion(model="glm-4.7", prompt_tokens=100, completion_tokens=100)
        ),
    )
    r = post(http, {"model": "z-ai/glm-4.7", "messages": HELLO, "use_openrouter": False})
    assert r.status_code == 200 and r.json()["provider"] == "zai"
    assert providers.bodies(ZAI_HOST)[0]["model"] == "glm-4.7"


def test_ledger_down_is_503_and_no_upstream_is_called(providers, funded_user, http, monkeypatch):
    from django.db import OperationalError

    def down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("gateway.service.hold_place", down)
    r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "service_unavailable"
    assert providers.calls == []


def test_hot_path_query_count(providers, funded_user, http, django_assert_max_num_queries):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    post(http, {"model": "openai/gpt-4o", "messages": HELLO})  # warm-up: key and account id are cached
    # Catalog (its cache is off in tests); hold, settle and usage row, each in a test savepoint: one
    # statement each on PostgreSQL (10 in all), the ORM transactions on SQLite (14).
    # tests/gateway/test_round_trips.py counts the production path without the test's savepoints.
    from django.db import connection

    with django_assert_max_num_queries(10 if connection.vendor == "postgresql" else 14):
        r = post(http, {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 200
