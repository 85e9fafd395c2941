"""gateway.anthropic_format, table-tested: Messages bodies to chat and back, one direction per row."""

from __future__ import annotations

import pytest

from gateway.anthropic_format import MessageEvents, betas, chat_messages, messages_request
from gateway.providers.base import StreamDelta
from smartspec.errors import InvalidRequest

IMG = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}


@pytest.mark.parametrize(
    ("body", "chat"),
    [
        ({"messages": [{"role": "user", "content": "Hi"}]}, [{"role": "user", "content": "Hi"}]),
        (
            {"system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}], "messages": [{"role": "user", "content": "Hi"}]},
            [{"role": "system", "content": "A\n\nB"}, {"role": "user", "content": "Hi"}],
        ),
        (
            {"messages": [{"role": "user", "content": [IMG, {"type": "text", "text": "what?", "cache_control": {"type": "ephemeral"}}]}]},
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}, {"type": "text", "text": "what?"}]}],
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]}]},
            [{"role": "user", "content": [{"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}}]}],
        ),
        (
            {"messages": [
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
                    {"type": "text", "text": "go on"},
                ]},
            ]},
            [
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"},
                {"role": "user", "content": [{"type": "text", "text": "go on"}]},
            ],
        ),
    ],
)  # fmt: skip
def test_messages_to_chat(body, chat):
    assert chat_messages(body) == chat


@pytest.mark.parametrize(
    ("fields", "params"),
    [
        ({"tool_choice": {"type": "any", "disable_parallel_tool_use": True}}, {"tool_choice": "required", "parallel_tool_calls": False}),
        ({"tool_choice": {"type": "tool", "name": "f"}}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ({"tool_choice": {"type": "none"}}, {"tool_choice": "none"}),
        ({"stop_sequences": ["\n\nHuman:"], "top_k": 3, "top_p": 0.5}, {"stop": ["\n\nHuman:"], "top_k": 3, "top_p": 0.5}),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, {"reasoning": {"max_tokens": 2048}}),
        ({"thinking": {"type": "disabled"}}, {}),
        ({"metadata": {"user_id": "u-1"}}, {"user": "u-1"}),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, {}),
    ],
)  # fmt: skip
def test_parameters_to_chat(fields, params):
    request = messages_request(
        {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "x"}], **fields}
    ).request
    assert request.params == params


def test_the_native_body_keeps_everything_but_our_routing_extensions():
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
        "container": "c_1",
        "fallback_models": ["claude-haiku-4-5"],
        "provider": {"sort": "price"},
        "task_type": "simple",
    }
    request = messages_request(body, beta=["b1"]).request
    assert request.anthropic == {k: body[k] for k in ("model", "max_tokens", "messages", "container")}
    assert (request.fallback_models, request.sort, request.anthropic_beta) == (
        ["claude-haiku-4-5"],
        "price",
        ["b1"],
    )


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": True, "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": 1, "messages": []},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}]},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}]},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "temperature": 1.5},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled"}},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "base_url": "http://evil"},
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]},
    ],
)  # fmt: skip
def test_bad_bodies_are_400s(body):
    with pytest.raises(InvalidRequest):
        messages_request(body)


@pytest.mark.parametrize("header", ["a b", "x" * 101, ",".join(["b"] * 33), "beta\r\nX-Injected: 1"])
def test_malformed_beta_headers_are_refused(header):
    with pytest.raises(InvalidRequest):
        betas(header)


def test_stream_deltas_become_one_block_per_run():
    events = MessageEvents(message_id="msg_1", model="m")
    out = [e["type"] for e in events.start()]
    for delta in (
        StreamDelta(thinking="hm"),
        StreamDelta(signature="sig"),
        StreamDelta(content="Hel"),
        StreamDelta(content="lo"),
        StreamDelta(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]),
        StreamDelta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":1}'}}]),
        StreamDelta(tool_calls=[{"index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}}]),
    ):
        for event in events.delta(delta):
            out.append(
                event["type"]
                + (f":{event['delta']['type']}" if event["type"] == "content_block_delta" else "")
            )
            if event["type"] == "content_block_start":
                out.append(f"#{event['index']}:{event['content_block']['type']}")
    assert out == [
        "message_start", "ping",
        "content_block_start", "#0:thinking", "content_block_delta:thinking_delta",
        "content_block_delta:signature_delta",
        "content_block_stop", "content_block_start", "#1:text",
        "content_block_delta:text_delta", "content_block_delta:text_delta",
        "content_block_stop", "content_block_start", "#2:tool_use", "content_block_delta:input_json_delta",
        "content_block_stop", "content_block_start", "#3:tool_use", "content_block_delta:input_json_delta",
    ]  # fmt: skip
