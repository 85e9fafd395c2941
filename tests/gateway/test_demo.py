"""Acceptance 3: with no provider keys (DEBUG, as `make run` starts), the demo provider answers both
chat endpoints for a user with credits, at zero cost."""

import json

import pytest
from asgiref.sync import async_to_sync

from tests.gateway.conftest import balance

pytestmark = pytest.mark.django_db

PING = [{"role": "user", "content": "ping"}]


def test_demo_answers_chat_completions(demo_only, funded_user, http):
    before = balance(funded_user)
    r = http.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": PING}, content_type="application/json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["provider"] == "demo" and body["model"] == "openai/gpt-4o"
    assert body["choices"][0]["message"]["content"].startswith("Demo answer: ping")
    assert b'"credits":0.000000' in r.content and body["usage"]["completion_tokens"] > 0
    assert balance(funded_user) == before


def test_demo_answers_the_native_call_routed_by_the_matrix(demo_only, funded_user, http):
    r = http.post(
        "/api/llm/chat", {"messages": PING, "task_type": "code_generation"}, content_type="application/json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["provider"], body["model"], body["task_type"]) == (
        "demo",
        "openai/gpt-4o",
        "code_generation",
    )
    assert body["credits_charged"] == "0.000000"


def test_demo_streams(demo_only, funded_user):
    from gateway.client import LLMRequest
    from gateway.service import LLMGateway

    async def run():
        stream = await LLMGateway().stream_open(LLMRequest(messages=PING, model="z-ai/glm-4.7"), funded_user)
        return [delta.content async for delta in stream], stream.response

    pieces, response = async_to_sync(run)()
    assert len([p for p in pieces if p]) > 3
    assert "".join(pieces) == response.content and response.content.startswith("Demo answer: ping")
    assert response.provider == "demo" and response.credits_charged == 0


def test_demo_is_off_once_a_provider_is_configured(settings, catalog, funded_user, http):
    settings.DEBUG = False
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_API_KEY = "sk-test"
    r = http.post(
        "/api/llm/chat", {"messages": PING, "model": "z-ai/glm-4.7"}, content_type="application/json"
    )
    assert r.status_code == 400
    assert "no configured provider" in json.loads(r.content)["error"]["message"]
