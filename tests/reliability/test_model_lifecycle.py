"""A retired default model against a live server: the fake OpenRouter answers "not a valid model ID"
for the default cell's model (as OpenRouter does for a removed one), and a call that names no model
still answers 200, from the successor, held and charged at the successor's price, with provider
health untouched."""

from __future__ import annotations

import httpx
import pytest

from billing import selectors
from billing.credits import usd_to_micro
from billing.models import CreditHold, LedgerEntry
from tests.reliability.conftest import gateway_env, grant, live_gateway
from tests.reliability.fake_upstream import OPENROUTER_COST

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
HELLO = [{"role": "user", "content": "Say hello"}]
# The scenario: a catalog that still thinks the guide's default is current.
STALE, SUCCESSOR = "google/gemini-flash-1.5", "google/gemini-2.5-flash"


def _stale_default_cell():
    from gateway.catalog import catalog_cache_clear
    from gateway.models import ModelCatalogEntry, RoutingRule

    RoutingRule.objects.filter(task_type="simple", budget_priority="balanced").update(model_id=STALE)
    ModelCatalogEntry.objects.filter(id=STALE).update(
        status="active", shutdown_date=None, successor_id=SUCCESSOR
    )
    ModelCatalogEntry.objects.filter(id=SUCCESSOR).update(
        status="active", shutdown_date=None, successor_id=None
    )
    catalog_cache_clear(model_ids=[STALE, SUCCESSOR])


def _hold(settings, fake, model_id: str, max_tokens: int) -> int:
    """The worst-case hold of a call with only `model_id` on its route, priced as the server prices it."""
    from gateway.client import LLMRequest, chat_prepare_sync
    from gateway.service import _hold_amount

    settings.OPENROUTER_API_KEY = "sk-or-v1-fault-suite-key"
    settings.OPENROUTER_BASE_URL = fake.url("openrouter", "/api/v1")
    settings.DEBUG = False
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY", "ZAI_API_KEY"):
        setattr(settings, name, "")
    return _hold_amount(chat_prepare_sync(LLMRequest(messages=HELLO, model=model_id, max_tokens=max_tokens)))


def test_no_such_model_for_the_default_cell_is_answered_by_the_successor(
    settings, fake, catalog, user, api_key
):
    from gateway.models import ModelCatalogEntry
    from monitoring.models import UsageRecord
    from monitoring.services import ProviderHealthMonitor

    _stale_default_cell()
    successor_hold = _hold(settings, fake, SUCCESSOR, 200)
    assert successor_hold > _hold(settings, fake, STALE, 200)  # the successor is the dearer of the two
    grant(user, 100)
    before = selectors.balance_get(user=user)["balance"]
    fake.script("openrouter", "ok")
    fake.gone_models.add(STALE)
    env = gateway_env(fake)
    settings.HEALTH_KEY_PREFIX = env["HEALTH_KEY_PREFIX"]

    with live_gateway(env) as base:
        response = httpx.post(
            f"{base}/v1/chat/completions",
            json={"messages": HELLO, "max_tokens": 200},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == SUCCESSOR
    assert body["routing_reason"] == (
        f"simple/balanced: {STALE} retired upstream (no such model), successor {SUCCESSOR}"
    )
    # The fake saw the stale model once (refused), then the successor, within the one call.
    assert [s.body["model"] for s in fake.seen] == [STALE, SUCCESSOR]
    assert "models" not in fake.seen[0].body
    # Held at the successor's worst case, charged the successor's reported cost.
    row = UsageRecord.objects.get()
    assert (row.model, row.status, row.hold) == (SUCCESSOR, "ok", successor_hold)
    charged = usd_to_micro(OPENROUTER_COST)
    assert row.credits == charged and str(body["usage"]["credits"]) == "0.125"
    assert before - selectors.balance_get(user=user)["balance"] == charged
    assert LedgerEntry.objects.filter(account__user=user, kind="usage").count() == 1
    assert not CreditHold.objects.filter(state="held").exists()
    assert [a["error_class"] for a in row.attempts] == ["UpstreamModelGone", ""]
    # The stale entry waits for staff; OpenRouter's health shows no failure.
    assert ModelCatalogEntry.objects.get(id=STALE).review_flagged_at is not None
    (openrouter,) = [
        h
        for h in ProviderHealthMonitor().get_all_provider_health()
        if h["provider"] == "openrouter" and not h["model"]
    ]
    assert openrouter["consecutive_failures"] == 0 and openrouter["last_error"] == ""
    assert openrouter["success_rate"] == 1.0 and not openrouter["down"] and openrouter["circuit"] == "closed"
