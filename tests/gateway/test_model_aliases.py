"""Model aliases: Anthropic's own ids resolve to catalog ids (seeded, derived by the catalog sync,
edited by staff in admin), on every API surface."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.gateway.conftest import OPENROUTER_HOST, json_response, openrouter_completion

pytestmark = pytest.mark.django_db


def _resolved(model: str) -> str:
    from gateway.routing import route_options_validate, route_plan

    return route_plan(options=route_options_validate(model=model)).model


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [
        ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4.5"),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4.5"),
        ("claude-sonnet-4-6", "anthropic/claude-sonnet-4.6"),
        ("claude-opus-4-8", "anthropic/claude-opus-4.8"),
    ],
)
def test_seeded_anthropic_ids_resolve_to_catalog_ids(providers, alias, model_id):
    assert _resolved(alias) == model_id


@pytest.mark.parametrize(
    ("alias", "successor"),
    [
        ("claude-sonnet-4-20250514", "anthropic/claude-sonnet-4.6"),
        # Retired by Anthropic on 2026-05-18 and 2026-08-05 (gateway/migrations/0012): still resolved,
        # so the caller hears which model to use instead of a bare "unknown model".
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.6"),
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4.6"),
        ("claude-opus-4-1-20250805", "anthropic/claude-opus-4.8"),
    ],
)
def test_an_alias_of_a_retired_model_is_the_404_naming_its_successor(providers, alias, successor):
    from smartspec.errors import ModelRetired

    with pytest.raises(ModelRetired) as exc:
        _resolved(alias)
    assert exc.value.successor == successor


def test_aliases_work_on_chat_completions_too(providers, funded_user, http):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.0001")))

    r = http.post(
        "/v1/chat/completions",
        {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
    )

    assert r.status_code == 200
    assert providers.bodies(OPENROUTER_HOST)[0]["model"] == "anthropic/claude-haiku-4.5"


def test_the_model_object_is_found_by_an_alias_too(providers, funded_user, http):
    r = http.get("/v1/models/claude-haiku-4-5")
    assert r.status_code == 200, r.content
    assert r.json()["id"] == "anthropic/claude-haiku-4.5"

    r = http.get("/v1/models/claude-3-5-sonnet-20241022")  # a retired model's alias: the successor
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_retired"
    assert "anthropic/claude-sonnet-4.6" in r.json()["error"]["message"]

    assert http.get("/v1/models/claude-nothing-9").status_code == 404


def test_catalog_sync_adds_the_anthropic_spelling_of_new_claude_models_and_keeps_staffs(network):
    from gateway.catalog import catalog_sync_apply
    from gateway.models import ModelAlias

    ModelAlias.objects.create(alias="claude-opus-4-6", model_id="anthropic/claude-sonnet-4.6", source="staff")
    listed = {
        "data": [
            {
                "id": model_id,
                "name": name,
                "context_length": 200000,
                "pricing": {"prompt": "0.000005", "completion": "0.000025"},
            }
            for model_id, name in (
                ("anthropic/claude-opus-4.6", "Anthropic: Claude Opus 4.6"),
                ("anthropic/claude-haiku-5", "Anthropic: Claude Haiku 5"),
            )
        ]
    }

    report = catalog_sync_apply(payload=listed)

    assert report.created == 2 and report.aliases >= 1
    aliases = dict(ModelAlias.objects.values_list("alias", "model_id"))
    assert aliases["claude-haiku-5"] == "anthropic/claude-haiku-5"
    # Staff pointed this name elsewhere: the sync leaves it.
    assert aliases["claude-opus-4-6"] == "anthropic/claude-sonnet-4.6"
    assert ModelAlias.objects.get(alias="claude-haiku-5").source == "sync"
    assert _resolved("claude-haiku-5") == "anthropic/claude-haiku-5"


def test_staff_edit_aliases_in_admin_and_routing_follows_at_once(providers, client, django_user_model):
    from gateway.models import ModelAlias

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    assert _resolved("claude-haiku-4-5") == "anthropic/claude-haiku-4.5"  # cached now

    assert client.get("/admin/gateway/modelalias/").status_code == 200
    r = client.post(
        "/admin/gateway/modelalias/claude-haiku-4-5/change/",
        {"alias": "claude-haiku-4-5", "model": "anthropic/claude-sonnet-4.6"},
    )
    assert r.status_code == 302
    assert ModelAlias.objects.get(alias="claude-haiku-4-5").source == "staff"
    assert _resolved("claude-haiku-4-5") == "anthropic/claude-sonnet-4.6"

    r = client.post(
        "/admin/gateway/modelalias/add/", {"alias": "house-default", "model": "openai/gpt-5.6-luna"}
    )
    assert r.status_code == 302
    assert _resolved("house-default") == "openai/gpt-5.6-luna"


def test_retired_claude_models_name_their_successors_and_opus_48_carries_its_list_prices():
    import datetime

    from gateway.models import ModelCatalogEntry

    lifecycle = {
        model_id: (status, shutdown, successor)
        for model_id, status, shutdown, successor in ModelCatalogEntry.objects.filter(
            id__in=["anthropic/claude-sonnet-4.5", "anthropic/claude-opus-4.1", "anthropic/claude-opus-4.8"]
        ).values_list("id", "status", "shutdown_date", "successor_id")
    }
    assert lifecycle == {
        "anthropic/claude-sonnet-4.5": ("retired", datetime.date(2026, 5, 18), "anthropic/claude-sonnet-4.6"),
        "anthropic/claude-opus-4.1": ("retired", datetime.date(2026, 8, 5), "anthropic/claude-opus-4.8"),
        "anthropic/claude-opus-4.8": ("active", None, None),
    }
    opus48 = ModelCatalogEntry.objects.get(id="anthropic/claude-opus-4.8")
    per_m = Decimal(1_000_000)
    assert [
        price * per_m
        for price in (
            opus48.prompt_price,
            opus48.completion_price,
            opus48.input_cache_read_price,
            opus48.input_cache_write_price,
            opus48.input_cache_write_1h_price,
        )
    ] == [5, 25, Decimal("0.5"), Decimal("6.25"), 10]
    assert opus48.providers == {"openrouter": "anthropic/claude-opus-4.8", "anthropic": "claude-opus-4-8"}

    sonnet = ModelCatalogEntry.objects.get(id="anthropic/claude-sonnet-4.5")
    opus = ModelCatalogEntry.objects.get(id="anthropic/claude-opus-4.1")
    per_m = Decimal(1_000_000)
    assert (sonnet.prompt_price * per_m, sonnet.completion_price * per_m) == (3, 15)
    assert (
        opus.prompt_price * per_m,
        opus.completion_price * per_m,
        opus.input_cache_write_price * per_m,
    ) == (
        15,
        75,
        Decimal("18.75"),
    )
    assert sonnet.providers == {
        "openrouter": "anthropic/claude-sonnet-4.5",
        "anthropic": "claude-sonnet-4-5-20250929",
    }
