"""Routing reads provider health: an unhealthy provider is tried last, and sort=latency|throughput
orders direct providers by the measured figures."""

import uuid
from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db

MODEL = "z-ai/glm-4.7"


@pytest.fixture
def two_direct_providers(settings):
    """GLM-4.7 served directly by Z.AI and by a self-hosted Ollama; OpenRouter off."""
    from gateway.models import ModelCatalogEntry
    from monitoring.health import ProviderHealthMonitor

    settings.HEALTH_KEY_PREFIX = f"test-routing-{uuid.uuid4().hex[:8]}"
    settings.ZAI_API_KEY = "zai-test-key"
    settings.OLLAMA_BASE_URL = "http://127.0.0.1:11434"
    settings.OPENROUTER_API_KEY = ""
    ModelCatalogEntry.objects.update_or_create(
        id=MODEL,
        defaults={
            "display_name": "GLM-4.7",
            "context_length": 128000,
            "prompt_price": Decimal("0.0000006"),
            "completion_price": Decimal("0.0000022"),
            "providers": {"zai": "glm-4.7", "ollama": "glm4:latest"},
            "is_active": True,
        },
    )
    monitor = ProviderHealthMonitor()
    yield monitor
    monitor.clear()


def _order(**options):
    from gateway.routing import RouteOptions, route_plan

    plan = route_plan(options=RouteOptions(model=MODEL, use_openrouter=False, **options))
    return [a.provider for a in plan.runnable]


def test_an_unhealthy_provider_moves_to_the_back(two_direct_providers, settings):
    monitor = two_direct_providers
    assert _order() == ["zai", "ollama"]

    for _ in range(3):
        monitor.record_attempt(
            provider="zai", model=MODEL, ok=False, latency_ms=30000, error_class="UpstreamTimeout"
        )
    assert monitor.is_provider_healthy("zai", MODEL) is False
    # Marked down: its circuit is open, so it gets no traffic during the cooldown...
    assert _order() == ["ollama"]
    # ...and once the cooldown is over it is tried again, last.
    settings.CIRCUIT_COOLDOWN_SECONDS = 0
    assert _order() == ["ollama", "zai"]

    # Two good probes bring Z.AI back to the front.
    for _ in range(2):
        monitor.record_attempt(provider="zai", model="", ok=True, latency_ms=120, probe=True)
    assert _order() == ["zai", "ollama"]


def test_sort_by_measured_latency_and_throughput(two_direct_providers):
    monitor = two_direct_providers
    for _ in range(5):
        monitor.record_attempt(provider="zai", model=MODEL, ok=True, latency_ms=2000, output_tokens=400)
        monitor.record_attempt(provider="ollama", model=MODEL, ok=True, latency_ms=500, output_tokens=50)
    # Ollama answers sooner (500 ms vs 2 s) but Z.AI streams more tokens per second (200 vs 100).
    assert _order(sort="latency") == ["ollama", "zai"]
    assert _order(sort="throughput") == ["zai", "ollama"]
