"""A clawback never makes calls in flight free: a refund or lost dispute takes what is available
(balance - held); the rest is owed, collected as the holds resolve and from later top-ups, and an
account that owes cannot place holds. Every collection is a ledger entry."""

import pytest
from django.db.models import Sum

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditAccount, CreditHold, LedgerEntry, TopUp
from smartspec.errors import InsufficientCredits
from tests.billing import stripe_shapes as s
from tests.billing.conftest import run_concurrently

C = MICRO_PER_CREDIT
BOUGHT = 86_956 * C  # $100
pytestmark = pytest.mark.django_db


def _pay(deliver, user, intent="pi_3Owed", session="cs_test_owed"):
    obj = s.checkout_session(user_id=user.pk, cents=10000, session_id=session, payment_intent=intent)
    assert deliver(s.event("checkout.session.completed", obj)).status_code == 200


def _refund_all(deliver, intent="pi_3Owed"):
    obj = s.charge(intent_id=intent, cents=10000, refunded_cents=10000)
    assert deliver(s.event("charge.refunded", obj)).status_code == 200


def _lose_dispute(deliver, intent="pi_3Owed"):
    for event_type, status in (
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.closed", "lost"),
    ):
        obj = s.dispute(dispute_id="dp_1Owed", intent_id=intent, cents=10000, status=status)
        assert deliver(s.event(event_type, obj)).status_code == 200


def _owed(user) -> int:
    return CreditAccount.objects.get(user=user).owed


def _collected(user) -> int:
    total = LedgerEntry.objects.filter(account__user=user, kind="owed_collected").aggregate(s=Sum("amount"))
    return -(total["s"] or 0)


@pytest.mark.parametrize("clawback", ["refund", "dispute_lost"])
def test_a_clawback_with_60_calls_in_flight_leaves_them_their_credits(user, deliver, clawback):
    _pay(deliver, user)
    holds = [services.hold_place(user=user, amount=1_000 * C, request_id=f"flight-{i}") for i in range(60)]

    _refund_all(deliver) if clawback == "refund" else _lose_dispute(deliver)

    # Only what no call held was taken; the 60,000 held credits are owed instead.
    assert selectors.balance_get(user=user) == {"balance": 60_000 * C, "held": 60_000 * C, "available": 0}
    assert _owed(user) == 60_000 * C
    assert TopUp.objects.get().owed == 60_000 * C
    with pytest.raises(InsufficientCredits) as exc:
        services.hold_place(user=user, amount=C, request_id="after-clawback")
    assert exc.value.code == "account_shortfall"

    # Every call in flight is charged its full cost (none is free), and what it leaves pays the debt.
    for hold in holds:
        services.hold_settle(hold_id=hold.pk, amount=800 * C, reference=hold.request_id)
    settled = CreditHold.objects.filter(purpose="usage")
    assert settled.aggregate(c=Sum("charged"), e=Sum("excess")) == {"c": 48_000 * C, "e": 0}
    assert _collected(user) == 12_000 * C
    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}
    assert _owed(user) == 48_000 * C
    assert LedgerEntry.objects.filter(kind="owed_collected").count() == 60

    # The next top-up pays off the rest; then calls are allowed again.
    _pay(deliver, user, intent="pi_3Owed2", session="cs_test_owed2")
    assert _owed(user) == 0
    assert selectors.balance_get(user=user)["balance"] == BOUGHT - 48_000 * C
    hold = services.hold_place(user=user, amount=C, request_id="after-top-up")
    services.hold_release(hold_id=hold.pk)
    assert _collected(user) == 60_000 * C


def test_released_and_expired_holds_pay_what_is_owed(user, deliver):
    _pay(deliver, user)
    released = services.hold_place(user=user, amount=30_000 * C, request_id="released")
    expired = services.hold_place(user=user, amount=20_000 * C, request_id="expired", ttl_seconds=-1)
    zero = services.hold_place(user=user, amount=10_000 * C, request_id="zero-cost")
    _refund_all(deliver)
    assert _owed(user) == 60_000 * C

    services.hold_release(hold_id=released.pk)
    assert (_owed(user), selectors.balance_get(user=user)["balance"]) == (30_000 * C, 30_000 * C)
    assert services.holds_expire() == 1
    assert (_owed(user), selectors.balance_get(user=user)["balance"]) == (10_000 * C, 10_000 * C)
    services.hold_settle(hold_id=zero.pk, amount=0)
    assert _owed(user) == 0
    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}
    assert _collected(user) == 60_000 * C
    expired.refresh_from_db()
    assert expired.state == "expired"


