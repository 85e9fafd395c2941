"""The Stripe webhook: signatures, at-most-once events, top-ups credited once whichever event arrives."""

import json
import time

import pytest

from billing import selectors
from billing.credits import MICRO_PER_CREDIT
from billing.models import LedgerEntry, StripeEvent, TopUp
from tests.billing import stripe_shapes as s

C = MICRO_PER_CREDIT
pytestmark = pytest.mark.django_db


def _checkout_event(user, cents=10000, session_id="cs_test_a1", intent_id="pi_3Test1", paid=True):
    obj = s.checkout_session(
        user_id=user.pk, cents=cents, session_id=session_id, payment_intent=intent_id, paid=paid
    )
    return s.event("checkout.session.completed", obj)


def _intent_event(user, cents=10000, intent_id="pi_3Test1"):
    return s.event(
        "payment_intent.succeeded", s.payment_intent(intent_id=intent_id, cents=cents, user_id=user.pk)
    )


def test_checkout_completed_credits_86956_for_100_usd(user, deliver):
    response = deliver(_checkout_event(user))

    assert response.status_code == 200
    assert response.json() == {"received": True, "status": "processed"}
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.reference) == ("topup", 86_956 * C, "pi_3Test1")
    topup = TopUp.objects.get()
    assert (topup.amount_cents, topup.checkout_session_id, topup.payment_intent_id) == (
        10000,
        "cs_test_a1",
        "pi_3Test1",
    )


def test_777_cents_gives_6756_credits(user, deliver):
    deliver(_checkout_event(user, cents=777))
    assert selectors.balance_get(user=user)["balance"] == 6_756 * C


def test_same_event_twice_credits_once(user, deliver):
    evt = _checkout_event(user)
    assert deliver(evt).json()["status"] == "processed"
    assert deliver(evt).json() == {"received": True, "status": "duplicate"}
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    assert StripeEvent.objects.count() == 1


@pytest.mark.parametrize("order", ["checkout_first", "intent_first"])
def test_checkout_and_payment_intent_events_credit_one_payment_once(user, deliver, order):
    events = [_checkout_event(user), _intent_event(user)]
    if order == "intent_first":
        events.reverse()
    for evt in events:
        assert deliver(evt).status_code == 200

    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    topup = TopUp.objects.get()
    assert (topup.checkout_session_id, topup.payment_intent_id) == ("cs_test_a1", "pi_3Test1")


def test_unpaid_checkout_waits_for_async_payment(user, deliver):
    unpaid = _checkout_event(user, paid=False)
    assert deliver(unpaid).json()["status"] == "ignored"
    assert selectors.balance_get(user=user)["balance"] == 0

    obj = s.checkout_session(
        user_id=user.pk, cents=10000, session_id="cs_test_a1", payment_intent="pi_3Test1"
    )
    assert deliver(s.event("checkout.session.async_payment_succeeded", obj)).json()["status"] == "processed"
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C


def test_payment_intent_not_from_our_checkout_is_ignored(user, deliver):
    evt = s.event("payment_intent.succeeded", s.payment_intent(intent_id="pi_3Other", cents=500))
    assert deliver(evt).json()["status"] == "ignored"
    assert not TopUp.objects.exists()


def test_unknown_event_type_is_acknowledged_and_ignored(user, deliver):
    evt = s.event("customer.created", {"id": "cus_1", "object": "customer"})
    response = deliver(evt)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert StripeEvent.objects.get().status == "ignored"


# --- Signatures ------------------------------------------------------------------


def test_wrong_secret_is_400_and_changes_nothing(user, deliver):
    evt = _checkout_event(user)
    response = deliver(evt, signature=s.sign(s.body(evt), secret="whsec_someone_else"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()
    assert selectors.balance_get(user=user)["balance"] == 0


def test_expired_timestamp_is_400(user, deliver):
    evt = _checkout_event(user)
    stale = s.sign(s.body(evt), timestamp=int(time.time()) - 301)
    response = deliver(evt, signature=stale)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()


def test_missing_signature_header_is_400(user, deliver):
    response = deliver(_checkout_event(user), signature="")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_missing"
    assert not StripeEvent.objects.exists()


def test_tampered_body_is_400(user, deliver):
    evt = _checkout_event(user)
    header = s.sign(s.body(evt))
    evt["data"]["object"]["amount_total"] = 99_999_00
    assert deliver(evt, signature=header).status_code == 400
    assert not TopUp.objects.exists()


def test_not_configured_is_a_clear_400(user, deliver, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(_checkout_event(user))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "stripe_not_configured"


# --- Signed but malformed ----------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda e: e["data"]["object"].pop("amount_total"),
        lambda e: e["data"]["object"].update(amount_total="10000"),
        lambda e: e["data"]["object"].update(amount_total=-5),
        lambda e: e["data"]["object"].update(client_reference_id="999999", metadata={}),
        lambda e: e["data"]["object"].update(client_reference_id=None, metadata={}),
        lambda e: e["data"]["object"].update(currency="eur"),
        lambda e: e["data"].pop("object"),
    ],
)
def test_signed_but_malformed_event_is_4xx_and_writes_nothing_to_balances(user, deliver, mangle):
    evt = _checkout_event(user)
    mangle(evt)

    response = deliver(evt)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    assert not LedgerEntry.objects.exists()
    assert not TopUp.objects.exists()
    failed = StripeEvent.objects.get()
    assert failed.status == "failed"
    assert failed.error


def test_failed_event_is_retried_on_redelivery(deliver, django_user_model):
    evt = s.event(
        "checkout.session.completed",
        s.checkout_session(user_id=4242, cents=10000, session_id="cs_test_late", payment_intent="pi_3Late"),
    )
    assert deliver(evt).status_code == 400
    assert StripeEvent.objects.get().status == "failed"
    # The cause goes away (the account now exists); Stripe's redelivery of the same event succeeds.
    late = django_user_model.objects.create_user(pk=4242, username="late")
    assert deliver(evt).json()["status"] == "processed"
    assert selectors.balance_get(user=late)["balance"] == 86_956 * C
    assert StripeEvent.objects.get().status == "processed"


def test_a_failed_event_redelivered_with_another_payload_stores_what_was_applied(deliver, user):
    """The first delivery fails (a user id that names nobody); the redelivery of the same event id
    carries a good payload and is applied: the stored payload is the applied one, not the first."""
    session = s.checkout_session(
        user_id=4242, cents=10000, session_id="cs_test_two", payment_intent="pi_3Two"
    )
    evt = s.event("checkout.session.completed", session)
    assert deliver(evt).status_code == 400
    assert StripeEvent.objects.get().payload["data"]["object"]["client_reference_id"] == "4242"

    fixed = s.event(
        "checkout.session.completed",
        s.checkout_session(user_id=user.pk, cents=10000, session_id="cs_test_two", payment_intent="pi_3Two"),
        event_id=evt["id"],
    )
    assert deliver(fixed).json()["status"] == "processed"
    stored = StripeEvent.objects.get()
    assert stored.status == "processed"
    assert stored.payload["data"]["object"]["client_reference_id"] == str(user.pk)
    assert stored.payload["data"]["object"]["metadata"] == {"user_id": str(user.pk)}
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", json.dumps({"type": "x"}).encode()])
def test_signed_garbage_is_400(deliver, raw):
    response = deliver(None, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    assert not StripeEvent.objects.exists()


def test_webhook_needs_no_api_key_but_get_is_not_allowed(client):
    assert client.get("/api/billing/stripe/webhook").status_code == 405
