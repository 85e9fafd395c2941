"""Exact cost through the billed pipeline, per usage shape (plain and streamed), and the receipt.

Each upstream answer is a real-shape body (the figures of tests/gateway/test_pricing_shapes.py, the
providers' published prices from the seed): the response the client gets, the ledger entry, the
usage row and `GET /v1/generation` must all carry the same exact micro-credits and usage details.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from billing.credits import usd_to_micro
from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    GEMINI_HOST,
    OPENAI_HOST,
    OPENROUTER_HOST,
    grant,
    json_response,
    openrouter_completion,
    sse_response,
)
from tests.gateway.test_pricing_shapes import (
    ANTHROPIC_USAGE,
    ANTHROPIC_USD,
    GEMINI_USAGE,
    OPENAI_USAGE,
    OPENAI_USD,
)

pytestmark = pytest.mark.django_db

# Long enough that the prompt's upper bound (its bytes) covers the 12,050 tokens Anthropic reports.
LONG = [{"role": "user", "content": "Summarise the cached document. " + "x" * 13_000}]


def _sse(events: list[tuple[str | None, dict | str]]) -> bytes:
    out = []
    for event, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {event}\n" if event else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def openai_answer(stream: bool):
    if not stream:
        return json_response(
            200,
            {
                "id": "chatcmpl-direct-1",
                "object": "chat.completion",
                "created": 1741570283,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "answer"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": OPENAI_USAGE,
            },
        )
    base = {"id": "chatcmpl-direct-1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06"}
    return sse_response(
        _sse(
            [
                (None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ans"}}]}),
                (
                    None,
                    {**base, "choices": [{"index": 0, "delta": {"content": "wer"}, "finish_reason": None}]},
                ),
                (None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                (None, {**base, "choices": [], "usage": OPENAI_USAGE}),
                (None, "[DONE]"),
            ]
        )
    )


ANTHROPIC_MESSAGE = {
    "id": "msg_01Receipt",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
}


def anthropic_answer(stream: bool):
    if not stream:
        return json_response(
            200,
            {
                **ANTHROPIC_MESSAGE,
                "content": [{"type": "text", "text": "answer"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": ANTHROPIC_USAGE,
            },
        )
    start = {
        **ANTHROPIC_MESSAGE,
        "content": [],
        "stop_reason": None,
        "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
    }
    return sse_response(
        _sse(
            [
                ("message_start", {"type": "message_start", "message": start}),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "answer"},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn"},
                        "usage": {"output_tokens": 400},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )
    )


def gemini_answer(stream: bool):
    final = {
        "candidates": [
            {"content": {"parts": [{"text": "answer"}], "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": GEMINI_USAGE,
        "modelVersion": "gemini-3.1-flash-lite",
        "responseId": "gemini-resp-1",
    }
    if not stream:
        return json_response(200, final)
    first = {
        "candidates": [{"content": {"parts": [{"text": "ans"}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 5000, "candidatesTokenCount": 1, "totalTokenCount": 5001},
        "modelVersion": "gemini-3.1-flash-lite",
        "responseId": "gemini-resp-1",
    }
    last = {
        **final,
        "candidates": [{**final["candidates"][0], "content": {"parts": [{"text": "wer"}], "role": "model"}}],
    }
    return sse_response(_sse([(None, first), (None, last)]))


OPENROUTER_USAGE = {
    **OPENAI_USAGE,
    "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0, "audio_tokens": 0},
    "cost": "COST",
    "is_byok": False,
    "cost_details": {"upstream_inference_cost": None},
}
OPENROUTER_COST = "0.0056"  # what OpenRouter billed; our own catalog figure is OPENAI_USD (0.005615)


def openrouter_answer(stream: bool):
    base = {
        "id": "gen-1764849600-ReCeIpT",
        "provider": "OpenAI",
        "model": "openai/gpt-4o",
        "created": 1764849600,
    }
    usage = json.dumps(OPENROUTER_USAGE).replace('"COST"', OPENROUTER_COST)
    if not stream:
        body = {
            **base,
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "answer"}, "finish_reason": "stop"}
            ],
            "usage": "USAGE",
        }
        raw = json.dumps(body).replace('"USAGE"', usage).encode()
        return json_response_raw(raw)
    chunk = {**base, "object": "chat.completion.chunk"}
    events = [
        (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "answer"}}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        (None, json.dumps({**chunk, "choices": [], "usage": "USAGE"}).replace('"USAGE"', usage)),
        (None, "[DONE]"),
    ]
    return sse_response(_sse(events))


def json_response_raw(raw: bytes):
    import httpx

    return httpx.Response(200, content=raw, headers={"content-type": "application/json"})


# Claude Sonnet 4.6 has Claude 3.5 Sonnet's prices (3 / 15, cache read 0.30, writes 3.75 and 6 per 1M).
# Gemini 3.1 Flash Lite: 1000 fresh x 0.25 + 4000 cached x 0.025 + 200 x 1.50 + 800 thoughts x 1.50.
GEMINI_USD = Decimal("0.00025") + Decimal("0.0001") + Decimal("0.0003") + Decimal("0.0012")
# model, host, answer, expected USD billed, our own catalog figure, details the client must see
SHAPES = {
    "openai": ("openai/gpt-4o", OPENAI_HOST, openai_answer, OPENAI_USD, OPENAI_USD),
    "anthropic": (
        "anthropic/claude-sonnet-4.6",
        ANTHROPIC_HOST,
        anthropic_answer,
        ANTHROPIC_USD,
        ANTHROPIC_USD,
    ),
    "gemini": ("google/gemini-3.1-flash-lite", GEMINI_HOST, gemini_answer, GEMINI_USD, GEMINI_USD),
    "openrouter": ("openai/gpt-4o", OPENROUTER_HOST, openrouter_answer, Decimal(OPENROUTER_COST), OPENAI_USD),
}
# prompt, cached, cache writes (5m, 1h), completion, reasoning: normalized as OpenAI counts them.
COUNTS = {
    "openai": (2006, 1920, 0, 0, 300, 128),
    "anthropic": (12050, 10000, 1500, 500, 400, 0),
    "gemini": (5000, 4000, 0, 0, 1000, 800),
    "openrouter": (2006, 1920, 0, 0, 300, 128),
}


@pytest.fixture
def ahttp(api_key):
    """Django's async test client (a stream is consumed on the loop that produced it)."""
    from django.test import AsyncClient

    class KeyedClient(AsyncClient):
        async def post(self, path, data, **kwargs):
            kwargs.setdefault("content_type", "application/json")
            return await super().post(path, data, headers={"Authorization": f"Bearer {api_key}"}, **kwargs)

        async def get(self, path, data=None, **kwargs):
            return await super().get(path, data, headers={"Authorization": f"Bearer {api_key}"}, **kwargs)

    return KeyedClient()


