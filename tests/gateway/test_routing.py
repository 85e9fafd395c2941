"""Routing: the task_type x budget_priority matrix, explicit models, the attempt order, health."""

import pytest

from tests.gateway.conftest import OPENROUTER_HOST, json_response, openrouter_completion

pytestmark = pytest.mark.django_db

SONNET, FLASH, LLAMA = (
    "anthropic/claude-sonnet-4.6",
    "google/gemini-3.1-flash-lite",
    "meta-llama/llama-3.3-70b-instruct",
)
GPT4O, MINI = "openai/gpt-4o", "openai/gpt-4o-mini"
TERRA, LUNA = "openai/gpt-5.6-terra", "openai/gpt-5.6-luna"
# The seeded matrix: the current successors of the integration guide's choices (test_seeded_defaults).
MATRIX = {
    "code_generation": (SONNET, FLASH, LLAMA, TERRA),
    "analysis": (TERRA, FLASH, LLAMA, TERRA),
    "planning": (SONNET, LUNA, LLAMA, TERRA),
    "simple": (LUNA, FLASH, LLAMA, FLASH),
    "decision": (SONNET, TERRA, LLAMA, TERRA),
}
CELLS = [
    (task, priority, model)
    for task, models in MATRIX.items()
    for priority, model in zip(("quality", "speed", "cost", "balanced"), models, strict=True)
]


@pytest.mark.parametrize("task_type, budget_priority, expected", CELLS)
def test_every_matrix_cell_sends_its_model_to_openrouter(
    providers, funded_user, http, task_type, budget_priority, expected
):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(model=body["model"]))
    )

    r = http.post(
        "/v1/chat/completions",
        {
            "model": "auto",
            "task_type": task_type,
            "budget_priority": budget_priority,
            "messages": [{"role": "user", "content": "hi"}],
        },
        content_type="application/json",
    )

    assert r.status_code == 200, r.content
    assert providers.bodies(OPENROUTER_HOST)[0]["model"] == expected
    assert r.json()["model"] == expected


def test_matrix_defaults_simple_and_the_configured_budget_priority(providers, settings):
    from gateway.routing import route_options_validate, route_plan

    settings.DEFAULT_BUDGET_PRIORITY = "quality"
    plan = route_plan(options=route_options_validate())
    assert (plan.model, plan.route, plan.task_type) == (LUNA, "matrix:simple/quality", "simple")


def test_matrix_is_editable(providers):
    from gateway.models import RoutingRule
    from gateway.routing import route_options_validate, route_plan

    RoutingRule.objects.filter(task_type="analysis", budget_priority="cost").update(model_id="z-ai/glm-4.7")
    plan = route_plan(options=route_options_validate(task_type="analysis", budget_priority="cost"))
    assert plan.model == "z-ai/glm-4.7"


def test_explicit_model_beats_the_matrix_and_orders_attempts(providers):
    from gateway.routing import route_options_validate, route_plan

    plan = route_plan(
        options=route_options_validate(model=SONNET, task_type="simple", fallback_models=[GPT4O])
    )
    assert plan.route == "explicit"
    assert [(a.model, a.provider, a.native_model) for a in plan.attempts] == [
        (SONNET, "openrouter", SONNET),
        (SONNET, "anthropic", "claude-sonnet-4-6"),
        (GPT4O, "openrouter", GPT4O),
        (GPT4O, "openai", "gpt-4o"),
    ]
    assert plan.attempts[0].extra_body["models"] == [SONNET, GPT4O]


def test_without_openrouter_only_direct_providers(providers, settings):
    from gateway.routing import route_options_validate, route_plan

    plan = route_plan(options=route_options_validate(model=GPT4O, use_openrouter=False))
    assert [a.provider for a in plan.attempts] == ["openai"]
    settings.USE_OPENROUTER = False
    plan = route_plan(options=route_options_validate(model=GPT4O))
    assert [a.provider for a in plan.attempts] == ["openai"]


def test_model_without_any_configured_provider_is_400(settings, network):
    from gateway.routing import route_options_validate, route_plan
    from smartspec.errors import InvalidRequest

    settings.DEBUG = False
    settings.OPENROUTER_API_KEY = ""
    settings.GROQ_API_KEY = ""
    settings.OPENAI_API_KEY = "sk-test"
    with pytest.raises(InvalidRequest) as exc:
        route_plan(options=route_options_validate(model=LLAMA))
    assert "no configured provider serves this model" in exc.value.message


def test_unhealthy_direct_provider_goes_last(providers):
    from gateway.models import ModelCatalogEntry
    from gateway.routing import route_options_validate, route_plan
    from monitoring.services import ProviderHealthMonitor

    entry = ModelCatalogEntry.objects.get(id="meta-llama/llama-3.3-70b-instruct")
    entry.providers = {"groq": "llama-3.3-70b-versatile", "openai": "llama-shim"}
    entry.save()
    monitor = ProviderHealthMonitor()
    for _ in range(20):
        monitor.record_attempt(
            provider="groq", model=entry.id, ok=False, latency_ms=50, error_class="UpstreamUnavailable"
        )
        monitor.record_attempt(provider="openai", model=entry.id, ok=True, latency_ms=50, output_tokens=10)

    plan = route_plan(options=route_options_validate(model=entry.id, use_openrouter=False))
    assert [a.provider for a in plan.attempts] == ["openai", "groq"]


def test_sort_latency_orders_direct_providers_by_measured_latency(providers):
    from gateway.models import ModelCatalogEntry
    from gateway.routing import route_options_validate, route_plan
    from monitoring.services import ProviderHealthMonitor

    entry = ModelCatalogEntry.objects.get(id="meta-llama/llama-3.3-70b-instruct")
    entry.providers = {"groq": "llama-3.3-70b-versatile", "openai": "llama-shim"}
    entry.save()
    monitor = ProviderHealthMonitor()
    for _ in range(10):
        monitor.record_attempt(provider="groq", model=entry.id, ok=True, latency_ms=900, output_tokens=10)
        monitor.record_attempt(provider="openai", model=entry.id, ok=True, latency_ms=100, output_tokens=10)

    plan = route_plan(options=route_options_validate(model=entry.id, use_openrouter=False, sort="latency"))
    assert [a.provider for a in plan.attempts] == ["openai", "groq"]


def test_demo_answers_any_catalog_model_when_nothing_is_configured(demo_only):
    from gateway.routing import route_options_validate, route_plan

    plan = route_plan(options=route_options_validate(model=SONNET, fallback_models=[LLAMA]))
    assert [(a.model, a.provider) for a in plan.attempts] == [(SONNET, "demo"), (LLAMA, "demo")]
