"""The billing selectors the dashboard pages read (added for monitoring's pages)."""

import pytest

from billing.selectors import transactions_page, usage_hold_get
from billing.services import adjustment_create, hold_place, hold_release, hold_settle

pytestmark = pytest.mark.django_db


def test_transactions_page_walks_the_ledger_by_keyset(user, other_user, django_user_model):
    staff = django_user_model.objects.create_user(username="ops", is_staff=True)
    for i in range(1, 8):
        adjustment_create(user=user, amount=i * 1_000_000, actor=staff, reason=f"grant {i}")
    adjustment_create(user=other_user, amount=5_000_000, actor=staff, reason="other")

    first = transactions_page(user=user, limit=3)
    assert [e.amount for e in first] == [7_000_000, 6_000_000, 5_000_000, 4_000_000]  # one extra row
    second = transactions_page(user=user, before_id=first[2].id, limit=3)
    assert [e.amount for e in second] == [4_000_000, 3_000_000, 2_000_000, 1_000_000]
    last = transactions_page(user=user, before_id=second[2].id, limit=3)
    assert [e.amount for e in last] == [1_000_000]


def test_usage_hold_get_reports_charged_and_released(user, django_user_model):
    staff = django_user_model.objects.create_user(username="ops", is_staff=True)
    adjustment_create(user=user, amount=50_000_000, actor=staff, reason="starter")

    hold = hold_place(user=user, amount=4_000_000, request_id="req-settled")
    hold_settle(hold_id=hold.pk, amount=1_250_000)
    settled = usage_hold_get(user=user, request_id="req-settled")
    assert (settled["amount"], settled["charged"], settled["released"], settled["state"]) == (
        4_000_000,
        1_250_000,
        2_750_000,
        "settled",
    )

    failed = hold_place(user=user, amount=3_000_000, request_id="req-failed")
    hold_release(hold_id=failed.pk)
    released = usage_hold_get(user=user, request_id="req-failed")
    assert (released["charged"], released["released"], released["state"]) == (0, 3_000_000, "released")

    still_open = hold_place(user=user, amount=1_000_000, request_id="req-open")
    assert usage_hold_get(user=user, request_id="req-open")["released"] == 0
    hold_release(hold_id=still_open.pk)
    assert usage_hold_get(user=user, request_id="unknown") is None


def test_usage_hold_get_is_the_owners_only(user, other_user, django_user_model):
    staff = django_user_model.objects.create_user(username="ops", is_staff=True)
    adjustment_create(user=user, amount=10_000_000, actor=staff, reason="starter")
    mine = hold_place(user=user, amount=1_000_000, request_id="req-mine")
    assert usage_hold_get(user=other_user, request_id="req-mine") is None
    assert usage_hold_get(user=user, request_id="req-mine")["amount"] == 1_000_000
    hold_release(hold_id=mine.pk)
