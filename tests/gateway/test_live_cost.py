"""Live server: the gateway served by uvicorn, fake direct OpenAI and Anthropic upstreams served by
uvicorn too (real HTTP both ways), the official `openai` SDK as the client. A direct OpenAI call with
cached and reasoning tokens and a direct Anthropic call with cache reads and writes are charged
exactly sum(tokens x price) at the prices `GET /v1/models` shows."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest

from tests.gateway.conftest import balance, grant
from tests.gateway.test_openai_sdk import ServerThread
from tests.gateway.test_pricing_shapes import ANTHROPIC_USAGE, OPENAI_USAGE

pytestmark = pytest.mark.django_db(transaction=True)

LONG = [{"role": "user", "content": "Summarise the cached document. " + "x" * 13_000}]


class FakeDirectProviders:
    """OpenAI's `POST /v1/chat/completions` and Anthropic's `POST /v1/messages`, real shapes."""

    def __init__(self):
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        self.paths.append(scope["path"])
        if scope["path"] == "/v1/chat/completions":
            body = {
                "id": "chatcmpl-live-1",
                "object": "chat.completion",
                "created": 1764849600,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "cached answer"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": OPENAI_USAGE,
            }
        else:
            body = {
                "id": "msg_01LiveCache",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [{"type": "text", "text": "cached answer"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": ANTHROPIC_USAGE,
            }
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _expected_usd(pricing: dict, counts: dict[str, int]) -> Decimal:
    """sum(tokens x price) with the prices as /v1/models shows them (strings of USD per token)."""
    return sum((Decimal(str(pricing[name])) * n for name, n in counts.items()), Decimal(0))


def test_direct_openai_and_anthropic_cache_and_reasoning_are_charged_at_the_listed_prices(
    settings, catalog, user, api_key
):
    grant(user, 1000)
    fake = FakeDirectProviders()
    with ServerThread(fake) as fake_url:
        settings.DEBUG = False
        settings.OPENROUTER_API_KEY = ""
        settings.OPENAI_API_KEY = "sk-test-openai-live"
        settings.ANTHROPIC_API_KEY = "sk-ant-test-live"
        settings.OPENAI_BASE_URL = f"{fake_url}/v1"
        settings.ANTHROPIC_BASE_URL = fake_url
        from smartspec.asgi import application

        with ServerThread(application) as gateway_url:
            client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=20)
            listed = {m.id: m.model_extra["pricing"] for m in client.models.list()}
            start = balance(user)["balance"]
            gpt = client.chat.completions.create(model="openai/gpt-4o", messages=LONG, max_tokens=2000)
            after_gpt = balance(user)["balance"]
            claude = client.chat.completions.create(
                model="anthropic/claude-sonnet-4.6", messages=LONG, max_tokens=2000
            )
            after_claude = balance(user)["balance"]
            receipts = [
                httpx.get(
                    f"{gateway_url}/v1/generation",
                    params={"id": answer.id},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=20,
                ).json()["data"]
                for answer in (gpt, claude)
            ]

    assert fake.paths == ["/v1/chat/completions", "/v1/messages"]
    # OpenAI: 2006 prompt of which 1920 cached; 300 completion of which 128 reasoning (listed at the
    # completion price when the model has no reasoning price of its own).
    openai_usd = _expected_usd(
        listed["openai/gpt-4o"],
        {"prompt": 2006 - 1920, "input_cache_read": 1920, "completion": 300 - 128, "internal_reasoning": 128},
    )
    # Anthropic: 50 fresh input, 10,000 cache reads, 1,500 5-minute and 500 1-hour writes, 400 output.
    anthropic_usd = _expected_usd(
        listed["anthropic/claude-sonnet-4.6"],
        {
            "prompt": 50,
            "input_cache_read": 10_000,
            "input_cache_write": 1_500,
            "input_cache_write_1h": 500,
            "completion": 400,
        },
    )
    assert openai_usd == Decimal("0.005615") and anthropic_usd == Decimal("0.017775")
    for answer, usd, charged, receipt in (
        (gpt, openai_usd, start - after_gpt, receipts[0]),
        (claude, anthropic_usd, after_gpt - after_claude, receipts[1]),
    ):
        micro = int(usd * 1_000_000_000)
        assert charged == micro
        extra = answer.usage.model_extra
        assert (
            Decimal(str(extra["cost"])) == usd and round(Decimal(str(extra["credits"])) * 1_000_000) == micro
        )
        assert round(Decimal(str(receipt["credits_charged"])) * 1_000_000) == micro
        assert Decimal(str(receipt["total_cost"])) == usd
    assert gpt.usage.prompt_tokens_details.cached_tokens == 1920
    assert gpt.usage.completion_tokens_details.reasoning_tokens == 128
    assert claude.usage.prompt_tokens == 12_050 and claude.usage.prompt_tokens_details.cached_tokens == 10_000
    assert claude.usage.prompt_tokens_details.cache_write_tokens == 2_000
    assert balance(user)["held"] == 0
