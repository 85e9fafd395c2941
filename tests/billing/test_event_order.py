"""Event order never changes the outcome: a refund or dispute that arrives before its payment is
kept and applied when the payment lands; a payment is credited once whatever its events carry (a
Checkout Session without its PaymentIntent is looked up with Stripe, or refused); webhook amounts
keep the API's bounds; a signature from the future is refused like a stale one."""

import itertools
import time

import pytest
import responses

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditAccount, LedgerEntry, PendingClawback, StripeEvent, TopUp
from tests.billing import stripe_shapes as s
from tests.billing.conftest import run_concurrently

C = MICRO_PER_CREDIT
BOUGHT = 86_956 * C  # $100
STRIPE = "https://api.stripe.com/v1"
pytestmark = pytest.mark.django_db


def _payment(user, intent, session=None, intent_in_event=True):
    obj = s.checkout_session(
        user_id=user.pk,
        cents=10000,
        session_id=session or f"cs_{intent}",
        payment_intent=intent if intent_in_event else None,
    )
    return s.event("checkout.session.completed", obj)


def _refund(intent, cents):
    return s.event("charge.refunded", s.charge(intent_id=intent, cents=10000, refunded_cents=cents))


def _dispute(intent, kind, status):
    obj = s.dispute(dispute_id=f"dp_{intent}", intent_id=intent, cents=10000, status=status)
    return s.event(f"charge.dispute.{kind}", obj)


def _state(user, intent):
    account = CreditAccount.objects.get(user=user)
    topup = TopUp.objects.get(payment_intent_id=intent)
    return {
        "balance": account.balance,
        "held": account.held,
        "owed": account.owed,
        "clawed_back": topup.clawed_back,
        "refunded_cents": topup.amount_refunded_cents,
        "dispute": topup.dispute_status,
    }


# --- Refunds and disputes before their payment ------------------------------------------


def test_a_full_refund_before_its_payment_is_applied_when_the_payment_lands(user, deliver):
    """The issue's case: a $100 payment, fully refunded, left 86,956 credits."""
    refund = _refund("pi_3Early", 10000)
    response = deliver(refund)
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert StripeEvent.objects.get(event_id=refund["id"]).status == "pending"
    (pending,) = PendingClawback.objects.all()
    assert (pending.kind, pending.payment_intent_id, pending.applied_at) == ("refund", "pi_3Early", None)

    assert deliver(_payment(user, "pi_3Early")).status_code == 200

    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}
    assert [e.kind for e in LedgerEntry.objects.order_by("id")] == ["topup", "refund"]
    assert StripeEvent.objects.get(event_id=refund["id"]).status == "processed"
    pending.refresh_from_db()
    assert pending.applied_at is not None
    # A redelivery of the refund changes nothing.
    assert deliver(refund).json()["status"] == "duplicate"
    assert selectors.balance_get(user=user)["balance"] == 0


@pytest.mark.allow_open_holds
def test_a_dispute_opened_before_its_payment_freezes_the_credits_when_it_lands(user, deliver):
    assert deliver(_dispute("pi_3Disp", "created", "needs_response")).json()["status"] == "pending"
    deliver(_payment(user, "pi_3Disp"))
    assert selectors.balance_get(user=user) == {"balance": BOUGHT, "held": BOUGHT, "available": 0}
    # The close, arriving in the natural place now, releases or takes them as usual.
    deliver(_dispute("pi_3Disp", "closed", "lost"))
    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}


SCENARIOS = {
    "partial_refund_then_lost": [
        ("refund", 4000),
        ("created", "needs_response"),
        ("closed", "lost"),
    ],
    "partial_refund_then_won": [
        ("refund", 4000),
        ("created", "needs_response"),
        ("closed", "won"),
    ],
    "two_refunds_to_full": [("refund", 2500), ("refund", 10000), ("created", "needs_response")],
}


