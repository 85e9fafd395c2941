"""The official `anthropic` SDK, unmodified, against a live gateway (uvicorn in a thread, the mocked
network behind it): `POST /v1/messages` and `/v1/messages/count_tokens` for Claude models natively
(Anthropic directly, or OpenRouter's Anthropic-compatible endpoint with fallbacks) and for other models
through translation. Each call's charge is the balance's change and the usage row.

Upstream fixtures follow the shapes of Anthropic's Messages API reference (message object, usage with
cache counts and the `cache_creation` split, the SSE events of its streaming guide) and OpenRouter's
chat completions (`usage.cost`); OpenRouter's `/messages` answers in Anthropic's shape with its own
model ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from decimal import Decimal

import anthropic
import httpx
import pytest

from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    OPENROUTER_HOST,
    balance,
    claude_message,
    grant,
    json_response,
    openrouter_completion,
    openrouter_stream,
    sse_response,
)

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Hello, Claude"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
SONNET_46 = "anthropic/claude-sonnet-4.6"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state"}},
        "required": ["location"],
    },
}


def tool_use_message(**kwargs) -> dict:
    content = [
        {"type": "text", "text": "I'll check the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA"},
        },
    ]
    return claude_message(content=content, stop_reason="tool_use", **kwargs)


def usage_rows() -> list:
    from gateway.aftercall import call_records_flush
    from monitoring.models import UsageRecord

    call_records_flush()
    return list(UsageRecord.objects.order_by("id"))


def micro(value) -> int:
    """Credits as the SDK hands them over (a JSON number) -> micro-credits."""
    return int(Decimal(str(value)) * 1_000_000)


def assert_billed(user, before: int, usage, *, rows: int = 1) -> int:
    """The call's reported credits == the balance's change == the usage row; nothing left held."""
    charged = before - balance(user)["balance"]
    recorded = usage_rows()
    assert len(recorded) == rows
    assert recorded[-1].credits == charged
    assert micro(usage.model_extra["credits"]) == charged
    assert balance(user)["held"] == 0
    return charged


@pytest.fixture
def direct(providers, settings):
    """Anthropic directly (no OpenRouter): Claude models go out in Anthropic's own format."""
    settings.OPENROUTER_API_KEY = ""
    return providers


@pytest.fixture
def claude(live_gateway, api_key):
    """The official SDK with the gateway key as `x-api-key` (what ANTHROPIC_API_KEY does)."""
    return anthropic.Anthropic(base_url=live_gateway, api_key=api_key, max_retries=0, timeout=20)


# --- Claude models, natively ---------------------------------------------------------------------


def test_create_plain_goes_to_anthropic_as_sent_and_is_billed(direct, funded_user, claude):
    direct.on(ANTHROPIC_HOST, lambda req, body: json_response(200, claude_message()))
    before = balance(funded_user)["balance"]

    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=HELLO)

    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text == "Hi! My name is Claude."
    assert message.stop_reason == "end_turn" and message.model == SONNET_46
    assert (message.usage.input_tokens, message.usage.output_tokens) == (25, 12)
    (request,) = direct.requests
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test-key"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(request.content) == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "messages": HELLO,
    }
    # $3 / $15 per 1M: 25 x 3e-6 + 12 x 15e-6 = $0.000255 = 0.255 credits.
    assert assert_billed(funded_user, before, message.usage) == 255_000
    assert message.usage.model_extra["cost"] == 0.000255


def test_system_blocks_cache_control_and_images_pass_through_with_cache_usage(direct, funded_user, claude):
    direct.on(
        ANTHROPIC_HOST,
        lambda req, body: json_response(
            200, claude_message(input_tokens=30, cache_read=1000, cache_write=200)
        ),
    )
    system = [
        {"type": "text", "text": "You are a careful assistant."},
        {"type": "text", "text": "Long shared context...", "cache_control": {"type": "ephemeral"}},
    ]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "text", "text": "What is in this image?"},
            ],
        }
    ]
    before = balance(funded_user)["balance"]

    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=256,
        system=system,
        messages=messages,
        # Sampling fields older clients (and Claude Code's older releases) still send.
        extra_body={"temperature": 0.2, "top_k": 5},
    )

    sent = direct.bodies(ANTHROPIC_HOST)[0]
    assert sent["system"] == system and sent["messages"] == messages
    assert (sent["temperature"], sent["top_k"]) == (0.2, 5)
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        30,
        1000,
        200,
    )
    # 30 x $3 + 1000 x $0.30 + 200 x $3.75 + 12 x $15 per 1M = $0.00132 (no image price for this model).
    assert assert_billed(funded_user, before, usage) == 1_320_000


