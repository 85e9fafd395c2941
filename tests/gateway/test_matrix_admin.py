"""Staff edit the routing matrix in admin as one task x priority grid."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    return client


def test_the_grid_shows_every_cell_with_its_model_and_origin(staff_client):
    r = staff_client.get("/admin/gateway/routingrule/")

    assert r.status_code == 200
    html = r.content.decode()
    assert html.count('<td data-cell="') == 20
    cell = html[html.index('data-cell="simple/balanced"') :]
    cell = cell[: cell.index("</td>")]
    assert '<option value="google/gemini-3.1-flash-lite" selected>' in cell
    assert "origin: google/gemini-flash-1.5" in cell
    # Retired models are not offered for a cell.
    assert 'value="anthropic/claude-3.5-sonnet"' not in cell


def test_saving_the_grid_changes_only_the_cells_that_differ(staff_client):
    from gateway.models import RoutingRule

    post = {f"cell:{r.task_type}/{r.budget_priority}": r.model_id for r in RoutingRule.objects.all()} | {
        "cell:analysis/cost": "z-ai/glm-4.7"
    }

    r = staff_client.post("/admin/gateway/routingrule/", post, follow=True)

    assert r.status_code == 200
    assert "analysis/cost changed" in r.content.decode()
    assert RoutingRule.objects.get(task_type="analysis", budget_priority="cost").model_id == "z-ai/glm-4.7"
    assert RoutingRule.objects.get(task_type="analysis", budget_priority="cost").origin == (
        "meta-llama/llama-3.1-70b-instruct"
    )


def test_a_retired_or_unknown_model_is_refused_and_nothing_changes(staff_client):
    from gateway.models import RoutingRule

    before = dict(RoutingRule.objects.values_list("id", "model_id"))
    r = staff_client.post(
        "/admin/gateway/routingrule/",
        {"cell:simple/cost": "z-ai/glm-4.7", "cell:simple/balanced": "anthropic/claude-3.5-sonnet"},
        follow=True,
    )

    assert r.status_code == 200
    assert "cannot be called" in r.content.decode() and "simple/balanced" in r.content.decode()
    assert dict(RoutingRule.objects.values_list("id", "model_id")) == before
    r = staff_client.post(
        "/admin/gateway/routingrule/", {"cell:simple/balanced": "nobody/nothing"}, follow=True
    )
    assert "cannot be called" in r.content.decode()
    assert dict(RoutingRule.objects.values_list("id", "model_id")) == before


def test_staff_without_change_permission_see_the_grid_read_only(client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(username="viewer", password="pw-view-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_routingrule"))
    client.force_login(viewer)

    assert "disabled" in client.get("/admin/gateway/routingrule/").content.decode()
    assert client.post("/admin/gateway/routingrule/", {"cell:simple/cost": "z-ai/glm-4.7"}).status_code == 403


def test_catalog_admin_shows_the_lifecycle_and_clears_review_flags(staff_client):
    from django.contrib.admin.utils import quote

    from gateway.catalog import catalog_review_flag
    from gateway.models import ModelCatalogEntry

    catalog_review_flag(model_ids=["openai/gpt-4.1"], note="openai answered that it has no such model")
    listing = staff_client.get("/admin/gateway/modelcatalogentry/?status__exact=retired").content.decode()
    assert "google/gemini-flash-1.5" in listing and "openai/gpt-5.6-terra" not in listing
    page = staff_client.get(f"/admin/gateway/modelcatalogentry/{quote('google/gemini-flash-1.5')}/change/")
    assert page.status_code == 200 and b"2025-09-24" in page.content

    r = staff_client.post(
        "/admin/gateway/modelcatalogentry/",
        {"action": "review_clear", "_selected_action": ["openai/gpt-4.1"]},
        follow=True,
    )

    assert "Cleared the review flag of 1 model(s)." in r.content.decode()
    entry = ModelCatalogEntry.objects.get(id="openai/gpt-4.1")
    assert entry.review_flagged_at is None and entry.review_note == ""