async def _chat(ahttp, model: str, *, stream: bool, use_openrouter: bool):
    body = {"model": model, "messages": LONG, "max_tokens": 2000, "use_openrouter": use_openrouter}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    r = await ahttp.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.content
    if not stream:
        return json.loads(r.content, parse_float=Decimal)
    raw = b"".join([part async for part in r.streaming_content]).decode()
    chunks = [
        json.loads(line[6:], parse_float=Decimal) for line in raw.splitlines() if line.startswith("data: {")
    ]
    final = [chunk for chunk in chunks if chunk.get("usage")]
    assert final, "the stream carried no final usage"
    return final[-1]


def _ledger_usage(user, request_id: str) -> int:
    from billing.models import LedgerEntry

    entry = LedgerEntry.objects.get(account__user=user, kind=LedgerEntry.Kind.USAGE, reference=request_id)
    return -entry.amount


def _usage_row(user):
    from monitoring.models import UsageRecord

    return UsageRecord.objects.get(user=user)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_each_usage_shape_bills_exactly_and_the_client_ledger_row_and_receipt_agree(
    providers, funded_user, ahttp, shape, stream
):
    await sync_to_async(grant)(funded_user, 1000)
    model, host, answer, billed_usd, computed_usd = SHAPES[shape]
    providers.on(host, lambda req, body: answer(stream))

    body = await _chat(ahttp, model, stream=stream, use_openrouter=shape == "openrouter")

    expected = usd_to_micro(billed_usd)
    usage = body["usage"]
    prompt, cached, write_5m, write_1h, completion, reasoning = COUNTS[shape]
    # The client sees the details in OpenAI's names, and the exact money.
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion)
    assert usage["prompt_tokens_details"]["cached_tokens"] == cached
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == write_5m + write_1h
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning
    assert usage["cost"] == billed_usd
    assert usage["credits"] * 1_000_000 == expected

    row = await sync_to_async(_usage_row)(funded_user)
    assert row.credits == expected == await sync_to_async(_ledger_usage)(funded_user, row.request_id)
    assert row.cost_usd == billed_usd and row.computed_cost_usd == computed_usd
    assert (
        row.cached_tokens,
        row.cache_write_5m_tokens,
        row.cache_write_1h_tokens,
        row.reasoning_tokens,
    ) == (
        cached,
        write_5m,
        write_1h,
        reasoning,
    )
    assert row.stream is stream and row.upstream_id
    assert row.cost_source == ("upstream" if shape == "openrouter" else "catalog")
    # The lines add up to our own figure, component by component.
    assert sum(Decimal(line["usd"]) for line in row.cost_lines) == computed_usd

    receipt = await ahttp.get("/v1/generation", {"id": body["id"]})
    assert receipt.status_code == 200, receipt.content
    data = json.loads(receipt.content, parse_float=Decimal)["data"]
    assert data["total_cost"] == usage["cost"] and data["credits_charged"] == usage["credits"]
    assert (data["tokens_prompt"], data["tokens_completion"]) == (prompt, completion)
    assert (data["native_tokens_cached"], data["native_tokens_reasoning"]) == (cached, reasoning)
    assert data["native_tokens_cache_write"] == write_5m + write_1h
    assert data["streamed"] is stream and data["cancelled"] is False
    assert data["finish_reason"] == "stop"
    assert data["model"] == model
    assert {line["component"]: line["quantity"] for line in data["pricing"]}.get("input_cache_read") == cached
    assert data["hold"]["placed"] * 1_000_000 == row.hold
    assert (data["hold"]["placed"] - data["hold"]["released"]) * 1_000_000 == expected
    expected_status = "pending" if shape == "openrouter" else "unavailable"
    assert data["reconciliation"]["status"] == expected_status


