"""Anthropic Messages API against its real request and response shapes."""

import json

import httpx
import pytest

from gateway.providers import provider_call, provider_stream
from gateway.providers.base import WIRE_ANTHROPIC, ChatRequest
from smartspec.errors import UpstreamBadRequest, UpstreamRateLimited, UpstreamUnavailable
from tests.gateway.providers.helpers import collect, json_response, make_config, sse_response

ANTHROPIC = make_config("anthropic", WIRE_ANTHROPIC, "https://anthropic.test")

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi."},
    {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    },
]


def request(**kwargs) -> ChatRequest:
    kwargs.setdefault("model", "claude-3-5-sonnet-20241022")
    kwargs.setdefault("messages", MESSAGES)
    return ChatRequest(**kwargs)


async def test_request_lifts_system_and_always_sends_max_tokens(upstream):
    upstream.respond(json_response("anthropic_message.json"))
    await provider_call(ANTHROPIC, request(temperature=1.5, top_p=0.8, stop=["###"]))

    sent = upstream.last
    assert str(sent.url) == "https://anthropic.test/v1/messages"
    assert sent.headers["x-api-key"] == "key-anthropic-SECRET"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = upstream.last_json
    assert body["model"] == "claude-3-5-sonnet-20241022"
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["max_tokens"] == 4096
    assert body["temperature"] == 1.0  # Anthropic's scale ends at 1
    assert body["top_p"] == 0.8
    assert body["stop_sequences"] == ["###"]
    assert "stream" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == "Hello"
    assert body["messages"][2]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]


async def test_request_max_tokens_and_tools_translated(upstream):
    upstream.respond(json_response("anthropic_message_tool_use.json"))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        }
    ]
    history = [
        {"role": "user", "content": "Weather in SF?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "SF"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, foggy"},
    ]
    await provider_call(
        ANTHROPIC,
        request(messages=history, max_tokens=256, params={"tools": tools, "tool_choice": "required"}),
    )
    body = upstream.last_json
    assert body["max_tokens"] == 256
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "SF"}}
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, foggy"}],
    }


async def test_answer_text_usage_with_cache_tokens_and_finish_reason(upstream):
    upstream.respond(json_response("anthropic_message.json"))
    result = await provider_call(ANTHROPIC, request())
    assert result.content == "Hi! My name is Claude."
    assert result.model == "claude-3-5-sonnet-20241022"
    assert result.provider == "anthropic"
    assert result.finish_reason == "stop"
    assert result.upstream_id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert result.usage.prompt_tokens == 2095 + 100 + 5
    assert result.usage.completion_tokens == 503
    assert result.usage.cost_usd is None


async def test_tool_use_answer_becomes_tool_calls(upstream):
    upstream.respond(json_response("anthropic_message_tool_use.json"))
    result = await provider_call(ANTHROPIC, request())
    assert result.finish_reason == "tool_calls"
    assert result.content == "I'll check the weather."
    call = result.message["tool_calls"][0]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA", "unit": "celsius"}


@pytest.mark.parametrize(("stop_reason", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop")])
async def test_stop_reasons(upstream, stop_reason, finish):
    body = json.loads(json_response("anthropic_message.json").content)
    body["stop_reason"] = stop_reason
    upstream.respond(httpx.Response(200, json=body))
    assert (await provider_call(ANTHROPIC, request())).finish_reason == finish


async def test_stream_events_to_deltas_with_input_tokens_from_message_start(upstream):
    upstream.respond(sse_response("anthropic_stream.sse"))
    deltas = await collect(provider_stream(ANTHROPIC, request(max_tokens=100)))
    assert upstream.last_json["stream"] is True
    assert upstream.last.headers["accept"] == "text/event-stream"
    assert [d.content for d in deltas if d.content] == ["Hello", "!"]
    final = deltas[-1]
    assert final.finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (25, 15)
    assert final.model == "claude-3-5-sonnet-20241022"


async def test_stream_tool_use_becomes_tool_call_deltas(upstream):
    upstream.respond(sse_response("anthropic_stream_tool_use.sse"))
    deltas = await collect(provider_stream(ANTHROPIC, request()))
    calls = [call for d in deltas if d.tool_calls for call in d.tool_calls]
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert calls[0]["function"]["name"] == "get_weather"
    assert all(call["index"] == 0 for call in calls)
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert json.loads(arguments) == {"location": "San Francisco, CA"}
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].usage.completion_tokens == 89


async def test_stream_overloaded_error_event_is_retryable(upstream):
    upstream.respond(sse_response("anthropic_stream_overloaded.sse"))
    with pytest.raises(UpstreamUnavailable) as info:
        await collect(provider_stream(ANTHROPIC, request()))
    assert info.value.retryable
    assert info.value.upstream_code == "overloaded_error"


async def test_stream_without_message_stop_is_incomplete(upstream):
    content = sse_response("anthropic_stream.sse").content
    upstream.respond(
        httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=content.split(b"event: message_delta")[0],
        )
    )
    received = []
    with pytest.raises(UpstreamUnavailable):
        async for delta in provider_stream(ANTHROPIC, request()):
            received.append(delta)
    assert "".join(d.content for d in received) == "Hello!"


async def test_529_overloaded_is_retryable(upstream):
    upstream.respond(json_response("anthropic_error_529.json", 529))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(ANTHROPIC, request())
    assert info.value.retryable
    assert info.value.upstream_status == 529


async def test_400_invalid_request_is_not_retryable(upstream):
    upstream.respond(json_response("anthropic_error_400.json", 400))
    with pytest.raises(UpstreamBadRequest) as info:
        await provider_call(ANTHROPIC, request())
    assert not info.value.retryable
    assert info.value.upstream_code == "invalid_request_error"
    assert "8192" not in info.value.message


async def test_401_bad_key_is_retryable_and_silent(upstream):
    upstream.respond(json_response("anthropic_error_401.json", 401))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(ANTHROPIC, request())
    assert info.value.retryable
    assert "x-api-key" not in info.value.message


async def test_429_with_retry_after(upstream):
    upstream.respond(
        httpx.Response(
            429,
            headers={"retry-after": "12"},
            json={
                "type": "error",
                "error": {"type": "rate_limit_error", "message": "Number of request tokens"},
            },
        )
    )
    with pytest.raises(UpstreamRateLimited) as info:
        await provider_call(ANTHROPIC, request())
    assert info.value.retry_after == 12


async def test_garbage_200_is_malformed(upstream):
    upstream.respond(httpx.Response(200, json={"type": "message", "content": "not a list"}))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(ANTHROPIC, request())
    assert info.value.code == "upstream_malformed"
