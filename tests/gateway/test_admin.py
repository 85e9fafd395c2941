import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    return client


def test_staff_edit_the_matrix_in_admin(staff_client):
    from gateway.models import RoutingRule

    rule = RoutingRule.objects.get(task_type="simple", budget_priority="cost")
    assert staff_client.get("/admin/gateway/routingrule/").status_code == 200
    r = staff_client.post(
        f"/admin/gateway/routingrule/{rule.pk}/change/",
        {"task_type": "simple", "budget_priority": "cost", "model": "z-ai/glm-4.7"},
    )
    assert r.status_code == 302
    rule.refresh_from_db()
    assert rule.model_id == "z-ai/glm-4.7"


def test_catalog_admin_pages_render(staff_client):
    from django.contrib.admin.utils import quote

    assert staff_client.get("/admin/gateway/modelcatalogentry/").status_code == 200
    r = staff_client.get(f"/admin/gateway/modelcatalogentry/{quote('openai/gpt-4o')}/change/")
    assert r.status_code == 200 and b"gpt-4o" in r.content
