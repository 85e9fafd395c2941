"""Admin: staff can read usage, rollups and health; nobody can add, edit or delete those records."""

import pytest

from monitoring.models import UsageRecord
from monitoring.services import daily_usage_rollup, provider_health_snapshot_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser(username="root", password="pw-root-123")
    client.force_login(admin_user)
    return client


def test_admin_lists_usage_with_filters_and_is_read_only(admin_client, user, make_usage):
    record = make_usage(user, model="openai/gpt-4o", provider="openai", status="error", credits=0)
    make_usage(user, model="google/gemini-flash-1.5", provider="google")
    daily_usage_rollup()
    provider_health_snapshot_save()

    listing = admin_client.get("/admin/monitoring/usagerecord/", {"provider": "openai", "status": "error"})
    assert listing.status_code == 200
    assert [r.pk for r in listing.context["cl"].result_list] == [record.pk]
    by_user = admin_client.get("/admin/monitoring/usagerecord/", {"user__id__exact": user.pk})
    assert len(by_user.context["cl"].result_list) == 2

    assert admin_client.get("/admin/monitoring/usagerecord/add/").status_code == 403
    response = admin_client.post(f"/admin/monitoring/usagerecord/{record.pk}/change/", {"credits": 1})
    assert response.status_code == 403
    assert (
        admin_client.post(f"/admin/monitoring/usagerecord/{record.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert UsageRecord.objects.get(pk=record.pk).credits == 0

    for path in (
        "/admin/monitoring/dailyusage/",
        "/admin/monitoring/providerhealthsnapshot/",
        "/admin/monitoring/rollupstate/",
    ):
        assert admin_client.get(path).status_code == 200
