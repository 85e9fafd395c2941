"""Chat completions answer what was asked: every choice of `n`, logprobs, no sampling default the
caller did not set, OpenRouter's require_parameters, skips that fall back, and a hold covering n."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    GEMINI_HOST,
    OPENAI_HOST,
    OPENROUTER_HOST,
    balance,
    json_response,
    openai_completion,
    openrouter_completion,
    sse_response,
)

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Hello"}]
LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1}],
        }
    ],
    "refusal": None,
}


def post(http, body):
    return http.post("/v1/chat/completions", body, content_type="application/json")


def two_choices(**extra):
    body = openrouter_completion(cost="0.0002")
    first = body["choices"][0]
    body["choices"] = [
        {**first, "logprobs": LOGPROBS, **extra},
        {**first, "index": 1, "message": {"role": "assistant", "content": "Second answer"}, "logprobs": None},
    ]
    return body


def test_n_returns_every_choice_with_its_logprobs_and_the_hold_covers_n(providers, funded_user, http):
    from monitoring.models import UsageRecord

    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, two_choices()))
    before = balance(funded_user)["balance"]

    r = post(
        http, {"model": "openai/gpt-4o", "messages": HELLO, "n": 2, "logprobs": True, "max_tokens": 1000}
    )

    assert r.status_code == 200, r.content
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[1]["message"]["content"] == "Second answer"
    assert choices[0]["logprobs"] == LOGPROBS and choices[1]["logprobs"] is None
    (sent,) = providers.bodies(OPENROUTER_HOST)
    assert sent["n"] == 2 and sent["logprobs"] is True
    # The hold priced 2 x 1000 completion tokens at gpt-4o's $0.00001: at least $0.02 = 20 credits.
    (row,) = UsageRecord.objects.all()
    assert row.hold >= 2 * 1000 * 10_000 and row.credits == 200_000
    assert before - balance(funded_user)["balance"] == 200_000 and balance(funded_user)["held"] == 0


@pytest.fixture
def ahttp(api_key):
    from django.test import AsyncClient

    class KeyedClient(AsyncClient):
        async def post(self, path, data, **kwargs):
            kwargs.setdefault("content_type", "application/json")
            return await super().post(path, data, headers={"Authorization": f"Bearer {api_key}"}, **kwargs)

    return KeyedClient()


@pytest.mark.django_db(transaction=True)
async def test_a_stream_of_two_choices_carries_each_index(providers, funded_user, ahttp):
    def chunk(index, delta, finish=None):
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        return (
            b"data: "
            + json.dumps({"id": "gen-1", "model": "openai/gpt-4o", "choices": [choice]}).encode()
            + b"\n\n"
        )

    usage = {
        "id": "gen-1",
        "model": "openai/gpt-4o",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "cost": 0.0001},
    }
    payload = b"".join(
        [
            chunk(0, {"role": "assistant", "content": "A"}),
            chunk(1, {"role": "assistant", "content": "B"}),
            chunk(0, {}, "stop"),
            chunk(1, {}, "stop"),
            b"data: " + json.dumps(usage).encode() + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    )
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(payload))

    r = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "n": 2, "stream": True}
    )
    raw = b"".join([part async for part in r.streaming_content]).decode()

    events = [json.loads(b[6:]) for b in raw.split("\n\n") if b.startswith("data: {")]
    by_index = {}
    for event in events:
        for choice in event["choices"]:
            by_index.setdefault(choice["index"], "")
            by_index[choice["index"]] += choice["delta"].get("content") or ""
    assert by_index == {0: "A", 1: "B"}
    assert sum(1 for e in events for c in e["choices"] if c["finish_reason"] == "stop") == 2


def test_sampling_defaults_are_sent_only_on_the_native_api(providers, funded_user, http, settings):
    settings.DEFAULT_TEMPERATURE = 0.7
    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion()))

    assert (
        post(http, {"model": "openai/gpt-4o", "messages": HELLO, "use_openrouter": False}).status_code == 200
    )
    native = http.post(
        "/api/llm/chat",
        {"model": "openai/gpt-4o", "messages": HELLO, "use_openrouter": False},
        content_type="application/json",
    )
    assert native.status_code == 200
    assert (
        post(
            http, {"model": "openai/gpt-4o", "messages": HELLO, "use_openrouter": False, "temperature": 0.2}
        ).status_code
        == 200
    )

    openai_face, native_api, explicit = providers.bodies(OPENAI_HOST)
    assert "temperature" not in openai_face and "top_p" not in openai_face
    assert native_api["temperature"] == 0.7
    assert explicit["temperature"] == 0.2
    # The native API keeps its decimal strings.
    assert isinstance(native.json()["credits_charged"], str)


def test_require_parameters_and_unknown_fields_reach_openrouter(providers, funded_user, http):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    r = post(
        http,
        {
            "model": "openai/gpt-4o",
            "messages": HELLO,
            "provider": {"require_parameters": True},
            "reasoning_effort": "low",
            "metadata": {"k": "v"},
            "store": False,
            "service_tier": "flex",
            "prediction": {"type": "content", "content": "x"},
            "web_search_options": {},
            "plugins_extra": [1, 2],
        },
    )
    assert r.status_code == 200, r.content
    assert "X-SmartSpec-Dropped-Params" not in r.headers
    (sent,) = providers.bodies(OPENROUTER_HOST)
    assert sent["provider"]["require_parameters"] is True
    assert sent["reasoning_effort"] == "low" and sent["metadata"] == {"k": "v"} and sent["store"] is False
    assert sent["service_tier"] == "flex" and sent["web_search_options"] == {}
    assert sent["plugins_extra"] == [1, 2] and sent["prediction"]["content"] == "x"


def test_a_skipped_attempt_falls_back_and_says_why(providers, funded_user, http):
    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion()))
    r = http.post(
        "/api/llm/chat",
        {
            "model": "anthropic/claude-sonnet-4.6",
            "fallback_models": ["openai/gpt-4o"],
            "messages": HELLO,
            "use_openrouter": False,
            "logprobs": True,
        },
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["provider"] == "openai" and body["fallback_used"] is True
    skipped = body["attempts"][0]
    assert skipped["provider"] == "anthropic" and skipped["status"] == "skipped"
    assert "logprobs" in skipped["reason"]
    assert providers.hosts() == [OPENAI_HOST]


def test_thinking_that_cannot_fit_under_max_tokens_is_a_400_naming_it(providers, funded_user, http):
    r = post(
        http,
        {
            "model": "anthropic/claude-sonnet-4.6",
            "messages": HELLO,
            "use_openrouter": False,
            "reasoning_effort": "high",
            "max_tokens": 500,
        },
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "reasoning_effort" and providers.hosts() == []


def test_thinking_drops_temperature_and_says_so(providers, funded_user, http):
    providers.on(ANTHROPIC_HOST, lambda req, body: json_response(200, _anthropic()))
    r = post(
        http,
        {
            "model": "anthropic/claude-sonnet-4.6",
            "messages": HELLO,
            "use_openrouter": False,
            "reasoning_effort": "low",
            "temperature": 0.3,
            "metadata": {"a": "b"},
        },
    )
    assert r.status_code == 200, r.content
    assert r.headers["X-SmartSpec-Dropped-Params"] == "metadata, temperature"
    (sent,) = providers.bodies(ANTHROPIC_HOST)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "temperature" not in sent


def _anthropic():
    from tests.gateway.conftest import anthropic_message

    return anthropic_message()


def test_gemini_candidates_come_back_as_choices(providers, funded_user, http):
    answer = {
        "candidates": [
            {"content": {"parts": [{"text": "One"}], "role": "model"}, "finishReason": "STOP", "index": 0},
            {
                "content": {"parts": [{"text": "Two"}], "role": "model"},
                "finishReason": "MAX_TOKENS",
                "index": 1,
            },
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 6, "totalTokenCount": 11},
        "modelVersion": "gemini-3.1-flash-lite",
    }
    providers.on(GEMINI_HOST, lambda req, body: json_response(200, answer))
    r = post(
        http, {"model": "google/gemini-3.1-flash-lite", "messages": HELLO, "use_openrouter": False, "n": 2}
    )
    assert r.status_code == 200, r.content
    choices = r.json()["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "One", "stop"),
        (1, "Two", "length"),
    ]
    assert providers.bodies(GEMINI_HOST)[0]["generationConfig"]["candidateCount"] == 2
    usage = json.loads(r.content, parse_float=Decimal)["usage"]
    # 5 x $0.00000025 + 6 x $0.0000015 = $0.00001025, a JSON number with those digits.
    assert str(usage["cost"]) == "0.00001025" and str(usage["credits"]) == "0.010250"


def test_money_stays_an_exact_number_when_orjson_cannot_write_the_body():
    from gateway.openai_format import json_body, number

    body = {
        "usage": {"cost": number("0.000125"), "credits": number("0.125000")},
        "big": 2**70,
        "p": Decimal("-0.1"),
    }
    assert (
        json_body(body)
        == b'{"usage":{"cost":0.000125,"credits":0.125000},"big":1180591620717411303424,"p":-0.1}'
    )
