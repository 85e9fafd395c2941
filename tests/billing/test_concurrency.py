"""Money under real concurrency: threads with their own PostgreSQL connections and transactions."""

import pytest
from django.test import Client

from billing import selectors
from billing.credits import MICRO_PER_CREDIT
from billing.models import LedgerEntry, StripeEvent, TopUp
from tests.billing import stripe_shapes as s
from tests.billing.conftest import run_concurrently

C = MICRO_PER_CREDIT
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _post(evt):
    payload = s.body(evt)
    return Client().post(
        "/api/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=s.sign(payload),
    )


def test_same_event_20_times_at_once_credits_once(user, stripe_settings):
    obj = s.checkout_session(
        user_id=user.pk, cents=10000, session_id="cs_test_race", payment_intent="pi_3Race"
    )
    evt = s.event("checkout.session.completed", obj)

    responses = run_concurrently(lambda i: _post(evt), 20)

    assert [r.status_code for r in responses] == [200] * 20
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 19 + ["processed"]
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert StripeEvent.objects.count() == 1


def test_checkout_and_payment_intent_events_racing_credit_each_payment_once(user, stripe_settings):
    events = []
    for n in range(10):
        session = s.checkout_session(
            user_id=user.pk, cents=10000, session_id=f"cs_test_pair{n}", payment_intent=f"pi_3Pair{n}"
        )
        intent = s.payment_intent(intent_id=f"pi_3Pair{n}", cents=10000, user_id=user.pk)
        events += [
            s.event("checkout.session.completed", session),
            s.event("payment_intent.succeeded", intent),
        ]

    responses = run_concurrently(lambda i: _post(events[i]), len(events))

    assert [r.status_code for r in responses] == [200] * 20
    assert TopUp.objects.count() == 10
    assert LedgerEntry.objects.filter(kind="topup").count() == 10
    assert selectors.balance_get(user=user)["balance"] == 10 * 86_956 * C
    assert TopUp.objects.filter(checkout_session_id__isnull=True).count() == 0


def test_refund_events_racing_debit_once(user, stripe_settings):
    session = s.checkout_session(
        user_id=user.pk, cents=10000, session_id="cs_test_rf", payment_intent="pi_3Rf"
    )
    assert _post(s.event("checkout.session.completed", session)).status_code == 200
    # Stripe may send several events carrying the same cumulative amount_refunded.
    refunds = [
        s.event("charge.refunded", s.charge(intent_id="pi_3Rf", cents=10000, refunded_cents=5000))
        for _ in range(10)
    ]

    responses = run_concurrently(lambda i: _post(refunds[i]), 10)

    assert [r.status_code for r in responses] == [200] * 10
    assert LedgerEntry.objects.filter(kind="refund").count() == 1
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C - 43_478 * C
