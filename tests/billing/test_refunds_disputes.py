"""Refunds and disputes take credits back without ever taking a balance below zero."""

import pytest

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditAccount, CreditHold, LedgerEntry, TopUp
from smartspec.errors import InsufficientCredits
from tests.billing import stripe_shapes as s

C = MICRO_PER_CREDIT
pytestmark = pytest.mark.django_db

INTENT = "pi_3Refund"


@pytest.fixture
def paid(user, deliver):
    """alice paid $100 (86,956 credits) through Checkout."""
    obj = s.checkout_session(user_id=user.pk, cents=10000, session_id="cs_test_r", payment_intent=INTENT)
    assert deliver(s.event("checkout.session.completed", obj)).status_code == 200
    return TopUp.objects.get()


def _refund(deliver, refunded_cents, event_id=None):
    obj = s.charge(intent_id=INTENT, cents=10000, refunded_cents=refunded_cents)
    return deliver(s.event("charge.refunded", obj, event_id=event_id))


def _balance(user):
    return selectors.balance_get(user=user)["balance"]


def test_partial_refunds_add_up_to_the_whole(user, deliver, paid):
    assert _refund(deliver, 2500).status_code == 200
    # 86,956 * 2500 / 10000 = 21,739 credits back.
    assert _balance(user) == (86_956 - 21_739) * C
    assert _refund(deliver, 6000).status_code == 200
    # 60% refunded in total: 52,173.6 credits (the share is exact to the micro-credit).
    assert _balance(user) == 86_956 * C - 52_173_600_000
    assert _refund(deliver, 10000).status_code == 200
    assert _balance(user) == 0
    refunds = LedgerEntry.objects.filter(kind="refund").order_by("id")
    assert [e.amount for e in refunds] == [-21_739_000_000, -30_434_600_000, -34_782_400_000]
    paid.refresh_from_db()
    assert (paid.amount_refunded_cents, paid.clawed_back, paid.owed) == (10000, 86_956 * C, 0)


def test_refund_replay_and_older_figures_are_no_ops(user, deliver, paid):
    _refund(deliver, 5000, event_id="evt_refund_a")
    after_first = _balance(user)
    # The same event again, and a new event carrying an older cumulative figure.
    assert _refund(deliver, 5000, event_id="evt_refund_a").json()["status"] == "duplicate"
    assert _refund(deliver, 5000).status_code == 200
    assert _refund(deliver, 2000).status_code == 200
    assert _balance(user) == after_first == (86_956 - 43_478) * C
    assert LedgerEntry.objects.filter(kind="refund").count() == 1


def test_refund_after_spending_takes_at_most_the_balance_and_blocks_holds(user, deliver, paid, staff_user):
    hold = services.hold_place(user=user, amount=80_000 * C, request_id="req-spend")
    services.hold_settle(hold_id=hold.pk, amount=80_000 * C)
    assert _balance(user) == 6_956 * C

    assert _refund(deliver, 10000).status_code == 200

    assert _balance(user) == 0
    paid.refresh_from_db()
    assert paid.owed == 80_000 * C
    account = CreditAccount.objects.get(user=user)
    assert account.owed == 80_000 * C
    # Fresh credits pay down what is owed first; no hold while anything is still owed.
    services.adjustment_create(user=user, amount=10 * C, actor=staff_user, reason="goodwill")
    assert (_balance(user), CreditAccount.objects.get(user=user).owed) == (0, 79_990 * C)
    assert LedgerEntry.objects.get(kind="owed_collected").amount == -10 * C
    with pytest.raises(InsufficientCredits) as exc:
        services.hold_place(user=user, amount=C, request_id="req-blocked")
    assert exc.value.code == "account_shortfall"

    services.account_shortfall_clear(user=user, actor=staff_user, reason="written off")
    services.adjustment_create(user=user, amount=10 * C, actor=staff_user, reason="goodwill")
    hold = services.hold_place(user=user, amount=C, request_id="req-after")
    services.hold_release(hold_id=hold.pk)
    cleared = LedgerEntry.objects.get(kind="shortfall_cleared")
    assert (cleared.amount, cleared.actor) == (0, staff_user)


def test_refund_for_an_unknown_payment_changes_nothing(user, deliver, paid):
    obj = s.charge(intent_id="pi_3NotOurs", cents=500, refunded_cents=500)
    assert deliver(s.event("charge.refunded", obj)).status_code == 200
    assert _balance(user) == 86_956 * C


def _dispute(deliver, event_type, status, dispute_id="dp_1Test", cents=10000):
    obj = s.dispute(dispute_id=dispute_id, intent_id=INTENT, cents=cents, status=status)
    return deliver(s.event(event_type, obj))


@pytest.mark.allow_open_holds
def test_dispute_created_freezes_the_credits(user, deliver, paid):
    assert _dispute(deliver, "charge.dispute.created", "needs_response").status_code == 200
    assert selectors.balance_get(user=user) == {"balance": 86_956 * C, "held": 86_956 * C, "available": 0}
    with pytest.raises(InsufficientCredits):
        services.hold_place(user=user, amount=C, request_id="req-frozen")
    assert CreditHold.objects.get(purpose="dispute").state == "held"


def test_dispute_won_releases(user, deliver, paid):
    _dispute(deliver, "charge.dispute.created", "needs_response")
    assert _dispute(deliver, "charge.dispute.closed", "won").status_code == 200
    assert selectors.balance_get(user=user) == {"balance": 86_956 * C, "held": 0, "available": 86_956 * C}
    assert CreditHold.objects.get(purpose="dispute").state == "released"
    assert not LedgerEntry.objects.filter(kind="dispute").exists()


def test_dispute_lost_debits(user, deliver, paid):
    _dispute(deliver, "charge.dispute.created", "needs_response")
    assert _dispute(deliver, "charge.dispute.closed", "lost").status_code == 200
    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}
    entry = LedgerEntry.objects.get(kind="dispute")
    assert (entry.amount, entry.reference) == (-86_956 * C, "dp_1Test")
    assert CreditHold.objects.get(purpose="dispute").state == "settled"
    # A replayed or late `created` after the close freezes nothing.
    _dispute(deliver, "charge.dispute.created", "needs_response")
    assert selectors.balance_get(user=user)["held"] == 0


def test_dispute_on_spent_credits_freezes_what_is_left_and_lost_records_the_shortfall(user, deliver, paid):
    hold = services.hold_place(user=user, amount=50_000 * C, request_id="req-spend")
    services.hold_settle(hold_id=hold.pk, amount=50_000 * C)

    _dispute(deliver, "charge.dispute.created", "needs_response")
    assert selectors.balance_get(user=user)["held"] == 36_956 * C
    _dispute(deliver, "charge.dispute.closed", "lost")

    assert _balance(user) == 0
    paid.refresh_from_db()
    assert (paid.clawed_back, paid.owed) == (86_956 * C, 50_000 * C)
    assert CreditAccount.objects.get(user=user).owed == 50_000 * C


def test_dispute_closed_lost_without_created_still_debits(user, deliver, paid):
    _dispute(deliver, "charge.dispute.closed", "lost")
    assert _balance(user) == 0
    assert LedgerEntry.objects.filter(kind="dispute").count() == 1


def test_refund_then_lost_dispute_never_takes_more_than_was_bought(user, deliver, paid):
    _refund(deliver, 5000)
    _dispute(deliver, "charge.dispute.closed", "lost")
    paid.refresh_from_db()
    assert paid.clawed_back == 86_956 * C
    assert _balance(user) == 0
    assert CreditAccount.objects.get(user=user).owed == 0