def test_openrouter_receipt_names_its_upstream_provider_and_generation(providers, funded_user, http):
    from monitoring.models import UsageRecord

    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    r = http.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
        content_type="application/json",
        HTTP_X_REQUEST_ID="receipt-req-1",
    )
    assert r.status_code == 200, r.content
    row = UsageRecord.objects.get(user=funded_user)
    assert (row.upstream_id, row.provider_name) == ("gen-1761234567-AbCdEfGhIjKlMnOp", "OpenAI")

    # By the response id and by the request id: the same receipt.
    by_response = http.get("/v1/generation", {"id": r.json()["id"]}).json()["data"]
    by_request = http.get("/v1/generation", {"id": "receipt-req-1"}).json()["data"]
    assert by_response == by_request
    assert by_response["provider_name"] == "OpenAI" and by_response["provider"] == "openrouter"
    assert by_response["upstream_id"] == "gen-1761234567-AbCdEfGhIjKlMnOp"
    assert b'"total_cost":0.000125,' in http.get("/v1/generation", {"id": "receipt-req-1"}).content


def test_responses_api_receipt_is_found_by_its_resp_id(providers, funded_user, http):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    r = http.post(
        "/v1/responses",
        {"model": "openai/gpt-4o", "input": "Hi", "store": False},
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    answer = json.loads(r.content, parse_float=Decimal)
    assert answer["id"].startswith("resp_")
    receipt = json.loads(http.get("/v1/generation", {"id": answer["id"]}).content, parse_float=Decimal)[
        "data"
    ]
    assert receipt["id"] == answer["id"]
    assert receipt["credits_charged"] == answer["usage"]["credits"] == Decimal("0.125")
    assert receipt["tokens_prompt"] == answer["usage"]["input_tokens"] == 14


def test_another_users_receipt_is_404_staff_sees_it_and_bad_ids_are_4xx(
    providers, funded_user, http, django_user_model
):
    from django.test import Client

    from gateway.keys import api_key_create

    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    r = http.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
        content_type="application/json",
        HTTP_X_REQUEST_ID="shared-id",
    )
    assert r.status_code == 200
    other = django_user_model.objects.create_user("other-receipt", password="x")
    _, other_raw = api_key_create(user=other, name="other")
    other_http = Client(HTTP_AUTHORIZATION=f"Bearer {other_raw}")
    for ident in (r.json()["id"], "shared-id"):
        missing = other_http.get("/v1/generation", {"id": ident})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "generation_not_found"

    staff = django_user_model.objects.create_user("staff-receipt", password="x", is_staff=True)
    _, staff_raw = api_key_create(user=staff, name="staff")
    seen = Client(HTTP_AUTHORIZATION=f"Bearer {staff_raw}").get("/v1/generation", {"id": "shared-id"})
    assert seen.status_code == 200 and seen.json()["data"]["request_id"] == "shared-id"

    assert http.get("/v1/generation").status_code == 400
    assert http.get("/v1/generation", {"id": "a\x00b"}).status_code == 404
    assert http.get("/v1/generation", {"id": "x" * 5000}).status_code == 404
    assert Client().get("/v1/generation", {"id": "shared-id"}).status_code in (401, 403)


