"""Client libraries, unmodified, against a live gateway (uvicorn in a thread, the mocked network behind
it): the npm `openai` package (node, installed into tests/gateway/js), `langchain-openai` and `litellm`.
Every charge is the balance's change and the usage rows; no library warns about the usage types.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from tests.gateway.conftest import (
    OPENROUTER_HOST,
    balance,
    json_response,
    openrouter_completion,
    openrouter_stream,
    sse_response,
)

pytestmark = pytest.mark.django_db(transaction=True)

JS = Path(__file__).resolve().parent / "js"
LOGPROBS = {
    "content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}],
    "refusal": None,
}


def usage_credits() -> int:
    from gateway.aftercall import call_records_flush
    from monitoring.models import UsageRecord

    call_records_flush()
    return sum(UsageRecord.objects.values_list("credits", flat=True))


def openrouter(req, body):
    """OpenRouter as each call needs it: embeddings, a stream, a tool call, JSON, n=2, or plain text."""
    if req.url.path.endswith("/embeddings"):
        count = len(body["input"])
        data = [{"object": "embedding", "index": i, "embedding": [0.5, -0.25, 0.125]} for i in range(count)]
        usage = {"prompt_tokens": count, "total_tokens": count, "cost": Decimal(count * 2) / 10**8}
        return json_response(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})
    if body.get("stream"):
        return sse_response(openrouter_stream(cost="0.000042"))
    answer = openrouter_completion(cost="0.000125")
    messages = body["messages"]
    if body.get("tools") and not any(m.get("role") == "tool" for m in messages):
        answer["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        }
        answer["choices"][0]["finish_reason"] = "tool_calls"
    elif body.get("tools"):
        answer["choices"][0]["message"]["content"] = "It is sunny in Oslo."
    elif body.get("response_format"):
        answer["choices"][0]["message"]["content"] = '{"ok": true}'
    if body.get("n") == 2:
        first = {**answer["choices"][0], "logprobs": LOGPROBS}
        answer["choices"] = [first, {**first, "index": 1, "message": {"role": "assistant", "content": "Two"}}]
    return json_response(200, answer)


def _node_modules() -> None:
    if (JS / "node_modules" / "openai" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed for the npm openai acceptance test (.ci/run installs it)"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300)


def test_the_npm_openai_package(providers, funded_user, live_gateway, api_key):
    _node_modules()
    providers.on(OPENROUTER_HOST, openrouter)
    before = balance(funded_user)["balance"]

    run = subprocess.run(
        [shutil.which("node") or "node", "acceptance.mjs"],
        cwd=JS,
        env={**os.environ, "GATEWAY_URL": f"{live_gateway}/v1", "GATEWAY_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])

    assert out["plain"]["text"] == "Hello there!"
    assert out["plain"]["usage"]["input_tokens"] == 14 and out["plain"]["usage"]["credits"] == 0.125
    assert json.loads(out["structured"]) == {"ok": True}
    assert out["call"] == {"type": "function_call", "name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert out["followed"] == "It is sunny in Oslo."
    kinds = out["stream"]["kinds"]
    assert kinds[0][0] == "response.created" and kinds[-1][0] == "response.completed"
    assert [seq for _, seq in kinds] == list(range(len(kinds)))
    assert out["stream"]["text"] == "Hello world" and out["stream"]["credits"] == 0.042
    assert out["embeddings"]["floats"] == [[0.5, -0.25, 0.125]] * 2
    assert out["embeddings"]["decoded"] == [0.5, -0.25, 0.125]  # base64, decoded by the package
    assert out["model"]["id"] == "openai/gpt-4o" and out["model"]["created"] > 0
    assert out["chat"] == {"texts": ["Hello there!", "Two"], "logprob": -0.5}
    assert out["legacy"]["status"] == 400 and "/v1/chat/completions" in out["legacy"]["message"]
    # 5 chat-priced calls at $0.000125, one stream at $0.000042, embeddings of 2 and 1 tokens.
    spent = before - balance(funded_user)["balance"]
    assert spent == 5 * 125_000 + 42_000 + 40 + 20 == usage_credits()
    assert balance(funded_user)["held"] == 0


def _usage_warnings(caught) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if "usage" in str(w.message).lower() or "serializ" in str(w.message).lower()
    ]


def test_langchain_openai_chat_stream_and_embeddings(providers, funded_user, live_gateway, api_key):
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    providers.on(OPENROUTER_HOST, openrouter)
    before = balance(funded_user)["balance"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chat = ChatOpenAI(
            model="openai/gpt-4o", base_url=f"{live_gateway}/v1", api_key=api_key, max_retries=0
        )
        answer = chat.invoke("Say hello")
        pieces = list(chat.stream("Say hello"))
        embedder = OpenAIEmbeddings(
            model="openai/text-embedding-3-small",
            base_url=f"{live_gateway}/v1",
            api_key=api_key,
            check_embedding_ctx_length=False,  # no tiktoken download: the gateway takes text
            max_retries=0,
        )
        vectors = embedder.embed_documents(["one", "two"])
        query = embedder.embed_query("one")

    assert answer.content == "Hello there!" and answer.usage_metadata["total_tokens"] == 23
    assert "".join(p.content for p in pieces) == "Hello world"
    assert vectors == [[0.5, -0.25, 0.125]] * 2 and query == [0.5, -0.25, 0.125]
    assert _usage_warnings(caught) == []
    assert before - balance(funded_user)["balance"] == 125_000 + 42_000 + 40 + 20 == usage_credits()


def test_litellm_as_a_client(providers, funded_user, live_gateway, api_key, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    providers.on(OPENROUTER_HOST, openrouter)
    before = balance(funded_user)["balance"]
    common = {"api_base": f"{live_gateway}/v1", "api_key": api_key}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = litellm.completion(
            model="openai/openai/gpt-4o", messages=[{"role": "user", "content": "Hi"}], **common
        )
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in litellm.completion(
                model="openai/openai/gpt-4o",
                messages=[{"role": "user", "content": "Hi"}],
                stream=True,
                **common,
            )
        )
        embedded = litellm.embedding(model="openai/openai/text-embedding-3-small", input=["one"], **common)

    assert answer.choices[0].message.content == "Hello there!" and answer.usage.total_tokens == 23
    assert streamed == "Hello world"
    assert embedded.data[0]["embedding"] == [0.5, -0.25, 0.125]
    assert _usage_warnings(caught) == []
    assert before - balance(funded_user)["balance"] == 125_000 + 42_000 + 20 == usage_credits()
