"""Catalog lifecycle from OpenRouter's `GET /models`: `manage.py sync_catalog` (inline, no worker) marks
models the list no longer carries as retired, keeps them and their usage rows, records listed
expiration dates, and makes a model listed again active."""

import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from tests.gateway.conftest import OPENROUTER_HOST, json_response
from tests.monitoring.conftest import make_usage  # noqa: F401  (a usage row through the service)

pytestmark = pytest.mark.django_db

GONE, SUCCESSOR = "google/gemini-flash-1.5", "google/gemini-3.1-flash-lite"


def listed_item(model_id, prompt="0.0000003", completion="0.0000025", expiration=None):
    """One entry of OpenRouter's model list, in its documented shape."""
    return {
        "id": model_id,
        "canonical_slug": model_id,
        "hugging_face_id": None,
        "name": model_id,
        "created": 1750000000,
        "description": "",
        "context_length": 1048576,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0"},
        "top_provider": {"context_length": 1048576, "max_completion_tokens": 65535, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "tools"],
        "default_parameters": {},
        "expiration_date": expiration,
    }


def models_body(*, without=(), with_=(), expiring=None):
    """OpenRouter's list as of now: every catalog model it serves and that is not retired already, less
    `without`, plus `with_`; `expiring` maps ids to a date string."""
    from gateway.models import ModelCatalogEntry

    expiring = expiring or {}
    ids = [
        e.id
        for e in ModelCatalogEntry.objects.all()
        if ("openrouter" in e.providers and e.status != "retired" and e.id not in without) or e.id in with_
    ]
    return {"data": [listed_item(i, expiration=expiring.get(i)) for i in ids]}


def sync(network, body) -> str:
    network.on(OPENROUTER_HOST, lambda req, b: json_response(200, body))
    out = io.StringIO()
    call_command("sync_catalog", stdout=out)
    return out.getvalue()


def test_unlisted_model_is_retired_kept_with_its_usage_rows_and_nothing_routes_to_it(
    network,
    settings,
    user,
    make_usage,  # noqa: F811
):
    from gateway.catalog import catalog_callable
    from gateway.models import ModelCatalogEntry, RoutingRule
    from gateway.routing import route_options_validate, route_plan
    from monitoring.models import UsageRecord
    from smartspec.errors import ModelRetired

    settings.OPENROUTER_API_KEY = "sk-or-v1-test"
    settings.USE_OPENROUTER = True
    RoutingRule.objects.filter(task_type="simple", budget_priority="balanced").update(model_id=GONE)
    ModelCatalogEntry.objects.filter(id=GONE).update(
        status="active", successor_id=SUCCESSOR, shutdown_date=None
    )
    make_usage(user, model=GONE, provider="openrouter")
    assert route_plan(options=route_options_validate()).model == GONE

    out = sync(network, models_body(without={GONE}))

    assert "1 retired" in out and "0 reactivated" in out
    entry = ModelCatalogEntry.objects.get(id=GONE)
    assert entry.status == "retired" and entry.shutdown_date == datetime.date.today()
    assert UsageRecord.objects.filter(model=GONE).count() == 1
    # Nothing routes to it: the matrix goes to the successor, an explicit call is a 404, the lists skip it.
    plan = route_plan(options=route_options_validate())
    assert plan.model == SUCCESSOR and GONE not in {a.model for a in plan.runnable}
    with pytest.raises(ModelRetired) as exc:
        route_plan(options=route_options_validate(model=GONE))
    assert exc.value.successor == SUCCESSOR
    assert GONE not in {m.id for m in catalog_callable()}
    # Models that OpenRouter does not serve (direct-only, local) are never retired by its list.
    assert [str(r.url) for r in network.requests] == [
        "https://openrouter.ai/api/v1/models",
        "https://openrouter.ai/api/v1/embeddings/models",
    ]

    out = sync(network, models_body(with_={GONE}))

    assert "0 retired" in out and "1 reactivated" in out
    entry = ModelCatalogEntry.objects.get(id=GONE)
    assert entry.status == "active" and entry.shutdown_date is None
    assert route_plan(options=route_options_validate()).model == GONE


def test_listed_expiration_date_marks_the_model_deprecated(network):
    from gateway.models import ModelCatalogEntry

    sync(network, models_body(expiring={SUCCESSOR: "2027-01-14T00:00:00Z", GONE: None}))

    entry = ModelCatalogEntry.objects.get(id=SUCCESSOR)
    assert entry.status == "deprecated" and entry.shutdown_date == datetime.date(2027, 1, 14)


