"""OpenAI stream chunks written from a prefix serialized once per stream (gateway.openai_format):
each event is exactly the chunk object OpenAI's format asks for."""

from types import SimpleNamespace

import orjson
import pytest

from gateway.openai_format import CompletionChunks
from gateway.providers.base import StreamDelta


def _stream(model="openai/gpt-4o", provider="openrouter"):
    return SimpleNamespace(prepared=SimpleNamespace(request_id="abc123"), model=model, provider=provider)


def _expected(stream, delta_body, finish_reason):
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": stream.model,
        "provider": stream.provider,
        "choices": [{"index": 0, "delta": delta_body, "finish_reason": finish_reason, "logprobs": None}],
    }


def _decode(event: bytes):
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    return orjson.loads(event[len(b"data: ") : -2])


@pytest.mark.parametrize(
    "delta, first, body, finish",
    [
        (StreamDelta(content="Hel"), True, {"role": "assistant", "content": "Hel"}, None),
        (
            StreamDelta(content='lo "wörld" \\ \n\u2028 \U0001f600'),
            False,
            {"content": 'lo "wörld" \\ \n\u2028 \U0001f600'},
            None,
        ),
        (StreamDelta(content="!", finish_reason="stop"), False, {"content": "!"}, "stop"),
        (StreamDelta(finish_reason="length"), False, {}, "length"),
        (
            StreamDelta(
                tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]
            ),
            False,
            {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]},
            None,
        ),
    ],
)
def test_each_event_is_the_openai_chunk(delta, first, body, finish):
    stream = _stream()
    event = CompletionChunks(stream, 1_700_000_000).event(delta, first=first)
    assert _decode(event) == _expected(stream, body, finish)


def test_a_usage_only_delta_sends_nothing():
    assert CompletionChunks(_stream(), 1).event(StreamDelta(usage=object()), first=False) is None


def test_the_prefix_follows_the_answering_model():
    stream = _stream(model="openai/gpt-4o")
    chunks = CompletionChunks(stream, 1_700_000_000)
    assert _decode(chunks.event(StreamDelta(content="a"), first=False))["model"] == "openai/gpt-4o"
    # OpenRouter names the model that really answered in its chunks (its `models` fallbacks).
    stream.model = "anthropic/claude-3.5-sonnet"
    second = _decode(chunks.event(StreamDelta(content="b"), first=False))
    assert second == _expected(stream, {"content": "b"}, None)
