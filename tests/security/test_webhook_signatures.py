"""Stripe webhook signatures at the edges of Stripe's 300 s tolerance, and replayed signatures on
altered bodies (billing's own suite covers wrong secrets, stale and missing signatures)."""

import time

import pytest
from django.test import Client

from billing import selectors
from billing.models import StripeEvent
from tests.billing import stripe_shapes as s
from tests.billing.conftest import stripe_settings  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def post(payload: bytes, header: str):
    return Client().post(
        "/api/billing/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )


def _event(user, intent_id):
    obj = s.checkout_session(
        user_id=user.pk, cents=1000, session_id=f"cs_{intent_id}", payment_intent=intent_id
    )
    return s.event("checkout.session.completed", obj)


def test_inside_the_tolerance_is_accepted_and_past_it_refused(user, stripe_settings):  # noqa: F811
    fresh = s.body(_event(user, "pi_inside"))
    assert post(fresh, s.sign(fresh, timestamp=int(time.time()) - 290)).status_code == 200
    stale = s.body(_event(user, "pi_outside"))
    r = post(stale, s.sign(stale, timestamp=int(time.time()) - 305))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
    assert StripeEvent.objects.count() == 1
    assert selectors.balance_get(user=user)["balance"] == 8_695_000_000  # $10 -> 8,695 credits, once


def test_a_valid_signature_replayed_on_an_altered_body_is_refused(user, stripe_settings):  # noqa: F811
    payload = s.body(_event(user, "pi_original"))
    header = s.sign(payload)
    forged = payload.replace(b'"amount_total": 1000', b'"amount_total": 99999')
    assert forged != payload
    r = post(forged, header)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists() and selectors.balance_get(user=user)["balance"] == 0
