"""The Responses face over HTTP: refusals that move no money, an answer cut by max_output_tokens, and
the retention of stored responses (expired ones are not found and the hourly task purges them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.gateway.conftest import OPENROUTER_HOST, balance, json_response, openrouter_completion

pytestmark = pytest.mark.django_db


def create(http, body):
    return http.post("/v1/responses", body, content_type="application/json")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"model": "openai/gpt-4o", "input": "hi", "tools": [{"type": "web_search"}]}, "unsupported_tool"),
        ({"model": "openai/gpt-4o"}, "invalid_input"),
        ({"model": "openai/gpt-4o", "input": [{"type": "computer_call"}]}, "invalid_input"),
        (
            {"model": "openai/gpt-4o", "input": "hi", "text": {"format": {"type": "json_schema"}}},
            "invalid_text",
        ),
        ({"model": "openai/gpt-4o", "input": "hi", "tool_choice": "sometimes"}, "invalid_tool_choice"),
        ({"model": "openai/gpt-4o", "input": "hi", "max_output_tokens": 0}, "invalid_max_tokens"),
        ({"model": "openai/gpt-4o", "input": "hi", "base_url": "http://x"}, "forbidden_field"),
        (
            {"model": "openai/gpt-4o", "input": "hi", "previous_response_id": "resp_nope"},
            "response_not_found",
        ),
    ],
)
def test_refusals_are_4xx_and_move_no_money(providers, funded_user, http, body, code):
    before = balance(funded_user)
    r = create(http, body)
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, r.content
    assert balance(funded_user) == before and providers.calls == []


def test_an_answer_cut_by_max_output_tokens_is_incomplete(providers, funded_user, http):
    answer = openrouter_completion()
    answer["choices"][0]["finish_reason"] = "length"
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))

    r = create(http, {"model": "openai/gpt-4o", "input": "Tell a long story", "max_output_tokens": 9})

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert providers.bodies(OPENROUTER_HOST)[0]["max_tokens"] == 9


def test_stored_responses_expire_and_are_purged(providers, funded_user, http, settings):
    from gateway.models import StoredResponse
    from gateway.tasks import responses_purge

    settings.RESPONSES_RETENTION_DAYS = 30
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    kept = create(http, {"model": "openai/gpt-4o", "input": "one"}).json()["id"]
    old = create(http, {"model": "openai/gpt-4o", "input": "two"}).json()["id"]
    stored = StoredResponse.objects.get(id=old)
    assert stored.expires_at - stored.created_at == timedelta(days=30)
    StoredResponse.objects.filter(id=old).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert http.get(f"/v1/responses/{old}").status_code == 404
    assert (
        create(http, {"model": "openai/gpt-4o", "input": "and?", "previous_response_id": old}).status_code
        == 404
    )
    assert http.get(f"/v1/responses/{kept}").status_code == 200

    assert responses_purge() == 1
    assert set(StoredResponse.objects.values_list("id", flat=True)) == {kept}