def _fallback_row(user):
    from gateway.catalog import catalog_models_get
    from monitoring.models import UsageRecord

    row = UsageRecord.objects.get(user=user)
    mini = catalog_models_get(model_ids=["openai/gpt-4o-mini"])["openai/gpt-4o-mini"]
    return row, mini


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_openrouter_models_fallback_names_the_model_that_answered(
    providers, funded_user, ahttp, stream
):
    """OpenRouter's own `models` fallback answered with the second model: the attempts, fallback_used,
    the usage row and the receipt say so, and our own figure is at the answering model's price."""
    from tests.gateway.conftest import openrouter_stream

    if stream:
        payload = openrouter_stream(model="openai/gpt-4o-mini", cost="0.000042")
        providers.on(OPENROUTER_HOST, lambda req, body: sse_response(payload))
    else:
        providers.on(
            OPENROUTER_HOST,
            lambda req, body: json_response(
                200, openrouter_completion(model="openai/gpt-4o-mini", cost="0.000042")
            ),
        )
    body = {
        "model": "openai/gpt-4o",
        "fallback_models": ["openai/gpt-4o-mini"],
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": stream,
    }
    r = await ahttp.post("/api/llm/chat" if not stream else "/v1/chat/completions", body)
    assert r.status_code == 200, r.content
    if stream:
        raw = b"".join([part async for part in r.streaming_content]).decode()
        assert '"model":"openai/gpt-4o-mini"' in raw
    else:
        answer = r.json()
        assert answer["fallback_used"] is True and answer["model"] == "openai/gpt-4o-mini"
        assert [a["model"] for a in answer["attempts"]][:2] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    sent = providers.bodies(OPENROUTER_HOST)[0]
    assert sent["models"] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    row, mini = await sync_to_async(_fallback_row)(funded_user)
    assert row.model == "openai/gpt-4o-mini"
    steps = [(a["model"], a["provider"], a["status"]) for a in row.attempts]
    assert steps[:2] == [
        ("openai/gpt-4o", "openrouter", "error"),
        ("openai/gpt-4o-mini", "openrouter", "ok"),
    ]
    assert row.attempts[0]["error_class"] == "OpenRouterFallback"
    # OpenRouter's cost is billed; our own figure is at gpt-4o-mini's catalog price, not gpt-4o's.
    assert row.credits == usd_to_micro(Decimal("0.000042"))
    prices = {line["component"]: Decimal(line["unit_price"]) for line in row.cost_lines}
    assert prices["prompt"] == mini.prompt_price and prices["completion"] == mini.completion_price
    receipt = (await ahttp.get("/v1/generation", {"id": row.request_id})).json()["data"]
    assert receipt["model"] == "openai/gpt-4o-mini" and receipt["fallback_used"] is True
    assert receipt["attempts"][1]["model"] == "openai/gpt-4o-mini"


