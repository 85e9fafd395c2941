"""Fail closed and never bill nonsense: with the database or Redis down the gateway answers 503 and
the upstream sees no request; missing, zero, negative or absurd upstream usage is billed as an
estimate from the text (flagged), never as zero or negative."""

from __future__ import annotations

import math

import httpx
import pytest
from asgiref.sync import sync_to_async

from billing.credits import usd_to_micro
from gateway.keys import key_generate
from tests.reliability.conftest import gateway_env, live_gateway
from tests.reliability.fake_upstream import BAD_USAGE, CONTENT, refused_url

HELLO = [{"role": "user", "content": "Say hello"}]
BODY = {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100}


def _calls(base: str, key: str) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    return [
        httpx.post(f"{base}/v1/chat/completions", json=BODY, headers=headers, timeout=30),
        httpx.post(f"{base}/v1/chat/completions", json={**BODY, "stream": True}, headers=headers, timeout=30),
        httpx.post(f"{base}/api/llm/chat", json=BODY, headers=headers, timeout=30),
        # A DRF endpoint too: its key check needs the same services.
        httpx.get(f"{base}/api/credits/balance", headers=headers, timeout=30),
    ]


def test_database_down_is_503_and_the_upstream_sees_nothing(fake):
    """The server's database is a closed port: no key can be checked, no hold placed, no call made."""
    fake.script("openrouter", "ok")
    env = {
        "DATABASE_URL": refused_url("/smartspec").replace("http://", "postgres://postgres@"),
        "DEBUG": "false",
        "OPENROUTER_API_KEY": "sk-or-v1-fault-suite-key",
        "OPENROUTER_BASE_URL": fake.url("openrouter", "/api/v1"),
        # The connection pool waits this long for a database that is not coming before it gives up.
        "DB_POOL_TIMEOUT": "1",
    }
    with live_gateway(env, workers=1) as base:
        # A well-formed key (its checksum passes), so the server has to ask the database.
        responses = _calls(base, key_generate())
        ready = httpx.get(f"{base}/readyz", timeout=30)

    assert [r.status_code for r in responses] == [503, 503, 503, 503]
    assert {r.json()["error"]["code"] for r in responses} == {"service_unavailable"}
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "unavailable"
    assert fake.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_redis_down_is_503_and_the_upstream_sees_nothing(fake, catalog, user, api_key):
    """Redis configured but gone: the shared provider state is unknown, so no call is made blind."""
    from tests.gateway.conftest import balance, grant

    grant(user, 100)
    fake.script("openrouter", "ok")
    env = gateway_env(fake, REDIS_URL=refused_url("/6").replace("http://", "redis://"))
    with live_gateway(env, workers=1) as base:
        responses = _calls(base, api_key)

    assert [r.status_code for r in responses] == [503, 503, 503, 503]
    assert fake.count() == 0
    assert balance(user) == {"balance": 100 * 10**6, "held": 0, "available": 100 * 10**6}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("usage", list(BAD_USAGE))
async def test_nonsense_usage_is_billed_as_an_estimate_never_zero_or_negative(faulty, funded, ahttp, usage):
    from gateway.catalog import catalog_models_get
    from gateway.pricing import messages_bytes, tokens_estimate
    from tests.gateway.conftest import balance

    faulty.script("openrouter", usage)
    before = await sync_to_async(balance)(funded)

    r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["usage_estimated"] is True
    model = (await sync_to_async(catalog_models_get)(model_ids=["openai/gpt-4o"]))["openai/gpt-4o"]
    if usage == "cost_huge":
        # The counts are sane, only the cost is not: the counts are priced at the catalog's prices.
        prompt, completion = 14, 9
    else:
        prompt = max(1, tokens_estimate(messages_bytes(HELLO)))
        completion = math.ceil(len("".join(CONTENT).encode()) / 4)
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (prompt, completion)
    expected = usd_to_micro(prompt * model.prompt_price + completion * model.completion_price)
    after = await sync_to_async(balance)(funded)
    assert before["balance"] - after["balance"] == expected > 0
    assert after["held"] == 0
