"""The staff page warns about routing matrix cells on deprecated or retired models (with the shutdown
date and where calls go now) and lists the models an upstream said it does not serve."""

import datetime

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_user(username="ops", password="pw-ops-123", is_staff=True)
    client.force_login(staff)
    return client


def test_seeded_matrix_needs_no_warning(staff_client):
    html = staff_client.get("/staff/").content.decode()
    assert 'data-testid="matrix-warnings"' not in html


def test_cells_on_deprecated_and_retired_models_are_warned_about(staff_client):
    from gateway.catalog import catalog_cache_clear, catalog_review_flag
    from gateway.models import ModelCatalogEntry, RoutingRule

    RoutingRule.objects.filter(task_type="simple", budget_priority="balanced").update(
        model_id="google/gemini-flash-1.5"
    )
    RoutingRule.objects.filter(task_type="analysis", budget_priority="quality").update(
        model_id="openai/gpt-4o"
    )
    catalog_cache_clear(model_ids=["google/gemini-flash-1.5", "openai/gpt-4o"])
    catalog_review_flag(model_ids=["openai/gpt-4.1"], note="openai answered that it has no such model")

    html = staff_client.get("/staff/").content.decode()

    assert 'data-testid="matrix-warnings"' in html
    retired = html[html.index('data-cell="simple/balanced"') :]
    retired = retired[: retired.index("</tr>")]
    assert "google/gemini-flash-1.5" in retired and "retired" in retired and "2025-09-24" in retired
    # Calls go along the chain (gemini-2.5-flash is retired too) to the first callable successor.
    assert "google/gemini-3.1-flash-lite" in retired
    deprecated = html[html.index('data-cell="analysis/quality"') :]
    deprecated = deprecated[: deprecated.index("</tr>")]
    assert "deprecated" in deprecated and "2027-01-14" in deprecated and "openai/gpt-4o" in deprecated
    assert 'data-testid="review-models"' in html and "openai answered that it has no such model" in html
    assert ModelCatalogEntry.objects.get(id="openai/gpt-4.1").review_flagged_at is not None


def test_a_cell_past_its_shutdown_date_is_shown_as_retired(staff_client):
    from gateway.catalog import catalog_matrix_warnings
    from gateway.models import ModelCatalogEntry, RoutingRule

    RoutingRule.objects.filter(task_type="simple", budget_priority="cost").update(
        model_id="openai/gpt-4o-mini"
    )
    ModelCatalogEntry.objects.filter(id="openai/gpt-4o-mini").update(
        shutdown_date=datetime.date.today() - datetime.timedelta(days=1)
    )
    (warning,) = catalog_matrix_warnings()
    assert (warning["cell"], warning["status"], warning["routed_to"]) == (
        "simple/cost",
        "retired",
        "openai/gpt-5.6-luna",
    )
