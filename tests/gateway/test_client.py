"""The Python API: the unbilled unified client and `LLMGateway().invoke`."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from tests.gateway.conftest import (
    OPENAI_HOST,
    OPENROUTER_HOST,
    balance,
    json_response,
    openai_completion,
    openrouter_completion,
    openrouter_error,
)

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Say hello"}]


def test_unified_client_routes_and_reports_without_billing(providers, funded_user):
    from gateway.client import LLMResponse, get_unified_client
    from gateway.models import RoutingRule

    # The guide's original choice for this cell (deprecated, still callable), priced as below.
    RoutingRule.objects.filter(task_type="planning", budget_priority="speed").update(
        model_id="openai/gpt-4o-mini"
    )
    providers.on(OPENROUTER_HOST, [json_response(500, openrouter_error(500, "down"))])
    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion(model="gpt-4o-mini")))
    before = balance(funded_user)

    response = async_to_sync(get_unified_client().chat)(
        HELLO, task_type="planning", budget_priority="speed", temperature=0.2, max_tokens=64, seed=7
    )

    assert isinstance(response, LLMResponse)
    assert (response.model, response.provider, response.task_type) == (
        "openai/gpt-4o-mini",
        "openai",
        "planning",
    )
    assert response.fallback_used is True
    assert [a["status"] for a in response.attempts] == ["error", "ok"]
    assert response.usage == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    # 20 x $0.00000015 + 10 x $0.0000006 = $0.000009
    assert response.cost_usd == Decimal("0.000009") and response.credits_charged == 0
    sent = providers.bodies(OPENAI_HOST)[0]
    assert (sent["temperature"], sent["max_completion_tokens"], sent["seed"]) == (0.2, 64, 7)
    assert balance(funded_user) == before
    from monitoring.services import ProviderHealthMonitor

    health = {(h["provider"], h.get("model")): h for h in ProviderHealthMonitor().get_all_provider_health()}
    assert any(p == "openrouter" and h["requests"] >= 1 for (p, _), h in health.items())


def test_unified_client_rejects_bad_options(providers):
    from gateway.client import get_unified_client
    from smartspec.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        async_to_sync(get_unified_client().chat)(HELLO, budget_priority="free")
    with pytest.raises(InvalidRequest):
        async_to_sync(get_unified_client().chat)(HELLO, api_base="http://127.0.0.1:9/")
    assert providers.calls == []


def test_gateway_invoke_takes_a_dict_and_charges(providers, funded_user):
    from gateway.service import LLMGateway

    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.001")))
    before = balance(funded_user)["balance"]

    response = async_to_sync(LLMGateway().invoke)({"messages": HELLO, "model": "openai/gpt-4o"}, funded_user)

    assert response.credits_charged == 1_000_000  # $0.001 = 1 credit
    assert before - balance(funded_user)["balance"] == 1_000_000


def test_get_available_models_in_demo_mode_lists_the_catalog(demo_only):
    from gateway.client import get_available_models

    models = {m["id"]: m for m in get_available_models()}
    assert models["z-ai/glm-4.7"]["providers"] == ["demo"]
    assert models["openai/gpt-4o"]["pricing"]["prompt"] == Decimal("0.0000025")
