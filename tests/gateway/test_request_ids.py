"""X-Request-ID belongs to its caller: another user's identical id is another call, never a 409;
the same caller's replay gets a clear 409 naming the id and costs nothing."""

import pytest
from django.test import Client

from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditHold, LedgerEntry
from gateway.keys import api_key_create
from monitoring.models import UsageRecord
from tests.gateway.conftest import OPENROUTER_HOST, balance, grant, json_response, openrouter_completion

pytestmark = pytest.mark.django_db

C = MICRO_PER_CREDIT

HELLO = [{"role": "user", "content": "Say hello"}]
BODY = {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100}


def _client(user) -> Client:
    _, raw = api_key_create(user=user, name="test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _post(client, request_id):
    return client.post(
        "/v1/chat/completions", BODY, content_type="application/json", HTTP_X_REQUEST_ID=request_id
    )


def test_two_callers_with_the_same_request_id_are_both_answered_and_billed(providers, user, other_user):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    grant(user, 100)
    grant(other_user, 100)

    first = _post(_client(user), "shared-request-1")
    second = _post(_client(other_user), "shared-request-1")

    assert first.status_code == 200, first.content
    assert second.status_code == 200, second.content
    assert first["X-Request-ID"] == second["X-Request-ID"] == "shared-request-1"
    for who in (user, other_user):
        assert balance(who) == {"balance": 100 * C - 125_000, "held": 0, "available": 100 * C - 125_000}
        hold = CreditHold.objects.get(account__user=who, request_id="shared-request-1")
        assert (hold.state, hold.charged) == ("settled", 125_000)
        entry = LedgerEntry.objects.get(account__user=who, kind="usage")
        assert (entry.reference, entry.amount) == ("shared-request-1", -125_000)
        row = UsageRecord.objects.get(user=who, request_id="shared-request-1")
        assert row.credits == 125_000
    assert len(providers.calls) == 2


def test_a_replayed_request_id_is_a_clear_409_that_calls_nothing_and_charges_nothing(providers, user):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    grant(user, 100)
    client = _client(user)
    assert _post(client, "my-retry-1").status_code == 200

    again = _post(client, "my-retry-1")

    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "duplicate_request_id"
    assert "'my-retry-1'" in error["message"] and "earlier call" in error["message"]
    assert len(providers.calls) == 1
    assert balance(user)["balance"] == 100 * C - 125_000
    assert CreditHold.objects.filter(account__user=user).count() == 1