def test_models_openrouter_does_not_serve_are_left_alone(network):
    from gateway.models import ModelCatalogEntry

    ModelCatalogEntry.objects.create(id="acme/direct-only", providers={"openai": "acme-1"})
    ModelCatalogEntry.objects.create(id="ollama/llama3", providers={"ollama": "llama3", "openrouter": "x"})

    sync(network, models_body(without={"acme/direct-only", "ollama/llama3"}))

    assert set(
        ModelCatalogEntry.objects.filter(id__in=["acme/direct-only", "ollama/llama3"]).values_list(
            "status", flat=True
        )
    ) == {"active"}


def test_an_empty_or_failed_list_changes_nothing(network):
    from gateway.models import ModelCatalogEntry

    before = list(ModelCatalogEntry.objects.values_list("id", "status", "prompt_price"))
    with pytest.raises(CommandError):
        sync(network, {"data": []})
    network.on(
        OPENROUTER_HOST, lambda req, b: json_response(503, {"error": {"code": 503, "message": "down"}})
    )
    with pytest.raises(CommandError):
        call_command("sync_catalog", stdout=io.StringIO())
    assert list(ModelCatalogEntry.objects.values_list("id", "status", "prompt_price")) == before


def test_the_beat_job_runs_the_sync_daily(settings):
    from smartspec.celery import app

    job = settings.CELERY_BEAT_SCHEDULE["gateway-catalog-sync"]
    assert job["task"] == "gateway.catalog_sync" and job["schedule"] == 24 * 3600
    assert "gateway.catalog_sync" in app.tasks


def test_the_direct_providers_own_lists_are_checked_for_the_catalogs_direct_ids(settings):
    """OpenAI's and Anthropic's GET /v1/models and Gemini's models.list (mocked, in their documented
    shapes) against the direct ids the catalog maps to; a missing one is flagged for staff review."""
    import httpx

    from gateway.models import ModelCatalogEntry
    from gateway.tasks import catalog_direct_check

    settings.OPENROUTER_API_KEY = ""
    settings.GROQ_API_KEY = settings.ZAI_API_KEY = settings.OLLAMA_BASE_URL = ""
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-test", "https://openai.test/v1"
    settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL = "sk-ant-test", "https://anthropic.test"
    settings.GOOGLE_API_KEY, settings.GEMINI_BASE_URL = "AIza-test", "https://gemini.test/v1beta"
    settings.HEALTH_KEY_PREFIX = "test-direct-check"
    lists = {
        "openai.test": {
            "object": "list",
            "data": [
                {"id": "gpt-5.6-terra", "object": "model", "created": 1782432000, "owned_by": "system"},
                {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system",
                 "shutdown_date": "2027-01-14"},
                {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
                {"id": "gpt-4.1", "object": "model", "created": 1744316542, "owned_by": "system"},
                {"id": "gpt-4.1-mini", "object": "model", "created": 1744318173, "owned_by": "system"},
                *({"id": name, "object": "model", "created": 1705953180, "owned_by": "system"}
                  for name in ("text-embedding-3-large", "text-embedding-3-small", "text-embedding-ada-002")),
            ],
        },
        "anthropic.test": {
            "data": [
                {"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5",
                 "created_at": "2025-10-15T00:00:00Z"},
                {"type": "model", "id": "claude-opus-4-8", "display_name": "Claude Opus 4.8",
                 "created_at": "2026-05-28T00:00:00Z"},
            ],
            "has_more": False,
            "first_id": "claude-haiku-4-5",
            "last_id": "claude-haiku-4-5",
        },
        "gemini.test": {
            "models": [
                {"name": "models/gemini-3.1-flash-lite", "version": "001", "displayName": "Gemini 3.1 Flash-Lite",
                 "supportedGenerationMethods": ["generateContent", "countTokens"]},
                {"name": "models/gemini-embedding-001", "version": "001", "displayName": "Gemini Embedding 001",
                 "supportedGenerationMethods": ["embedContent", "countTextTokens"]},
            ]
        },
    }  # fmt: skip
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=lists[request.url.host])

    from gateway.catalog import catalog_direct_models_check

    flagged = catalog_direct_models_check(transport=httpx.MockTransport(handler))

    assert all(r.method == "GET" and r.url.path.endswith("/models") for r in seen) and len(seen) == 3
    assert flagged == {
        "openai": ["openai/gpt-5.6-luna"],
        "anthropic": ["anthropic/claude-sonnet-4.6"],
        "google": [],
    }
    notes = dict(
        ModelCatalogEntry.objects.filter(review_flagged_at__isnull=False).values_list("id", "review_note")
    )
    assert notes == {
        "openai/gpt-5.6-luna": "openai's model list no longer has gpt-5.6-luna",
        "anthropic/claude-sonnet-4.6": "anthropic's model list no longer has claude-sonnet-4-6",
    }
    # Retired models are not checked (claude-3-5-sonnet is not listed and not flagged), and the daily
    # beat job runs the check.
    assert settings.CELERY_BEAT_SCHEDULE["gateway-catalog-direct-check"]["task"] == catalog_direct_check.name
