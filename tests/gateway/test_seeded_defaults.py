"""The seeded routing matrix: every cell on a model the catalog itself calls current (never retired or
deprecated), each keeping the integration guide's original choice as its origin, reached from that
origin along the catalog's successor links; and the integration guide's table says the same."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
# The integration guide's original matrix (DESIGN.md): task_type -> (quality, speed, cost, balanced).
SONNET, FLASH, LLAMA = (
    "anthropic/claude-3.5-sonnet",
    "google/gemini-flash-1.5",
    "meta-llama/llama-3.1-70b-instruct",
)
GPT4O, MINI = "openai/gpt-4o", "openai/gpt-4o-mini"
GUIDE = {
    "code_generation": (SONNET, FLASH, LLAMA, GPT4O),
    "analysis": (GPT4O, FLASH, LLAMA, GPT4O),
    "planning": (SONNET, MINI, LLAMA, GPT4O),
    "simple": (MINI, FLASH, LLAMA, FLASH),
    "decision": (SONNET, GPT4O, LLAMA, GPT4O),
}
PRIORITIES = ("quality", "speed", "cost", "balanced")


def cells():
    from gateway.models import RoutingRule

    return {(r.task_type, r.budget_priority): r for r in RoutingRule.objects.select_related("model")}


def test_no_seeded_cell_is_on_a_retired_or_deprecated_model():
    from gateway.catalog import CatalogModel

    seeded = cells()
    assert len(seeded) == 20
    for (task, priority), rule in seeded.items():
        model = CatalogModel.from_entry(rule.model)
        assert model.lifecycle == "active", f"{task}/{priority} is on {model.id} ({model.lifecycle})"
        assert rule.model.is_active


def test_every_cell_keeps_the_guides_choice_as_origin_and_reaches_its_model_by_successors():
    from gateway.models import ModelCatalogEntry

    seeded = cells()
    for task, origins in GUIDE.items():
        for priority, origin in zip(PRIORITIES, origins, strict=True):
            rule = seeded[(task, priority)]
            assert rule.origin == origin
            chain, current = [origin], ModelCatalogEntry.objects.get(id=origin)
            while current.successor_id and len(chain) < 8:
                chain.append(current.successor_id)
                current = current.successor
            assert chain[-1] == rule.model_id, (task, priority, chain)
            # Every step before the current model is one the providers retired or deprecated.
            assert (
                ModelCatalogEntry.objects.get(id=origin).status in ("retired", "deprecated")
                or origin == LLAMA
            )


def test_the_guides_originals_have_their_lifecycle_recorded():
    from gateway.models import ModelCatalogEntry

    entries = {e.id: e for e in ModelCatalogEntry.objects.filter(id__in=[SONNET, FLASH, GPT4O, MINI])}
    assert entries[SONNET].status == "retired" and str(entries[SONNET].shutdown_date) == "2025-10-22"
    assert entries[FLASH].status == "retired" and entries[FLASH].successor_id == "google/gemini-2.5-flash"
    assert entries[GPT4O].status == "deprecated" and str(entries[GPT4O].shutdown_date) == "2027-01-14"
    assert entries[MINI].status == "deprecated"


def test_new_defaults_are_in_the_catalog_with_prices():
    from gateway.models import RoutingRule

    for rule in RoutingRule.objects.select_related("model"):
        assert rule.model.prompt_price > 0 and rule.model.completion_price > 0, rule.model_id
        assert "openrouter" in rule.model.providers


def test_the_integration_guide_table_shows_the_current_defaults_and_their_origins():
    guide = (ROOT / "docs" / "INTEGRATION_GUIDE.md").read_text()
    seeded = cells()
    rows = {}
    for line in guide.splitlines():
        match = re.match(r"^\| `?(code_generation|analysis|planning|simple|decision)`? \|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in match.group(2).split("|")]
    assert set(rows) == set(GUIDE)
    for task, columns in rows.items():
        for priority, column in zip(PRIORITIES, columns, strict=True):
            rule = seeded[(task, priority)]
            assert f"`{rule.model_id}`" in column, (task, priority, column)
            assert f"`{rule.origin}`" in column, (task, priority, column)