def test_bearer_auth_and_betas_are_passed_on(direct, funded_user, live_gateway, api_key):
    direct.on(ANTHROPIC_HOST, lambda req, body: json_response(200, claude_message()))
    client = anthropic.Anthropic(base_url=live_gateway, auth_token=api_key, max_retries=0, timeout=20)

    client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=64,
        messages=HELLO,
        extra_headers={"anthropic-beta": "context-1m-2025-08-07,prompt-caching-2024-07-31"},
    )

    (request,) = direct.requests
    assert request.headers["anthropic-beta"] == "context-1m-2025-08-07,prompt-caching-2024-07-31"
    assert "authorization" not in request.headers  # our key never travels upstream


def test_tool_use_round_trip_natively(direct, funded_user, claude):
    direct.on(
        ANTHROPIC_HOST,
        [json_response(200, tool_use_message()), json_response(200, claude_message(input_tokens=60))],
    )
    before = balance(funded_user)["balance"]
    ask = [{"role": "user", "content": "What's the weather like in San Francisco?"}]

    first = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=512, tools=[WEATHER_TOOL], messages=ask
    )
    tool_use = first.content[1]
    assert first.stop_reason == "tool_use"
    assert (tool_use.type, tool_use.name, tool_use.input) == (
        "tool_use",
        "get_weather",
        {"location": "San Francisco, CA"},
    )
    follow_up = [
        *ask,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "15 degrees, sunny"}],
        },
    ]
    second = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=512, tools=[WEATHER_TOOL], messages=follow_up
    )

    assert second.content[0].text == "Hi! My name is Claude."
    sent = direct.bodies(ANTHROPIC_HOST)
    assert sent[0]["tools"] == [WEATHER_TOOL]
    assert sent[1]["messages"][2]["content"][0]["tool_use_id"] == "toolu_01A09q90qw90lq917835lq9"
    rows = usage_rows()
    assert before - balance(funded_user)["balance"] == sum(r.credits for r in rows)
    assert [r.credits for r in rows] == [
        micro(first.usage.model_extra["credits"]),
        micro(second.usage.model_extra["credits"]),
    ]


# --- Errors in Anthropic's shape, as the SDK's own classes ---------------------------------------


def test_bad_key_is_authentication_error(providers, funded_user, live_gateway):
    client = anthropic.Anthropic(base_url=live_gateway, api_key="sk-ss-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=HELLO)
    assert exc.value.status_code == 401
    assert (exc.value.type, exc.value.error_code) == ("authentication_error", "invalid_api_key")
    assert providers.calls == []


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "openai/gpt-5.6-terra"])
def test_no_credits_is_402_in_anthropics_shape(direct, user, claude, model):
    with pytest.raises(anthropic.APIStatusError) as exc:
        claude.messages.create(model=model, max_tokens=16, messages=HELLO)
    assert exc.value.status_code == 402
    assert exc.value.body["type"] == "error"
    assert (exc.value.type, exc.value.error_code) == ("billing_error", "insufficient_credits")
    assert direct.calls == [] and usage_rows() == []


def test_unknown_model_is_not_found_error(providers, funded_user, claude):
    with pytest.raises(anthropic.NotFoundError) as exc:
        claude.messages.create(model="claude-nonexistent-9", max_tokens=16, messages=HELLO)
    assert (exc.value.type, exc.value.error_code) == ("not_found_error", "model_not_found")
    assert providers.calls == [] and balance(funded_user)["held"] == 0


def test_bad_request_and_rate_limit_and_upstream_failure(direct, funded_user, claude, settings):
    before = balance(funded_user)["balance"]
    with pytest.raises(anthropic.BadRequestError) as exc:
        claude.messages.create(
            model="claude-sonnet-4-6", max_tokens=16, messages=HELLO, extra_body={"temperature": 1.5}
        )
    assert exc.value.type == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=0, messages=HELLO)

    direct.on(
        ANTHROPIC_HOST,
        lambda req, body: json_response(
            529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        ),
    )
    with pytest.raises(anthropic.InternalServerError) as exc:
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=HELLO)
    assert (exc.value.type, exc.value.status_code) == ("api_error", 502)
    assert balance(funded_user) == {**balance(funded_user), "balance": before, "held": 0}


