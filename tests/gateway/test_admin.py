import json
from decimal import Decimal

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


def test_catalog_admin_edits_prices_per_million_tokens(staff_client):
    from django.contrib.admin.utils import quote

    from gateway.models import ModelCatalogEntry

    url = f"/admin/gateway/modelcatalogentry/{quote('anthropic/claude-3.5-sonnet')}/change/"
    page = staff_client.get(url).content.decode()
    # Shown as the price lists state them, not as 18-decimal per-token figures.
    assert 'name="prompt_price_per_m" value="3"' in page
    assert 'name="input_cache_write_1h_price_per_m" value="6"' in page
    assert 'name="input_cache_read_price_per_m" value="0.3"' in page
    assert "0.000003000000000000" not in page
    entry = ModelCatalogEntry.objects.get(id="anthropic/claude-3.5-sonnet")
    r = staff_client.post(
        url,
        {
            "id": entry.id,
            "display_name": entry.display_name,
            "context_length": entry.context_length,
            "prompt_price_per_m": "3.5",
            "completion_price_per_m": "15",
            "input_cache_read_price_per_m": "0.35",
            "input_cache_write_price_per_m": "",
            "input_cache_write_1h_price_per_m": "7",
            "internal_reasoning_price_per_m": "",
            "request_price": "0",
            "image_price": "0.0048",
            "providers": json.dumps(entry.providers),
            "zdr": "on",
            "is_active": "on",
            "status": entry.status,
            "shutdown_date": str(entry.shutdown_date or ""),
            "successor": entry.successor_id or "",
        },
    )
    assert r.status_code == 302, r.content[:2000]
    entry.refresh_from_db()
    assert entry.prompt_price == Decimal("0.0000035") and entry.completion_price == Decimal("0.000015")
    assert entry.input_cache_read_price == Decimal("0.00000035")
    assert entry.input_cache_write_price is None and entry.input_cache_write_1h_price == Decimal("0.000007")
    assert entry.image_price == Decimal("0.0048")
    assert "3.5" in staff_client.get("/admin/gateway/modelcatalogentry/").content.decode()
