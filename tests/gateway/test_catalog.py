"""The catalog: seeded defaults, the OpenRouter price sync task, and the model list APIs."""

from decimal import Decimal

import httpx
import pytest

from tests.gateway.conftest import OPENROUTER_HOST, json_response

pytestmark = pytest.mark.django_db

# The shape of OpenRouter's GET /api/v1/models (trimmed to the fields we read and a few we ignore).
MODELS_BODY = {
    "data": [
        {
            "id": "openai/gpt-4o",
            "canonical_slug": "openai/gpt-4o",
            "name": "OpenAI: GPT-4o",
            "created": 1715367049,
            "description": "GPT-4o is OpenAI's flagship model.",
            "context_length": 128000,
            "architecture": {
                "modality": "text+image->text",
                "input_modalities": ["text", "image"],
                "output_modalities": ["text"],
                "tokenizer": "GPT",
                "instruct_type": None,
            },
            "pricing": {
                "prompt": "0.000003",
                "completion": "0.000012",
                "request": "0",
                "image": "0.003613",
                "web_search": "0",
                "internal_reasoning": "0",
            },
            "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": True},
            "per_request_limits": None,
            "supported_parameters": ["max_tokens", "temperature", "tools"],
        },
        {
            "id": "mistralai/mistral-nemo",
            "canonical_slug": "mistralai/mistral-nemo",
            "name": "Mistral: Mistral Nemo",
            "created": 1721347200,
            "context_length": 131072,
            "pricing": {"prompt": "0.00000002", "completion": "0.00000004", "request": "0", "image": "0"},
            "top_provider": {"context_length": 131072, "max_completion_tokens": None, "is_moderated": False},
        },
        {
            "id": "openrouter/auto",
            "name": "Auto Router",
            "context_length": 2000000,
            "pricing": {"prompt": "-1", "completion": "-1"},
        },
        {"id": "broken/model", "name": "No prices", "context_length": 1000, "pricing": {}},
    ]
}


def test_seed_has_every_matrix_model_with_openrouter_prices():
    from gateway.models import ModelCatalogEntry, RoutingRule

    assert RoutingRule.objects.count() == 20
    matrix_models = set(RoutingRule.objects.values_list("model_id", flat=True))
    assert matrix_models == {
        "anthropic/claude-sonnet-4.6",
        "google/gemini-3.1-flash-lite",
        "meta-llama/llama-3.3-70b-instruct",
        "openai/gpt-5.6-terra",
        "openai/gpt-5.6-luna",
    }
    glm = ModelCatalogEntry.objects.get(id="z-ai/glm-4.7")
    assert glm.providers == {"openrouter": "z-ai/glm-4.7", "zai": "glm-4.7"}
    gpt4o = ModelCatalogEntry.objects.get(id="openai/gpt-4o")
    assert (gpt4o.prompt_price, gpt4o.completion_price) == (Decimal("0.0000025"), Decimal("0.00001"))


@pytest.mark.parametrize(
    ("model_id", "prices"),
    [
        # OpenAI's GPT-5.6 list prices per 1M tokens: input, output, cached input (90% off), cache write (1.25x)
        ("openai/gpt-5.6-terra", ("2.50", "15", "0.25", "3.125")),
        ("openai/gpt-5.6-luna", ("1", "6", "0.10", "1.25")),
    ],
)
def test_gpt56_defaults_carry_every_price_openai_lists(model_id, prices):
    from gateway.models import ModelCatalogEntry

    entry = ModelCatalogEntry.objects.get(id=model_id)
    per_million = [
        price * 1_000_000
        for price in (
            entry.prompt_price,
            entry.completion_price,
            entry.input_cache_read_price,
            entry.input_cache_write_price,
        )
    ]
    assert per_million == [Decimal(p) for p in prices]
    assert entry.context_length == 1_050_000
    assert entry.providers == {"openrouter": model_id, "openai": model_id.removeprefix("openai/")}


def test_sync_task_refreshes_prices_adds_models_and_skips_nonsense(network, settings):
    from gateway.models import ModelCatalogEntry
    from gateway.tasks import catalog_sync

    network.on(OPENROUTER_HOST, lambda req, body: json_response(200, MODELS_BODY))
    ModelCatalogEntry.objects.filter(id="openai/gpt-4o").update(is_active=False, zdr=True)

    report = catalog_sync.delay().get(timeout=10)

    # Every other seeded model is missing from this short list: marked retired, never deleted.
    assert report == {"created": 1, "updated": 1, "skipped": 2, "retired": 13, "reactivated": 0, "aliases": 3}
    assert [str(r.url) for r in network.requests] == [
        "https://openrouter.ai/api/v1/models",
        "https://openrouter.ai/api/v1/embeddings/models",  # its embedding models, listed apart
    ]
    gpt4o = ModelCatalogEntry.objects.get(id="openai/gpt-4o")
    assert (gpt4o.prompt_price, gpt4o.completion_price) == (Decimal("0.000003"), Decimal("0.000012"))
    assert gpt4o.providers["openai"] == "gpt-4o" and gpt4o.is_active is False and gpt4o.zdr is True
    assert gpt4o.synced_at is not None
    nemo = ModelCatalogEntry.objects.get(id="mistralai/mistral-nemo")
    assert nemo.prompt_price == Decimal("0.00000002") and nemo.context_length == 131072
    assert nemo.providers == {"openrouter": "mistralai/mistral-nemo"}
    assert not ModelCatalogEntry.objects.filter(id__in=["openrouter/auto", "broken/model"]).exists()


