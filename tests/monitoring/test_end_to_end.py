"""Calls through /api/llm/chat show up in /api/monitoring/usage and on the dashboard; the playground
calls /api/llm/chat with the session and its CSRF token."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from billing.selectors import balance_get
from monitoring.models import UsageRecord
from tests.gateway.conftest import OPENROUTER_HOST, grant, json_response, openrouter_completion

pytestmark = pytest.mark.django_db

COSTS = {"openai/gpt-4o": "0.000125", "anthropic/claude-sonnet-4.6": "0.002450"}


def test_calls_are_counted_per_model_provider_and_task_type(providers, user, api_client):
    network = providers
    network.on(
        OPENROUTER_HOST,
        lambda request, body: json_response(
            200, openrouter_completion(model=body["model"], cost=COSTS[body["model"]], upstream="OpenAI")
        ),
    )
    grant(user, 100)
    before = balance_get(user=user)["balance"]
    calls = [
        {"model": "openai/gpt-4o", "task_type": "analysis"},
        {"model": "openai/gpt-4o", "task_type": "analysis"},
        {"task_type": "code_generation", "budget_priority": "quality"},  # matrix: Claude Sonnet 4.6
    ]
    for extra in calls:
        response = api_client.post(
            "/api/llm/chat",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 500, **extra},
            format="json",
        )
        assert response.status_code == 200, response.content

    body = api_client.get("/api/monitoring/usage", {"days": 1}).json()
    spent = before - balance_get(user=user)["balance"]
    assert body["overview"]["requests"] == 3
    assert body["overview"]["credits_micro"] == spent == 2 * 125_000 + 2_450_000
    assert {r["model"]: r["requests"] for r in body["by_model"]} == {
        "openai/gpt-4o": 2,
        "anthropic/claude-sonnet-4.6": 1,
    }
    assert {r["task_type"]: r["requests"] for r in body["by_task_type"]} == {
        "analysis": 2,
        "code_generation": 1,
    }
    assert sum(r["requests"] for r in body["by_provider"]) == 3
    assert {r["model"]: r["credits"] for r in body["by_model"]} == {
        "openai/gpt-4o": "0.250000",
        "anthropic/claude-sonnet-4.6": "2.450000",
    }
    matrix_call = UsageRecord.objects.get(model="anthropic/claude-sonnet-4.6")
    assert matrix_call.route == "matrix:code_generation/quality"
    assert matrix_call.cost_usd == Decimal("0.002450")

    # The same user, logged in through the login form, sees the balance and the charts' data.
    browser = Client()
    assert (
        browser.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"}).status_code == 302
    )
    html = browser.get("/").content.decode()
    assert re.search(r'data-testid="balance">97\.30<', html)
    assert '<canvas id="chart-daily"' in html and "anthropic/claude-sonnet-4.6" in html


def test_playground_calls_the_gateway_with_session_and_csrf(demo_only, user):
    grant(user, 10)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get("/playground/")
    assert page.status_code == 200
    token = page.cookies["csrftoken"].value
    payload = {"messages": [{"role": "user", "content": "ping"}], "task_type": "simple"}

    refused = browser.post("/api/llm/chat", payload, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    assert UsageRecord.objects.count() == 0

    answered = browser.post("/api/llm/chat", payload, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert answered.status_code == 200, answered.content
    assert answered.json()["provider"] == "demo" and "ping" in answered.json()["content"]
    record = UsageRecord.objects.get()
    assert (record.user_id, record.api_key_id, record.status) == (user.pk, None, "ok")


def test_anonymous_chat_without_key_is_401(demo_only, client):
    response = client.post(
        "/api/llm/chat", {"messages": [{"role": "user", "content": "x"}]}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"]
