"""Model lifecycle in routing: matrix cells on retired models go to their successors, explicit retired
models are a 404 naming the successor, and an upstream "no such model" on an automatic choice moves the
call to the successor without hurting the provider's health."""

import datetime
from decimal import Decimal

import pytest

from tests.gateway.conftest import (
    GEMINI_HOST,
    OPENROUTER_HOST,
    json_response,
    openrouter_completion,
)

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Say hello"}]
OLD, MID, NEW = "google/gemini-flash-1.5", "google/gemini-2.5-flash", "openai/gpt-4.1-mini"


@pytest.fixture(autouse=True)
def _plain_lifecycle(catalog):
    """The three models these tests move through start active with no successor (the seed gives them
    real statuses); each test sets the lifecycle it is about."""
    for model_id in (OLD, MID, NEW):
        lifecycle(model_id, "active")


def post(http, body, path="/v1/chat/completions"):
    return http.post(path, body, content_type="application/json")


def lifecycle(model_id, status, *, successor=None, shutdown=None):
    from gateway.catalog import catalog_cache_clear
    from gateway.models import ModelCatalogEntry

    ModelCatalogEntry.objects.filter(id=model_id).update(
        status=status, successor_id=successor, shutdown_date=shutdown
    )
    catalog_cache_clear(model_ids=[model_id])


def cell(task_type, priority, model_id):
    from gateway.models import RoutingRule

    RoutingRule.objects.update_or_create(
        task_type=task_type, budget_priority=priority, defaults={"model_id": model_id}
    )


def worst_case_micro(model_id, messages, max_tokens):
    from billing.credits import usd_to_micro
    from gateway.catalog import catalog_models_get
    from gateway.pricing import WorstPrices, prompt_token_bound, worst_case_usd

    model = catalog_models_get(model_ids=[model_id])[model_id]
    return usd_to_micro(
        worst_case_usd(
            prices=WorstPrices.of([model]),
            prompt_tokens=prompt_token_bound(messages),
            max_tokens=max_tokens,
        )
    )


def answered_by_body_model(req, body):
    return json_response(200, openrouter_completion(model=body["model"], cost="0.00002"))


def health_of(provider):
    from monitoring.services import ProviderHealthMonitor

    return next(
        (
            row
            for row in ProviderHealthMonitor().get_all_provider_health()
            if row["provider"] == provider and row["model"] is None
        ),
        None,
    )


# --- routing a matrix cell on a retired model ------------------------------------------------------


def test_retired_cell_routes_along_the_successor_chain_and_says_so(providers, funded_user, http):
    from monitoring.models import UsageRecord

    cell("simple", "balanced", OLD)
    lifecycle(OLD, "retired", successor=MID, shutdown=datetime.date(2025, 9, 24))
    lifecycle(MID, "retired", successor=NEW, shutdown=datetime.date(2026, 6, 17))
    providers.on(OPENROUTER_HOST, answered_by_body_model)

    r = post(http, {"messages": HELLO, "max_tokens": 50})

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model"] == NEW
    assert (
        body["routing_reason"] == f"simple/balanced: {OLD} retired, successor {MID} retired, successor {NEW}"
    )
    assert body["route"] == "matrix:simple/balanced"
    assert [b["model"] for b in providers.bodies(OPENROUTER_HOST)] == [NEW]
    row = UsageRecord.objects.get()
    # The hold was placed at the successor's prices, not the retired model's.
    assert row.hold == worst_case_micro(NEW, HELLO, 50)
    assert row.credits == 20_000 and row.model == NEW
    assert row.attempts[0] == {
        "model": OLD,
        "provider": "",
        "status": "skipped",
        "error_class": "",
        "latency_ms": 0,
        "reason": f"retired, successor {NEW}",
    }


