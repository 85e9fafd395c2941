"""Golden figures for each usage shape: a real-shape upstream usage, parsed by its adapter (plain and
streamed), priced per component at the seeded catalog prices (the providers' published lists).

Worked examples (USD per 1M tokens from the seed migration 0005):
- OpenAI gpt-4o: prompt 2.50, cached 1.25, completion 10 (reasoning billed as completion).
- Anthropic Claude 3.5 Sonnet: input 3, cache read 0.30, 5-minute write 3.75, 1-hour write 6, output 15.
- Gemini 2.5 Flash: input 0.30, cached 0.03, output 2.50 (thoughts billed as output).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billing.credits import usd_to_micro
from gateway.catalog import CatalogModel, catalog_models_get
from gateway.pricing import WorstPrices, cost_compute, usage_resolve, worst_case_usd
from gateway.providers import anthropic, gemini, openai_compat
from gateway.providers.base import (
    SHAPE_ANTHROPIC,
    SHAPE_GEMINI,
    SHAPE_OPENAI,
    SHAPE_OPENROUTER,
    ProviderConfig,
)

pytestmark = pytest.mark.django_db

OPENAI = ProviderConfig(name="openai", wire="openai_compat", base_url="https://api.openai.com/v1")
OPENROUTER = ProviderConfig(name="openrouter", wire="openai_compat", base_url="https://openrouter.ai/api/v1")
ANTHROPIC = ProviderConfig(name="anthropic", wire="anthropic", base_url="https://api.anthropic.com")
GOOGLE = ProviderConfig(
    name="google", wire="gemini", base_url="https://generativelanguage.googleapis.com/v1beta"
)

OPENAI_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 128,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
# 86 fresh x 2.50 + 1920 cached x 1.25 + 172 x 10 + 128 reasoning x 10, per 1M.
OPENAI_USD = Decimal("0.000215") + Decimal("0.0024") + Decimal("0.00172") + Decimal("0.00128")

ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 10000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1500, "ephemeral_1h_input_tokens": 500},
    "output_tokens": 400,
    "service_tier": "standard",
}
# 50 x 3 + 10000 x 0.30 + 1500 x 3.75 + 500 x 6 + 400 x 15, per 1M.
ANTHROPIC_USD = (
    Decimal("0.00015") + Decimal("0.003") + Decimal("0.005625") + Decimal("0.003") + Decimal("0.006")
)

GEMINI_USAGE = {
    "promptTokenCount": 5000,
    "cachedContentTokenCount": 4000,
    "candidatesTokenCount": 200,
    "thoughtsTokenCount": 800,
    "totalTokenCount": 6000,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5000}],
}
# 1000 fresh x 0.30 + 4000 cached x 0.03 + 200 x 2.50 + 800 thoughts x 2.50, per 1M.
GEMINI_USD = Decimal("0.0003") + Decimal("0.00012") + Decimal("0.0005") + Decimal("0.002")


@pytest.fixture
def models(catalog) -> dict[str, CatalogModel]:
    return catalog_models_get(
        model_ids=["openai/gpt-4o", "anthropic/claude-3.5-sonnet", "google/gemini-2.5-flash"]
    )


def _price(usage, model: CatalogModel):
    resolved = usage_resolve(usage=usage, prompt_bytes=10, completion_bytes=6)
    return resolved, cost_compute(usage=resolved, model=model)


def _openai_body(usage: dict, **extra) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "answer"}, "finish_reason": "stop"}
            ],
            "usage": usage,
            **extra,
        }
    ).encode()


def _openai_stream_usage(usage: dict, config: ProviderConfig):
    parser = openai_compat.adapter.stream_parser(config)
    deltas = parser.feed(None, json.dumps({"choices": [{"index": 0, "delta": {"content": "answer"}}]}))
    deltas += parser.feed(None, json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    deltas += parser.feed(None, json.dumps({"choices": [], "usage": usage}))
    parser.feed(None, "[DONE]")
    parser.finish()
    return [d.usage for d in deltas if d.usage][-1]


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_cached_inside_prompt_reasoning_inside_completion(models, streamed):
    usage = (
        _openai_stream_usage(OPENAI_USAGE, OPENAI)
        if streamed
        else openai_compat.adapter.parse_response(_openai_body(OPENAI_USAGE), OPENAI).usage
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens, usage.reasoning_tokens) == (
        2006,
        1920,
        300,
        128,
    )
    assert usage.shape == SHAPE_OPENAI
    _, cost = _price(usage, models["openai/gpt-4o"])
    assert cost.usd == OPENAI_USD == Decimal("0.005615")
    assert usd_to_micro(cost.usd) == 5_615_000
    assert cost.source == "catalog"
    assert {line.component: line.quantity for line in cost.lines} == {
        "prompt": 86,
        "input_cache_read": 1920,
        "completion": 172,
        "internal_reasoning": 128,
    }


@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_reads_and_writes_outside_input_tokens_priced_apart(models, streamed):
    if streamed:
        parser = anthropic.adapter.stream_parser(ANTHROPIC)
        start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
        }
        parser.feed(
            "message_start",
            json.dumps({"type": "message_start", "message": {**message, "usage": start_usage}}),
        )
        parser.feed(
            "content_block_delta",
            json.dumps(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "answer"}}
            ),
        )
        deltas = parser.feed(
            "message_delta",
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 400},
                }
            ),
        )
        parser.feed("message_stop", json.dumps({"type": "message_stop"}))
        usage = deltas[-1].usage
    else:
        body = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "text", "text": "answer"}],
            "stop_reason": "end_turn",
            "usage": ANTHROPIC_USAGE,
        }
        usage = anthropic.adapter.parse_response(json.dumps(body).encode(), ANTHROPIC).usage
    # Normalized: every input token in the prompt total, the parts as details.
    assert (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
    ) == (
        12050,
        10000,
        1500,
        500,
    )
    assert usage.completion_tokens == 400 and usage.shape == SHAPE_ANTHROPIC
    _, cost = _price(usage, models["anthropic/claude-3.5-sonnet"])
    assert cost.usd == ANTHROPIC_USD == Decimal("0.017775")
    assert usd_to_micro(cost.usd) == 17_775_000
    assert {line.component: line.quantity for line in cost.lines} == {
        "prompt": 50,
        "input_cache_read": 10000,
        "input_cache_write": 1500,
        "input_cache_write_1h": 500,
        "completion": 400,
    }


def test_anthropic_write_without_ttl_split_is_a_five_minute_write(models):
    usage = anthropic._usage({"input_tokens": 10, "cache_creation_input_tokens": 1000, "output_tokens": 5})
    assert (usage.prompt_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (1010, 1000, 0)
    _, cost = _price(usage, models["anthropic/claude-3.5-sonnet"])
    # 10 x 3 + 1000 x 3.75 + 5 x 15, per 1M: a write costs more than a plain prompt token.
    assert cost.usd == Decimal("0.00003") + Decimal("0.00375") + Decimal("0.000075")


@pytest.mark.parametrize("streamed", [False, True])
def test_gemini_cached_inside_prompt_thoughts_outside_candidates(models, streamed):
    body = {
        "candidates": [
            {"content": {"parts": [{"text": "answer"}], "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": GEMINI_USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }
    if streamed:
        parser = gemini.adapter.stream_parser(GOOGLE)
        first = {
            **body,
            "candidates": [{"content": {"parts": [{"text": "ans"}], "role": "model"}, "index": 0}],
        }
        first["usageMetadata"] = {
            "promptTokenCount": 5000,
            "candidatesTokenCount": 1,
            "totalTokenCount": 5001,
        }
        parser.feed(None, json.dumps(first))
        usage = parser.feed(None, json.dumps(body))[-1].usage
        parser.finish()
    else:
        usage = gemini.adapter.parse_response(json.dumps(body).encode(), GOOGLE).usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens, usage.reasoning_tokens) == (
        5000,
        4000,
        1000,
        800,
    )
    assert usage.shape == SHAPE_GEMINI
    _, cost = _price(usage, models["google/gemini-2.5-flash"])
    assert cost.usd == GEMINI_USD == Decimal("0.00292")
    assert usd_to_micro(cost.usd) == 2_920_000


@pytest.mark.parametrize("streamed", [False, True])
def test_openrouter_cost_is_authoritative_and_our_own_figure_is_kept(models, streamed):
    usage_body = {
        **OPENAI_USAGE,
        "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0, "audio_tokens": 0},
        "cost": 0.0056,
        "is_byok": False,
        "cost_details": {"upstream_inference_cost": None},
    }
    if streamed:
        usage = _openai_stream_usage(usage_body, OPENROUTER)
    else:
        usage = openai_compat.adapter.parse_response(
            _openai_body(usage_body, provider="OpenAI"), OPENROUTER
        ).usage
    assert usage.shape == SHAPE_OPENROUTER and usage.cached_tokens == 1920 and usage.reasoning_tokens == 128
    _, cost = _price(usage, models["openai/gpt-4o"])
    assert cost.usd == Decimal("0.0056") and cost.source == "upstream"
    assert cost.computed == OPENAI_USD
    assert usd_to_micro(cost.usd) == 5_600_000


def test_openrouter_cache_write_tokens_are_priced_as_writes(models):
    usage = openai_compat._usage(
        {
            "usage": {
                "prompt_tokens": 194,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 0},
                "cost": 0.95,
            }
        },
        "openrouter",
    )
    assert (usage.cache_write_5m_tokens, usage.cost_usd) == (100, Decimal("0.95"))
    _, cost = _price(usage, models["anthropic/claude-3.5-sonnet"])
    # Our figure: 94 x 3 + 100 x 3.75 + 2 x 15, per 1M; OpenRouter's 0.95 is billed.
    assert cost.computed == Decimal("0.000282") + Decimal("0.000375") + Decimal("0.00003")
    assert cost.usd == Decimal("0.95")


def test_details_never_exceed_their_totals():
    usage = openai_compat._usage(
        {
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 50},
                "completion_tokens_details": {"reasoning_tokens": -3},
            }
        },
        "openai",
    )
    assert (usage.cached_tokens, usage.reasoning_tokens) == (10, 0)


def test_request_and_image_prices_apply_once_per_call_and_per_image(models):
    from dataclasses import replace

    model = replace(models["openai/gpt-4o"], request_price=Decimal("0.001"), image_price=Decimal("0.003613"))
    usage = openai_compat._usage({"usage": {"prompt_tokens": 100, "completion_tokens": 10}}, "openai")
    resolved = usage_resolve(usage=usage, prompt_bytes=10, completion_bytes=6, images=2)
    cost = cost_compute(usage=resolved, model=model)
    assert cost.usd == Decimal("0.00025") + Decimal("0.0001") + Decimal("0.001") + 2 * Decimal("0.003613")


def test_worst_case_uses_the_dearest_component(models):
    sonnet = models["anthropic/claude-3.5-sonnet"]
    prices = WorstPrices.of([models["openai/gpt-4o"], sonnet])
    # A 1-hour cache write ($6/M) is the dearest input token; completion $15/M the dearest output.
    assert prices.prompt == Decimal("0.000006") and prices.completion == Decimal("0.000015")
    assert worst_case_usd(prices=prices, prompt_tokens=1000, max_tokens=100) == Decimal("0.0075")
    from dataclasses import replace

    reasoner = replace(sonnet, internal_reasoning_price=Decimal("0.00006"))
    assert WorstPrices.of([reasoner]).completion == Decimal("0.00006")
