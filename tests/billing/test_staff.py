"""Staff tools: admin pages, the adjust-credits action, grant_credits, and the periodic tasks."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import selectors, services, tasks
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditAccount, CreditHold, LedgerEntry
from smartspec.errors import InvalidRequest
from tests.billing import stripe_shapes as s

C = MICRO_PER_CREDIT
pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser(
        username="root", password="pw-root-123", email="r@x.io"
    )
    client.force_login(admin)
    client.admin = admin
    return client


def test_adjustment_needs_a_reason_and_never_overdraws(user, staff_user, fund):
    with pytest.raises(InvalidRequest):
        services.adjustment_create(user=user, amount=5 * C, actor=staff_user, reason="  ")
    fund(user, 10)
    hold = services.hold_place(user=user, amount=4 * C, request_id="req-1")
    with pytest.raises(InvalidRequest):
        services.adjustment_create(user=user, amount=-7 * C, actor=staff_user, reason="too much")
    entry = services.adjustment_create(user=user, amount=-6 * C, actor=staff_user, reason="correction")
    assert (entry.amount, entry.balance_after, entry.actor, entry.description) == (
        -6 * C,
        4 * C,
        staff_user,
        "correction",
    )
    services.hold_release(hold_id=hold.pk)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/billing/creditaccount/",
        "/admin/billing/ledgerentry/",
        "/admin/billing/credithold/",
        "/admin/billing/credithold/?excess=yes",
        "/admin/billing/topup/",
        "/admin/billing/topup/?shortfall=yes",
        "/admin/billing/stripeevent/",
        "/admin/billing/pendingclawback/",
    ],
)
def test_admin_pages_load(admin_client, user, deliver, path):
    session = s.checkout_session(
        user_id=user.pk, cents=1000, session_id="cs_test_adm", payment_intent="pi_3Adm"
    )
    deliver(s.event("checkout.session.completed", session))
    hold = services.hold_place(user=user, amount=C, request_id="req-adm")
    services.hold_settle(hold_id=hold.pk, amount=2 * C)

    response = admin_client.get(path)

    assert response.status_code == 200
    if path == "/admin/billing/topup/":
        assert b"8,695.00" in response.content


def test_ledger_is_read_only_in_admin(admin_client, user, fund):
    entry = fund(user, 3)
    assert admin_client.get("/admin/billing/ledgerentry/add/").status_code == 403
    response = admin_client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/", {"amount": 999})
    assert response.status_code == 403
    assert admin_client.post(f"/admin/billing/ledgerentry/{entry.pk}/delete/").status_code == 403
    entry.refresh_from_db()
    assert entry.amount == 3 * C


def test_admin_adjust_credits_action_writes_through_the_service(admin_client, user, fund):
    fund(user, 1)
    account = CreditAccount.objects.get(user=user)
    base = {"action": "adjust_credits", "_selected_action": [account.pk]}

    form_page = admin_client.post("/admin/billing/creditaccount/", base)
    assert form_page.status_code == 200
    assert b"reason" in form_page.content

    missing_reason = admin_client.post(
        "/admin/billing/creditaccount/", {**base, "apply": "1", "credits": "5"}
    )
    assert missing_reason.status_code == 200
    assert LedgerEntry.objects.count() == 1

    done = admin_client.post(
        "/admin/billing/creditaccount/",
        {**base, "apply": "1", "credits": "2.5", "reason": "support ticket 42"},
    )
    assert done.status_code == 302
    entry = LedgerEntry.objects.order_by("-id").first()
    assert (entry.kind, entry.amount, entry.actor, entry.description) == (
        "adjustment",
        2_500_000,
        admin_client.admin,
        "support ticket 42",
    )
    assert selectors.balance_get(user=user)["balance"] == 3_500_000


def test_grant_credits_command(user):
    out = StringIO()
    call_command("grant_credits", "alice", "1000", "--reason", "starter credits", stdout=out)
    assert selectors.balance_get(user=user)["balance"] == 1000 * C
    assert "1000.000000 credits for alice" in out.getvalue()
    entry = LedgerEntry.objects.get()
    assert entry.kind == "adjustment"
    assert entry.description == "starter credits (grant_credits)"


@pytest.mark.parametrize(
    "args",
    [
        ["nobody", "5", "--reason", "x"],
        ["alice", "abc", "--reason", "x"],
        ["alice", "0.0000001", "--reason", "x"],
        ["alice", "-5", "--reason", "x"],
        ["alice", "5", "--reason", " "],
        ["alice", "5", "--reason", "x", "--actor", "nobody"],
    ],
)
def test_grant_credits_refuses_bad_input(user, args):
    with pytest.raises(CommandError):
        call_command("grant_credits", *args, stdout=StringIO())
    assert not LedgerEntry.objects.exists()


def test_expiry_task_releases_stale_holds(user, fund):
    fund(user, 10)
    hold = services.hold_place(user=user, amount=4 * C, request_id="req-crashed", ttl_seconds=1)
    CreditHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert tasks.holds_expire_task.delay().get() == 1

    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}


def test_reconcile_task_finds_a_tampered_balance(user, fund):
    fund(user, 10)
    assert tasks.ledger_reconcile_task.delay().get() == 0
    CreditAccount.objects.filter(user=user).update(balance=11 * C)
    assert tasks.ledger_reconcile_task.delay().get() == 1
    assert services.ledger_reconcile()[0]["ledger_sum"] == 10 * C
    # Put it right so the suite's own ledger check passes.
    CreditAccount.objects.filter(user=user).update(balance=10 * C)


def test_beat_schedules_the_billing_jobs(settings):
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"gateway.holds_expire", "billing.ledger_reconcile"} <= tasks_scheduled