def test_a_won_dispute_releasing_frozen_credits_pays_a_refund_owed_meanwhile(user, deliver):
    _pay(deliver, user, intent="pi_3A", session="cs_test_a")
    _pay(deliver, user, intent="pi_3B", session="cs_test_b")
    obj = s.dispute(dispute_id="dp_1B", intent_id="pi_3B", cents=10000, status="needs_response")
    deliver(s.event("charge.dispute.created", obj))  # freezes B's credits
    spent = services.hold_place(user=user, amount=BOUGHT, request_id="spend-a")
    services.hold_settle(hold_id=spent.pk, amount=BOUGHT)  # A's credits are spent
    _refund_all(deliver, intent="pi_3A")  # nothing available: A's credits are owed
    assert _owed(user) == BOUGHT
    obj = s.dispute(dispute_id="dp_1B", intent_id="pi_3B", cents=10000, status="won")
    deliver(s.event("charge.dispute.closed", obj))
    # B's credits, released, pay A's refund first.
    assert _owed(user) == 0
    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}
    assert _collected(user) == BOUGHT


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("clawback", ["refund", "dispute_lost"])
def test_a_clawback_racing_40_settles_makes_no_call_free(user, stripe_settings, clawback):
    """The issue's race: calls in flight when the refund lands were charged 0 and flagged excess."""
    from django.test import Client

    client = Client()

    def post(evt):
        payload = s.body(evt)
        return client.post(
            "/api/billing/stripe/webhook",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=s.sign(payload),
        ).status_code

    session = s.checkout_session(
        user_id=user.pk, cents=10000, session_id="cs_test_race", payment_intent="pi_3Race"
    )
    assert post(s.event("checkout.session.completed", session)) == 200
    holds = [services.hold_place(user=user, amount=2_000 * C, request_id=f"race-{i}") for i in range(40)]
    if clawback == "refund":
        events = [
            s.event("charge.refunded", s.charge(intent_id="pi_3Race", cents=10000, refunded_cents=10000))
        ]
    else:
        events = [
            s.event(kind, s.dispute(dispute_id="dp_1Race", intent_id="pi_3Race", cents=10000, status=status))
            for kind, status in (
                ("charge.dispute.created", "needs_response"),
                ("charge.dispute.closed", "lost"),
            )
        ]

    def work(i):
        if i >= len(holds):
            return post(events[i - len(holds)])
        services.hold_settle(hold_id=holds[i].pk, amount=1_500 * C, reference=holds[i].request_id)
        return "settled"

    results = run_concurrently(work, len(holds) + len(events))

    assert results == ["settled"] * len(holds) + [200] * len(events)
    usage = CreditHold.objects.filter(purpose="usage")
    # Every call in flight paid its cost, whether it settled before or after the clawback.
    assert usage.aggregate(c=Sum("charged"), e=Sum("excess")) == {"c": 40 * 1_500 * C, "e": 0}
    topup = TopUp.objects.get(payment_intent_id="pi_3Race")
    kind = "refund" if clawback == "refund" else "dispute"
    taken = -LedgerEntry.objects.get(kind=kind).amount
    account = CreditAccount.objects.get(user=user)
    # The whole purchase came back: taken at once, or owed (collected since, or still owed).
    assert taken + topup.owed == BOUGHT
    assert _collected(user) == topup.owed - account.owed
    assert account.balance == BOUGHT - 40 * 1_500 * C - taken - _collected(user) >= 0
    assert account.held == 0
    # Owing and credits available at once would mean a collection was missed.
    assert account.owed == 0 or account.balance == 0
    assert services.ledger_reconcile() == []