def test_deprecated_cell_past_its_shutdown_date_counts_as_retired(providers):
    from gateway.routing import route_options_validate, route_plan

    cell("simple", "balanced", OLD)
    lifecycle(OLD, "deprecated", successor=MID, shutdown=datetime.date.today() + datetime.timedelta(days=30))
    plan = route_plan(options=route_options_validate())
    assert plan.model == OLD and plan.reason == f"simple/balanced: {OLD}"

    lifecycle(OLD, "deprecated", successor=MID, shutdown=datetime.date.today())
    plan = route_plan(options=route_options_validate())
    assert plan.model == MID
    assert plan.reason == f"simple/balanced: {OLD} retired, successor {MID}"


def test_retired_cell_without_a_callable_successor_is_a_404_not_a_call(providers, funded_user, http):
    cell("simple", "balanced", OLD)
    lifecycle(OLD, "retired")

    r = post(http, {"messages": HELLO})

    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_retired"
    assert providers.calls == []


def test_a_successor_loop_ends_without_hanging(providers):
    from gateway.routing import route_options_validate, route_plan
    from smartspec.errors import ModelRetired

    cell("simple", "balanced", OLD)
    lifecycle(OLD, "retired", successor=MID)
    lifecycle(MID, "retired", successor=OLD)
    with pytest.raises(ModelRetired):
        route_plan(options=route_options_validate())


# --- explicit retired models -----------------------------------------------------------------------


def test_explicit_retired_model_is_a_404_naming_its_successor(providers, funded_user, http):
    lifecycle(OLD, "retired", successor=MID, shutdown=datetime.date(2025, 9, 24))

    r = post(http, {"model": OLD, "messages": HELLO})

    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_retired" and error["type"] == "not_found_error"
    assert error["successor"] == MID
    assert OLD in error["message"] and "2025-09-24" in error["message"] and MID in error["message"]
    assert providers.calls == []
    assert balance(funded_user)["held"] == 0


def test_explicit_retired_model_with_fallbacks_goes_to_the_fallbacks(providers, funded_user, http):
    lifecycle(OLD, "retired", successor=MID)
    providers.on(OPENROUTER_HOST, answered_by_body_model)

    r = post(http, {"model": OLD, "models": ["openai/gpt-4o-mini"], "messages": HELLO})

    assert r.status_code == 200, r.content
    assert r.json()["model"] == "openai/gpt-4o-mini"
    assert [b["model"] for b in providers.bodies(OPENROUTER_HOST)] == ["openai/gpt-4o-mini"]
    # OpenRouter's own fallback array never names a retired model either.
    assert "models" not in providers.bodies(OPENROUTER_HOST)[0]


def test_native_api_reports_the_routing_reason(providers, funded_user, http):
    cell("simple", "balanced", OLD)
    lifecycle(OLD, "retired", successor=MID)
    providers.on(OPENROUTER_HOST, answered_by_body_model)

    r = post(http, {"messages": HELLO}, path="/api/llm/chat")

    assert r.status_code == 200, r.content
    assert r.json()["routing_reason"] == f"simple/balanced: {OLD} retired, successor {MID}"
    assert r.json()["model"] == MID


# --- the upstream says "no such model" -------------------------------------------------------------


def not_a_valid_model(gone_model):
    def responder(req, body):
        if body["model"] == gone_model:
            return json_response(
                400, {"error": {"message": f"{gone_model} is not a valid model ID", "code": 400}}
            )
        return answered_by_body_model(req, body)

    return responder


