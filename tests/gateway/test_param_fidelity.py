"""Chat completions keep every parameter: one test per row of docs/INTEGRATION_GUIDE.md's parameter
fidelity table, each sent through `POST /v1/chat/completions` to OpenAI (OpenAI-compatible), Anthropic
and Gemini directly, asserting on the upstream body, the answer's status and its dropped-params header.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.providers.params import treatment
from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    GEMINI_HOST,
    OPENAI_HOST,
    anthropic_message,
    balance,
    grant,
    json_response,
    openai_completion,
)

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Hello"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "INTEGRATION_GUIDE.md"
WIRES = {"OpenAI-compatible": "openai_compat", "Anthropic": "anthropic", "Gemini": "gemini"}
TARGETS = {
    "openai_compat": ("openai/gpt-4o", OPENAI_HOST),
    "anthropic": ("anthropic/claude-sonnet-4.6", ANTHROPIC_HOST),
    "gemini": ("google/gemini-3.1-flash-lite", GEMINI_HOST),
}
GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {"parts": [{"text": "Gemini hello"}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
    "modelVersion": "gemini-3.1-flash-lite",
    "responseId": "abc",
}

# What each row's parameter is set to (extra fields it needs alongside), and where a translation lands.
VALUES = {
    "n": (2, {}),
    "logprobs": (True, {}),
    "top_logprobs": (3, {"logprobs": True}),
    "response_format": (
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        {},
    ),
    "tools": (TOOLS, {}),
    "tool_choice": ("required", {"tools": TOOLS}),
    "parallel_tool_calls": (False, {"tools": TOOLS}),
    "reasoning_effort": ("high", {"max_tokens": 20000}),
    "reasoning": ({"effort": "medium"}, {"max_tokens": 20000}),
    "top_k": (40, {}),
    "stop": (["END"], {}),
    "seed": (7, {}),
    "presence_penalty": (0.5, {}),
    "frequency_penalty": (0.25, {}),
    "repetition_penalty": (1.1, {}),
    "logit_bias": ({"50256": -100}, {}),
    "modalities": (["text", "audio"], {}),
    "audio": ({"voice": "alloy", "format": "wav"}, {}),
    "web_search_options": ({"search_context_size": "low"}, {}),
    "prediction": ({"type": "content", "content": "Hello"}, {}),
    "metadata": ({"team": "a"}, {}),
    "store": (True, {}),
    "service_tier": ("flex", {}),
    "user": ("user-42", {}),
    "x_custom_field": ({"anything": 1}, {}),
}
TRANSLATED = {
    ("anthropic", "tools"): lambda b: b["tools"][0]["name"] == "get_weather",
    ("anthropic", "tool_choice"): lambda b: b["tool_choice"] == {"type": "any"},
    ("anthropic", "parallel_tool_calls"): lambda b: b["tool_choice"]["disable_parallel_tool_use"] is True,
    ("anthropic", "reasoning_effort"): lambda b: b["thinking"] == {"type": "enabled", "budget_tokens": 16384},
    ("anthropic", "reasoning"): lambda b: b["thinking"] == {"type": "enabled", "budget_tokens": 8192},
    ("anthropic", "top_k"): lambda b: b["top_k"] == 40,
    ("anthropic", "stop"): lambda b: b["stop_sequences"] == ["END"],
    ("anthropic", "user"): lambda b: b["metadata"] == {"user_id": "user-42"},
    ("gemini", "n"): lambda b: b["generationConfig"]["candidateCount"] == 2,
    ("gemini", "response_format"): lambda b: (
        b["generationConfig"]["responseMimeType"] == "application/json"
        and b["generationConfig"]["responseJsonSchema"] == {"type": "object"}
    ),
    ("gemini", "tools"): lambda b: b["tools"][0]["functionDeclarations"][0]["name"] == "get_weather",
    ("gemini", "tool_choice"): lambda b: b["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}},
    ("gemini", "reasoning_effort"): lambda b: (
        b["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}
    ),
    ("gemini", "reasoning"): lambda b: b["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192},
    ("gemini", "top_k"): lambda b: b["generationConfig"]["topK"] == 40,
    ("gemini", "stop"): lambda b: b["generationConfig"]["stopSequences"] == ["END"],
    ("gemini", "seed"): lambda b: b["generationConfig"]["seed"] == 7,
    ("gemini", "presence_penalty"): lambda b: b["generationConfig"]["presencePenalty"] == 0.5,
    ("gemini", "frequency_penalty"): lambda b: b["generationConfig"]["frequencyPenalty"] == 0.25,
}


def _table() -> list[tuple[str, dict[str, str]]]:
    """The rows of the guide's table: (parameter, {wire: forwarded|translated|skipped|dropped})."""
    text = GUIDE.read_text()
    section = text[text.index("### Parameter fidelity") :]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[1:]:
        if line.startswith("|---"):
            continue
        if not line.startswith("| `") and not line.startswith("| any other"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = "x_custom_field" if cells[0] == "any other field" else cells[0].strip("`")
        rows.append((name, {WIRES[h]: re.match(r"\w+", c).group(0) for h, c in zip(header[1:], cells[1:])}))
    return rows


ROWS = _table()
WORD = {"forwarded": "forwarded", "translated": "translated", "skipped": "skip", "dropped": "drop"}


def test_the_table_covers_every_parameter_the_adapters_know():
    assert {name for name, _ in ROWS} == set(VALUES)
    for name, wires in ROWS:
        for wire, how in wires.items():
            assert treatment(wire, name) == WORD[how], (name, wire)


@pytest.fixture
def answering(providers, funded_user):
    grant(funded_user, 1000)  # the thinking rows hold 20,000 completion tokens
    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion()))
    providers.on(ANTHROPIC_HOST, lambda req, body: json_response(200, anthropic_message()))
    providers.on(GEMINI_HOST, lambda req, body: json_response(200, GEMINI_ANSWER))
    return providers


@pytest.mark.parametrize("name, wires", ROWS, ids=[name for name, _ in ROWS])
def test_parameter_row(answering, funded_user, http, name, wires):
    value, extra = VALUES[name]
    for wire, how in wires.items():
        model, host = TARGETS[wire]
        before = len(answering.bodies(host))
        held_before = balance(funded_user)
        body = {"model": model, "messages": HELLO, "use_openrouter": False, name: value, **extra}
        r = http.post("/v1/chat/completions", body, content_type="application/json")
        sent = answering.bodies(host)[before:]
        dropped = r.headers.get("X-SmartSpec-Dropped-Params", "")
        if how == "skipped":
            assert r.status_code == 400, (wire, r.content)
            error = r.json()["error"]
            assert error["code"] == "unsupported_parameter" and error["param"] == name, (wire, error)
            assert name in error["message"] and sent == []
            assert balance(funded_user) == held_before  # refused before any hold
            continue
        assert r.status_code == 200, (wire, r.content)
        (upstream,) = sent
        if how == "forwarded":
            assert upstream[name] == value, wire
            assert name not in dropped.split(", ")
        elif how == "translated":
            assert TRANSLATED[(wire, name)](upstream), (wire, upstream)
            assert name not in dropped.split(", ")
        else:
            assert name not in upstream and name not in str(upstream.get("generationConfig", "")), wire
            assert name in dropped.split(", "), (wire, dropped)