def test_a_key_over_its_rate_is_rate_limit_error(direct, funded_user, claude, api_key):
    from gateway.models import ApiKey

    direct.on(ANTHROPIC_HOST, lambda req, body: json_response(200, claude_message()))
    ApiKey.objects.filter(user=funded_user).update(requests_per_minute=1)
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as exc:
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=HELLO)
    assert exc.value.type == "rate_limit_error"


# --- Other models, translated --------------------------------------------------------------------


def test_non_anthropic_model_is_translated_to_chat_and_back(providers, funded_user, claude):
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: json_response(
            200, openrouter_completion(model="openai/gpt-5.6-terra", cost="0.000125")
        ),
    )
    before = balance(funded_user)["balance"]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "text", "text": "Describe it"},
            ],
        }
    ]

    message = claude.messages.create(
        model="openai/gpt-5.6-terra",
        max_tokens=300,
        system="Be brief.",
        messages=messages,
        stop_sequences=["END"],
        metadata={"user_id": "user-42"},
    )

    assert message.content[0].text == "Hello there!" and message.stop_reason == "end_turn"
    assert message.model == "openai/gpt-5.6-terra"
    (sent,) = providers.bodies(OPENROUTER_HOST)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "text", "text": "Describe it"},
            ],
        },
    ]
    assert (sent["max_tokens"], sent["stop"], sent["user"]) == (300, ["END"], "user-42")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (14, 9)
    # OpenRouter's usage.cost is what is billed: $0.000125 = 0.125 credits.
    assert assert_billed(funded_user, before, message.usage) == 125_000


def test_tool_round_trip_through_translation(providers, funded_user, claude):
    def openrouter(req, body):
        answer = openrouter_completion(model="openai/gpt-5.6-terra", cost="0.0002")
        if not any(m["role"] == "tool" for m in body["messages"]):
            answer["choices"][0]["message"] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_Oslo7",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'},
                    }
                ],
            }
            answer["choices"][0]["finish_reason"] = "tool_calls"
        else:
            answer["choices"][0]["message"]["content"] = "It is 4 degrees in Oslo."
        return json_response(200, answer)

    providers.on(OPENROUTER_HOST, openrouter)
    before = balance(funded_user)["balance"]
    ask = [{"role": "user", "content": "Weather in Oslo?"}]

    first = claude.messages.create(
        model="openai/gpt-5.6-terra",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=ask,
    )
    (call,) = first.content
    assert first.stop_reason == "tool_use"
    assert (call.type, call.id, call.name, call.input) == (
        "tool_use",
        "call_Oslo7",
        "get_weather",
        {"location": "Oslo"},
    )
    second = claude.messages.create(
        model="openai/gpt-5.6-terra",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            *ask,
            {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_Oslo7", "content": "4 C"}],
            },
        ],
    )

    assert second.content[0].text == "It is 4 degrees in Oslo."
    first_sent, second_sent = providers.bodies(OPENROUTER_HOST)
    assert first_sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": WEATHER_TOOL["description"],
            },
        }
    ]
    assert first_sent["tool_choice"] == "required"
    assert second_sent["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"location": "Oslo"}',
    }
    assert second_sent["messages"][2] == {"role": "tool", "tool_call_id": "call_Oslo7", "content": "4 C"}
    assert before - balance(funded_user)["balance"] == 400_000 == sum(r.credits for r in usage_rows())


# --- Claude through OpenRouter's Anthropic-compatible endpoint -----------------------------------


def test_claude_through_openrouters_messages_endpoint_with_fallbacks(providers, funded_user, claude):
    answer = claude_message(
        model="anthropic/claude-haiku-4.5", message_id="gen-1764856123-x9Q2", input_tokens=40
    )
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))
    before = balance(funded_user)["balance"]

    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=128,
        system=[{"type": "text", "text": "Cache me", "cache_control": {"type": "ephemeral"}}],
        messages=HELLO,
        extra_body={"fallback_models": ["claude-haiku-4-5"]},
    )

    (request,) = providers.requests
    assert str(request.url) == "https://openrouter.ai/api/v1/messages"
    assert request.headers["authorization"] == "Bearer sk-or-v1-test-openrouter-key"
    sent = json.loads(request.content)
    assert sent["model"] == SONNET_46
    assert sent["fallbacks"] == [{"model": "anthropic/claude-haiku-4.5"}]
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "fallback_models" not in sent
    # OpenRouter fell back: the answer is priced as Haiku 4.5 ($1 / $5 per 1M): 40 + 12 x 5 = $0.0001.
    assert message.model == "anthropic/claude-haiku-4.5"
    assert assert_billed(funded_user, before, message.usage) == 100_000