def test_no_such_model_upstream_moves_an_automatic_choice_to_the_successor(providers, funded_user, http):
    from gateway.models import ModelCatalogEntry
    from monitoring.models import UsageRecord

    cell("simple", "balanced", OLD)
    lifecycle(OLD, "active", successor=MID)
    providers.on(OPENROUTER_HOST, not_a_valid_model(OLD))
    providers.on(GEMINI_HOST, lambda req, body: json_response(404, GEMINI_NOT_FOUND))

    r = post(http, {"messages": HELLO, "max_tokens": 40})

    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model"] == MID
    assert (
        body["routing_reason"] == f"simple/balanced: {OLD} retired upstream (no such model), successor {MID}"
    )
    # OpenRouter, then Google direct for the same model (both said no), then the successor.
    sent = [(host, b.get("model")) for host, b in providers.calls]
    assert sent[0] == (OPENROUTER_HOST, OLD) and sent[-1] == (OPENROUTER_HOST, MID)
    assert "models" not in providers.bodies(OPENROUTER_HOST)[0]  # the successor is ours to choose
    row = UsageRecord.objects.get()
    assert row.model == MID and row.status == "ok" and row.credits == 20_000
    # The hold covered the successor, the dearer of the two.
    assert row.hold == worst_case_micro(MID, HELLO, 40)
    assert worst_case_micro(MID, HELLO, 40) > worst_case_micro(OLD, HELLO, 40)
    assert [a["error_class"] for a in row.attempts if a["status"] == "error"] == [
        "UpstreamModelGone",
        "UpstreamModelGone",
    ]
    entry = ModelCatalogEntry.objects.get(id=OLD)
    assert entry.review_flagged_at is not None and "no such model" in entry.review_note
    assert ModelCatalogEntry.objects.get(id=MID).review_flagged_at is None
    for provider in ("openrouter", "google"):
        health = health_of(provider)
        assert health["consecutive_failures"] == 0 and not health["down"] and health["last_error"] == ""
        assert health["success_rate"] == 1.0


def test_no_such_model_on_an_explicit_choice_is_a_404_without_switching(providers, funded_user, http):
    lifecycle(OLD, "active", successor=MID)
    providers.on(OPENROUTER_HOST, not_a_valid_model(OLD))
    providers.on(GEMINI_HOST, lambda req, body: json_response(404, GEMINI_NOT_FOUND))

    r = post(http, {"model": OLD, "messages": HELLO})

    assert r.status_code == 404, r.content
    error = r.json()["error"]
    assert error["code"] == "model_retired" and error["successor"] == MID
    assert MID not in [b.get("model") for _, b in providers.calls]
    assert balance(funded_user)["held"] == 0
    assert balance(funded_user)["balance"] == 100_000_000
    assert health_of("openrouter")["consecutive_failures"] == 0


@pytest.mark.django_db(transaction=True)
async def test_no_such_model_in_a_stream_moves_to_the_successor_before_the_first_byte(
    providers, funded_user, api_key
):
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    from tests.gateway.conftest import openrouter_stream, sse_response

    await sync_to_async(cell)("simple", "balanced", OLD)
    await sync_to_async(lifecycle)(OLD, "active", successor=MID)

    def responder(req, body):
        if body["model"] == OLD:
            return json_response(400, {"error": {"message": f"{OLD} is not a valid model ID", "code": 400}})
        return sse_response(openrouter_stream(model=MID))

    providers.on(OPENROUTER_HOST, responder)
    providers.on(GEMINI_HOST, lambda req, body: json_response(404, GEMINI_NOT_FOUND))

    r = await AsyncClient().post(
        "/v1/chat/completions",
        {"messages": HELLO, "stream": True},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )

    assert r.status_code == 200
    text = b"".join([part async for part in r.streaming_content]).decode()
    assert f'"model":"{MID}"' in text and "[DONE]" in text
    assert [b["model"] for b in providers.bodies(OPENROUTER_HOST)] == [OLD, MID]


def test_a_plain_failure_does_not_wake_the_standby_successor(providers, funded_user, http):
    cell("simple", "balanced", OLD)
    lifecycle(OLD, "active", successor=MID)
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(503, {"error": {"message": "down", "code": 503}})
    )
    providers.on(
        GEMINI_HOST, lambda req, body: json_response(503, {"error": {"code": 503, "status": "UNAVAILABLE"}})
    )

    r = post(http, {"messages": HELLO})

    assert r.status_code == 502
    assert MID not in [b.get("model") for _, b in providers.calls]


# --- the adapters recognize "no such model" --------------------------------------------------------

GEMINI_NOT_FOUND = {
    "error": {
        "code": 404,
        "message": "models/gemini-1.5-flash is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their supported methods.",
        "status": "NOT_FOUND",
    }
}