@pytest.mark.allow_open_holds
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_order_of_a_payments_events_ends_in_the_natural_orders_state(
    deliver, django_user_model, scenario
):
    """Every permutation of the payment and its clawback events (24 orders each), on its own account,
    ends with the same balance, holds, debt and top-up figures as payment-first."""
    steps = [("payment", None), *SCENARIOS[scenario]]
    states = []
    for n, order in enumerate(itertools.permutations(range(len(steps)))):
        user = django_user_model.objects.create_user(username=f"order-{scenario}-{n}")
        intent = f"pi_3Ord{n}"
        for index in order:
            kind, arg = steps[index]
            if kind == "payment":
                evt = _payment(user, intent)
            elif kind == "refund":
                evt = _refund(intent, arg)
            else:
                evt = _dispute(intent, kind, arg)
            assert deliver(evt).status_code == 200
        states.append((order, _state(user, intent)))
        assert services.ledger_reconcile() == []
    natural = states[0][1]
    assert states[0][0] == tuple(range(len(steps)))
    assert all(state == natural for _, state in states), [o for o, st in states if st != natural]
    assert not PendingClawback.objects.filter(applied_at__isnull=True).exists()


def test_a_refund_for_a_payment_we_never_see_stays_pending_and_moves_nothing(user, deliver, fund):
    fund(user, 10)
    assert deliver(_refund("pi_3NotOurs", 500)).json()["status"] == "pending"
    assert selectors.balance_get(user=user)["balance"] == 10 * C
    assert PendingClawback.objects.get().applied_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_refunds_racing_their_payments_are_never_lost(stripe_settings, django_user_model):
    """Ten payments whose checkout event and full-refund event arrive at the same moment: whichever
    commits first, every payment ends fully clawed back."""
    from django.test import Client

    users = [django_user_model.objects.create_user(username=f"racer-{i}") for i in range(10)]
    events = []
    for i, user in enumerate(users):
        events += [_payment(user, f"pi_3Race{i}"), _refund(f"pi_3Race{i}", 10000)]

    def work(i):
        payload = s.body(events[i])
        return (
            Client()
            .post(
                "/api/billing/stripe/webhook",
                data=payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=s.sign(payload),
            )
            .status_code
        )

    assert run_concurrently(work, len(events)) == [200] * len(events)
    for i, user in enumerate(users):
        assert _state(user, f"pi_3Race{i}")["balance"] == 0
        assert TopUp.objects.get(payment_intent_id=f"pi_3Race{i}").clawed_back == BOUGHT
    assert not StripeEvent.objects.exclude(status="processed").exists()
    assert services.ledger_reconcile() == []


# --- One payment credited once ---------------------------------------------------------


def _session_lookup(session_id, intent, status=200):
    body = {
        "id": session_id,
        "object": "checkout.session",
        "payment_intent": intent,
        "payment_status": "paid",
    }
    responses.get(f"{STRIPE}/checkout/sessions/{session_id}", json=body, status=status)


@responses.activate
@pytest.mark.parametrize("first", ["checkout", "payment_intent"])
def test_checkout_without_payment_intent_is_tied_to_it_through_stripe_and_credited_once(user, deliver, first):
    """The issue's case: checkout with payment_intent null, then payment_intent.succeeded, credited twice."""
    _session_lookup("cs_test_null", "pi_3Null")
    checkout = _payment(user, "pi_3Null", session="cs_test_null", intent_in_event=False)
    intent = s.event(
        "payment_intent.succeeded", s.payment_intent(intent_id="pi_3Null", cents=10000, user_id=user.pk)
    )
    for evt in [checkout, intent] if first == "checkout" else [intent, checkout]:
        assert deliver(evt).status_code == 200

    assert selectors.balance_get(user=user)["balance"] == BOUGHT
    (topup,) = TopUp.objects.all()
    assert (topup.payment_intent_id, topup.checkout_session_id) == ("pi_3Null", "cs_test_null")
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer sk_test_suite_key"
    # A full refund then takes back everything that was credited.
    deliver(_refund("pi_3Null", 10000))
    assert selectors.balance_get(user=user)["balance"] == 0