def test_the_call_page_shows_the_receipt(providers, funded_user, http, client):
    from monitoring.models import UsageRecord

    grant(funded_user, 1000)
    providers.on(ANTHROPIC_HOST, lambda req, body: anthropic_answer(False))
    r = http.post(
        "/v1/chat/completions",
        {
            "model": "anthropic/claude-sonnet-4.6",
            "messages": LONG,
            "max_tokens": 2000,
            "use_openrouter": False,
        },
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    row = UsageRecord.objects.get(user=funded_user)
    client.force_login(funded_user)
    html = client.get(f"/calls/{row.pk}/").content.decode()
    # Each component at the price applied, per 1M tokens, as on the receipt.
    assert "10,000 cache read × $0.3 per 1M = $0.003" in html
    assert "1,500 cache write (5 min) × $3.75 per 1M" in html and "500 cache write (1 h) × $6 per 1M" in html
    assert "50 prompt × $3 per 1M" in html and "400 completion × $15 per 1M" in html
    assert "msg_01Receipt" in html and 'data-testid="reconciliation">unavailable' in html
    # 10,000 reads save 10,000 x (3 - 0.30); the writes cost 1,500 x 0.75 + 500 x 3 more, per 1M.
    assert row.cache_discount_usd == Decimal("0.027") - Decimal("0.001125") - Decimal("0.0015")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_responses_api_shows_the_details_in_its_own_names(providers, funded_user, ahttp, stream):
    await sync_to_async(grant)(funded_user, 1000)
    providers.on(ANTHROPIC_HOST, lambda req, body: anthropic_answer(stream))
    body = {
        "model": "anthropic/claude-sonnet-4.6",
        "input": LONG[0]["content"],
        "max_output_tokens": 2000,
        "use_openrouter": False,
        "store": False,
        "stream": stream,
    }
    r = await ahttp.post("/v1/responses", body)
    assert r.status_code == 200, r.content
    if stream:
        raw = b"".join([part async for part in r.streaming_content]).decode()
        events = [
            json.loads(line[6:], parse_float=Decimal)
            for line in raw.splitlines()
            if line.startswith("data: ")
        ]
        response = next(e["response"] for e in events if e.get("type") == "response.completed")
    else:
        response = json.loads(r.content, parse_float=Decimal)
    usage = response["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (12_050, 400)
    assert usage["input_tokens_details"] == {"cached_tokens": 10_000, "cache_write_tokens": 2_000}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["cost"] == ANTHROPIC_USD and usage["credits"] * 1_000_000 == usd_to_micro(ANTHROPIC_USD)
    receipt = json.loads(
        (await ahttp.get("/v1/generation", {"id": response["id"]})).content, parse_float=Decimal
    )
    assert receipt["data"]["credits_charged"] == usage["credits"]
    assert receipt["data"]["native_tokens_cache_write_1h"] == 500