@pytest.mark.parametrize(
    "wire, status, body, gone",
    [
        (
            "openrouter",
            400,
            {"error": {"message": "google/gemini-flash-1.5 is not a valid model ID", "code": 400}},
            True,
        ),
        (
            "openai",
            404,
            {
                "error": {
                    "message": "The model `gpt-4o-2024-05-13` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            },
            True,
        ),
        (
            "anthropic",
            404,
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": "model: claude-3-5-sonnet-20241022"},
            },
            True,
        ),
        ("google", 404, GEMINI_NOT_FOUND, True),
        (
            "openrouter",
            400,
            {"error": {"message": "Invalid request: context length exceeded", "code": 400}},
            False,
        ),
        ("openai", 404, None, False),
    ],
)
def test_adapters_map_no_such_model_to_model_gone(wire, status, body, gone):
    import json

    from gateway.providers import anthropic, gemini, openai_compat
    from smartspec.errors import UpstreamModelGone

    adapter = {
        "openrouter": openai_compat,
        "openai": openai_compat,
        "anthropic": anthropic,
        "google": gemini,
    }[wire].adapter
    raw = json.dumps(body).encode() if body is not None else b"<html>404 Not Found</html>"
    error = adapter.map_error(status, raw, {})
    assert isinstance(error, UpstreamModelGone) is gone
    assert error.retryable is (gone or status == 404)
    # The upstream's text never travels: only its code.
    assert "claude-3-5-sonnet" not in error.message and "gpt-4o-2024" not in error.message


def balance(user):
    from billing.selectors import balance_get

    return balance_get(user=user)


# --- the lists show only what can be called ----------------------------------------------------------


def test_model_lists_leave_out_retired_models(providers, api_client):
    lifecycle(OLD, "retired", successor=MID)
    lifecycle(MID, "deprecated", successor=NEW, shutdown=datetime.date.today() + datetime.timedelta(days=9))

    ids = [m["id"] for m in api_client.get("/v1/models").json()["data"]]
    listed = {m["id"] for m in api_client.get("/api/llm/models").json()["models"]}

    assert OLD not in ids and OLD not in listed
    assert MID in ids and MID in listed and NEW in ids


def test_catalog_model_callable_names_the_successor():
    from gateway.catalog import catalog_model_callable
    from smartspec.errors import ModelNotFound, ModelRetired

    lifecycle(OLD, "retired", successor=MID)
    assert catalog_model_callable(model_id=MID).id == MID
    with pytest.raises(ModelRetired) as exc:
        catalog_model_callable(model_id=OLD)
    assert exc.value.successor == MID and exc.value.status == 404
    with pytest.raises(ModelNotFound):
        catalog_model_callable(model_id="nobody/nothing")


def test_prices_are_the_successors_own(providers):
    from gateway.routing import route_options_validate, route_plan

    cell("simple", "balanced", OLD)
    lifecycle(OLD, "active", successor=MID)
    plan = route_plan(options=route_options_validate())
    # The standby successor is in the plan's prices, so the hold covers it.
    assert MID in plan.models
    prices = plan.worst_prices()
    assert (prices.prompt, prices.completion) == (Decimal("0.0000003"), Decimal("0.0000025"))


def test_model_retrieve_answers_a_retired_model_with_a_404_naming_its_successor(providers, api_client):
    lifecycle(OLD, "retired", successor=MID, shutdown=datetime.date(2025, 9, 24))

    gone = api_client.get(f"/v1/models/{OLD}")
    current = api_client.get(f"/v1/models/{MID}")
    unknown = api_client.get("/v1/models/nobody/nothing")

    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "model_retired" and gone.json()["error"]["successor"] == MID
    assert current.status_code == 200
    assert current.json()["id"] == MID and current.json()["object"] == "model"
    assert current.json()["owned_by"] == "google" and current.json()["pricing"]["prompt"]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_a_model_id_with_control_characters_is_a_400_before_any_lookup(providers, funded_user, http):
    for body in ({"model": "\x00"}, {"model": "openai/gpt-4o", "models": ["a\x00b"]}):
        r = post(http, {**body, "messages": HELLO})
        assert r.status_code == 400, r.content
    assert providers.calls == []