def test_openrouter_down_falls_back_to_anthropic_directly(providers, funded_user, claude):
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: json_response(503, {"error": {"code": 503, "message": "No instances available"}}),
    )
    providers.on(ANTHROPIC_HOST, lambda req, body: json_response(200, claude_message()))
    before = balance(funded_user)["balance"]

    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=HELLO)

    assert providers.hosts() == [OPENROUTER_HOST, ANTHROPIC_HOST]
    assert message.model_extra["provider"] == "anthropic"
    assert assert_billed(funded_user, before, message.usage) == 255_000
    (row,) = usage_rows()
    assert [a["status"] for a in row.attempts] == ["error", "ok"]


# --- count_tokens --------------------------------------------------------------------------------


def test_count_tokens_asks_anthropic_on_its_route_and_is_free(direct, funded_user, claude):
    direct.on(ANTHROPIC_HOST, lambda req, body: json_response(200, {"input_tokens": 2095}))
    before = balance(funded_user)["balance"]

    count = claude.messages.count_tokens(
        model="claude-sonnet-4-6", system="You are a scientist", messages=HELLO, tools=[WEATHER_TOOL]
    )

    assert count.input_tokens == 2095 and count.model_extra["estimated"] is False
    (request,) = direct.requests
    assert str(request.url) == "https://api.anthropic.com/v1/messages/count_tokens"
    assert json.loads(request.content) == {
        "model": "claude-sonnet-4-6",
        "messages": HELLO,
        "system": "You are a scientist",
        "tools": [WEATHER_TOOL],
    }
    assert balance(funded_user)["balance"] == before and usage_rows() == []


def test_count_tokens_estimates_off_anthropic_routes(providers, funded_user, claude):
    count = claude.messages.count_tokens(
        model="openai/gpt-5.6-terra", messages=[{"role": "user", "content": "x" * 400}]
    )

    # A token per 4 bytes of the messages' JSON: 400 characters + the framing.
    assert count.model_extra["estimated"] is True
    assert 100 < count.input_tokens < 120
    assert providers.calls == [] and usage_rows() == []


def test_count_tokens_errors_are_anthropic_shaped(providers, user, live_gateway, claude):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=live_gateway, api_key="nope", max_retries=0).messages.count_tokens(
            model="claude-sonnet-4-6", messages=HELLO
        )
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="acme/unknown", messages=HELLO)
    # Free: a user without credits may count.
    assert claude.messages.count_tokens(model="openai/gpt-5.6-terra", messages=HELLO).input_tokens > 0


# --- Streams -------------------------------------------------------------------------------------


def _event(payload: dict) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def claude_stream(
    *,
    blocks: list[tuple[dict, list[dict]]] | None = None,
    model: str = "claude-sonnet-4-6",
    input_tokens: int = 25,
    output_tokens: int = 15,
    stop_reason: str = "end_turn",
    error: dict | None = None,
) -> bytes:
    """Anthropic's SSE as its streaming guide shows it: message_start, a ping, each content block's
    start / deltas / stop, message_delta with the stop reason and output usage, message_stop (or an
    `error` event in the middle)."""
    if blocks is None:
        blocks = [
            ({"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in ("Hello", " world")])
        ]
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_01R8LSv5JvCFqKLVEx3gYgkn",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        },
    }
    events = [_event(start), _event({"type": "ping"})]
    for index, (block, deltas) in enumerate(blocks):
        events.append(_event({"type": "content_block_start", "index": index, "content_block": block}))
        events += [_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        if error is not None and index == 0:
            events.append(_event({"type": "error", "error": error}))
            return b"".join(events)
        events.append(_event({"type": "content_block_stop", "index": index}))
    events.append(
        _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        )
    )
    events.append(_event({"type": "message_stop"}))
    return b"".join(events)


TOOL_BLOCKS = [
    ({"type": "text", "text": ""}, [{"type": "text_delta", "text": "Okay, let's check the weather."}]),
    (
        {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}},
        [
            {"type": "input_json_delta", "partial_json": ""},
            {"type": "input_json_delta", "partial_json": '{"location":'},
            {"type": "input_json_delta", "partial_json": ' "San Francisco, CA"}'},
        ],
    ),
]


