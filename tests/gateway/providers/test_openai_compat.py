"""OpenAI-compatible upstreams (OpenRouter, OpenAI, Groq, ...) against their real response shapes."""

import json
from decimal import Decimal

import httpx
import pytest

from gateway.providers import provider_call, provider_stream
from gateway.providers.base import WIRE_OPENAI_COMPAT, ChatRequest
from smartspec.errors import UpstreamBadRequest, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from tests.gateway.providers.helpers import collect, json_response, make_config, sse_response

OPENROUTER = make_config(
    "openrouter",
    WIRE_OPENAI_COMPAT,
    "https://openrouter.test/api/v1",
    headers={"HTTP-Referer": "https://smartspec.example", "X-Title": "SmartSpec Pro"},
    supports_zdr=True,
)
OPENAI = make_config("openai", WIRE_OPENAI_COMPAT, "https://openai.test/v1")
GROQ = make_config("groq", WIRE_OPENAI_COMPAT, "https://groq.test/openai/v1")
OLLAMA = make_config("ollama", WIRE_OPENAI_COMPAT, "http://ollama.test:11434/v1", api_key="")

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a gateway?"}]


def request(**kwargs) -> ChatRequest:
    kwargs.setdefault("model", "openai/gpt-4o")
    kwargs.setdefault("messages", MESSAGES)
    return ChatRequest(**kwargs)


# --- request building -------------------------------------------------------


async def test_openrouter_request_carries_routing_usage_and_site_headers(upstream):
    upstream.respond(json_response("openrouter_chat.json"))
    extra = {
        "provider": {
            "sort": "price",
            "data_collection": "deny",
            "zdr": True,
            "max_price": {"prompt": Decimal("2.5"), "completion": Decimal("10")},
            "allow_fallbacks": True,
        },
        "models": ["anthropic/claude-3.5-sonnet", "google/gemini-flash-1.5"],
    }
    await provider_call(
        OPENROUTER, request(temperature=0.2, max_tokens=300, top_p=0.9, stop=["END"], extra_body=extra)
    )

    sent = upstream.last
    assert sent.method == "POST"
    assert str(sent.url) == "https://openrouter.test/api/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer key-openrouter-SECRET"
    assert sent.headers["http-referer"] == "https://smartspec.example"
    assert sent.headers["x-title"] == "SmartSpec Pro"
    assert sent.headers["content-type"] == "application/json"
    body = upstream.last_json
    assert body["model"] == "openai/gpt-4o"
    assert body["messages"] == MESSAGES
    assert body["stream"] is False
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 300
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END"]
    assert body["usage"] == {"include": True}
    assert body["models"] == ["anthropic/claude-3.5-sonnet", "google/gemini-flash-1.5"]
    assert body["provider"]["sort"] == "price"
    assert body["provider"]["data_collection"] == "deny"
    assert body["provider"]["zdr"] is True
    assert body["provider"]["allow_fallbacks"] is True
    # Decimals are written as the exact number, not a string and not a rounded float.
    assert b'"max_price":{"prompt":2.5,"completion":10}' in sent.content


async def test_streamed_request_asks_for_usage(upstream):
    upstream.respond(sse_response("openai_stream.sse"))
    await collect(provider_stream(OPENAI, request(max_tokens=50)))
    body = upstream.last_json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert upstream.last.headers["accept"] == "text/event-stream"
    # OpenAI's reasoning models refuse max_tokens; the direct OpenAI path uses the newer name.
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body
    assert "usage" not in body  # OpenRouter-only


async def test_ollama_sends_no_authorization_and_passes_params(upstream):
    upstream.respond(json_response("openai_chat.json"))
    await provider_call(
        OLLAMA, request(model="llama3.2", params={"seed": 7, "response_format": {"type": "json_object"}})
    )
    assert str(upstream.last.url) == "http://ollama.test:11434/v1/chat/completions"
    assert "authorization" not in upstream.last.headers
    body = upstream.last_json
    assert body["seed"] == 7
    assert body["response_format"] == {"type": "json_object"}
    assert "temperature" not in body  # unset options are left to the upstream's default


# --- answers ------------------------------------------------------------------


