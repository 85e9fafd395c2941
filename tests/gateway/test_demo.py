"""Acceptance 3: with no provider keys (as `make run` starts), the demo provider answers both chat
endpoints for a user with credits, billed at the catalog price of the model asked for."""

import json
import math
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from tests.gateway.conftest import balance
from tests.security.test_hostile_input import WRONG_PARTS

pytestmark = pytest.mark.django_db

PING = [{"role": "user", "content": "ping"}]


def catalog_micro(model_id: str, prompt_tokens: int, completion_tokens: int) -> int:
    """The charge at the catalog's prices, in micro-credits (rounded up, as the gateway bills)."""
    from gateway.catalog import catalog_models_get

    model = catalog_models_get(model_ids=[model_id])[model_id]
    usd = prompt_tokens * model.prompt_price + completion_tokens * model.completion_price
    return math.ceil(usd * Decimal(1_000_000_000))


def test_demo_answers_chat_completions(demo_only, funded_user, http):
    before = balance(funded_user)
    r = http.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": PING}, content_type="application/json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["provider"] == "demo" and body["model"] == "openai/gpt-4o"
    assert body["choices"][0]["message"]["content"].startswith("Demo answer: ping")
    usage = json.loads(r.content, parse_float=Decimal)["usage"]  # credits: an exact JSON number
    charged = catalog_micro("openai/gpt-4o", usage["prompt_tokens"], usage["completion_tokens"])
    assert usage["completion_tokens"] > 0 and charged > 0
    assert usage["credits"] * 1_000_000 == charged
    after = balance(funded_user)
    assert before["balance"] - after["balance"] == charged and after["held"] == 0


def test_demo_answers_the_native_call_routed_by_the_matrix(demo_only, funded_user, http):
    r = http.post(
        "/api/llm/chat", {"messages": PING, "task_type": "code_generation"}, content_type="application/json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["provider"], body["model"], body["task_type"]) == (
        "demo",
        "openai/gpt-5.6-terra",
        "code_generation",
    )
    charged = catalog_micro(
        "openai/gpt-5.6-terra", body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]
    )
    assert Decimal(body["credits_charged"]) * 1_000_000 == charged > 0
    assert body["routing_reason"] == "code_generation/balanced: openai/gpt-5.6-terra"


def test_demo_streams(demo_only, funded_user):
    from gateway.client import LLMRequest
    from gateway.service import LLMGateway

    async def run():
        stream = await LLMGateway().stream_open(LLMRequest(messages=PING, model="z-ai/glm-4.7"), funded_user)
        return [delta.content async for delta in stream], stream.response

    pieces, response = async_to_sync(run)()
    assert len([p for p in pieces if p]) > 3
    assert "".join(pieces) == response.content and response.content.startswith("Demo answer: ping")
    charged = catalog_micro(
        "z-ai/glm-4.7", response.usage["prompt_tokens"], response.usage["completion_tokens"]
    )
    assert response.provider == "demo" and response.credits_charged == charged > 0


@pytest.mark.parametrize("debug", [False, True])
def test_demo_is_off_once_a_provider_is_configured(settings, catalog, funded_user, http, debug):
    # Even with DEBUG on: a call no configured provider serves is refused, not answered by the demo.
    settings.DEBUG = debug
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_API_KEY = "sk-test"
    r = http.post(
        "/api/llm/chat", {"messages": PING, "model": "z-ai/glm-4.7"}, content_type="application/json"
    )
    assert r.status_code == 400
    assert "no configured provider" in json.loads(r.content)["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/llm/chat"])
@pytest.mark.parametrize("case", sorted(WRONG_PARTS))
def test_demo_refuses_parts_openai_would_refuse_and_bills_nothing(demo_only, funded_user, http, path, case):
    """The quick start's upstream reads message parts as OpenAI defines them: a wrong-typed part is the
    same 400 as on the translated routes, before any hold, not an answer that is billed."""
    body = {**WRONG_PARTS[case], "model": "openai/gpt-4o"}
    if path == "/api/llm/chat" and "tools" in body:
        pytest.skip("the native API has no tools")
    before = balance(funded_user)
    r = http.post(path, body, content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] in ("invalid_message_part", "invalid_messages")
    assert balance(funded_user) == before
