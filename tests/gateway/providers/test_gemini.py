"""Gemini generateContent / streamGenerateContent against their real request and response shapes."""

import httpx
import pytest

from gateway.providers import provider_call, provider_stream
from gateway.providers.base import WIRE_GEMINI, ChatRequest
from smartspec.errors import UpstreamBadRequest, UpstreamRateLimited, UpstreamUnavailable
from tests.gateway.providers.helpers import collect, json_response, make_config, sse_response

GOOGLE = make_config("google", WIRE_GEMINI, "https://gemini.test/v1beta")

MESSAGES = [
    {"role": "system", "content": "You are a storyteller."},
    {"role": "user", "content": "Tell a story."},
    {"role": "assistant", "content": "About what?"},
    {"role": "user", "content": [{"type": "text", "text": "A backpack."}]},
]


def request(**kwargs) -> ChatRequest:
    kwargs.setdefault("model", "gemini-2.0-flash")
    kwargs.setdefault("messages", MESSAGES)
    return ChatRequest(**kwargs)


async def test_request_roles_system_instruction_and_generation_config(upstream):
    upstream.respond(json_response("gemini_generate.json"))
    await provider_call(GOOGLE, request(temperature=0.3, max_tokens=200, top_p=0.95, stop=["THE END"]))

    sent = upstream.last
    assert str(sent.url) == "https://gemini.test/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "key-google-SECRET"
    assert "key=" not in str(sent.url)
    body = upstream.last_json
    assert body["systemInstruction"] == {"parts": [{"text": "You are a storyteller."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Tell a story."}]},
        {"role": "model", "parts": [{"text": "About what?"}]},
        {"role": "user", "parts": [{"text": "A backpack."}]},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 200,
        "topP": 0.95,
        "stopSequences": ["THE END"],
    }


async def test_model_name_cannot_escape_the_path(upstream):
    upstream.respond(json_response("gemini_generate.json"))
    await provider_call(GOOGLE, request(model="models/../../evil?x=1"))
    assert upstream.last.url.raw_path == b"/v1beta/models/..%2F..%2Fevil%3Fx%3D1:generateContent"
    assert upstream.last.url.query == b""


async def test_answer_skips_thoughts_and_counts_them_as_output(upstream):
    upstream.respond(json_response("gemini_generate.json"))
    result = await provider_call(GOOGLE, request())
    assert result.content == "AI learns patterns from data to make predictions."
    assert result.finish_reason == "stop"
    assert result.model == "gemini-2.5-flash"
    assert result.provider == "google"
    assert result.upstream_id == "7ZgkaP3GOe2qz7IPz4XVuQ0"
    assert result.usage.prompt_tokens == 8
    assert result.usage.completion_tokens == 12 + 35


async def test_blocked_prompt_is_an_empty_filtered_answer(upstream):
    upstream.respond(json_response("gemini_blocked_prompt.json"))
    result = await provider_call(GOOGLE, request())
    assert result.content == ""
    assert result.finish_reason == "content_filter"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (14, 0)


async def test_max_tokens_finish_reason(upstream):
    body = httpx.Response(200, content=json_response("gemini_generate.json").content).json()
    body["candidates"][0]["finishReason"] = "MAX_TOKENS"
    upstream.respond(httpx.Response(200, json=body))
    assert (await provider_call(GOOGLE, request())).finish_reason == "length"


async def test_stream_uses_sse_endpoint_and_reports_final_usage(upstream):
    upstream.respond(sse_response("gemini_stream.sse"))
    deltas = await collect(provider_stream(GOOGLE, request()))
    assert (
        str(upstream.last.url)
        == "https://gemini.test/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert "".join(d.content for d in deltas) == "Once upon a time, a backpack flew away."
    usages = [d.usage for d in deltas if d.usage]
    assert len(usages) == 1
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (9, 11)
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].model == "gemini-2.0-flash"


async def test_stream_without_finish_reason_is_incomplete(upstream):
    content = sse_response("gemini_stream.sse").content.split(b"\n\n")[:2]
    upstream.respond(
        httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"\n\n".join(content) + b"\n\n"
        )
    )
    received = []
    with pytest.raises(UpstreamUnavailable):
        async for delta in provider_stream(GOOGLE, request()):
            received.append(delta)
    assert "".join(d.content for d in received) == "Once upon a time, a backpack"


async def test_stream_error_event_is_mapped(upstream):
    upstream.respond(
        httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\n\n',
        )
    )
    with pytest.raises(UpstreamUnavailable) as info:
        await collect(provider_stream(GOOGLE, request()))
    assert info.value.upstream_code == "UNAVAILABLE"


async def test_429_resource_exhausted(upstream):
    upstream.respond(json_response("gemini_error_429.json", 429))
    with pytest.raises(UpstreamRateLimited) as info:
        await provider_call(GOOGLE, request())
    assert info.value.retryable
    assert info.value.retry_after == 32  # from RetryInfo when there is no Retry-After header
    assert "quota" not in info.value.message


async def test_invalid_key_answered_as_400_is_our_credentials(upstream):
    upstream.respond(json_response("gemini_error_400_key.json", 400))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(GOOGLE, request())
    assert info.value.retryable
    assert info.value.upstream_status == 401


async def test_400_invalid_argument_is_not_retryable(upstream):
    upstream.respond(json_response("gemini_error_400.json", 400))
    with pytest.raises(UpstreamBadRequest) as info:
        await provider_call(GOOGLE, request())
    assert not info.value.retryable
    assert info.value.upstream_code == "INVALID_ARGUMENT"


async def test_503_is_retryable(upstream):
    upstream.respond(json_response("gemini_error_503.json", 503))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(GOOGLE, request())
    assert info.value.retryable


async def test_garbage_200_is_malformed(upstream):
    upstream.respond(httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(UpstreamUnavailable) as info:
        await provider_call(GOOGLE, request())
    assert info.value.code == "upstream_malformed"