def _final_usage(events: list) -> dict:
    (delta,) = [e for e in events if e.type == "message_delta"]
    return delta.usage


def test_stream_text_with_the_sdks_stream_helper(direct, funded_user, claude):
    direct.on(ANTHROPIC_HOST, lambda req, body: sse_response(claude_stream()))
    before = balance(funded_user)["balance"]

    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=HELLO) as stream:
        events = list(stream)
        final = stream.get_final_message()

    assert "".join(e.text for e in events if e.type == "text") == "Hello world"
    assert [e.type for e in events if e.type not in ("text", "content_block_delta")] == [
        "message_start",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert final.content[0].text == "Hello world" and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (25, 15)
    sent = direct.bodies(ANTHROPIC_HOST)[0]
    assert sent["stream"] is True and sent["model"] == "claude-sonnet-4-6"
    # 25 x $3 + 15 x $15 per 1M = $0.0003.
    assert assert_billed(funded_user, before, _final_usage(events)) == 300_000


def test_stream_tool_use_and_thinking_natively(direct, funded_user, claude):
    thinking = (
        {"type": "thinking", "thinking": "", "signature": ""},
        [
            {"type": "thinking_delta", "thinking": "The user wants the weather; "},
            {"type": "thinking_delta", "thinking": "I should call the tool."},
            {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
        ],
    )
    direct.on(
        ANTHROPIC_HOST,
        lambda req, body: sse_response(
            claude_stream(blocks=[thinking, *TOOL_BLOCKS], stop_reason="tool_use")
        ),
    )
    before = balance(funded_user)["balance"]

    with claude.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "What's the weather like in San Francisco?"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "The user wants the weather; I should call the tool."
    assert final.content[0].signature.startswith("EqQBCgIYAhIM")
    assert final.content[2].input == {"location": "San Francisco, CA"}
    assert final.content[2].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and final.stop_reason == "tool_use"
    assert direct.bodies(ANTHROPIC_HOST)[0]["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert assert_billed(funded_user, before, _final_usage(events)) == 300_000


def test_stream_through_translation(providers, funded_user, claude):
    providers.on(
        OPENROUTER_HOST, lambda req, body: sse_response(openrouter_stream(model="openai/gpt-5.6-terra"))
    )
    before = balance(funded_user)["balance"]

    with claude.messages.stream(model="openai/gpt-5.6-terra", max_tokens=100, messages=HELLO) as stream:
        events = list(stream)
        final = stream.get_final_message()

    assert final.content[0].text == "Hello world" and final.model == "openai/gpt-5.6-terra"
    assert providers.bodies(OPENROUTER_HOST)[0]["stream"] is True
    # OpenRouter's streamed usage.cost: $0.000042.
    assert assert_billed(funded_user, before, _final_usage(events)) == 42_000


def test_stream_tool_call_through_translation(providers, funded_user, claude):
    base = {
        "id": "gen-1",
        "provider": "OpenAI",
        "model": "openai/gpt-5.6-terra",
        "object": "chat.completion.chunk",
    }
    pieces = [
        {"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
    ]  # fmt: skip
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chunks.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62, "cost": 0.0002},
        }
    )
    payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(payload))
    before = balance(funded_user)["balance"]

    with claude.messages.stream(
        model="openai/gpt-5.6-terra", max_tokens=100, tools=[WEATHER_TOOL], messages=HELLO
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    (call,) = final.content
    assert (call.type, call.id, call.name, call.input) == (
        "tool_use",
        "call_9",
        "get_weather",
        {"location": "Oslo"},
    )
    assert final.stop_reason == "tool_use"
    assert assert_billed(funded_user, before, _final_usage(events)) == 200_000


def _wait_settled(user, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while balance(user)["held"] and time.monotonic() < deadline:
        time.sleep(0.05)


class StalledStream(httpx.AsyncByteStream):
    """An upstream that sends its head, then stalls (the client hangs up meanwhile)."""

    def __init__(self, head: bytes):
        self.head = head

    async def __aiter__(self):
        yield self.head
        await asyncio.sleep(30)
        yield b""


def test_cut_stream_bills_what_was_produced_and_leaves_no_hold(direct, funded_user, claude):
    full = claude_stream(blocks=[({"type": "text", "text": ""}, [{"type": "text_delta", "text": "a" * 80}])])
    head = full[: full.index(b"event: content_block_stop")]
    direct.on(
        ANTHROPIC_HOST,
        lambda req, body: httpx.Response(
            200, stream=StalledStream(head), headers={"content-type": "text/event-stream"}
        ),
    )
    before = balance(funded_user)["balance"]

    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=2000, messages=HELLO) as stream:
        for event in stream:
            if event.type == "text":
                break  # the client hangs up after the first piece

    _wait_settled(funded_user)
    (row,) = usage_rows()
    charged = before - balance(funded_user)["balance"]
    assert balance(funded_user)["held"] == 0
    assert charged == row.credits > 0
    # The upstream's usage never came: what was relayed is billed as an estimate, never the whole answer.
    assert (row.status, row.stream, row.usage_estimated) == ("cancelled", True, True)
    # 80 bytes relayed: 20 completion tokens.
    assert row.completion_tokens == 20


def test_stream_broken_mid_way_raises_in_the_sdk_and_bills_what_came(direct, funded_user, claude):
    overloaded = {"type": "overloaded_error", "message": "Overloaded"}
    direct.on(ANTHROPIC_HOST, lambda req, body: sse_response(claude_stream(error=overloaded)))
    before = balance(funded_user)["balance"]

    text = []
    with (
        pytest.raises(anthropic.APIStatusError) as exc,
        claude.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=HELLO) as stream,
    ):
        for event in stream:
            if event.type == "text":
                text.append(event.text)

    assert "".join(text) == "Hello world"
    assert exc.value.type == "api_error"
    _wait_settled(funded_user)
    (row,) = usage_rows()
    assert row.status == "error" and row.credits == before - balance(funded_user)["balance"] > 0
    assert balance(funded_user)["held"] == 0


