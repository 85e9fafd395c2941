"""Hostile input on Anthropic's Messages face (`/v1/messages`, `/v1/messages/count_tokens`).

Schemathesis (test_fuzz_api) covers the documented body; this drives the shapes only this face parses,
nested blocks and all, with structured-but-wrong and random JSON, for a Claude model (native, through a
mocked Anthropic) and a translated one (through a mocked OpenRouter), streamed or not, with hostile
headers (`anthropic-beta`, `x-api-key`). Every answer is below 500; every error is Anthropic's shape; a
refused call moves no money; after every call the ledger balances and no hold is left.
"""

from __future__ import annotations

import json
import os

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    OPENROUTER_HOST,
    assert_anthropic_error,
    claude_message,
    grant,
    json_response,
    openrouter_completion,
)

FUZZ_MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "100"))
FIGURES = {"requests": 0, "errors_4xx": 0, "ok_2xx": 0, "server_errors": 0}

MODELS = ["claude-sonnet-4-6", "anthropic/claude-haiku-4.5", "openai/gpt-5.6-terra", "claude-x", "", None, 7]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
junk = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
source = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["base64", "url", "file", "text", 3]),
            "media_type": junk | st.just("image/png"),
        },
        optional={"data": junk | st.just("aGVsbG8="), "url": junk | st.just("https://example.com/a.png")},
    ),
    junk,
)
block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": junk | st.text(max_size=40)}),
    st.fixed_dictionaries({"type": st.sampled_from(["image", "document"]), "source": source}),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": junk | st.just("toolu_1"),
            "name": junk | st.just("f"),
            "input": junk,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": junk | st.just("toolu_1")},
        optional={"content": junk, "is_error": junk},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["thinking", "redacted_thinking", "search_result", "server_tool_use"])},
        optional={"thinking": junk, "signature": junk, "data": junk},
    ),
    junk,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", 1]),
        "content": st.one_of(st.text(max_size=40), st.lists(block, max_size=4), junk),
    }
)
tool = st.one_of(
    st.fixed_dictionaries(
        {"name": junk | st.just("get_weather"), "input_schema": junk | st.just({"type": "object"})},
        optional={"description": junk, "type": st.sampled_from(["custom", "web_search_20250305", 5])},
    ),
    junk,
)
body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "max_tokens": st.one_of(st.integers(min_value=-5, max_value=10**9), junk),
        "messages": st.one_of(st.lists(message, max_size=4), junk),
    },
    optional={
        "system": st.one_of(st.text(max_size=40), st.lists(block, max_size=3), junk),
        "stream": st.one_of(st.booleans(), junk),
        "tools": st.one_of(st.lists(tool, max_size=3), junk),
        "tool_choice": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])}, optional={"name": junk}
            ),
            junk,
        ),
        "thinking": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["enabled", "adaptive", "disabled", "between_tools", "on"])},
                optional={"budget_tokens": junk | st.integers(min_value=-1, max_value=10**6)},
            ),
            junk,
        ),
        "output_config": junk,
        "stop_sequences": junk,
        "temperature": junk,
        "top_p": junk,
        "top_k": junk,
        "metadata": junk,
        "fallback_models": junk,
        "provider": junk,
        "task_type": junk,
        "use_openrouter": junk,
        "api_base": junk,
        "cache_control": junk,
    },
)
hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc", "Cf")), max_size=200
)
valid_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": hostile_text}),
    st.just({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="}}),
    st.just({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}),
    st.just({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}),
)
# Well-formed calls carrying hostile content, so the answering paths (native, translated, streamed)
# are driven too, not only the refusals.
valid_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["claude-sonnet-4-6", "anthropic/claude-haiku-4.5", "openai/gpt-5.6-terra"]),
        "max_tokens": st.integers(min_value=1, max_value=4000),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.just("user"),
                    "content": st.one_of(hostile_text, st.lists(valid_block, min_size=1, max_size=3)),
                }
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={
        "system": hostile_text,
        "stream": st.booleans(),
        "tools": st.just([{"name": "get_weather", "input_schema": {"type": "object"}}]),
        "tool_choice": st.sampled_from(
            [{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "get_weather"}]
        ),
        "stop_sequences": st.lists(hostile_text.filter(bool), max_size=3),
        "metadata": st.fixed_dictionaries({"user_id": hostile_text}),
        "cache_control": st.just({"type": "ephemeral"}),
    },
)
raw = st.one_of(
    valid_body.map(lambda b: json.dumps(b).encode()),
    body.map(lambda b: json.dumps(b).encode()),
    junk.map(lambda j: json.dumps(j).encode()),
    st.binary(max_size=80),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "HTTP_ANTHROPIC_BETA": st.text(max_size=60),
        "HTTP_ANTHROPIC_VERSION": st.text(max_size=30),
    },
)


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    yield
    if FIGURES["requests"]:
        print(f"\nmessages fuzz figures: {FIGURES}")


