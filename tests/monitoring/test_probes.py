"""Provider probes: one cheap list-models GET per provider, results kept apart from traffic rates."""

import httpx
import pytest

from gateway.providers.base import WIRE_ANTHROPIC, WIRE_DEMO, WIRE_GEMINI, WIRE_OPENAI_COMPAT, ProviderConfig
from monitoring.models import ProviderHealthSnapshot
from monitoring.services import PROBE_LOCK_KEY, providers_probe_all

# Response shapes as the providers document them (trimmed to one model each).
OPENROUTER_MODELS = {
    "data": [
        {
            "id": "openai/gpt-4o",
            "name": "OpenAI: GPT-4o",
            "created": 1715367049,
            "context_length": 128000,
            "pricing": {"prompt": "0.0000025", "completion": "0.00001", "request": "0", "image": "0.003613"},
            "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": True},
        }
    ]
}
ANTHROPIC_MODELS = {
    "data": [
        {
            "type": "model",
            "id": "claude-3-5-sonnet-20241022",
            "display_name": "Claude 3.5 Sonnet (New)",
            "created_at": "2024-10-22T00:00:00Z",
        }
    ],
    "has_more": True,
    "first_id": "claude-3-5-sonnet-20241022",
    "last_id": "claude-3-5-sonnet-20241022",
}
GEMINI_MODELS = {
    "models": [
        {
            "name": "models/gemini-1.5-flash",
            "version": "001",
            "displayName": "Gemini 1.5 Flash",
            "inputTokenLimit": 1000000,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }
    ],
    "nextPageToken": "Ch1tb2RlbHMvZ2VtaW5pLTEuNS1mbGFzaA==",
}

CONFIGS = [
    ProviderConfig(
        name="openrouter",
        wire=WIRE_OPENAI_COMPAT,
        base_url="https://openrouter.test/api/v1",
        api_key="sk-or-v1-secret",
    ),
    ProviderConfig(
        name="anthropic", wire=WIRE_ANTHROPIC, base_url="https://anthropic.test", api_key="sk-ant-secret"
    ),
    ProviderConfig(
        name="google", wire=WIRE_GEMINI, base_url="https://gemini.test/v1beta", api_key="AIza-secret"
    ),
    ProviderConfig(
        name="groq", wire=WIRE_OPENAI_COMPAT, base_url="https://groq.test/openai/v1", api_key="gsk-secret"
    ),
    ProviderConfig(name="demo", wire=WIRE_DEMO, base_url=""),
]


def _transport(seen, groq_status=503):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        host = request.url.host
        if host == "openrouter.test":
            return httpx.Response(200, json=OPENROUTER_MODELS)
        if host == "anthropic.test":
            return httpx.Response(200, json=ANTHROPIC_MODELS)
        if host == "gemini.test":
            return httpx.Response(200, json=GEMINI_MODELS)
        return httpx.Response(
            groq_status, json={"error": {"message": "Service Unavailable", "type": "internal_server_error"}}
        )

    return httpx.MockTransport(handler)


@pytest.mark.django_db
def test_probes_list_models_only_and_record_apart_from_traffic(monitor, caplog):
    seen = []
    result = providers_probe_all(configs=CONFIGS, transport=_transport(seen), monitor=monitor)

    assert result["skipped"] is False
    outcome = {r["provider"]: (r["ok"], r["error_class"]) for r in result["probed"]}
    assert outcome == {
        "openrouter": (True, ""),
        "anthropic": (True, ""),
        "google": (True, ""),
        "groq": (False, "UpstreamUnavailable"),
    }
    # Only GETs on list-models endpoints, never a generation; the demo provider is not probed.
    assert all(r.method == "GET" for r in seen)
    assert [str(r.url) for r in seen] == [
        "https://openrouter.test/api/v1/models",
        "https://anthropic.test/v1/models?limit=1000",
        "https://gemini.test/v1beta/models?pageSize=1000",
        "https://groq.test/openai/v1/models",
    ]
    assert seen[0].headers["authorization"] == "Bearer sk-or-v1-secret"
    assert seen[1].headers["x-api-key"] == "sk-ant-secret" and seen[1].headers["anthropic-version"]
    assert seen[2].headers["x-goog-api-key"] == "AIza-secret"
    assert "secret" not in caplog.text

    rows = {r["provider"]: r for r in monitor.get_all_provider_health()}
    assert rows["openrouter"]["probe_ok"] is True and rows["openrouter"]["requests"] == 0
    assert rows["groq"]["probe_ok"] is False and rows["groq"]["last_error"] == "UpstreamUnavailable"
    # Probe results never count as traffic.
    assert monitor.measured("openrouter")["success_rate"] is None

    snapshots = {s.provider: s for s in ProviderHealthSnapshot.objects.all()}
    assert set(snapshots) == {"openrouter", "anthropic", "google", "groq"}
    assert snapshots["groq"].probe_ok is False and snapshots["groq"].last_probe_at is not None


@pytest.mark.django_db
def test_three_failed_probes_mark_down_and_two_good_ones_bring_back(monitor):
    for _ in range(3):
        providers_probe_all(configs=CONFIGS[3:4], transport=_transport([]), monitor=monitor)
    assert monitor.is_provider_healthy("groq") is False
    for _ in range(2):
        providers_probe_all(configs=CONFIGS[3:4], transport=_transport([], groq_status=200), monitor=monitor)
    # A 200 without a model list is still a failure, so use a real shape for the recovery.
    assert monitor.is_provider_healthy("groq") is False
    ok = httpx.MockTransport(lambda request: httpx.Response(200, json={"object": "list", "data": []}))
    for _ in range(2):
        providers_probe_all(configs=CONFIGS[3:4], transport=ok, monitor=monitor)
    assert monitor.is_provider_healthy("groq") is True
    assert ProviderHealthSnapshot.objects.get(provider="groq").healthy is True


@pytest.mark.django_db
def test_timeouts_and_connect_errors_are_classed(monitor):
    def handler(request):
        if request.url.host == "openrouter.test":
            raise httpx.ReadTimeout("slow", request=request)
        raise httpx.ConnectError("refused", request=request)

    result = providers_probe_all(configs=CONFIGS[:2], transport=httpx.MockTransport(handler), monitor=monitor)
    assert [(r["provider"], r["error_class"]) for r in result["probed"]] == [
        ("openrouter", "UpstreamTimeout"),
        ("anthropic", "UpstreamUnavailable"),
    ]


@pytest.mark.django_db
def test_a_probe_round_already_running_elsewhere_is_skipped(monitor):
    from django.core.cache import cache

    cache.add(PROBE_LOCK_KEY, "1", timeout=30)
    try:
        seen = []
        assert providers_probe_all(configs=CONFIGS, transport=_transport(seen), monitor=monitor) == {
            "probed": [],
            "skipped": True,
        }
        assert seen == []
    finally:
        cache.delete(PROBE_LOCK_KEY)


@pytest.mark.django_db
def test_probes_can_return_the_listed_model_ids_and_a_paged_list_gives_none(monitor):
    result = providers_probe_all(configs=CONFIGS, transport=_transport([]), monitor=monitor, with_models=True)

    models = {r["provider"]: r["models"] for r in result["probed"]}
    assert models["openrouter"] == ["openai/gpt-4o"]
    # Anthropic's and Gemini's lists have more pages: nothing can be said about an absent model.
    assert models["anthropic"] is None and models["google"] is None and models["groq"] is None
    # The per-minute task's result carries no lists.
    monitor.clear()
    assert all(
        "models" not in r for r in providers_probe_all(configs=CONFIGS, transport=_transport([]))["probed"]
    )