def test_stream_errors_before_output_are_ordinary_errors(direct, user, claude):
    with (
        pytest.raises(anthropic.APIStatusError) as exc,
        claude.messages.stream(model="claude-sonnet-4-6", max_tokens=16, messages=HELLO) as stream,
    ):
        list(stream)
    assert exc.value.status_code == 402 and exc.value.type == "billing_error"


def test_anthropic_only_fields_reach_anthropic_as_given(direct, funded_user, claude):
    direct.on(
        ANTHROPIC_HOST,
        lambda req, body: json_response(
            200, claude_message(content=[{"type": "text", "text": '{"ok": true}'}])
        ),
    )
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}

    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=2000,
        messages=HELLO,
        thinking={"type": "adaptive"},
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}},
        cache_control={"type": "ephemeral"},
        service_tier="standard_only",
    )

    assert message.content[0].text == '{"ok": true}'
    sent = direct.bodies(ANTHROPIC_HOST)[0]
    assert sent["output_config"] == {"effort": "high", "format": {"type": "json_schema", "schema": schema}}
    assert (sent["thinking"], sent["cache_control"], sent["service_tier"]) == (
        {"type": "adaptive"},
        {"type": "ephemeral"},
        "standard_only",
    )


def test_output_format_and_effort_are_translated_for_other_models(providers, funded_user, claude):
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: json_response(200, openrouter_completion(model="openai/gpt-5.6-terra")),
    )
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}

    claude.messages.create(
        model="openai/gpt-5.6-terra",
        max_tokens=2000,
        messages=HELLO,
        thinking={"type": "adaptive"},
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}},
        cache_control={"type": "ephemeral"},
    )

    (sent,) = providers.bodies(OPENROUTER_HOST)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    assert sent["reasoning"] == {"effort": "high"}
    assert "cache_control" not in sent and "output_config" not in sent and "thinking" not in sent


def test_stream_through_openrouters_messages_endpoint(providers, funded_user, claude):
    stream_body = claude_stream(model="anthropic/claude-sonnet-4.6", input_tokens=100, output_tokens=20)
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(stream_body))
    before = balance(funded_user)["balance"]

    with claude.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=256,
        messages=HELLO,
        extra_body={"fallback_models": ["claude-haiku-4-5"]},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    (request,) = providers.requests
    assert str(request.url) == "https://openrouter.ai/api/v1/messages"
    sent = json.loads(request.content)
    assert sent["stream"] is True and sent["fallbacks"] == [{"model": "anthropic/claude-haiku-4.5"}]
    assert final.content[0].text == "Hello world" and final.model == SONNET_46
    # 100 x $3 + 20 x $15 per 1M = $0.0006.
    assert assert_billed(funded_user, before, _final_usage(events)) == 600_000


