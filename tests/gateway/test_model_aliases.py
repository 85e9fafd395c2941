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
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5"),
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4.5"),
        ("claude-opus-4-1-20250805", "anthropic/claude-opus-4.1"),
        ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4.5"),
        ("claude-sonnet-4-6", "anthropic/claude-sonnet-4.6"),
    ],
)
def test_seeded_anthropic_ids_resolve_to_catalog_ids(providers, alias, model_id):
    assert _resolved(alias) == model_id


def test_an_alias_of_a_retired_model_is_the_404_naming_its_successor(providers):
    from smartspec.errors import ModelRetired

    with pytest.raises(ModelRetired) as exc:
        _resolved("claude-sonnet-4-20250514")
    assert exc.value.successor == "anthropic/claude-sonnet-4.6"


def test_aliases_work_on_chat_completions_too(providers, funded_user, http):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.0001")))

    r = http.post(
        "/v1/chat/completions",
        {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
    )

    assert r.status_code == 200
    assert providers.bodies(OPENROUTER_HOST)[0]["model"] == "anthropic/claude-haiku-4.5"


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
    assert _resolved("claude-sonnet-4-5") == "anthropic/claude-sonnet-4.5"  # cached now

    assert client.get("/admin/gateway/modelalias/").status_code == 200
    r = client.post(
        "/admin/gateway/modelalias/claude-sonnet-4-5/change/",
        {"alias": "claude-sonnet-4-5", "model": "anthropic/claude-sonnet-4.6"},
    )
    assert r.status_code == 302
    assert ModelAlias.objects.get(alias="claude-sonnet-4-5").source == "staff"
    assert _resolved("claude-sonnet-4-5") == "anthropic/claude-sonnet-4.6"

    r = client.post(
        "/admin/gateway/modelalias/add/", {"alias": "house-default", "model": "openai/gpt-5.6-luna"}
    )
    assert r.status_code == 302
    assert _resolved("house-default") == "openai/gpt-5.6-luna"


def test_new_claude_models_carry_anthropics_list_prices():
    from gateway.models import ModelCatalogEntry

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