async def test_openrouter_answer_keeps_exact_cost_and_names_the_answering_model(upstream):
    upstream.respond(json_response("openrouter_chat.json"))
    result = await provider_call(OPENROUTER, request())
    assert result.content == "A prepaid gateway charges the caller before it calls the model."
    assert result.model == "openai/gpt-4o"
    assert result.provider == "OpenAI"
    assert result.finish_reason == "stop"
    assert result.upstream_id == "gen-1748291234-Xk3LmNoPqRsTuVwXyZ01"
    assert result.usage.prompt_tokens == 194
    assert result.usage.completion_tokens == 14
    assert result.usage.total_tokens == 208
    # The fixture's cost has more digits than a float holds; every one survives.
    assert result.usage.cost_usd == Decimal("0.00062500000000000001234")
    assert isinstance(result.usage.cost_usd, Decimal)


async def test_openai_answer_without_cost(upstream):
    upstream.respond(json_response("openai_chat.json"))
    result = await provider_call(OPENAI, request())
    assert result.content == "Hello! How can I assist you today?"
    assert result.model == "gpt-4o-2024-08-06"
    assert result.provider == "openai"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (19, 10)
    assert result.usage.cost_usd is None


async def test_tool_call_answer_keeps_the_message(upstream):
    upstream.respond(json_response("openai_chat_tool_calls.json"))
    result = await provider_call(OPENAI, request())
    assert result.content == ""
    assert result.finish_reason == "tool_calls"
    assert result.message["tool_calls"][0]["function"]["name"] == "get_current_weather"


@pytest.mark.parametrize(
    "usage",
    [None, {"prompt_tokens": -5, "completion_tokens": 3}, {"prompt_tokens": "12", "completion_tokens": 3}],
)
async def test_missing_or_nonsense_usage_is_none_so_the_caller_estimates(upstream, usage):
    body = json.loads((json_response("openai_chat.json")).content)
    body["usage"] = usage
    upstream.respond(httpx.Response(200, json=body))
    result = await provider_call(OPENAI, request())
    assert result.usage is None


async def test_negative_cost_is_dropped_but_tokens_kept(upstream):
    body = json.loads(json_response("openrouter_chat.json").content)
    body["usage"]["cost"] = -0.5
    upstream.respond(httpx.Response(200, json=body))
    result = await provider_call(OPENROUTER, request())
    assert result.usage.prompt_tokens == 194
    assert result.usage.cost_usd is None


# --- streams ------------------------------------------------------------------


async def test_openrouter_stream_skips_comments_and_reads_final_usage_chunk(upstream):
    upstream.respond(sse_response("openrouter_stream.sse"))
    deltas = await collect(provider_stream(OPENROUTER, request(model="anthropic/claude-3.5-sonnet")))
    assert "".join(d.content for d in deltas) == "Hello, world"
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    usage = [d.usage for d in deltas if d.usage]
    assert len(usage) == 1
    assert (usage[0].prompt_tokens, usage[0].completion_tokens) == (12, 4)
    assert usage[0].cost_usd == Decimal("0.000096000000000000001")
    assert deltas[0].model == "anthropic/claude-3.5-sonnet"
    assert deltas[0].provider == "Anthropic"


async def test_openai_stream_usage_chunk_with_empty_choices(upstream):
    upstream.respond(sse_response("openai_stream.sse"))
    deltas = await collect(provider_stream(OPENAI, request()))
    assert [d.content for d in deltas if d.content] == ["Hello", "!"]
    assert deltas[-1].usage.prompt_tokens == 9
    assert deltas[-1].usage.completion_tokens == 2


async def test_groq_stream_usage_under_x_groq(upstream):
    upstream.respond(sse_response("groq_stream.sse"))
    deltas = await collect(provider_stream(GROQ, request(model="llama-3.3-70b-versatile")))
    assert "".join(d.content for d in deltas) == "Fast"
    usage = [d.usage for d in deltas if d.usage]
    assert (usage[-1].prompt_tokens, usage[-1].completion_tokens) == (15, 1)


async def test_openrouter_error_mid_stream_fails_after_the_first_delta(upstream):
    upstream.respond(sse_response("openrouter_stream_error.sse"))
    received = []
    with pytest.raises(UpstreamUnavailable) as info:
        async for delta in provider_stream(OPENROUTER, request()):
            received.append(delta)
    assert [d.content for d in received] == ["Partial"]
    assert "Provider disconnected" not in info.value.message


async def test_stream_cut_before_the_end_is_an_error(upstream):
    cut = sse_response("openai_stream.sse").content.split(b"\n\n")[:3]
    upstream.respond(
        httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"\n\n".join(cut) + b"\n\n"
        )
    )
    received = []
    with pytest.raises(UpstreamUnavailable) as info:
        async for delta in provider_stream(OPENAI, request()):
            received.append(delta)
    assert "".join(d.content for d in received) == "Hello!"
    assert info.value.retryable  # the router decides; it will not retry once deltas went out