def test_sync_failure_changes_nothing(network):
    from gateway.catalog import catalog_sync_from_openrouter
    from gateway.models import ModelCatalogEntry

    before = list(ModelCatalogEntry.objects.values_list("id", "prompt_price"))
    network.on(OPENROUTER_HOST, lambda req, body: httpx.Response(502, content=b"bad gateway"))
    with pytest.raises(ValueError):
        catalog_sync_from_openrouter()
    assert list(ModelCatalogEntry.objects.values_list("id", "prompt_price")) == before


def test_v1_models_lists_servable_models_with_pricing(providers, api_client):
    r = api_client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["openai/gpt-4o"]["object"] == "model"
    # Every component in OpenRouter's names, at the price a unit of it is billed (seeded from
    # OpenAI's list: cached input $1.25/M; no cache-write surcharge, reasoning as output).
    assert by_id["openai/gpt-4o"]["pricing"] == {
        "prompt": "0.000002500000000000",
        "completion": "0.000010000000000000",
        "input_cache_read": "0.000001250000000000",
        "input_cache_write": "0.000002500000000000",
        "input_cache_write_1h": "0.000002500000000000",
        "internal_reasoning": "0.000010000000000000",
        "request": "0.000000000000000000",
        "image": "0.000000000000000000",
    }
    sonnet = by_id["anthropic/claude-sonnet-4.6"]["pricing"]
    assert (sonnet["input_cache_read"], sonnet["input_cache_write"], sonnet["input_cache_write_1h"]) == (
        "0.000000300000000000",
        "0.000003750000000000",
        "0.000006000000000000",
    )


def test_llm_models_names_the_serving_providers(providers, api_client, settings):
    settings.OPENROUTER_API_KEY = ""
    settings.GROQ_API_KEY = ""
    r = api_client.get("/api/llm/models")
    assert r.status_code == 200
    by_id = {m["id"]: m for m in r.json()["models"]}
    assert by_id["openai/gpt-4o"]["providers"] == ["openai"]
    # Llama 3.1 70B is served by OpenRouter only: without it, it is not offered.
    assert "meta-llama/llama-3.1-70b-instruct" not in by_id


def test_model_lists_need_a_key(client):
    assert client.get("/v1/models").status_code == 401


def test_openapi_schema_documents_the_gateway_endpoints(client):
    r = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    schema = r.json()
    for route in ("/v1/chat/completions", "/api/llm/chat", "/v1/models", "/api/llm/models"):
        assert route in schema["paths"], route
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    body_ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    fields = schema["components"]["schemas"][body_ref]["properties"]
    assert {"messages", "model", "task_type", "budget_priority", "fallback_models", "provider"} <= set(fields)
    assert {"402", "502"} <= set(chat["responses"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_sync_fills_every_price_component_from_openrouter_pricing(network):
    from gateway.catalog import catalog_sync_apply
    from gateway.models import ModelCatalogEntry

    payload = {
        "data": [
            {
                "id": "anthropic/claude-sonnet-4",
                "name": "Anthropic: Claude Sonnet 4",
                "context_length": 200000,
                "pricing": {
                    "prompt": "0.000003",
                    "completion": "0.000015",
                    "request": "0",
                    "image": "0.0048",
                    "web_search": "0",
                    "internal_reasoning": "0",
                    "input_cache_read": "0.0000003",
                    "input_cache_write": "0.00000375",
                },
            },
            {
                "id": "openai/o4-mini",
                "name": "OpenAI: o4 Mini",
                "context_length": 200000,
                "pricing": {
                    "prompt": "0.0000011",
                    "completion": "0.0000044",
                    "request": "0.0001",
                    "image": "0.0008415",
                    "internal_reasoning": "0.0000088",
                    "input_cache_read": "0.000000275",
                },
            },
        ]
    }
    assert catalog_sync_apply(payload=payload).created == 1
    sonnet = ModelCatalogEntry.objects.get(id="anthropic/claude-sonnet-4")
    assert sonnet.input_cache_read_price == Decimal("0.0000003")
    assert sonnet.input_cache_write_price == Decimal("0.00000375")
    assert sonnet.image_price == Decimal("0.0048") and sonnet.request_price == 0
    # "0" for reasoning means none of its own (billed as completion); the seeded 1-hour write stays.
    assert sonnet.internal_reasoning_price is None
    assert sonnet.input_cache_write_1h_price == Decimal("0.000006")
    o4 = ModelCatalogEntry.objects.get(id="openai/o4-mini")
    assert (o4.internal_reasoning_price, o4.request_price) == (Decimal("0.0000088"), Decimal("0.0001"))
    assert o4.input_cache_write_price is None


def test_sync_adds_openrouter_embedding_models_as_embedding_models(network, catalog):
    from gateway.catalog import catalog_sync_from_openrouter
    from gateway.models import ModelCatalogEntry

    chat = {"data": [{"id": "openai/gpt-4o", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}}]}
    embeddings = {
        "data": [
            {
                "id": "qwen/qwen3-embedding-8b",
                "name": "Qwen: Qwen3 Embedding 8B",
                "created": 1_760_000_000,
                "context_length": 32000,
                "pricing": {"prompt": "0.00000001", "completion": "0"},
            }
        ]
    }

    def answer(req, body):
        return httpx.Response(200, json=embeddings if req.url.path.endswith("/embeddings/models") else chat)

    network.on(OPENROUTER_HOST, answer)
    catalog_sync_from_openrouter()

    qwen = ModelCatalogEntry.objects.get(id="qwen/qwen3-embedding-8b")
    assert qwen.mode == "embedding" and qwen.prompt_price == Decimal("0.00000001")
    assert int(qwen.created_at.timestamp()) == 1_760_000_000
    assert [r.url.path for r in network.requests] == ["/api/v1/models", "/api/v1/embeddings/models"]