@responses.activate
def test_a_session_stripe_cannot_tie_to_a_payment_is_refused_until_it_can(user, deliver):
    _session_lookup("cs_test_untied", None)
    checkout = _payment(user, "pi_3Untied", session="cs_test_untied", intent_in_event=False)

    refused = deliver(checkout)

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "payment_intent_missing"
    assert not TopUp.objects.exists() and selectors.balance_get(user=user)["balance"] == 0
    assert StripeEvent.objects.get().status == "failed"
    # Stripe delivers it again; by then the session names its PaymentIntent.
    responses.replace(
        responses.GET,
        f"{STRIPE}/checkout/sessions/cs_test_untied",
        json={"id": "cs_test_untied", "object": "checkout.session", "payment_intent": "pi_3Untied"},
    )
    assert deliver(checkout).json()["status"] == "processed"
    assert TopUp.objects.get().payment_intent_id == "pi_3Untied"
    assert selectors.balance_get(user=user)["balance"] == BOUGHT


@responses.activate
def test_stripe_unreachable_for_the_lookup_is_a_non_2xx_and_credits_nothing(user, deliver):
    _session_lookup("cs_test_down", None, status=500)
    response = deliver(_payment(user, "pi_3Down", session="cs_test_down", intent_in_event=False))
    assert response.status_code == 502
    assert "sk_test" not in response.content.decode()
    assert not TopUp.objects.exists()
    assert StripeEvent.objects.get().status == "failed"


def test_a_session_is_never_credited_without_its_payment_intent(user):
    with pytest.raises(Exception) as exc:
        services.topup_apply(
            user=user, amount_cents=10000, payment_intent_id="", checkout_session_id="cs_x", source="test"
        )
    assert getattr(exc.value, "code", None) == "payment_intent_missing"
    assert not TopUp.objects.exists()


# --- Bounds --------------------------------------------------------------------------------


@pytest.mark.parametrize("cents", [1, 49, 1_000_001, 2 * 10**12, 10**30])
@pytest.mark.parametrize("event_type", ["checkout.session.completed", "payment_intent.succeeded"])
def test_webhook_amounts_outside_the_top_up_bounds_are_400_and_credit_nothing(
    user, deliver, cents, event_type
):
    if event_type == "checkout.session.completed":
        obj = s.checkout_session(user_id=user.pk, cents=cents, session_id="cs_test_b", payment_intent="pi_3B")
    else:
        obj = s.payment_intent(intent_id="pi_3B", cents=cents, user_id=user.pk)
    response = deliver(s.event(event_type, obj))
    assert response.status_code == 400
    error = response.json()["error"]
    if cents < 2**63:
        assert error["code"] == "amount_out_of_range"
    else:
        # Past 64 bits the JSON intake refuses the body itself, naming the field.
        assert error["code"] == "malformed_event" and "amount" in error["message"]
    assert not TopUp.objects.exists() and not LedgerEntry.objects.exists()


@pytest.mark.parametrize("cents", [50, 1_000_000])
def test_webhook_amounts_at_the_bounds_are_credited(user, deliver, cents):
    obj = s.checkout_session(user_id=user.pk, cents=cents, session_id="cs_test_b", payment_intent="pi_3B")
    assert deliver(s.event("checkout.session.completed", obj)).status_code == 200
    assert TopUp.objects.get().amount_cents == cents


@pytest.mark.parametrize("cents", [10**7, 10**30])
def test_a_refund_larger_than_any_payment_is_400(user, deliver, cents):
    evt = s.event("charge.refunded", s.charge(intent_id="pi_3Huge", cents=cents, refunded_cents=cents))
    assert deliver(evt).status_code == 400
    assert not PendingClawback.objects.exists()


@pytest.mark.parametrize("ahead, status", [(200, 200), (301, 400), (86400, 400)])
def test_a_signature_from_the_future_is_refused_like_a_stale_one(user, deliver, ahead, status):
    evt = _payment(user, "pi_3Future")
    header = s.sign(s.body(evt), timestamp=int(time.time()) + ahead)
    response = deliver(evt, signature=header)
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"]["code"] == "invalid_signature"
        assert not StripeEvent.objects.exists() and not TopUp.objects.exists()


@pytest.mark.parametrize("charge_id", ["ch_" + "x" * 300])
def test_a_pending_refund_with_an_id_the_database_refuses_is_400(user, deliver, charge_id):
    obj = s.charge(intent_id="pi_3Bad", cents=1000, refunded_cents=1000)
    obj["id"] = charge_id
    response = deliver(s.event("charge.refunded", obj))
    assert response.status_code == 400
    assert not PendingClawback.objects.exists()