async def test_stream_garbage_event_is_malformed(upstream):
    upstream.respond(
        httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"data: {not json\n\n")
    )
    with pytest.raises(UpstreamUnavailable) as info:
        await collect(provider_stream(OPENAI, request()))
    assert info.value.code == "upstream_malformed"


async def test_stream_refused_with_status_before_first_delta(upstream):
    upstream.respond(json_response("openai_error_429.json", 429, {"retry-after": "7"}))
    with pytest.raises(UpstreamRateLimited) as info:
        await collect(provider_stream(OPENAI, request()))
    assert info.value.retry_after == 7


async def test_stream_answered_with_a_json_error_body(upstream):
    upstream.respond(json_response("openrouter_error_200_body.json"))
    with pytest.raises(UpstreamUnavailable) as info:
        await collect(provider_stream(OPENROUTER, request()))
    assert info.value.upstream_status == 502
    assert info.value.retryable


# --- errors -------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after(upstream):
    upstream.respond(json_response("openai_error_429.json", 429, {"retry-after": "20"}))
    with pytest.raises(UpstreamRateLimited) as info:
        await provider_call(OPENAI, request())
    error = info.value
    assert error.status == 429
    assert error.retryable
    assert error.retry_after == 20
    assert error.provider == "openai"
    assert error.upstream_code == "rate_limit_exceeded"
    assert "org-abc123" not in error.message


async def test_401_never_echoes_the_body_or_key(upstream):
    upstream.respond(json_response("openai_error_401.json", 401))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(OPENAI, request())
    error = info.value
    assert error.retryable  # another provider may hold a working key
    assert "SECRET" not in error.message
    assert "SECRET" not in json.dumps(error.as_dict())
    assert "sk-live" not in error.message


async def test_404_unknown_model_at_this_provider_is_retryable(upstream):
    upstream.respond(json_response("openai_error_404.json", 404))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(OPENAI, request(model="gpt-4o-nonexistent"))
    assert info.value.retryable
    assert info.value.upstream_status == 404


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_request_errors_are_not_retryable(upstream, status):
    upstream.respond(json_response("openai_error_400.json", status))
    with pytest.raises(UpstreamBadRequest) as info:
        await provider_call(OPENAI, request())
    assert not info.value.retryable
    assert info.value.status == 400
    assert info.value.upstream_status == status
    assert "128000" not in info.value.message  # upstream text stays out


@pytest.mark.parametrize("status", [408, 500, 502, 503, 529])
async def test_server_errors_are_retryable_unavailable(upstream, status):
    upstream.respond(httpx.Response(status, text="<html>Bad gateway</html>"))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(OPENAI, request())
    assert info.value.retryable
    assert info.value.status == 502


async def test_504_is_a_timeout(upstream):
    upstream.respond(httpx.Response(504, text="gateway timeout"))
    with pytest.raises(UpstreamTimeout):
        await provider_call(OPENAI, request())


async def test_openrouter_402_our_account_is_retryable(upstream):
    upstream.respond(json_response("openrouter_error_402.json", 402))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(OPENROUTER, request())
    assert info.value.retryable
    assert "4000 tokens" not in info.value.message


async def test_openrouter_moderation_403_is_the_request(upstream):
    upstream.respond(json_response("openrouter_error_403_moderation.json", 403))
    with pytest.raises(UpstreamBadRequest) as info:
        await provider_call(OPENROUTER, request())
    assert info.value.code == "content_filter"
    assert "harassment" not in info.value.message


async def test_openrouter_error_in_a_200_body_is_a_failure(upstream):
    upstream.respond(json_response("openrouter_error_200_body.json"))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(OPENROUTER, request())
    assert info.value.retryable
    assert "DeepInfra" not in info.value.message


@pytest.mark.parametrize(
    "content",
    [
        b"<html>maintenance</html>",
        b"",
        b"[]",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": 5}}]}',
    ],
)
async def test_garbage_200_is_malformed_and_retryable(upstream, content):
    upstream.respond(httpx.Response(200, content=content))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(OPENAI, request())
    assert info.value.code == "upstream_malformed"
    assert info.value.retryable


async def test_stream_answered_with_a_whole_json_answer_still_delivers_it(upstream):
    upstream.respond(json_response("openrouter_chat.json"))
    deltas = await collect(provider_stream(OPENROUTER, request()))
    assert (
        "".join(d.content for d in deltas)
        == "A prepaid gateway charges the caller before it calls the model."
    )
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage.cost_usd == Decimal("0.00062500000000000001234")