def _money(user) -> tuple:
    from billing.models import CreditHold, LedgerEntry
    from billing.selectors import balance_get

    return (
        balance_get(user=user),
        LedgerEntry.objects.count(),
        CreditHold.objects.filter(state=CreditHold.State.HELD).count(),
    )


async def _drained(response) -> bytes:
    return b"".join([part async for part in response.streaming_content])


def _upstreams(network) -> None:
    def openrouter(req, payload):
        if req.url.path.endswith("/messages"):
            return json_response(
                200, claude_message(model=payload.get("model") or "anthropic/claude-sonnet-4.6")
            )
        return json_response(200, openrouter_completion())

    network.on(OPENROUTER_HOST, openrouter)
    network.on(
        ANTHROPIC_HOST,
        lambda req, payload: json_response(
            200, {"input_tokens": 42} if req.url.path.endswith("/count_tokens") else claude_message()
        ),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("key_header", ["HTTP_X_API_KEY", "HTTP_AUTHORIZATION"])
def test_messages_face_never_fails_on_hostile_input(providers, user, api_key, path, key_header):
    from billing.services import ledger_reconcile

    _upstreams(providers)
    grant(user, 1000)
    key = api_key if key_header == "HTTP_X_API_KEY" else f"Bearer {api_key}"
    client = Client(**{key_header: key})

    @given(payload=raw, extra=headers)
    @settings(
        max_examples=FUZZ_MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(payload, extra):
        before = _money(user)
        response = client.post(path, data=payload, content_type="application/json", **extra)
        FIGURES["requests"] += 1
        content = async_to_sync(_drained)(response) if response.streaming else response.content
        described = f"POST {path} {payload[:300]!r} {extra} -> {response.status_code} {content[:300]!r}"
        if response.status_code >= 500:
            FIGURES["server_errors"] += 1
        assert response.status_code < 500, described
        if response.status_code >= 400:
            FIGURES["errors_4xx"] += 1
            assert_anthropic_error(json.loads(content), described)
            assert _money(user) == before, described
        else:
            FIGURES["ok_2xx"] += 1
            if response.streaming:
                assert b"event: message_start" in content and b"event: message_stop" in content, described
            elif path.endswith("/count_tokens"):
                assert isinstance(json.loads(content)["input_tokens"], int), described
            else:
                assert json.loads(content)["type"] == "message", described
        assert ledger_reconcile() == [], described
        assert _money(user)[2] == 0, f"hold left open: {described}"

    fuzz()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_API_KEY": "sk-ss-forged"},
        {"HTTP_X_API_KEY": "x" * 5000},
        {"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="},
        {"HTTP_X_API_KEY": "\x00\x01"},
    ],
)
def test_messages_without_a_valid_key_are_authentication_errors(providers, user, headers):
    response = Client(**headers).post(
        "/v1/messages",
        data={"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert_anthropic_error(response.json())
    assert response.json()["error"]["type"] == "authentication_error"
    assert providers.calls == []


@pytest.mark.django_db
def test_unknown_paths_and_methods_below_messages_answer_in_anthropics_shape(user, api_key):
    client = Client(HTTP_X_API_KEY=api_key)
    for response, status in (
        (client.get("/v1/messages"), 405),
        (client.post("/v1/messages/batches", data={}, content_type="application/json"), 404),
        (client.post("/v1/messages", data=b"x" * 100, content_type="application/json"), 400),
    ):
        assert response.status_code == status
        assert_anthropic_error(response.json())