def test_openrouters_own_cost_on_its_messages_endpoint_is_what_is_billed(providers, funded_user, claude):
    answer = claude_message(model="anthropic/claude-sonnet-4.6")
    answer["usage"]["cost"] = Decimal("0.000317")
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))
    before = balance(funded_user)["balance"]

    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=HELLO)

    assert assert_billed(funded_user, before, message.usage) == 317_000


def test_the_receipt_of_a_message_is_found_by_its_msg_id(direct, funded_user, claude, live_gateway, api_key):
    usage = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1500, "ephemeral_1h_input_tokens": 500},
        "output_tokens": 400,
    }
    direct.on(ANTHROPIC_HOST, lambda req, body: json_response(200, {**claude_message(), "usage": usage}))
    grant(funded_user, 1000)  # the hold prices 13 KB of prompt as 1-hour cache writes
    long = [{"role": "user", "content": "Summarise the cached document. " + "x" * 13_000}]
    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=long)

    receipt = httpx.get(
        f"{live_gateway}/v1/generation",
        params={"id": message.id},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=20,
    ).json()["data"]
    assert receipt["id"] == message.id and receipt["model"] == SONNET_46
    assert (receipt["native_tokens_cached"], receipt["native_tokens_cache_write"]) == (10_000, 2_000)
    assert receipt["credits_charged"] == message.usage.model_extra["credits"]
    assert receipt["total_cost"] == message.usage.model_extra["cost"]
    assert message.usage.cache_read_input_tokens == 10_000 and message.usage.input_tokens == 50


def test_a_fresh_clone_answers_with_the_demo_provider(demo_only, funded_user, claude):
    before = balance(funded_user)["balance"]

    message = claude.messages.create(model="claude-haiku-4-5-20251001", max_tokens=64, messages=HELLO)
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=HELLO) as stream:
        streamed = "".join(stream.text_stream)

    assert message.model == "anthropic/claude-haiku-4.5" and message.model_extra["provider"] == "demo"
    assert message.content[0].text and streamed
    rows = usage_rows()
    assert len(rows) == 2 and before - balance(funded_user)["balance"] == sum(r.credits for r in rows)
    assert balance(funded_user)["held"] == 0


def test_anthropics_own_stop_reason_and_sequence_come_back(direct, funded_user, claude):
    answer = claude_message(stop_reason="stop_sequence")
    answer["stop_sequence"] = "\n\nHuman:"
    stream_body = claude_stream(stop_reason="stop_sequence").replace(
        b'"stop_sequence": null}, "usage"', b'"stop_sequence": "END"}, "usage"'
    )
    direct.on(ANTHROPIC_HOST, [json_response(200, answer), sse_response(stream_body)])

    message = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=HELLO, stop_sequences=["\n\nHuman:"]
    )
    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=HELLO, stop_sequences=["END"]
    ) as stream:
        final = stream.get_final_message()

    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "\n\nHuman:")
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")


def test_another_models_reasoning_comes_back_as_thinking(providers, funded_user, claude):
    base = {"id": "gen-2", "provider": "Z.AI", "model": "z-ai/glm-4.7", "object": "chat.completion.chunk"}
    pieces = [
        {"role": "assistant", "content": "", "reasoning": "Two plus two "},
        {"content": "", "reasoning": "is four."},
        {"content": "4"},
    ]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42, "cost": 0.00005}
    chunks.append({**base, "choices": [], "usage": usage})
    payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    answer = openrouter_completion(model="z-ai/glm-4.7", content="4", cost="0.00005")
    answer["choices"][0]["message"]["reasoning"] = "Two plus two is four."
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: sse_response(payload) if body.get("stream") else json_response(200, answer),
    )
    ask = [{"role": "user", "content": "2+2?"}]

    message = claude.messages.create(model="z-ai/glm-4.7", max_tokens=200, messages=ask)
    with claude.messages.stream(model="z-ai/glm-4.7", max_tokens=200, messages=ask) as stream:
        final = stream.get_final_message()

    for answered in (message, final):
        assert [b.type for b in answered.content] == ["thinking", "text"]
        assert answered.content[0].thinking == "Two plus two is four." and answered.content[1].text == "4"
    assert sum(r.credits for r in usage_rows()) == 100_000
